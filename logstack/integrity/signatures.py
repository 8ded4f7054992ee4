"""Per-host record signatures: keys kept in the site, the sender's VRL that signs, and the check of a row.

A sender signs every record with HMAC-SHA256 over a canonical JSON encoding of the fields analysis,
status and reports read. VRL's `encode_json` sorts object keys (a BTreeMap) and writes compact JSON with
raw UTF-8, escaping only `"`, `\\` and control characters (vrl 0.33.1 `src/stdlib/encode_json.rs`, the VRL
Vector v0.57.0 pins); orjson with OPT_SORT_KEYS writes the same bytes, which tests/test_signing.py checks
with the real VRL engine. The key reaches Vector through its `directory` secret backend
(v0.57.0 `src/secrets/directory.rs`): `SECRET[...]` is replaced in the raw config text before it is parsed
(`src/config/loading/secret.rs`), so the rendered config and the review tree carry only the reference.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from logstack.base.clock import DAY, to_micros
from logstack.base.errors import SecretsError
from logstack.base.fsutil import atomic_write
from logstack.base.safe_read import MiB, read_file
from logstack.journal.record import SIGNED_FIELDS

SECRET_DIR = "/etc/vector/secrets"
SECRET_NAME = "signing_key"
SECRET_REFERENCE = f"SECRET[logstack.{SECRET_NAME}]"
KEYRING = "signing-keys.json"
RETIRED_GRACE = 7 * DAY  # how long after its retirement a key still proves rows the store receives
_KID_RE = re.compile(r"[0-9a-f]{16}")
_KEY_RE = re.compile(r"[0-9a-f]{64}")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_SIG_RE = re.compile(r"[0-9a-f]{64}")
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


def load_keyring(path: Path) -> KeyRing:
    """The key ring at `path` (empty when absent); problems are one-line SecretsErrors naming the file."""
    try:
        st = path.lstat()
    except FileNotFoundError:
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
        _stamp(retired)  # a retirement the verifier cannot read would make the key valid for ever
    return HostKey(kid, raw, str(item["created"]), retired)


def _stamp(text: object) -> int:
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


_KID_IN_CONFIG_RE = re.compile(rb'\.logstack_kid = "([0-9a-f]{16})"')


def kid_in(config: bytes) -> str | None:
    """The key id a rendered sender config signs with."""
    match = _KID_IN_CONFIG_RE.search(config)
    return match.group(1).decode() if match else None


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


def sign_vrl(kid: str, identity_names: Iterable[str]) -> str:
    """The remap that signs: key id, the list of identity fields signed, and the signature."""
    names = sorted(n for n in identity_names if n not in SIGNED_FIELDS)
    parts = [f'"{name}": .{name}' for name in (*SIGNED_FIELDS, *names)]
    return (
        f'.logstack_kid = "{kid}"\n'
        f'.logstack_signed = "{",".join(names)}"\n'
        f".logstack_sig = encode_base16(hmac(encode_json({{{', '.join(parts)}}}), "
        f'decode_base16!("{SECRET_REFERENCE}"), algorithm: "SHA-256"))\n'
    )


@lru_cache(maxsize=256)
def _signed_order(listed: str) -> tuple[str, ...] | None:
    """The fields a row's `logstack_signed` list names, with the fixed ones, in encode_json's (sorted) order."""
    names = listed.split(",") if listed else []
    if any(not _NAME_RE.fullmatch(n) or n in SIGNED_FIELDS for n in names):
        return None
    return tuple(sorted((*SIGNED_FIELDS, *names)))


def canonical(row: Mapping[str, Any]) -> bytes | None:
    """The bytes a sender signed for this row, or None when the row cannot have been signed as stored.

    Values are what the store gives back; one that is not a string or null (the sender signs only those)
    encodes otherwise and fails the check, as it should."""
    listed = row.get("logstack_signed")
    if listed.__class__ is not str:
        return None
    order = _signed_order(listed)
    if order is None:
        return None
    get = row.get
    return orjson.dumps({name: get(name) for name in order})


@dataclass(frozen=True)
class Verdict:
    """Whether a row is authentic: `problem` is None, or unsigned / unknown_key / bad_signature / forged_host."""

    problem: str | None
    signer: str | None = None  # the host whose key signed (forged_host: not the host the row names)


OK = Verdict(None)


def _pads(key: bytes) -> tuple[Any, Any]:
    block = key.ljust(64, b"\0")  # keys are 32 bytes: shorter than SHA-256's block, used as they are
    return (
        hashlib.sha256(bytes(b ^ 0x36 for b in block)),
        hashlib.sha256(bytes(b ^ 0x5C for b in block)),
    )


class Verifier:
    """Checks rows against the site's keys, current and retired."""

    def __init__(self, ring: KeyRing, grace: int = RETIRED_GRACE) -> None:
        # HMAC-SHA256 (RFC 2104) from precomputed inner and outer hash states: a copy each per row instead of
        # a key set-up, the larger part of a check's cost. A retired key proves rows the store received up to
        # `grace` after its retirement (what senders had buffered); later rows it signed prove nothing.
        self._keys = {
            kid: (host, *_pads(key), (_stamp(retired), _stamp(retired) + grace) if retired else None)
            for kid, (host, key, retired) in ring.by_kid().items()
        }
        self._machines = {host: frozenset(ids) for host, ids in ring.machines.items() if ids}

    def __bool__(self) -> bool:
        return bool(self._keys)

    def check(self, row: Mapping[str, Any]) -> Verdict:
        """The verdict on one row of the logs table."""
        sig, kid = row.get("logstack_sig"), row.get("logstack_kid")
        if sig is None and kid is None:
            return Verdict("unsigned")
        known = self._keys.get(kid) if isinstance(kid, str) else None
        if known is None:
            return Verdict("unknown_key")
        signer, inner, outer, retirement = known
        if retirement is not None and not _before_retirement(row, *retirement):
            return Verdict("retired_key", signer)
        message = canonical(row)
        if message is None or sig.__class__ is not str or len(sig) != 64:
            return Verdict("bad_signature", signer)
        mac = inner.copy()
        mac.update(message)
        digest = outer.copy()
        digest.update(mac.digest())
        if not hmac.compare_digest(digest.hexdigest(), sig):
            return Verdict("bad_signature", signer)
        if row.get("logstack_host") != signer:
            return Verdict("forged_host", signer)
        machines = self._machines.get(signer)
        if machines is not None and row.get("_MACHINE_ID") not in machines:
            return Verdict("forged_host", signer)  # signed by the host's key, about another machine
        return OK


