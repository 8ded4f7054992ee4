"""Build realistic `journalctl -o json` entries for fixtures."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path
from typing import Any

MACHINE = "ed880415acc14686870182ec8cc8acad"
BOOT = "4b5e0e1c0d3a4c8f9a0f6d2f1e3c5b7a"
_seq = itertools.count(1)

COMM = {
    "sshd-session": "sshd-session",
    "sshd": "sshd",
    "sudo": "sudo",
    "su": "su",
    "useradd": "useradd",
    "usermod": "usermod",
    "passwd": "passwd",
    "systemd-logind": "systemd-logind",
    "login": "login",
    "pkexec": "pkexec",
    "polkitd": "polkitd",
    "systemd-journald": "systemd-journal",
    "CRON": "cron",
    "runuser": "runuser",
    "chage": "chage",
    "gpasswd": "gpasswd",
    "sshd-auth": "sshd-auth",
    "userdel": "userdel",
    "groupadd": "groupadd",
}


def at(text: str) -> int:
    """'2025-07-16 10:19:29.885' (UTC) as epoch microseconds."""
    value = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
    return int(value.timestamp() * 1_000_000)


def entry(
    ts: int | str,
    ident: str,
    pid: int | str,
    message: Any,
    host: str = "daisy",
    machine: str = MACHINE,
    boot: str = BOOT,
    comm: str | None = None,
    exe: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    if isinstance(ts, str):
        ts = at(ts)
    seq = next(_seq)
    comm = comm if comm is not None else COMM.get(ident, ident)
    record: dict[str, Any] = {
        "__CURSOR": f"s=0123456789abcdef;i={seq:x};b={boot};m={seq:x};t={ts:x};x=0",
        "__REALTIME_TIMESTAMP": str(ts),
        "__MONOTONIC_TIMESTAMP": str(seq * 1000),
        "_BOOT_ID": boot,
        "_MACHINE_ID": machine,
        "_HOSTNAME": host,
        "PRIORITY": "6",
        "SYSLOG_FACILITY": "10",
        "SYSLOG_IDENTIFIER": ident,
        "_PID": str(pid),
        "_UID": "0",
        "_GID": "0",
        "_COMM": comm,
        "_EXE": exe if exe is not None else f"/usr/sbin/{comm}",
        "_TRANSPORT": "syslog",
        "MESSAGE": message,
    }
    record.update(extra)
    return record


def write(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return path
