"""Private CA, server and per-host client certificates, and the registry `pki/index.json`.

Vector has no CRL or OCSP option, so revocation is made real by CA rotation: the receiver trusts
old + new CA during an overlap, hosts are re-enrolled onto the new CA, and retiring the old CA drops
every certificate it issued (revoked or stolen ones included).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from logstack.clock import now as _now
from logstack.clock import parse_registry_time as parse_time
from logstack.clock import registry_time as _iso
from logstack.errors import PKIError, RevokedHostError
from logstack.fsutil import atomic_write, ensure_private_dir
from logstack.inventory import Host, Inventory, PKISettings

CertStatus = Literal["valid", "revoked", "superseded"]
CAStatus = Literal["active", "previous", "retired"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

SERVER = "server"
_SKEW = dt.timedelta(minutes=5)  # tolerate clocks a little behind the operator's


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


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


class PKI:
    """The site's PKI directory: `<site>/pki/` (0700) holding CAs, certificates, keys and the registry."""

    def __init__(self, site_dir: Path, settings: PKISettings, site_name: str = "logstack") -> None:
        self.root = site_dir / "pki"
        self.settings = settings
        self.site_name = site_name
        self._registry: Registry | None = None
        self._ca_cache: dict[str, tuple[x509.Certificate, PrivateKey | None]] = {}
        self._unsynced = False  # leaf files written since the last save

    @classmethod
    def for_inventory(cls, inventory: Inventory) -> PKI:
        return cls(inventory.site_dir, inventory.spec.pki, inventory.spec.site)

    # -- paths ---------------------------------------------------------------------------------------
    @property
    def index_path(self) -> Path:
        return self.root / "index.json"

    def ca_cert_path(self, ca_id: str) -> Path:
        return self.root / "ca" / ca_id / "ca.pem"

    def ca_key_path(self, ca_id: str) -> Path:
        return self.root / "ca" / ca_id / "ca.key"

    def cert_path(self, name: str) -> Path:
        return self.root / ("server.pem" if name == SERVER else f"hosts/{name}.pem")

    def key_path(self, name: str) -> Path:
        return self.root / ("server.key" if name == SERVER else f"hosts/{name}.key")

    # -- registry ------------------------------------------------------------------------------------
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
            raw = json.loads(self.index_path.read_text(encoding="utf-8"))
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

    # -- CA ------------------------------------------------------------------------------------------
    def _new_key(self) -> PrivateKey:
        kind = self.settings.key_type
        if kind == "ecdsa-p256":
            return ec.generate_private_key(ec.SECP256R1())
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind.split("-")[1]))

    def _write_key(self, path: Path, key: PrivateKey, passphrase: bytes | None = None, durable: bool = True) -> None:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
        )
        # PKCS#8: Vector reads only PKCS#8 keys.
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        ensure_private_dir(path.parent)
        atomic_write(path, pem, mode=0o600, durable=durable)

    def init_ca(self, passphrase: bytes | None = None) -> CARecord:
        """Create the first CA; refuses when one exists."""
        if self.registry.cas:
            raise PKIError(f"{self.root}: a CA already exists (use `logstack ca rotate` for a new one)")
        record = self._create_ca(passphrase)
        self.save()
        return record

    def ensure_ca(self, passphrase: bytes | None = None) -> tuple[CARecord, bool]:
        """The active CA, created when there is none; returns (record, created)."""
        active = self.registry.active_ca
        if active:
            return active, False
        return self.init_ca(passphrase), True

    def _create_ca(self, passphrase: bytes | None) -> CARecord:
        ensure_private_dir(self.root)
        generation = len(self.registry.cas) + 1
        ca_id = f"ca-{generation}"
        key = self._new_key()
        now = _now()
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.site_name),
                x509.NameAttribute(NameOID.COMMON_NAME, f"logstack {self.site_name} CA {generation}"),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW)
            .not_valid_after(now + dt.timedelta(days=self.settings.ca_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        self._write_key(self.ca_key_path(ca_id), key, passphrase)
        atomic_write(self.ca_cert_path(ca_id), cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
        for ca in self.registry.cas:
            if ca.status == "active":
                ca.status = "previous"
        record = CARecord(
            id=ca_id,
            subject=cert.subject.rfc4514_string(),
            fingerprint=fingerprint(cert),
            not_before=_iso(cert.not_valid_before_utc),
            not_after=_iso(cert.not_valid_after_utc),
            status="active",
        )
        self.registry.cas.append(record)
        self._ca_cache[ca_id] = (cert, key)
        return record

    def load_ca(self, ca_id: str, passphrase: bytes | None = None) -> tuple[x509.Certificate, PrivateKey]:
        """The CA certificate and its private key (decrypted with `passphrase` when encrypted)."""
        cached = self._ca_cache.get(ca_id)
        if cached and cached[1] is not None:
            return cached[0], cached[1]
        cert = self.ca_certificate(ca_id)
        key_path = self.ca_key_path(ca_id)
        try:
            data = key_path.read_bytes()
        except OSError as exc:
            raise PKIError(f"{key_path}: cannot read CA key: {exc.strerror}") from None
        try:
            key = serialization.load_pem_private_key(data, password=passphrase)
        except TypeError:
            if passphrase:
                raise PKIError(f"{key_path}: the CA key is not encrypted; drop the passphrase") from None
            raise PKIError(
                f"{key_path}: the CA key is encrypted; set LOGSTACK_CA_PASSPHRASE or pass --passphrase-file"
            ) from None
        except ValueError:
            raise PKIError(f"{key_path}: wrong CA passphrase or damaged key") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise PKIError(f"{key_path}: unsupported CA key type")
        self._ca_cache[ca_id] = (cert, key)
        return cert, key

    def ca_certificate(self, ca_id: str) -> x509.Certificate:
        path = self.ca_cert_path(ca_id)
        try:
            return x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise PKIError(f"{path}: cannot read CA certificate: {exc}") from None

    def ca_bundle_pem(self) -> bytes:
        """PEM of every CA the receiver trusts now, active first."""
        cas = sorted(self.registry.trusted_cas, key=lambda ca: ca.status != "active")
        return b"".join(self.ca_cert_path(ca.id).read_bytes() for ca in cas)

    def rotate_ca(self, passphrase: bytes | None = None) -> CARecord:
        """Start a rotation: a new active CA; the old one stays trusted as `previous`."""
        if not self.registry.active_ca:
            raise PKIError(f"{self.root}: no CA yet (run `logstack ca init`)")
        if any(ca.status == "previous" for ca in self.registry.cas):
            raise PKIError("a rotation is already in progress; finish it with `logstack ca retire-old`")
        record = self._create_ca(passphrase)
        self.save()
        return record

    def hosts_on_old_ca(self, inventory: Inventory) -> list[str]:
        """Non-revoked inventory hosts whose certificate was not issued by the active CA."""
        active = self.registry.active_ca
        behind = []
        for host in inventory.hosts:
            if host.name in self.registry.revoked_hosts:
                continue
            rec = self.registry.current(host.name)
            if rec is not None and active is not None and rec.ca != active.id:
                behind.append(host.name)
        return behind

    def retire_old_ca(self, inventory: Inventory, passphrase: bytes | None = None, force: bool = False) -> str:
        """End a rotation: stop trusting the previous CA and re-issue the server certificate."""
        previous = [ca for ca in self.registry.cas if ca.status == "previous"]
        if not previous:
            raise PKIError("no rotation in progress (run `logstack ca rotate` first)")
        behind = self.hosts_on_old_ca(inventory)
        if behind and not force:
            raise PKIError(
                "hosts still hold certificates of the old CA: "
                + ", ".join(behind)
                + " (run `logstack enroll-host` for them, or --force to cut them off)"
            )
        for ca in previous:
            ca.status = "retired"
        self.issue_server(inventory, passphrase, save=False)
        self.save()
        return previous[0].id

    # -- leaf certificates ---------------------------------------------------------------------------
    def _active(self) -> CARecord:
        ca = self.registry.active_ca
        if ca is None:
            raise PKIError(f"{self.root}: no CA yet (run `logstack ca init`)")
        return ca

    def _issue(
        self,
        name: str,
        common_name: str,
        dns: Iterable[str],
        ips: Iterable[str],
        usage: x509.ObjectIdentifier,
        days: int,
        passphrase: bytes | None,
        ca: CARecord,
    ) -> CertRecord:
        ca_cert, ca_key = self.load_ca(ca.id, passphrase)
        key = self._new_key()
        now = _now()
        not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        is_rsa = isinstance(key, rsa.RSAPrivateKey)
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.site_name),
                        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                    ]
                )
            )
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=is_rsa,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        # Key first, then certificate, then registry: a crash leaves at worst an unregistered pair,
        # which the next issue simply replaces.
        self._write_key(self.key_path(name), key, durable=False)
        atomic_write(self.cert_path(name), cert.public_bytes(serialization.Encoding.PEM), mode=0o644, durable=False)
        self._unsynced = True
        for rec in self.registry.certs:
            if rec.name == name and rec.status == "valid":
                rec.status = "superseded"
        record = CertRecord(
            serial=format(cert.serial_number, "x"),
            kind="server" if usage == ExtendedKeyUsageOID.SERVER_AUTH else "client",
            name=name,
            subject=cert.subject.rfc4514_string(),
            sans=[str(d) for d in dns] + [str(i) for i in ips],
            fingerprint=fingerprint(cert),
            not_before=_iso(cert.not_valid_before_utc),
            not_after=_iso(cert.not_valid_after_utc),
            ca=ca.id,
            status="valid",
        )
        self.registry.certs.append(record)
        return record

    def issue_server(self, inventory: Inventory, passphrase: bytes | None = None, save: bool = True) -> CertRecord:
        """Issue (or re-issue) the receiver's certificate: SANs = fqdn + dns_names + ip_addresses."""
        server = inventory.server
        dns = [server.fqdn, *(d for d in server.dns_names if d != server.fqdn)]
        # During a rotation senders not yet re-enrolled trust only the old CA: keep the server on it.
        ca = next((c for c in self.registry.cas if c.status == "previous"), None) or self._active()
        record = self._issue(
            SERVER,
            server.fqdn,
            dns,
            server.ip_addresses,
            ExtendedKeyUsageOID.SERVER_AUTH,
            self.settings.server_days,
            passphrase,
            ca,
        )
        if save:
            self.save()
        return record

    def issue_client(self, host: Host, passphrase: bytes | None = None, save: bool = True) -> CertRecord:
        """Issue (or re-issue) a host's client certificate: CN = host name, fqdn as DNS SAN."""
        if host.name in self.registry.revoked_hosts:
            self.registry.revoked_hosts.remove(host.name)
        record = self._issue(
            host.name,
            host.name,
            [host.fqdn] if host.fqdn else [],
            [],
            ExtendedKeyUsageOID.CLIENT_AUTH,
            self.settings.client_days,
            passphrase,
            self._active(),
        )
        if save:
            self.save()
        return record

    def needs_client(self, host: Host, within: dt.timedelta = dt.timedelta(0)) -> bool:
        """Whether enrolling `host` must mint: no certificate, files gone, old CA, or expiring."""
        if host.name in self.registry.revoked_hosts:
            raise RevokedHostError(
                f"host {host.name!r} is revoked; remove it from the inventory or issue a new certificate "
                f"deliberately with `logstack certs renew {host.name}`"
            )
        rec = self.registry.current(host.name)
        active = self.registry.active_ca
        if rec is None or rec.status != "valid" or active is None or rec.ca != active.id:
            return True
        if not (self.cert_path(host.name).exists() and self.key_path(host.name).exists()):
            return True
        return parse_time(rec.not_after) - _now() <= within

    def revoke(self, name: str) -> CertRecord:
        """Mark a host's certificate revoked; it stops working once its CA is retired."""
        rec = self.registry.current(name)
        if rec is None or rec.kind != "client":
            raise PKIError(f"no client certificate for host {name!r} in {self.index_path}")
        rec.status = "revoked"
        if name not in self.registry.revoked_hosts:
            self.registry.revoked_hosts.append(name)
        self.key_path(name).unlink(missing_ok=True)
        self.save()
        return rec

    def expiring(self, within: dt.timedelta) -> list[CertRecord]:
        """Valid certificates (server and clients) that expire within `within`."""
        limit = _now() + within
        return [r for r in self.registry.certs if r.status == "valid" and parse_time(r.not_after) <= limit]

    def cert_pem(self, name: str) -> bytes | None:
        path = self.cert_path(name)
        return path.read_bytes() if path.exists() else None

    def key_pem(self, name: str) -> bytes | None:
        path = self.key_path(name)
        return path.read_bytes() if path.exists() else None


def read_passphrase(env_value: str | None, passphrase_file: Path | None) -> bytes | None:
    """The CA passphrase from --passphrase-file or LOGSTACK_CA_PASSPHRASE (file wins)."""
    if passphrase_file is not None:
        try:
            value = passphrase_file.read_text(encoding="utf-8").rstrip("\n")
        except OSError as exc:
            raise PKIError(f"{passphrase_file}: cannot read passphrase file: {exc.strerror}") from None
        if not value:
            raise PKIError(f"{passphrase_file}: passphrase file is empty")
        return value.encode("utf-8")
    if env_value:
        return env_value.encode("utf-8")
    return None
