"""Journal lines as analysis sees them, from a journal JSON export or from GreptimeDB rows."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from logstack.base.clock import to_micros


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
    # why the row's signature does not prove it (unsigned, bad_signature, unknown_key, forged_host:A); None: proven
    # or not checked (journal exports carry no signatures)
    auth: str | None = None


def text(value: Any) -> str | None:
    """Journal values: strings, byte arrays (non-UTF-8 data), null (oversized fields), or a list of
    those when a field was logged more than once (`journalctl -o json` prints every value; the first is used).
    Anything else a hostile source could put there (objects, deeper nesting) reads as None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        if not value:
            return ""
        first = value[0]
        if isinstance(first, str):
            return first
        if isinstance(first, list):  # a repeated field whose first value is a byte array
            value = first
        try:
            # bytes that are not UTF-8 stay readable and recoverable as \xNN (U+FFFD would lose them)
            return bytes(value).decode("utf-8", errors="backslashreplace")
        except (ValueError, TypeError):
            return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, bool | int | float):
        try:
            return str(value)
        except ValueError:  # an integer of more digits than Python converts
            return None
    return None


# Journal timestamps are microseconds since 1970 and before the year 10000 (what ISO-8601 output can show).
MAX_TIMESTAMP = 253402300799999999


def timestamp(value: Any) -> int | None:
    """A __REALTIME_TIMESTAMP (ASCII digits, or a JSON integer) as microseconds, or None when it is not one."""
    if value.__class__ is int:
        ts = value
    else:
        raw = value if value.__class__ is str else text(value) if isinstance(value, list) else None
        if not raw or len(raw) > 18 or not (raw.isascii() and raw.isdigit()):
            return None
        ts = int(raw)
    return ts if 0 <= ts <= MAX_TIMESTAMP else None


def _key(machine: str, host: str, cursor: str | None, ts: int, pid: str, message: str) -> str:
    if cursor:
        return f"{machine or host}|{cursor}"
    digest = hashlib.blake2b(f"{host}|{ts}|{pid}|{message}".encode(errors="replace"), digest_size=12).hexdigest()
    return f"{machine or host}|h:{digest}"


def from_journal(entry: dict[str, Any]) -> Line | None:
    """A `journalctl -o json` object (or a row with journald column names) as a Line."""
    # Fast path, taken by almost every line: all the usual fields present as plain strings.
    try:
        message = entry["MESSAGE"]
        host = entry["_HOSTNAME"]
        machine = entry["_MACHINE_ID"]
        pid = entry["_PID"]
        boot = entry["_BOOT_ID"]
        ident = entry["SYSLOG_IDENTIFIER"]
        cursor = entry["__CURSOR"]
        raw_ts = entry["__REALTIME_TIMESTAMP"]
    except KeyError:
        return _from_journal_any(entry)
    # int() would also take "1_700", Arabic-Indic digits, spaces and booleans: only ASCII digits are a timestamp
    if (
        raw_ts.__class__ is str
        and 0 < len(raw_ts) <= 18
        and raw_ts.isdigit()
        and raw_ts.isascii()
        and (ts := int(raw_ts)) <= MAX_TIMESTAMP
        and message.__class__ is str
        and host
        and host.__class__ is str
        and machine
        and machine.__class__ is str
        and pid
        and pid.__class__ is str
        and boot
        and boot.__class__ is str
        and ident
        and ident.__class__ is str
        and cursor
        and cursor.__class__ is str
        and "logstack_host" not in entry
    ):
        get = entry.get
        comm = get("_COMM")
        exe = get("_EXE")
        loginuid = get("_AUDIT_LOGINUID")
        if (
            (comm is None or comm.__class__ is str)
            and (exe is None or exe.__class__ is str)
            and (loginuid is None or loginuid.__class__ is str)
        ):
            key = _key(machine, host, cursor, ts, pid, message)
            return Line(ts, ts, host, machine, boot, pid, ident, message, comm, exe, loginuid, key)
    return _from_journal_any(entry)


def _text(value: Any) -> str:
    return value if value.__class__ is str else text(value) or ""


def _optional(value: Any) -> str | None:
    return value if value is None or value.__class__ is str else text(value)


def _from_journal_any(entry: dict[str, Any]) -> Line | None:
    """Any journal object or row: missing, byte-array, repeated or odd values read as text (or absent)."""
    get = entry.get
    ts = timestamp(get("__REALTIME_TIMESTAMP"))
    if ts is None:
        return None
    message = _text(get("MESSAGE") if "MESSAGE" in entry else get("message"))
    host = _text(get("logstack_host") or get("_HOSTNAME") or get("host"))
    machine = _text(get("_MACHINE_ID"))
    pid = _text(get("_PID") or get("SYSLOG_PID"))
    boot = _text(get("_BOOT_ID"))
    ident = _identifier(get("SYSLOG_IDENTIFIER"))
    cursor = _optional(get("__CURSOR"))
    key = _key(machine, host, cursor, ts, pid, message)
    comm, exe, loginuid = _optional(get("_COMM")), _optional(get("_EXE")), _optional(get("_AUDIT_LOGINUID"))
    return Line(ts, ts, host, machine, boot, pid, ident, message, comm, exe, loginuid, key)


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


def _identifier(value: object) -> str | None:
    """SYSLOG_IDENTIFIER as the senders' journald source sees it (vector v0.57.0 src/sources/journald.rs
    956-992, decode_array): bytes (an array of numbers) as lossy UTF-8, any other array as its JSON text (an
    identifier logged twice is then `["sshd","x"]`, which no filter lists)."""
    if not isinstance(value, list):
        return _text(value)
    if all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value):
        return bytes(value).decode("utf-8", errors="replace")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
