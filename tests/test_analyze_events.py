"""Event building from journal fixtures in the formats sshd, PAM, sudo, su, shadow-utils and polkit write."""

from __future__ import annotations

import pytest

from logstack.analyze.grouping import Event, Settings, build_events
from logstack.journal.line import from_journal
from tests.journal import at, entry

T0 = at("2025-07-16 10:00:00")
S = 1_000_000


def events(*entries, settings: Settings | None = None) -> list[Event]:
    lines = [from_journal(e) for e in entries]
    return sorted(build_events(lines, settings), key=lambda e: (e.start, e.type))


def one(*entries) -> Event:
    found = events(*entries)
    assert len(found) == 1, [(e.type, [ln.message for ln in e.lines]) for e in found]
    return found[0]


def e(offset: float, ident: str, pid: int, message, **kw):
    return entry(T0 + int(offset * S), ident, pid, message, **kw)


# (lines, expected event fields)
CASES = [
    pytest.param(
        [
            e(0, "sshd-session", 1146, "Invalid user lausbubenstreich from 192.168.178.28 port 56510"),
            e(0.1, "sshd-session", 1146, "pam_unix(sshd:auth): check pass; user unknown"),
            e(
                0.2,
                "sshd-session",
                1146,
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 "
                "tty=ssh ruser= rhost=192.168.178.28",
            ),
            e(
                1.5,
                "sshd-session",
                1146,
                "Failed password for invalid user lausbubenstreich from 192.168.178.28 port 56510 ssh2",
            ),
            e(
                1.6,
                "sshd-session",
                1146,
                "Connection closed by invalid user lausbubenstreich 192.168.178.28 port 56510 [preauth]",
            ),
        ],
        {
            "type": "ssh_login",
            "outcome": "failure",
            "user": "lausbubenstreich",
            "source_ip": "192.168.178.28",
            "source_port": 56510,
            "method": "password",
            "flags": ["invalid_user"],
        },
        id="openssh-9.8-invalid-user",
    ),
    pytest.param(
        [
            e(
                0,
                "sshd-session",
                2001,
                "Accepted publickey for alice from 2001:db8::5 port 50222 ssh2: ED25519 SHA256:abc",
            ),
            e(
                0.1,
                "sshd-session",
                2001,
                "pam_unix(sshd:session): session opened for user alice(uid=1000) by alice(uid=0)",
            ),
        ],
        {
            "type": "ssh_login",
            "outcome": "success",
            "user": "alice",
            "source_ip": "2001:db8::5",
            "source_port": 50222,
            "method": "publickey",
            "flags": [],
        },
        id="accepted-ipv6-pam-1.4",
    ),
    pytest.param(
        [
            e(0, "sshd", 2002, "Accepted password for bob from 198.51.100.7 port 4242 ssh2"),
            e(0.1, "sshd", 2002, "pam_unix(sshd:session): session opened for user bob by (uid=0)"),
        ],
        {"type": "ssh_login", "outcome": "success", "user": "bob", "method": "password"},
        id="accepted-old-pam",
    ),
    pytest.param(
        [
            e(
                0,
                "sshd-session",
                2003,
                "error: maximum authentication attempts exceeded for root from 203.0.113.5 port 3333 ssh2 [preauth]",
            ),
            e(
                0.1,
                "sshd-session",
                2003,
                "Disconnecting authenticating user root 203.0.113.5 port 3333: Too many "
                "authentication failures [preauth]",
            ),
        ],
        {"type": "ssh_login", "outcome": "failure", "user": "root", "source_ip": "203.0.113.5", "flags": []},
        id="error-prefix-max-attempts",
    ),
    pytest.param(
        [
            e(0, "sshd-session", 2004, "error: kex_exchange_identification: Connection closed by remote host"),
            e(0.1, "sshd-session", 2004, "Connection closed by 203.0.113.9 port 41000"),
        ],
        {"type": "ssh_preauth", "outcome": "info", "source_ip": "203.0.113.9", "user": None},
        id="kex-scan",
    ),
    pytest.param(
        [e(0, "sshd-session", 2005, "fatal: Timeout before authentication for 203.0.113.10 port 5000")],
        {"type": "ssh_preauth", "source_ip": "203.0.113.10", "source_port": 5000},
        id="fatal-timeout",
    ),
    pytest.param(
        [
            e(
                0,
                "sshd-auth",
                2006,
                "Unable to negotiate with 203.0.113.11 port 6000: no matching key exchange method found. [preauth]",
            )
        ],
        {"type": "ssh_preauth", "source_ip": "203.0.113.11"},
        id="sshd-auth-negotiate",
    ),
    pytest.param(
        [e(0, "sshd-session", 2007, "Failed password for john doe from 198.51.100.8 port 1234 ssh2")],
        {"type": "ssh_login", "outcome": "failure", "user": "john doe", "flags": []},
        id="user-with-space",
    ),
    pytest.param(
        [
            e(
                0,
                "sudo",
                3001,
                "    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx",
            ),
            e(0.01, "sudo", 3001, "pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)"),
            e(2, "sudo", 3001, "pam_unix(sudo:session): session closed for user root"),
        ],
        {
            "type": "sudo",
            "outcome": "success",
            "user": "alice",
            "target_user": "root",
            "command": "/usr/bin/systemctl restart nginx",
        },
        id="sudo-padded",
    ),
    pytest.param(
        [
            e(0, "sudo", 3002, "alice : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/bin/sh -c echo aaaa"),
            e(0, "sudo", 3002, "(command continued) bbbb cccc"),
        ],
        {"type": "sudo", "command": "/bin/sh -c echo aaaa bbbb cccc"},
        id="sudo-command-continued",
    ),
    pytest.param(
        [
            e(
                0,
                "sudo",
                3003,
                "pam_unix(sudo:auth): authentication failure; logname=mallory uid=1001 euid=0 "
                "tty=/dev/pts/1 ruser=mallory rhost=  user=mallory",
            ),
            e(
                5,
                "sudo",
                3003,
                "mallory : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/home/mallory ; USER=root ; "
                "COMMAND=/bin/bash",
            ),
        ],
        {"type": "sudo", "outcome": "failure", "user": "mallory", "target_user": "root", "command": "/bin/bash"},
        id="sudo-incorrect-password",
    ),
    pytest.param(
        [e(0, "sudo", 3004, "eve : user NOT in sudoers ; TTY=pts/2 ; PWD=/home/eve ; USER=root ; COMMAND=/bin/id")],
        {"type": "sudo", "outcome": "failure", "user": "eve", "severity": "alert"},
        id="sudo-not-in-sudoers",
    ),
    pytest.param(
        [e(0, "sudo", 3005, "eve : command not allowed ; TTY=pts/2 ; PWD=/ ; USER=root ; COMMAND=/bin/rm -rf /")],
        {"type": "sudo", "outcome": "failure", "command": "/bin/rm -rf /"},
        id="sudo-command-not-allowed",
    ),
    pytest.param(
        [
            e(0, "su", 4001, "(to root) alice on pts/0"),
            e(0.1, "su", 4001, "pam_unix(su-l:session): session opened for user root(uid=0) by alice(uid=1000)"),
        ],
        {"type": "su", "outcome": "success", "user": "alice", "target_user": "root"},
        id="su-ok",
    ),
    pytest.param(
        [
            e(
                0,
                "su",
                4002,
                "pam_unix(su:auth): authentication failure; logname=bob uid=1002 euid=0 tty=pts/3 "
                "ruser=bob rhost=  user=root",
            ),
            e(2, "su", 4002, "FAILED SU (to root) bob on pts/3"),
        ],
        {"type": "su", "outcome": "failure", "user": "bob", "target_user": "root"},
        id="su-failed",
    ),
    pytest.param(
        [e(0, "runuser", 4003, "pam_unix(runuser:session): session opened for user postgres(uid=110) by (uid=0)")],
        {"type": "su", "outcome": "success", "target_user": "postgres"},
        id="runuser",
    ),
    pytest.param(
        [
            e(0, "login", 5001, "pam_unix(login:session): session opened for user root(uid=0) by LOGIN(uid=0)"),
            e(0.1, "login", 5001, "ROOT LOGIN  on '/dev/tty1'"),
        ],
        {"type": "console_login", "outcome": "success"},
        id="console-root",
    ),
    pytest.param(
        [e(0, "login", 5002, "FAILED LOGIN (1) on '/dev/tty2' FOR 'carol', Authentication failure")],
        {"type": "console_login", "outcome": "failure"},
        id="console-failed",
    ),
    pytest.param(
        [
            e(
                0,
                "useradd",
                6001,
                "new user: name=eve, UID=1001, GID=1001, home=/home/eve, shell=/bin/bash, from=/dev/pts/0",
                _AUDIT_LOGINUID="1000",
            )
        ],
        {"type": "account_change", "target_user": "eve", "user": "uid=1000", "reason": "user created"},
        id="useradd-actor",
    ),
    pytest.param(
        [e(0, "usermod", 6002, "add 'eve' to group 'sudo'")],
        {"type": "account_change", "target_user": "eve", "reason": "added to group sudo"},
        id="usermod-group",
    ),
    pytest.param(
        [e(0, "passwd", 6003, "pam_unix(passwd:chauthtok): password changed for eve")],
        {"type": "account_change", "target_user": "eve", "reason": "password changed"},
        id="passwd",
    ),
    pytest.param(
        [e(0, "chage", 6004, "changed password expiry for eve")],
        {"type": "account_change", "target_user": "eve", "reason": "expiry changed"},
        id="chage",
    ),
    pytest.param(
        [
            e(
                0,
                "sshd-session",
                7001,
                "pam_faillock(sshd:auth): Consecutive login failures for user alice account temporarily locked",
            )
        ],
        {"type": "account_lockout", "outcome": "failure", "user": "alice", "severity": "alert"},
        id="faillock",
    ),
    pytest.param(
        [
            e(
                0,
                "pkexec",
                8001,
                "alice: Executing command [USER=root] [TTY=/dev/pts/0] [CWD=/home/alice] "
                "[COMMAND=/usr/bin/apt install x]",
            )
        ],
        {
            "type": "polkit",
            "outcome": "success",
            "user": "alice",
            "target_user": "root",
            "command": "/usr/bin/apt install x",
        },
        id="pkexec",
    ),
    pytest.param(
        [
            e(
                0,
                "pkexec",
                8002,
                "mallory: Error executing command as another user: Not authorized [USER=root] "
                "[TTY=/dev/pts/1] [CWD=/home/mallory] [COMMAND=/bin/bash]",
            )
        ],
        {"type": "polkit", "outcome": "failure", "user": "mallory"},
        id="pkexec-denied",
    ),
    pytest.param(
        [e(0, "systemd-logind", 1, "New session 42 of user alice.")],
        {"type": "session", "outcome": "info", "target_user": "alice"},
        id="logind",
    ),
    pytest.param(
        [e(0, "systemd-journald", 300, "Suppressed 1234 messages from sshd.service")],
        {"type": "log_gap", "severity": "alert"},
        id="journald-suppressed",
    ),
    pytest.param(
        [e(0, "sshd", 9001, "Sample message to test vector", comm="logger", exe="/usr/bin/logger")],
        {"flags": ["forged"], "severity": "alert"},
        id="forged-logger",
    ),
]


