"""The site's key ring: each host's signing keys (current and retired), the machines they speak for, and the
seal key; kept in `signing-keys.json` beside the site's secrets (mode 0600)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from logstack.base.clock import to_micros
from logstack.base.errors import SecretsError
from logstack.base.fsutil import atomic_write
from logstack.base.safe_read import MiB, read_file

KEYRING = "signing-keys.json"
_KID_RE = re.compile(r"[0-9a-f]{16}")
_KEY_RE = re.compile(r"[0-9a-f]{64}")
_MACHINE_RE = re.compile(r"[0-9a-f]{32}")


def key_id(key: bytes) -> str:
    """A key's public name: it says which key signed, nothing about the key."""
    return hashlib.sha256(b"logstack-kid\0" + key).hexdigest()[:16]


@dataclass
class HostKey:
    """One signing key of a host; retired keys stay to verify what they signed."""

    kid: str
    key: bytes
    created: str
    retired: str | None = None


@dataclass
class KeyRing:
    """Every host's signing keys and the site's seal key."""

    hosts: dict[str, list[HostKey]] = field(default_factory=dict)
    seal_key: bytes = b""
    # each host's machine ids, learned when it was enrolled: a row a host's key signed naming another
    # machine is not that host's (a re-imaged host gets its new id by being enrolled again)
    machines: dict[str, list[str]] = field(default_factory=dict)

    def current(self, host: str) -> HostKey | None:
        live = [k for k in self.hosts.get(host, []) if k.retired is None]
        return live[-1] if live else None

    def by_kid(self) -> dict[str, tuple[str, bytes, str | None]]:
        return {k.kid: (host, k.key, k.retired) for host, keys in self.hosts.items() for k in keys}

    def retire(self, host: str, now: dt.datetime) -> bool:
        """Retire a host's live keys (host revoked or retired); True when one was live."""
        stamp, found = now.strftime("%Y-%m-%dT%H:%M:%SZ"), False
        for key in self.hosts.get(host, []):
            if key.retired is None:
                key.retired, found = stamp, True
        return found

    def mint(self, host: str, now: dt.datetime) -> HostKey:
        """A fresh key for `host`. Its older keys stay live until the new one is on the host (`retire_older`
        after a deployment): a host not yet re-enrolled still signs with them."""
        key = secrets.token_bytes(32)
        entry = HostKey(key_id(key), key, now.strftime("%Y-%m-%dT%H:%M:%SZ"))
        self.hosts.setdefault(host, []).append(entry)
        return entry

    def retire_older(self, host: str, kid: str, now: dt.datetime) -> bool:
        """The host now signs with key `kid`: retire the keys minted before it (a newer one, minted since,
        stays live until it is deployed in turn); True when one was live."""
        keys = self.hosts.get(host, [])
        ids = [k.kid for k in keys]
        if kid not in ids:
            return False
        stamp, found = now.strftime("%Y-%m-%dT%H:%M:%SZ"), False
        for key in keys[: ids.index(kid)]:
            if key.retired is None:
                key.retired, found = stamp, True
        return found


def keyring_path(site_dir: Path) -> Path:
    return site_dir / KEYRING


