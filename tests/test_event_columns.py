"""Differential: events as group aggregations (`event_columns`) equal what `build_event` makes of the same groups of
lines, on generated groups (every message table row rendered with generated values, PAM, sudo, su and login
lines, key probes, forged and unproven lines, ties in time) and on the events the event builder makes of generated
journals (sessions joined across processes included)."""

from __future__ import annotations

import hypothesis
import polars as pl
from hypothesis import strategies as st

from logstack.analyze.event import Group, build_event
from logstack.analyze.event_columns import LINE_COLUMNS, event_columns
from logstack.analyze.grouping import EventBuilder
from logstack.classify.classifier import classify
from logstack.classify.messages import load_table
from logstack.columnar.facts import fact_columns
from logstack.journal.line import Line
from tests.test_message_table import SAMPLES, identifier, render
from tests.test_sweep_cadence import _journal
from tests.test_sweep_cadence import _lines as _journal_lines

ROWS = [m for m in load_table() if m.compiled]
_value = st.one_of(
    st.sampled_from(["", "alice", "root", "bob", "a b", "x y z", "0"]),
    st.text(alphabet="abc ;:=()/.-", max_size=12),
)
_address = st.sampled_from(["203.0.113.9", "198.51.100.4", "2001:db8::1", "::ffff:192.0.2.1", "", "host.example"])
_port = st.sampled_from(["22", "0", "50022", "70000", ""])
_CRAFTED = (
    ("sshd-session", "Failed publickey for alice from 203.0.113.9 port 50022 ssh2: ED25519 SHA256:k1"),
    ("sshd-session", "Failed publickey for alice from 203.0.113.9 port 50022 ssh2: RSA SHA256:a ssh2: x"),
    ("sshd-session", "Failed publickey for alice from 203.0.113.9 port 50022 ssh2"),
    ("sshd-session", "Failed publickey for alice from 203.0.113.9 port 50022 ssh2: RSA-CERT ID " + "k" * 250),
    ("sshd-session", "Accepted publickey for alice from 203.0.113.9 port 50022 ssh2: ED25519 SHA256:k2"),
    ("sshd-session", "Accepted password for root from 203.0.113.9 port 50022 ssh2"),
    ("sshd-session", "Failed password for invalid user oracle from 198.51.100.4 port 4000 ssh2"),
    ("sshd-session", "Received disconnect from 203.0.113.9 port 50022:11: bye [preauth]"),
    ("sshd-session", "pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)"),
    ("sshd-session", "pam_unix(sshd:session): session closed for user alice"),
    (
        "sshd-session",
        "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=x user=bob",
    ),
    ("sshd-session", "PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4"),
    ("sudo", "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id"),
    ("sudo", "bob : user NOT in sudoers ; TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/bin/sh"),
    ("sudo", "pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)"),
    (
        "sudo",
        "pam_unix(sudo:auth): authentication failure; logname=alice uid=1000 euid=0 tty=/dev/pts/0 ruser=alice "
        "rhost=  user=alice",
    ),
    ("su", "(to root) alice on pts/0"),
    ("su", "FAILED SU (to root) alice on pts/0"),
    ("login", "FAILED LOGIN 1 FROM tty1 FOR root, Authentication failure"),
    ("login", "ROOT LOGIN  on '/dev/tty1'"),
    ("systemd-logind", "New session 5 of user alice."),
    ("useradd", "new user: name=eve, UID=1001, GID=1001, home=/home/eve, shell=/bin/bash, from=/dev/pts/0"),
    ("pkexec", "alice: Executing command [USER=root] [TTY=/dev/pts/0] [CWD=/home/alice] [COMMAND=/usr/bin/id]"),
    ("CRON", "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"),
)


@st.composite
def _message(draw: st.DrawFn) -> tuple[str, str]:
    if draw(st.booleans()):
        return draw(st.sampled_from(_CRAFTED))
    row = draw(st.sampled_from(ROWS))
    values = {
        **SAMPLES,
        "user": draw(_value),
        "login": draw(_value),
        "target": draw(_value),
        "ip": draw(_address),
        "host": draw(_address),
        "port": draw(_port),
        "reason": draw(_value),
        "command": draw(_value),
    }
    line = render(row, values)
    if row.program == "sshd" and draw(st.booleans()):
        line += " [preauth]"
    return identifier(row), line


# (_COMM, _EXE): the daemon's own, none (a process gone before journald read it), a user's copy, `..`
_PROCESSES = [
    (None, None),
    ("sshd", "/usr/sbin/sshd"),
    ("sshd", None),
    (None, "/tmp/sshd"),
    ("logger", "/usr/bin/logger"),
    ("sudo", "/usr/bin/sudo"),
    ("su", "/usr/bin/../bin/su"),
    ("sshd-session", "/usr/lib/openssh/sshd-session"),
    ("{ident}", "/usr/sbin/{ident}"),
    ("{ident}", "/usr/sbin/../../tmp/{ident}"),
    ("{ident}", None),
]
_line = st.fixed_dictionaries(
    {
        "message": _message(),
        "ts": st.integers(0, 6),
        "arrival": st.integers(0, 6),
        "pid": st.sampled_from(["", "100", "2000", "31", "7"]),
        "host": st.sampled_from(["web1", "web2"]),
        "machine": st.sampled_from(["", "m" * 32]),
        "boot": st.sampled_from(["", "b1"]),
        "process": st.sampled_from(_PROCESSES),
        "loginuid": st.sampled_from([None, "", "4294967295", "1000"]),
        "auth": st.sampled_from([None, None, "unsigned", "forged_host:web2"]),
        "group": st.integers(0, 4),
    }
)


