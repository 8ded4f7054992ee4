"""Journal lines as analysis sees them, from a journal JSON export or from GreptimeDB rows."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(slots=True)
class Line:
    """One journal line. Times are integer microseconds since the epoch (UTC)."""

    ts: int  # the journal's own timestamp (event time)
    arrival: int  # ingest time (greptime_timestamp); the journal time for exports
    host: str
    machine: str
    boot: str
    pid: str
    ident: str
    message: str
    comm: str | None
    exe: str | None
    loginuid: str | None
    key: str  # de-duplication key: machine + __CURSOR, or a content hash


def text(value: Any) -> str | None:
    """Journal values: strings, byte arrays (non-UTF-8 data) or null (oversized fields)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        try:
            return bytes(value).decode("utf-8", errors="replace")
        except (ValueError, TypeError):
            return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _key(machine: str, host: str, cursor: str | None, ts: int, pid: str, message: str) -> str:
    if cursor:
        return f"{machine or host}|{cursor}"
    digest = hashlib.blake2b(f"{host}|{ts}|{pid}|{message}".encode(errors="replace"), digest_size=12).hexdigest()
    return f"{machine or host}|h:{digest}"


def from_journal(entry: dict[str, Any]) -> Line | None:
    """A `journalctl -o json` object (or a row with journald column names) as a Line."""
    get = entry.get
    raw_ts = get("__REALTIME_TIMESTAMP")
    try:
        ts = int(raw_ts if type(raw_ts) is str else text(raw_ts) or "")
    except ValueError:
        return None

    def field(name: str) -> str | None:
        value = get(name)
        return value if type(value) is str else text(value)  # fast path: plain strings

    message = field("MESSAGE") if "MESSAGE" in entry else field("message")
    message = message or ""
    host = field("logstack_host") or field("_HOSTNAME") or field("host") or ""
    machine = field("_MACHINE_ID") or ""
    pid = field("_PID") or field("SYSLOG_PID") or ""
    cursor = field("__CURSOR")
    return Line(
        ts,
        ts,
        host,
        machine,
        field("_BOOT_ID") or "",
        pid,
        field("SYSLOG_IDENTIFIER") or "",
        message,
        field("_COMM"),
        field("_EXE"),
        field("_AUDIT_LOGINUID"),
        f"{machine or host}|{cursor}" if cursor else _key(machine, host, None, ts, pid, message),
    )


def to_micros(value: dt.datetime) -> int:
    """A naive-UTC (as GreptimeDB returns over MySQL) or aware datetime as epoch microseconds."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=value)


@lru_cache(maxsize=4096)
def _iso_seconds(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def iso(value: int) -> str:
    """UTC ISO-8601 with microseconds."""
    seconds, micros = divmod(value, 1_000_000)
    return f"{_iso_seconds(seconds)}.{micros:06d}Z"


def from_row(row: dict[str, Any]) -> Line | None:
    """A GreptimeDB logs-table row (journald columns as the greptime_identity pipeline stores them)."""
    line = from_journal(row)
    if line is None:
        stamp = row.get("timestamp")
        if not isinstance(stamp, str):
            return None
        try:
            parsed = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            return None
        row = {**row, "__REALTIME_TIMESTAMP": str(to_micros(parsed))}
        line = from_journal(row)
        if line is None:
            return None
    arrival = row.get("greptime_timestamp")
    if isinstance(arrival, dt.datetime):
        line.arrival = to_micros(arrival)
    return line