def load_keyring(path: Path, missing: str | None = None) -> KeyRing:
    """The key ring at `path`: empty when absent, or, given `missing`, a SecretsError naming the file and saying
    that; other problems are one-line SecretsErrors naming the file."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        if missing is not None:
            raise SecretsError(f"{path}: {missing}") from None
        return KeyRing()
    except OSError as exc:
        raise SecretsError(f"{path}: cannot read: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode) or st.st_size > 16 << 20:
        raise SecretsError(f"{path}: not a regular file of at most 16 MiB")
    if st.st_mode & 0o077:
        raise SecretsError(f"{path}: readable by others (mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 it")
    try:
        # depth-limited: a nested file is an error, not a crash
        data = orjson.loads(read_file(path, "key ring", 16 * MiB, follow_links=True, error=SecretsError))
        seal_key = data.get("seal_key", "")
        if not isinstance(seal_key, str) or (seal_key and not _KEY_RE.fullmatch(seal_key)):
            raise ValueError("seal key is not 64 hexadecimal digits")
        ring = KeyRing(seal_key=bytes.fromhex(seal_key))
        for host, keys in data["hosts"].items():
            ring.hosts[str(host)] = [_host_key(k) for k in keys]
        for host, ids in (data.get("machines") or {}).items():
            if not all(isinstance(i, str) and _MACHINE_RE.fullmatch(i) for i in ids):
                raise ValueError("a machine id is not 32 hexadecimal digits")
            ring.machines[str(host)] = list(ids)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SecretsError(f"{path}: not a logstack signing key ring") from None
    return ring


def _host_key(item: dict[str, Any]) -> HostKey:
    kid, key = item["kid"], item["key"]
    if not (isinstance(kid, str) and _KID_RE.fullmatch(kid) and isinstance(key, str) and _KEY_RE.fullmatch(key)):
        raise ValueError("bad key entry")
    raw = bytes.fromhex(key)
    if key_id(raw) != kid:
        raise ValueError("key id does not match key")
    retired = item.get("retired")
    if retired is not None:
        stamp_micros(retired)  # a retirement the verifier cannot read would make the key valid for ever
    return HostKey(kid, raw, str(item["created"]), retired)


def stamp_micros(text: object) -> int:
    """A key ring time (`2026-12-01T06:00:00Z`) in µs."""
    if not isinstance(text, str):
        raise ValueError("not a time")
    return to_micros(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))


def save_keyring(path: Path, ring: KeyRing) -> None:
    """Write the key ring atomically, mode 0600."""
    data = {
        "comment": "logstack signing keys: keep private (mode 0600), back up with the site, never commit",
        "seal_key": ring.seal_key.hex(),
        "hosts": {
            host: [{"kid": k.kid, "key": k.key.hex(), "created": k.created, "retired": k.retired} for k in keys]
            for host, keys in sorted(ring.hosts.items())
        },
    }
    if ring.machines:
        data["machines"] = {host: list(ids) for host, ids in sorted(ring.machines.items())}
    atomic_write(path, json.dumps(data, indent=1) + "\n", mode=0o600)


def keys_deployed(site_dir: Path, deployed: Mapping[str, str], now: dt.datetime) -> None:
    """These hosts (name → key id) now sign with those keys: the keys minted before are retired from now."""
    path = keyring_path(site_dir)
    ring = load_keyring(path)
    if any([ring.retire_older(host, kid, now) for host, kid in deployed.items()]):
        save_keyring(path, ring)


def machines_enrolled(site_dir: Path, machines: Mapping[str, str]) -> None:
    """These hosts (name → machine id) were enrolled on those machines: their rows must name them."""
    path = keyring_path(site_dir)
    ring = load_keyring(path)
    changed = False
    for host, machine in machines.items():
        known = ring.machines.setdefault(host, [])
        if _MACHINE_RE.fullmatch(machine) and machine not in known:
            known.append(machine)
            changed = True
    if changed:
        save_keyring(path, ring)


def retire_keys(site_dir: Path, host: str, now: dt.datetime) -> bool:
    """Retire a host's signing keys (revoked, or removed from the fleet); True when one was live."""
    path = keyring_path(site_dir)
    ring = load_keyring(path)
    if ring.retire(host, now):
        save_keyring(path, ring)
        return True
    return False


def ensure_keys(site_dir: Path, hosts: Iterable[str], now: dt.datetime, rotate: bool = False) -> list[str]:
    """Give each host a signing key (a new one when `rotate`) and the site a seal key; the hosts minted for."""
    path = keyring_path(site_dir)
    ring = load_keyring(path)
    minted = []
    for host in hosts:
        if rotate or ring.current(host) is None:
            ring.mint(host, now)
            minted.append(host)
    if not ring.seal_key:
        ring.seal_key = secrets.token_bytes(32)
    if minted or not path.exists():
        save_keyring(path, ring)
    return minted
