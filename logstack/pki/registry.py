"""The site's PKI directory: where CAs, certificates and keys live, and the registry `pki/index.json`."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from logstack.base.errors import PKIError
from logstack.base.fsutil import atomic_write, ensure_private_dir
from logstack.base.safe_read import MiB, read_file

CertStatus = Literal["valid", "revoked", "superseded"]
CAStatus = Literal["active", "previous", "retired"]

SERVER = "server"


@dataclass
class CARecord:
    """One CA generation in the registry."""

    id: str
    subject: str
    fingerprint: str
    not_before: str
    not_after: str
    status: CAStatus


@dataclass
class CertRecord:
    """One issued certificate in the registry."""

    serial: str
    kind: Literal["server", "client"]
    name: str
    subject: str
    sans: list[str]
    fingerprint: str
    not_before: str
    not_after: str
    ca: str
    status: CertStatus


@dataclass
class Registry:
    """The whole `pki/index.json`."""

    cas: list[CARecord] = field(default_factory=list)
    certs: list[CertRecord] = field(default_factory=list)
    revoked_hosts: list[str] = field(default_factory=list)

    @property
    def active_ca(self) -> CARecord | None:
        return next((ca for ca in self.cas if ca.status == "active"), None)

    @property
    def trusted_cas(self) -> list[CARecord]:
        """CAs the receiver must trust now: the active one and, during a rotation, the previous one."""
        return [ca for ca in self.cas if ca.status in ("active", "previous")]

    def current(self, name: str) -> CertRecord | None:
        """The newest non-superseded certificate of `name` (`server` or a host name)."""
        for rec in reversed(self.certs):
            if rec.name == name and rec.status != "superseded":
                return rec
        return None


class PKIStore:
    """`<site>/pki/` (0700): the path layout, the registry and the PEM files; no lifecycle rules."""

    def __init__(self, site_dir: Path) -> None:
        self.root = site_dir / "pki"
        self._registry: Registry | None = None
        self._unsynced = False  # leaf files written since the last save

    @property
    def index_path(self) -> Path:
        return self.root / "index.json"

    def ca_cert_path(self, ca_id: str) -> Path:
        return self.root / "ca" / ca_id / "ca.pem"

    def ca_key_path(self, ca_id: str) -> Path:
        return self.root / "ca" / ca_id / "ca.key"

    def cert_path(self, name: str) -> Path:
        return self.root / f"{self._stem(name)}.pem"

    def key_path(self, name: str) -> Path:
        return self.root / f"{self._stem(name)}.key"

    @staticmethod
    def _stem(name: str) -> str:
        """server, receivers/<name> (more receivers), or hosts/<name>: host names hold no '/'."""
        return name if name == SERVER or name.startswith("receivers/") else f"hosts/{name}"

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = self._load_registry()
        return self._registry

    def exists(self) -> bool:
        return self.index_path.exists()

    def _load_registry(self) -> Registry:
        if not self.index_path.exists():
            return Registry()
        try:
            raw = json.loads(read_file(self.index_path, "PKI index", 16 * MiB, error=PKIError))
            return Registry(
                cas=[CARecord(**ca) for ca in raw["cas"]],
                certs=[CertRecord(**c) for c in raw["certs"]],
                revoked_hosts=list(raw.get("revoked_hosts", [])),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PKIError(f"{self.index_path}: unreadable registry: {exc}") from None

    def save(self) -> None:
        """Write the registry atomically (a crash leaves the old or the new index, never a torn one)."""
        ensure_private_dir(self.root)
        if self._unsynced:
            # Make every key and certificate durable before the registry records them.
            os.sync()
            self._unsynced = False
        text = json.dumps(asdict(self.registry), indent=2, sort_keys=False) + "\n"
        atomic_write(self.index_path, text, mode=0o600)

    def write_pair(self, name: str, key_pem: bytes, cert_pem: bytes) -> None:
        """Key first, then certificate: a crash leaves at worst an unregistered pair, replaced next time."""
        ensure_private_dir(self.key_path(name).parent)
        atomic_write(self.key_path(name), key_pem, mode=0o600, durable=False)
        atomic_write(self.cert_path(name), cert_pem, mode=0o644, durable=False)
        self._unsynced = True

    def write_ca(self, ca_id: str, key_pem: bytes, cert_pem: bytes) -> None:
        ensure_private_dir(self.ca_key_path(ca_id).parent)
        atomic_write(self.ca_key_path(ca_id), key_pem, mode=0o600)
        atomic_write(self.ca_cert_path(ca_id), cert_pem, mode=0o644)

    def ca_bundle_pem(self) -> bytes:
        """PEM of every CA the receiver trusts now, active first."""
        cas = sorted(self.registry.trusted_cas, key=lambda ca: ca.status != "active")
        return b"".join(read_file(self.ca_cert_path(ca.id), "CA certificate", MiB, error=PKIError) for ca in cas)

    def cert_pem(self, name: str) -> bytes | None:
        path = self.cert_path(name)
        return read_file(path, "certificate", MiB, error=PKIError) if path.exists() else None

    def key_pem(self, name: str) -> bytes | None:
        path = self.key_path(name)
        return read_file(path, "private key", MiB, error=PKIError) if path.exists() else None
