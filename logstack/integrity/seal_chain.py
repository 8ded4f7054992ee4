"""Sealed hours: a signed hash chain over what the store held for each host and settled hour of ingest time.

`seal` digests every settled hour not sealed yet (per host: the row count and a hash over the rows' hashes
in sorted order) and appends it to a chain (each seal names the previous seal's hash), authenticated with the
site's seal key. `verify` recomputes each sealed hour from the store: a row deleted, added or altered after
sealing changes its host's count or digest. Hours older than the retention TTL are skipped (the store drops
their rows itself). What it cannot see: rows changed before their hour was sealed (the seal delay bounds it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from logstack.base.clock import HOUR, iso, to_micros
from logstack.base.errors import LogstackError
from logstack.base.exit_codes import ExitStatus
from logstack.base.fsutil import atomic_write
from logstack.base.safe_read import KiB, MiB, read_file

SEALS = "seals.jsonl"
STARTED = "seals.head"  # where the chain ended when last sealed, under the seal key
MAX_HOURS_PER_RUN = 31 * 24  # a long backlog is sealed over several runs, never in one unbounded pass
LAST_VERIFICATION = "last-verification.json"
NO_HOST = "(none)"


class SealChainError(LogstackError):
    """The seal file was edited, truncated in the middle or signed with another key."""

    exit_status = ExitStatus.FINDINGS


@dataclass
class Seal:
    """One sealed hour: per host (row count, digest)."""

    seq: int
    hour: int  # start, µs
    hosts: dict[str, tuple[int, str]]
    prev: str
    sealed_at: str
    hash: str = ""
    mac: str = ""

    def body(self) -> bytes:
        return orjson.dumps(
            {
                "seq": self.seq,
                "hour": iso(self.hour),
                "hosts": {h: list(v) for h, v in self.hosts.items()},
                "prev": self.prev,
                "sealed_at": self.sealed_at,
            },
            option=orjson.OPT_SORT_KEYS,
        )


def _typed(value: Any) -> str:
    """A value JSON has no form for (binary, decimal, interval columns), named with its type."""
    if isinstance(value, bytes | bytearray | memoryview):
        return f"bytes:{bytes(value).hex()}"
    return f"{type(value).__name__}:{value!s}"


def row_hash(row: dict[str, Any]) -> bytes:
    """A row's hash over every non-null column (a column added to the table later changes nothing)."""
    values = {name: value for name, value in row.items() if value is not None}
    return hashlib.sha256(
        orjson.dumps(values, default=_typed, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    ).digest()


def hour_digests(rows: Iterator[dict[str, Any]]) -> dict[str, tuple[int, str]]:
    """Per host the rows name: (count, sha256 over the sorted row hashes)."""
    by_host: dict[str, list[bytes]] = {}
    for row in rows:
        host = row.get("logstack_host")
        by_host.setdefault(host if isinstance(host, str) else NO_HOST, []).append(row_hash(row))
    out = {}
    for host, hashes in sorted(by_host.items()):
        hashes.sort()
        out[host] = (len(hashes), hashlib.sha256(b"".join(hashes)).hexdigest())
    return out


def _mac(key: bytes, digest: str) -> str:
    return hmac.new(key, digest.encode(), "sha256").hexdigest()


def read_chain(path: Path, key: bytes) -> list[Seal]:
    """Every seal, checked: each line's hash, its link to the one before, and the site key's MAC."""
    seals: list[Seal] = []
    try:
        text = read_file(path, "seal chain", 1024 * MiB, error=SealChainError).decode("utf-8")
    except FileNotFoundError:
        return seals
    except (OSError, UnicodeDecodeError) as exc:
        raise SealChainError(f"{path}: cannot read the seal chain: {exc}") from None
    prev = ""
    for number, raw in enumerate(text.splitlines(), 1):
        try:
            item = orjson.loads(raw)  # depth-limited: a nested line is an error, not a crash
            seal = Seal(
                seq=int(item["seq"]),
                hour=to_micros(dt.datetime.fromisoformat(item["hour"].replace("Z", "+00:00"))),
                hosts={str(h): (int(v[0]), str(v[1])) for h, v in item["hosts"].items()},
                prev=str(item["prev"]),
                sealed_at=str(item["sealed_at"]),
                hash=str(item["hash"]),
                mac=str(item["mac"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            raise SealChainError(f"{path}:{number}: not a seal (the chain was edited)") from None
        if seal.seq != len(seals) + 1 or seal.prev != prev:
            raise SealChainError(f"{path}:{number}: does not follow the seal before it (the chain was edited)")
        if hashlib.sha256(seal.body()).hexdigest() != seal.hash:
            raise SealChainError(f"{path}:{number}: its content does not match its hash (the chain was edited)")
        if not hmac.compare_digest(_mac(key, seal.hash), seal.mac):
            raise SealChainError(f"{path}:{number}: not signed by this site's seal key")
        if seals and seal.hour <= seals[-1].hour:
            raise SealChainError(f"{path}:{number}: hours out of order (the chain was edited)")
        seals.append(seal)
        prev = seal.hash
    return seals


HourReader = Callable[[int, int], Iterator[dict[str, Any]]]


@dataclass
class SealResult:
    """What a `seal` run added."""

    sealed: list[Seal] = field(default_factory=list)
    first_open_hour: int | None = None  # the oldest hour not settled yet
    recorded: bool = False  # the chain's new end was recorded in the store


def seal_hours(
    path: Path,
    chain: list[Seal],
    key: bytes,
    read_hour: HourReader,
    oldest: int | None,
    store_now: int,
    delay: int,
    now_text: str,
) -> SealResult:
    """Seal every hour from after the chain's last seal (or the oldest row's hour) that ended `delay` before
    `store_now`; `chain` is what read_chain gave for `path`."""
    start = chain[-1].hour + HOUR if chain else (oldest - oldest % HOUR if oldest is not None else None)
    if not chain and path.exists():
        path.unlink()  # an empty file: the chain starts over (seal_store decided it may)
    result = SealResult()
    settled_until = store_now - delay
    if start is None:
        return result
    lines = []
    prev = chain[-1].hash if chain else ""
    seq = len(chain)
    hour = start
    while hour + HOUR <= settled_until and len(lines) < MAX_HOURS_PER_RUN:
        seq += 1
        seal = Seal(seq, hour, hour_digests(read_hour(hour, hour + HOUR)), prev, now_text)
        seal.hash = hashlib.sha256(seal.body()).hexdigest()
        seal.mac = _mac(key, seal.hash)
        prev = seal.hash
        result.sealed.append(seal)
        lines.append(_line(seal))
        hour += HOUR
    result.first_open_hour = hour
    if lines:
        old = read_file(path, "seal chain", 1024 * MiB, error=SealChainError) if path.exists() else b""
        _write(path, old + "".join(lines).encode())
    return result


def write_head(path: Path, key: bytes, chain: list[Seal], recorded: bool = False) -> None:
    """Record where the chain ends (seal number and hash, under the seal key): a chain found shorter later was cut.
    `recorded`: the store holds a record of this end too (logstack.integrity.store_head)."""
    head: dict[str, object] = {"seq": chain[-1].seq, "hash": chain[-1].hash} if chain else {"seq": 0, "hash": ""}
    if recorded:
        head["recorded"] = True
    body = orjson.dumps(head, option=orjson.OPT_SORT_KEYS)
    record = {**head, "mac": hmac.new(key, b"head\0" + body, "sha256").hexdigest()}
    _write(path, (json.dumps(record) + "\n").encode())


def read_head(path: Path, key: bytes) -> tuple[int, str] | None:
    """The recorded end of the chain (None: no record); a record the seal key did not write is an error."""
    data = _head_data(path, key)
    return (int(data["seq"]), str(data["hash"])) if data is not None else None


def head_recorded(path: Path, key: bytes) -> bool:
    """Whether the head says the chain's end was also recorded in the store."""
    data = _head_data(path, key)
    return bool(data is not None and data.get("recorded") is True)


def _head_data(path: Path, key: bytes) -> dict[str, Any] | None:
    try:
        raw = read_file(path, "chain head", 64 * KiB, error=SealChainError)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SealChainError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = orjson.loads(raw)
        mac = str(data.pop("mac"))
        body = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        if not hmac.compare_digest(hmac.new(key, b"head\0" + body, "sha256").hexdigest(), mac):
            raise ValueError("wrong mac")
        if not isinstance(data["hash"], str):
            raise TypeError("hash")
        int(data["seq"])  # a number, or the record is not one
        return dict(data)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SealChainError(f"{path}: not this site's record of the seal chain's end (edited?)") from None


def cut_short(chain: list[Seal], head: tuple[int, str] | None) -> str | None:
    """Why `chain` is shorter than the end recorded for it, or None."""
    if head is None or head[0] == 0:
        return None
    seq, digest = head
    if len(chain) < seq or chain[seq - 1].hash != digest:
        return f"ends before seal {seq}, where it ended when last sealed (cut, replaced or rolled back)"
    return None


def _line(seal: Seal) -> str:
    item = json.loads(seal.body())
    item["hash"], item["mac"] = seal.hash, seal.mac
    return json.dumps(item, sort_keys=True) + "\n"


@dataclass(frozen=True)
class Finding:
    """One host-hour whose rows differ from what was sealed, or (hour None) a fault of the chain itself."""

    hour: int | None
    host: str
    what: str

    def __str__(self) -> str:
        if self.hour is None:
            return f"seal chain: {self.what}"
        return f"{iso(self.hour)[:13]}:00Z {self.host}: {self.what}"


@dataclass
class VerifyResult:
    """What `verify` found."""

    checked: int = 0
    expired: int = 0
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be checked


def chain_findings(
    chain: list[Seal], anchor: list[Seal] | None, store_now: int, max_unsealed: int, head: tuple[int, str] | None = None
) -> list[Finding]:
    """What is wrong with the chain as a whole: missing, shorter than when last sealed, ending too early (cut
    short, or sealing stopped), or not extending an exported copy (replaced, or cut before the copy's end)."""
    if not chain:
        return [Finding(None, "", "no sealed hours: the chain is missing or empty (restore it from an exported copy)")]
    found = []
    cut = cut_short(chain, head)
    if cut:
        found.append(Finding(None, "", cut))
    last_end = chain[-1].hour + HOUR
    if store_now - last_end > max_unsealed:
        found.append(
            Finding(
                None,
                "",
                f"ends at {iso(last_end)}: later hours are not sealed (the chain was cut short, "
                "or `logstack seal` is not running)",
            )
        )
    for mark in anchor or []:
        if mark.seq > len(chain) or chain[mark.seq - 1].hash != mark.hash:
            found.append(
                Finding(None, "", f"does not extend the exported chain (seal {mark.seq} missing or different)")
            )
            break
    return found


def verify_hours(
    chain: list[Seal],
    read_hour: HourReader,
    since: int | None,
    store_now: int,
    ttl: int | None,
    anchor: list[Seal] | None = None,
    max_unsealed: int = 2 * HOUR,
    head: tuple[int, str] | None = None,
    until: int | None = None,
) -> VerifyResult:
    """Check the chain (as read_chain gave it) as a whole, then recompute every sealed hour (from `since`) and
    name each host-hour that changed."""
    result = VerifyResult()
    result.findings.extend(chain_findings(chain, anchor, store_now, max_unsealed, head))
    for seal in chain:
        if (since is not None and seal.hour + HOUR <= since) or (until is not None and seal.hour >= until):
            continue
        if ttl is not None and seal.hour < store_now - ttl:
            result.expired += 1  # the store removes these rows itself
            continue
        result.checked += 1
        now = hour_digests(read_hour(seal.hour, seal.hour + HOUR))
        for host in sorted(set(seal.hosts) | set(now)):
            then_count, then_digest = seal.hosts.get(host, (0, ""))
            count, digest = now.get(host, (0, ""))
            if count < then_count:
                what = f"{then_count - count} of {then_count} sealed rows deleted"
            elif count > then_count:
                what = f"{count - then_count} rows added after sealing (sealed {then_count})"
            elif digest != then_digest:
                what = f"rows altered after sealing ({count} rows)"
            else:
                continue
            result.findings.append(Finding(seal.hour, host, what))
    return result


def record_verification(state_dir: Path, result: VerifyResult, now: int, key: bytes) -> None:
    """Keep the outcome for the report (`Last verification`), authenticated by the seal key."""
    summary = {
        "at": iso(now),
        "checked_hours": result.checked,
        "expired_hours": result.expired,
        "findings": [str(f) for f in result.findings],
    }
    body = orjson.dumps(summary, option=orjson.OPT_SORT_KEYS)
    record = {**summary, "mac": hmac.new(key, b"verification\0" + body, "sha256").hexdigest()}
    _write(state_dir / LAST_VERIFICATION, (json.dumps(record, indent=1) + "\n").encode())


def _write(path: Path, data: bytes) -> None:
    try:
        atomic_write(path, data, mode=0o600)
    except OSError as exc:
        raise SealChainError(f"{path}: cannot write: {exc.strerror or exc}") from None


def last_verification(state_dir: Path, key: bytes, now: int) -> str | None:
    """`at: N hours checked, clean` or `at: N findings`, from the last recorded run (None: none recorded)."""
    path = state_dir / LAST_VERIFICATION
    try:
        raw = read_file(path, "last verification", MiB, error=SealChainError)
    except (OSError, SealChainError):
        return None
    try:
        data = orjson.loads(raw[: 1 << 20])
        mac = data.pop("mac")
        body = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        genuine = hmac.compare_digest(hmac.new(key, b"verification\0" + body, "sha256").hexdigest(), str(mac))
        at = to_micros(dt.datetime.fromisoformat(str(data["at"]).replace("Z", "+00:00")))
        if not genuine or at > now + HOUR:
            return f"unverifiable: {path.name} was not written by `logstack verify` with this site's seal key"
        findings = len(data["findings"])
        outcome = "clean" if not findings else f"{findings} findings (host-hours changed, or chain faults)"
        return f"{data['at']}: {int(data['checked_hours'])} sealed hours checked, {outcome}"
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"unverifiable: {path.name} is not a verification record"


def export_chain(path: Path, key: bytes, target: Path) -> int:
    """Copy the checked chain to `target` for off-site keeping; the number of seals."""
    seals = read_chain(path, key)
    if target.is_dir():
        raise SealChainError(f"{target}: is a directory; name the file to export the chain to")
    _write(target, read_file(path, "seal chain", 1024 * MiB, error=SealChainError) if seals else b"")
    return len(seals)