@pytest.mark.parametrize(("lines", "expected"), CASES)
def test_event_from_fixture(lines, expected):
    event = one(*lines)
    got = event.as_dict()
    for key, value in expected.items():
        assert got[key] == value, (key, got)
    assert [ln["message"] for ln in got["lines"]] == [ln["MESSAGE"] for ln in lines]


def test_pid_reuse_and_same_pid_on_two_hosts_stay_apart():
    found = events(
        e(0, "sshd-session", 1133, "Invalid user wrongdoer from 192.168.178.28 port 55691"),
        e(1, "sshd-session", 1133, "Failed password for invalid user wrongdoer from 192.168.178.28 port 55691 ssh2"),
        # the same PID, same boot, 20 minutes later: cron, not part of the attack
        e(1200, "CRON", 1133, "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"),
        # the same PID on another machine at the same moment
        e(
            0.5,
            "sshd-session",
            1133,
            "Accepted publickey for alice from 10.0.0.9 port 22222 ssh2",
            host="other",
            machine="0" * 32,
        ),
        # PID reused by a new sshd-session within the boot, much later
        e(3600, "sshd-session", 1133, "Accepted password for bob from 10.0.0.10 port 1111 ssh2"),
    )
    assert [(ev.type, ev.outcome, ev.host, len(ev.lines)) for ev in found] == [
        ("ssh_login", "failure", "daisy", 2),
        ("ssh_login", "success", "other", 1),
        ("other", "info", "daisy", 1),
        ("ssh_login", "success", "daisy", 1),
    ]


