"""A week of journal lines on three hosts with known counts, for report tests and the README screenshot."""

from __future__ import annotations

from tests.journal import at, entry

HOSTS = ("web1", "web2", "db1")
START = "2026-11-16 00:00:00"
DAYS = 7
S = 1_000_000

# Known totals of the fixture
SUCCESSFUL = 14  # two per day (alice on web1, bob on db1)
FAILED = 7 + 9  # one per day (carol on web2) + a 9-attempt brute force on day 3
SUDO = 7  # alice on web1, daily
ACCOUNT_CHANGES = 2
FORGED = 1
GAP_HOST = "web2"  # silent on day 5 from 06:00 to 10:00


def _machine(host: str) -> str:
    return host.ljust(32, "0")


def week() -> list[dict]:
    entries: list[dict] = []
    base = at(START)
    pid = 1000

    def add(ts: int, host: str, ident: str, message: str, **kw) -> None:
        nonlocal pid
        entries.append(entry(ts, ident, kw.pop("pid", pid), message, host=host, machine=_machine(host), **kw))

    for day in range(DAYS):
        d0 = base + day * 86400 * S
        for host in HOSTS:  # heartbeats every 60 s, but web2 is silent for four hours on day 5
            for minute in range(0, 24 * 60, 1):
                ts = d0 + minute * 60 * S
                if host == GAP_HOST and day == 4 and 6 * 60 <= minute < 10 * 60:
                    continue
                entries.append(
                    entry(
                        ts,
                        "logstack-heartbeat",
                        1,
                        "heartbeat",
                        host=host,
                        machine=_machine(host),
                        comm="vector",
                        exe="/usr/bin/vector",
                    )
                )
        pid += 1
        add(
            d0 + 9 * 3600 * S,
            "web1",
            "sshd-session",
            f"Accepted publickey for alice from 192.0.2.10 port {40000 + day} ssh2",
        )
        pid += 1
        add(
            d0 + 10 * 3600 * S,
            "db1",
            "sshd-session",
            f"Accepted password for bob from 192.0.2.11 port {41000 + day} ssh2",
        )
        pid += 1
        add(
            d0 + 11 * 3600 * S,
            "web2",
            "sshd-session",
            f"Failed password for carol from 198.51.100.5 port {42000 + day} ssh2",
        )
        pid += 1
        add(
            d0 + 9 * 3600 * S + 60 * S,
            "web1",
            "sudo",
            "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/systemctl status nginx",
        )
    d2 = base + 2 * 86400 * S + 3 * 3600 * S
    for i in range(9):
        pid += 1
        add(
            d2 + i * 5 * S,
            "web2",
            "sshd-session",
            f"Failed password for invalid user admin{i} from 203.0.113.99 port {50000 + i} ssh2",
        )
    pid += 1
    add(
        base + 3 * 86400 * S + 14 * 3600 * S,
        "db1",
        "useradd",
        "new user: name=backup, UID=1005, GID=1005, home=/home/backup, shell=/bin/bash, from=/dev/pts/0",
        _AUDIT_LOGINUID="1000",
    )
    pid += 1
    add(
        base + 3 * 86400 * S + 14 * 3600 * S + 30 * S,
        "db1",
        "usermod",
        "add 'backup' to group 'sudo'",
        _AUDIT_LOGINUID="1000",
    )
    pid += 1
    add(
        base + 5 * 86400 * S + 2 * 3600 * S,
        "web1",
        "sshd",
        "Accepted password for root from 10.9.9.9 port 1 ssh2",
        comm="logger",
        exe="/usr/bin/logger",
    )
    entries.sort(key=lambda e: int(e["__REALTIME_TIMESTAMP"]))
    return entries