def _check(drawn: list[dict[str, object]]) -> None:
    lines, groups = [], []
    for n, spec in enumerate(drawn):
        ident, message = spec["message"]
        comm, exe = (None if v is None else v.format(ident=ident) for v in spec["process"])
        ts = 1_760_000_000_000_000 + int(spec["ts"]) * 1_000_000  # ties in time are ordered by key
        key = f"{spec['machine'] or spec['host']}|c{(n * 7919) % 1009:04d}"
        line = Line(
            ts,
            ts + int(spec["arrival"]),
            str(spec["host"]),
            str(spec["machine"]),
            str(spec["boot"]),
            str(spec["pid"]),
            ident,
            message,
            comm,
            exe,
            spec["loginuid"],
            key,
            spec["auth"],
        )
        lines.append(line)
        groups.append(int(spec["group"]))
    want = {}
    for group in sorted(set(groups)):
        members = [line for line, g in zip(lines, groups, strict=True) if g == group]
        built = Group(members[0], classify(members[0].ident, members[0].message))
        for line in members[1:]:
            built.add(line, classify(line.ident, line.message))
        want[group] = build_event(built)
    got = event_columns(_frame(lines, groups))
    assert got["group"].to_list() == sorted(want)
    for row in got.iter_rows(named=True):
        event = want[row["group"]]
        expected = {name: getattr(event, name) for name in row if name not in ("group", "line_order")}
        assert {name: row[name] for name in expected} == expected
        assert [lines[i].key for i in row["line_order"]] == [line.key for line in event.lines]


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(drawn=st.lists(_line, min_size=1, max_size=30))
def test_generated_groups(drawn):
    _check(drawn)


def _spec(message: tuple[str, str], ts: int = 0, pid: str = "100", group: int = 0) -> dict[str, object]:
    return {
        "message": message,
        "ts": ts,
        "arrival": 0,
        "pid": pid,
        "host": "web1",
        "machine": "m" * 32,
        "boot": "b1",
        "process": ("sshd", "/usr/sbin/sshd"),
        "loginuid": None,
        "auth": None,
        "group": group,
    }


def test_keys_offered_before_an_accepted_one():
    """A login after keys it did not take: each key's description as sshd logged it (after the last ` ssh2: `,
    200 characters at most, or that none was logged), in the order offered."""
    probes = [m for m in _CRAFTED if m[1].startswith("Failed publickey")]
    accepted = next(m for m in _CRAFTED if m[1].startswith("Accepted publickey"))
    _check([_spec(probe, ts=n) for n, probe in enumerate(probes)] + [_spec(accepted, ts=9)])


def _frame(lines: list[Line], groups: list[int]) -> pl.DataFrame:
    frame = pl.DataFrame(
        {name: [getattr(line, name) for line in lines] for name in LINE_COLUMNS},
        schema={name: pl.Int64 if name in ("ts", "arrival") else pl.String for name in LINE_COLUMNS},
    )
    facts = fact_columns([line.ident for line in lines], [line.message for line in lines], min_batch=0)
    return pl.concat([frame, facts], how="horizontal").with_columns(group=pl.Series(groups, dtype=pl.UInt32))


def _builders_events(seed: int, count: int) -> list:
    """The events (not incidents) the builder releases from a generated journal, fed in the order it arrived."""
    builder = EventBuilder()
    lines = _journal_lines(sorted(_journal(seed, count)))
    events = [e for line in lines for e in builder.feed(line)] + builder.finish()
    return [event for event in events if event.type != "brute_force"]


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(seed=st.integers(0, 2**32 - 1), count=st.integers(5, 150))
def test_the_event_builders_events(seed, count):
    """Each event the builder released (a connection's monitor and session child merged into one), read again
    from its lines in columns: the same, but for `after_failures` from failed tries in other events."""
    events = _builders_events(seed, count)
    lines = [line for event in events for line in event.lines]
    groups = [n for n, event in enumerate(events) for _ in event.lines]
    got = event_columns(_frame(lines, groups))
    assert got["group"].to_list() == list(range(len(events)))
    for row, event in zip(got.iter_rows(named=True), events, strict=True):
        expected = {name: getattr(event, name) for name in row if name not in ("group", "line_order", "flags")}
        assert {name: row[name] for name in expected} == expected
        assert set(row["flags"]) <= set(event.flags) and set(event.flags) - set(row["flags"]) <= {"after_failures"}
        assert [lines[i].key for i in row["line_order"]] == [line.key for line in event.lines]
