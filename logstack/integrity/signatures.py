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
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from logstack.base.clock import DAY, to_micros
from logstack.base.errors import BadInputError
from logstack.base.fsutil import atomic_write
from logstack.integrity.keyring import HostKey, KeyRing, key_id, keyring_path, load_keyring, stamp_micros
from logstack.journal.record import SIGNED_FIELDS

SECRET_DIR = "/etc/vector/secrets"
SECRET_NAME = "signing_key"
SECRET_REFERENCE = f"SECRET[logstack.{SECRET_NAME}]"
RETIRED_GRACE = 7 * DAY  # how long after its retirement a key still proves rows the store receives
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_SIG_RE = re.compile(r"[0-9a-f]{64}")


_KID_IN_CONFIG_RE = re.compile(rb'\.logstack_kid = "([0-9a-f]{16})"')


def kid_in(config: bytes) -> str | None:
    """The key id a rendered sender config signs with."""
    match = _KID_IN_CONFIG_RE.search(config)
    return match.group(1).decode() if match else None


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
    try:
        return orjson.dumps({name: get(name) for name in order})
    except orjson.JSONEncodeError:  # a value of a column of another type (DECIMAL, TIME): no sender signed it
        return None


@dataclass(frozen=True)
class Verdict:
    """Whether a row is authentic: `problem` is None, or unsigned / unknown_key / bad_signature / forged_host."""

    problem: str | None
    signer: str | None = None  # the host whose key signed (forged_host: not the host the row names)

    @property
    def said(self) -> str | None:
        """What a line of the row says of it (`Line.auth`): the problem, with the signer where one signed."""
        if self.problem is None or self.signer is None:
            return self.problem
        return f"{self.problem}:{self.signer}"


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
            kid: (host, *_pads(key), (stamp_micros(retired), stamp_micros(retired) + grace) if retired else None)
            for kid, (host, key, retired) in ring.by_kid().items()
        }
        self._machines = {host: frozenset(ids) for host, ids in ring.machines.items() if ids}
        self._made_of = (ring, grace)

    def __reduce__(self) -> tuple[Any, ...]:
        # made again from its ring where it is unpickled (the store's reading process): hash states do not pickle
        return type(self), self._made_of

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


class Unverified(Verifier):
    """The check of `--no-verify-signatures`: no row is proven, each one says so (flagged not_verified)."""

    def __init__(self) -> None:
        super().__init__(KeyRing())

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), ()

    def check(self, row: Mapping[str, Any]) -> Verdict:
        return Verdict("not_verified")


def site_verifier(site_dir: Path | None, signing_keys: Path | None, verify: bool | None = None) -> Verifier | None:
    """The row check for a site (or an explicit key ring). It fails closed: a site's key ring must be there
    (without it no row would be proven and none flagged), so its absence is an error naming the file, unless
    `verify` is off, and then every row is flagged; a ring with no host keys flags every row. None only where
    there is no site and no key ring to check with, and checking was not asked for (`verify` None: the default)."""
    if verify is False:
        if signing_keys is not None:
            raise BadInputError("--signing-keys and --no-verify-signatures contradict each other: give one")
        return Unverified()
    if signing_keys is not None:
        return Verifier(load_keyring(signing_keys, missing="no such key ring"))
    if site_dir is None:
        if verify:
            raise BadInputError("--verify-signatures needs a key ring: -i INVENTORY or --signing-keys FILE")
        return None
    missing = (
        "no signing key ring, so no row can be proven: restore it (logstack site-restore), or give analyze and "
        "report --no-verify-signatures to read every row as unauthenticated"
    )
    return Verifier(load_keyring(keyring_path(site_dir), missing=missing))


def write_host_secret(directory: Path, key: HostKey) -> Path:
    """The key file a host's Vector reads (hex, as the VRL decodes it); for tests and manual installs."""
    path = directory / SECRET_NAME
    atomic_write(path, key.key.hex(), mode=0o400)
    os.chmod(path, 0o400)
    return path