def test_monitor_and_child_pids_join_by_address_and_port():
    found = events(
        e(0, "sshd-session", 500, "Accepted publickey for alice from 192.0.2.50 port 40000 ssh2"),
        e(0.1, "sshd-session", 500, "pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)"),
        e(30, "sshd-session", 501, "Received disconnect from 192.0.2.50 port 40000:11: disconnected by user"),
        e(30.1, "sshd-session", 501, "Disconnected from user alice 192.0.2.50 port 40000"),
    )
    assert len(found) == 1
    assert found[0].pids == ["500", "501"] and found[0].type == "ssh_login" and len(found[0].lines) == 4


def _failures(ip: str, count: int, start: float, step: float, host: str = "daisy", user: str = "root"):
    return [
        e(
            start + i * step,
            "sshd-session",
            10000 + i,
            f"Failed password for {user} from {ip} port {20000 + i} ssh2",
            host=host,
            machine=host.ljust(32, "0"),
        )
        for i in range(count)
    ]


def test_brute_force_names_users_and_hosts_and_flags_success_after_failures():
    lines = _failures("203.0.113.66", 5, 0, 5, host="web1", user="root")
    lines += _failures("203.0.113.66", 4, 25, 5, host="web2", user="admin")
    lines.append(
        e(
            70,
            "sshd-session",
            30000,
            "Accepted password for admin from 203.0.113.66 port 31000 ssh2",
            host="web2",
            machine="web2".ljust(32, "0"),
        )
    )
    found = events(*lines)
    brute = [ev for ev in found if ev.type == "brute_force"]
    assert len(brute) == 1
    incident = brute[0]
    assert incident.source_ip == "203.0.113.66" and incident.user == "admin, root" and incident.host == "web1, web2"
    assert incident.reason == "9 failed login attempts from 203.0.113.66" and incident.severity == "alert"
    success = next(ev for ev in found if ev.outcome == "success")
    assert success.flags == ["after_failures"]


