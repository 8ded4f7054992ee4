"""Journal lines as analysis sees them, from a journal JSON export or from GreptimeDB rows."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
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
    raw_ts = entry.get("__REALTIME_TIMESTAMP")
    try:
        ts = int(text(raw_ts) or "")
    except ValueError:
        return None
    message = text(entry.get("MESSAGE", entry.get("message"))) or ""
    host = text(entry.get("logstack_host")) or text(entry.get("_HOSTNAME")) or text(entry.get("host")) or ""
    machine = text(entry.get("_MACHINE_ID")) or ""
    pid = text(entry.get("_PID")) or text(entry.get("SYSLOG_PID")) or ""
    cursor = text(entry.get("__CURSOR"))
    return Line(
        ts=ts,
        arrival=ts,
        host=host,
        machine=machine,
        boot=text(entry.get("_BOOT_ID")) or "",
        pid=pid,
        ident=text(entry.get("SYSLOG_IDENTIFIER")) or "",
        message=message,
        comm=text(entry.get("_COMM")),
        exe=text(entry.get("_EXE")),
        loginuid=text(entry.get("_AUDIT_LOGINUID")),
        key=_key(machine, host, cursor, ts, pid, message),
    )


def to_micros(value: dt.datetime) -> int:
    """A naive-UTC (as GreptimeDB returns over MySQL) or aware datetime as epoch microseconds."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=value)


def iso(value: int) -> str:
    """UTC ISO-8601 with microseconds."""
    return from_micros(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