# A sender's clock may lag the store's by this much before its heartbeats count by the time it signed.
HEARTBEAT_SKEW = 10 * 60 * 1_000_000


def _before_retirement(row: Mapping[str, Any], retired: int, valid_until: int) -> bool:
    """Whether a retired key may prove this row: the line was written before the key was retired (its signed
    journal time, with a sender's clock skew) and reached the store within the grace that buffered lines
    take. The store's own timestamp is not signed: backdating it alone proves nothing."""
    stored = row.get("greptime_timestamp")
    signed = row.get("__REALTIME_TIMESTAMP")
    if not isinstance(stored, dt.datetime) or to_micros(stored) > valid_until:
        return False
    if signed.__class__ is not str or not (0 < len(signed) <= 18 and signed.isdigit() and signed.isascii()):
        return False
    return int(signed) <= retired + HEARTBEAT_SKEW


def heartbeat_time(row: Mapping[str, Any]) -> int | None:
    """When a heartbeat row proves its sender was alive (µs): the store's ingest time, unless the time the
    sender signed (`__REALTIME_TIMESTAMP`) is older by more than a clock's plausible lag: then an old heartbeat
    was stored again (or long buffered), and it counts by when it was signed."""
    stored = row.get("greptime_timestamp")
    if not isinstance(stored, dt.datetime):
        return None
    sent = row.get("__REALTIME_TIMESTAMP")
    ingest = to_micros(stored)
    if isinstance(sent, str) and sent.isascii() and sent.isdigit() and len(sent) <= 18:
        signed = int(sent)
        return signed if ingest - signed > HEARTBEAT_SKEW else ingest
    return ingest


def sign_row(row: Mapping[str, Any], key: bytes, names: Iterable[str] = ()) -> dict[str, Any]:
    """`row` with the fields a sender's `signature` remap adds, computed as the remap computes them (the
    tests prove the two agree with the real VRL engine); for stand-in senders in tests and benchmarks."""
    signed = {**row, "logstack_kid": key_id(key), "logstack_signed": ",".join(sorted(names))}
    message = canonical(signed)
    if message is None:
        raise ValueError("row cannot be signed")
    signed["logstack_sig"] = hmac.new(key, message, "sha256").hexdigest()
    return signed


def site_verifier(site_dir: Path | None, signing_keys: Path | None) -> Verifier | None:
    """The row check for a site (or an explicit key ring), when there are keys to check with."""
    path = signing_keys or (keyring_path(site_dir) if site_dir is not None else None)
    if path is None:
        return None
    if signing_keys is not None and not signing_keys.exists():
        raise SecretsError(f"{signing_keys}: no such key ring")
    verifier = Verifier(load_keyring(path))
    return verifier if verifier else None


def write_host_secret(directory: Path, key: HostKey) -> Path:
    """The key file a host's Vector reads (hex, as the VRL decodes it); for tests and manual installs."""
    path = directory / SECRET_NAME
    atomic_write(path, key.key.hex(), mode=0o400)
    os.chmod(path, 0o400)
    return path