def test_below_threshold_or_spread_out_is_no_brute_force():
    assert not [ev for ev in events(*_failures("198.51.100.1", 7, 0, 5)) if ev.type == "brute_force"]
    spread = _failures("198.51.100.2", 10, 0, 200)  # one every 200 s: never 8 within 120 s
    assert not [ev for ev in events(*spread) if ev.type == "brute_force"]
    custom = Settings(brute_force_count=3, brute_force_window=60 * S)
    assert (
        len([ev for ev in events(*_failures("198.51.100.3", 3, 0, 10), settings=custom) if ev.type == "brute_force"])
        == 1
    )


def test_heartbeats_are_never_events():
    assert events(e(0, "logstack-heartbeat", 1, "heartbeat")) == []


def test_duplicate_lines_count_once():
    line = e(0, "sshd-session", 77, "Failed password for root from 192.0.2.1 port 1 ssh2")
    found = events(line, dict(line), dict(line))
    assert len(found) == 1 and len(found[0].lines) == 1


def test_ids_are_stable():
    lines = [e(0, "sudo", 3, "alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/id")]
    assert events(*lines)[0].id == events(*[dict(x) for x in lines])[0].id


def test_brute_force_counts_attempts_not_connections():
    # three connections, three passwords tried in each: 9 attempts within 120 s
    lines = []
    for conn in range(3):
        for attempt in range(3):
            lines.append(
                e(
                    conn * 10 + attempt,
                    "sshd-session",
                    700 + conn,
                    f"Failed password for root from 192.0.2.99 port {6000 + conn} ssh2",
                )
            )
    found = events(*lines)
    (brute,) = [ev for ev in found if ev.type == "brute_force"]
    assert brute.reason == "9 failed login attempts from 192.0.2.99"
    assert [ev.attempts for ev in found if ev.type == "ssh_login"] == [3, 3, 3]
