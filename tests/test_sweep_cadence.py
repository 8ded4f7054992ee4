"""The event builder's answer must not depend on how often it sweeps or forgets: a batch size inside the engine is
no property of the journal. It sweeps after each line that makes something due (a group to close, an event to
release, an incident that may end, a new tick of the clock for what failures it forgets), which is the same as
sweeping after every line; it forgets what takes memory only every 2048 lines. Checked on generated journals in
time order (what journalctl writes), and delivered late, out of order and more than once (what the store holds)."""

from __future__ import annotations

import dataclasses
import random
import time
from typing import Any

import hypothesis
import orjson
from hypothesis import strategies as st

from logstack.analyze.grouping import EventBuilder
from logstack.base.clock import SECOND
from logstack.journal.line import Line, from_journal
from tests.journal import entry

T0 = 1_760_000_000_000_000
CADENCES = (1, 3, 17, 2048, 10**9)


def _connection(rng: random.Random, ts: int, host: str, pid: int, ip: str) -> list[tuple[int, str, str, int, str]]:
    """One SSH connection's lines (time, host, identifier, PID, message), as sshd and its helpers write them."""
    port = rng.randint(1024, 65535)
    user = rng.choice(["root", "alice", "bob", "oracle"])
    shape = rng.random()
    if shape < 0.4:  # failures, maybe many from one address
        lines = [(0, f"Failed password for {user} from {ip} port {port} ssh2")] * rng.randint(1, 3)
        lines += [(1, f"Connection closed by authenticating user {user} {ip} port {port} [preauth]")]
    elif shape < 0.55:
        lines = [
            (0, f"Invalid user {user} from {ip} port {port}"),
            (0, "pam_unix(sshd:auth): check pass; user unknown"),
            (0, f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}"),
            (1, f"Failed password for invalid user {user} from {ip} port {port} ssh2"),
        ]
    elif shape < 0.85:  # a login: the monitor's lines, then its session child's (another PID)
        lines = [(0, f"Failed publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:k")] * rng.randint(0, 2)
        lines += [
            (0, f"Accepted password for {user} from {ip} port {port} ssh2"),
            (0, f"pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)"),
            (rng.randint(1, 400), f"Received disconnect from {ip} port {port}:11: disconnected by user"),
            (0, f"pam_unix(sshd:session): session closed for user {user}"),
        ]
        child = [False, False, True, False]
        out, at = [], ts
        for (step, message), is_child in zip(lines[-4:], child, strict=True):
            at += step * SECOND
            out.append((at, host, "sshd-session", pid + 1 if is_child else pid, message))
        head = [(ts, host, "sshd-session", pid, m) for _, m in lines[:-4]]
        return head + out
    else:
        lines = [(0, f"Connection closed by {ip} port {port}")]
    out, at = [], ts
    for step, message in lines:
        at += step * SECOND
        out.append((at, host, "sshd-session", pid, message))
    return out


def _journal(seed: int, count: int) -> list[tuple[int, str, str, int, str]]:
    rng = random.Random(seed)
    ts, pid, out = T0, 1000, []
    addresses = [f"203.0.113.{n}" for n in range(1, 5)] + ["2001:db8::1", "2001:db8::2"]
    for _ in range(count):
        ts += rng.choice([1, 5, 30, 200, 400]) * SECOND  # some further apart than the gap
        pid += 2
        host = rng.choice(["web1", "web2"])
        roll = rng.random()
        if roll < 0.8:
            out += _connection(rng, ts, host, pid, rng.choice(addresses))
        elif roll < 0.9:
            out += [
                (ts, host, "sudo", pid, "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id"),
                (
                    ts,
                    host,
                    "sudo",
                    pid,
                    "pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)",
                ),
            ]
        else:
            out.append((ts, host, "systemd-logind", 600, f"New session {pid} of user alice."))
    return out


def _failures(ip: str, count: int, every: int = SECOND, pid: int = 100, port: int = 4000) -> list[dict[str, Any]]:
    """`count` failed passwords from `ip`, `every` apart, each a connection of its own (PID and port counting up)."""
    return [
        entry(T0 + n * every, "sshd-session", pid + n, f"Failed password for root from {ip} port {port + n} ssh2")
        for n in range(count)
    ]


def _lines(journal: list[tuple[int, str, str, int, str]]) -> list[Line]:
    lines = []
    for ts, host, ident, pid, message in journal:
        line = from_journal(entry(ts, ident, pid, message, host=host, machine=host.ljust(32, "0")))
        assert line is not None
        lines.append(line)
    return lines


def _events(lines: list[Line], forget_every: int) -> list[bytes]:
    builder = EventBuilder(forget_every=forget_every)
    events = [event for line in lines for event in builder.feed(line)] + builder.finish()
    return sorted(orjson.dumps(event.as_dict()) for event in events)


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(seed=st.integers(0, 2**32 - 1), count=st.integers(5, 120))
def test_in_time_order_the_events_do_not_depend_on_the_sweeps(seed, count):
    lines = _lines(sorted(_journal(seed, count), key=lambda line: line[0]))
    want = _events(lines, 2048)
    for cadence in CADENCES:
        assert _events(lines, cadence) == want, cadence


class _EveryLine(EventBuilder):
    """The builder sweeping after every line, whether something is due or not."""

    def feed(self, line):
        return [*super().feed(line), *self._sweep(final=False)]


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(seed=st.integers(0, 2**32 - 1), count=st.integers(5, 120))
def test_delivered_late_and_again_the_events_do_not_depend_on_the_sweeps(seed, count):
    """Rows delivered up to an hour late (out of journal order) and copies up to three hours after: the same
    events, in the same order, whether the builder forgets every line or never, and sweeps only when something is
    due or after every line."""
    rng = random.Random(seed)
    delivered = []
    for line in _lines(_journal(seed, count)):
        first = line.ts + rng.choice([0, 0, 0, 30 * SECOND, 60 * SECOND, 300 * SECOND, 1200 * SECOND, 3600 * SECOND])
        delivered.append(dataclasses.replace(line, arrival=first))
        for _ in range(rng.choice([0, 0, 1, 2])):
            again = first + rng.choice([1, 780, 3600, 10_800]) * SECOND
            delivered.append(dataclasses.replace(line, arrival=again))
    delivered.sort(key=lambda line: line.arrival)

    def released(builder: EventBuilder) -> list[bytes]:
        events = [event for line in delivered for event in builder.feed(line)] + builder.finish()
        return [orjson.dumps(event.as_dict()) for event in events]

    want = released(_EveryLine(forget_every=1))
    for cadence in CADENCES:
        assert released(EventBuilder(forget_every=cadence)) == want, cadence


def test_an_incident_ends_at_its_line_while_one_process_logs_alone():
    """A burst of failed passwords, then half an hour of one process logging a line a second (its group never
    closes, so no line closes or releases anything): the incident is released with the line the builder sweeping
    at every line releases it with, not at the end of input."""
    records = _failures("203.0.113.5", 8)
    records += [entry(T0 + (10 + n) * SECOND, "kubelet", 4242, f"tick {n}", host="node7") for n in range(1800)]
    lines = _lines_of(records)

    def released_at(builder: EventBuilder) -> list[int]:
        return [n for n, line in enumerate(lines) for event in builder.feed(line) if event.type == "brute_force"]

    want = released_at(_EveryLine())
    assert len(want) == 1 and want[0] < len(lines) - 1
    assert released_at(EventBuilder()) == want


def test_a_forget_after_the_last_line_changes_nothing_at_the_end():
    """A forget right after the last line (the lines fed a multiple of the forget cadence) used the clock that line
    moved, while the end of input still joined by the clock before it: a login that made a port-less child's join
    ambiguous was gone. The same events whatever the cadence, with the last line on a forget or not."""
    address = "198.51.100.9"
    rows = [
        (80, 0, 200, f"Accepted password for bob from {address} port 5001 ssh2"),
        (100, 780, 100, f"Accepted password for alice from {address} port 5000 ssh2"),
        (270, 810, 101, f"Received disconnect from {address}: 11: disconnected by user"),
    ]
    tail = [
        dataclasses.replace(from_journal(entry(T0 + ts * SECOND, "sshd", pid, message)), arrival=T0 + at * SECOND)
        for ts, at, pid, message in rows
    ]
    for padding in (0, 2044, 2045, 2046):
        lines = [*_lines_of(_cron(padding)), *tail]
        answers = {
            cadence: sorted(event.pids for event in _all(EventBuilder(forget_every=cadence), lines) if event.ssh)
            for cadence in (1, 3, 2048, 10**9)
        }
        assert len(set(map(str, answers.values()))) == 1 and answers[1] == [["100"], ["101"], ["200"]], padding


def _cron(count: int) -> list[dict]:
    return [
        entry(T0 - 100 * SECOND + n * SECOND // 100, "CRON", 9000 + n, "(root) CMD (true)", host="db1")
        for n in range(count)
    ]


def _all(builder: EventBuilder, lines: list[Line]) -> list:
    return [event for line in lines for event in builder.feed(line)] + builder.finish()


class _Counting(EventBuilder):
    sweeps = 0

    def _sweep(self, final: bool) -> list:
        self.sweeps += 1
        return super()._sweep(final)


def test_incidents_held_back_by_a_connection_that_never_goes_quiet_make_no_sweep_a_line():
    """Brute-force bursts from many addresses while a local user's `logger -t sshd` writes a line a minute (its
    group never closes, so no incident is quiet until HOLD has passed): the builder sweeps when something ends,
    not after every line while incidents wait (a line then cost a pass over every incident)."""

    def sweeps(never_quiet: bool) -> int:
        # half an hour of one process's lines, two a second: it closes nothing, so a sweep is for the incidents
        records = [entry(T0 + n * SECOND // 2, "kubelet", 4000, f"tick {n}", host="node7") for n in range(3600)]
        for n in range(40):
            ip = f"2001:db8:{n:x}::1"
            start = T0 + n * 3 * SECOND
            records += [
                entry(
                    start + k * SECOND, "sshd", 50_000 + 8 * n + k, f"Failed password for root from {ip} port 22 ssh2"
                )
                for k in range(8)
            ]
        if never_quiet:
            records += [
                entry(T0 + m * 60 * SECOND, "sshd", 4242, "tick", comm="logger", exe="/usr/bin/logger")
                for m in range(30)
            ]
        records.sort(key=lambda record: int(record["__REALTIME_TIMESTAMP"]))
        builder = _Counting()
        incidents = [event for event in _all(builder, _lines_of(records)) if event.type == "brute_force"]
        assert len(incidents) == 40
        return builder.sweeps

    assert sweeps(never_quiet=True) < 1.5 * sweeps(never_quiet=False)


def test_a_login_after_failures_is_flagged_however_busy_the_journal(tmp_path, runner):
    """Failed passwords from an address, then a login from it whose connection lasts four minutes, in an
    export where thousands of other lines pass meanwhile (the builder sweeps every 2048 lines): the login is
    flagged `after_failures` (it was not when a sweep fell between, on a busy enough journal)."""
    from tests.conftest import invoke
    from tests.journal import write

    ip = "198.51.100.23"
    records = _failures(ip, 3, pid=700)
    login = T0 + 60 * SECOND
    records += [
        entry(login, "sshd-session", 800, f"Accepted password for alice from {ip} port 5000 ssh2"),
        entry(login, "sshd-session", 800, "pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)"),
        entry(login + 170 * SECOND, "sshd-session", 800, f"Received disconnect from {ip} port 5000:11: bye"),
        entry(login + 240 * SECOND, "sshd-session", 800, "pam_unix(sshd:session): session closed for user alice"),
    ]
    busy = _busy(9000, per_second=10)  # fifteen minutes
    export = write(tmp_path / "journal.json", sorted(records + busy, key=lambda r: int(r["__REALTIME_TIMESTAMP"])))
    result = invoke(runner, "analyze", "--journal", export, "--format", "jsonl")
    events = [json for json in map(orjson.loads, result.stdout.splitlines()) if json["type"] == "ssh_login"]
    success = [e for e in events if e["outcome"] == "success"]
    assert len(success) == 1 and "after_failures" in success[0]["flags"], success


def _peak(lines: list[Line]) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        builder = EventBuilder()
        for line in lines:
            builder.feed(line)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_connection_that_never_goes_quiet_holds_back_no_memory():
    """Any local user can keep a process logging under sshd's name a line a minute (its group never closes)
    while failed tries arrive from a thousand addresses: what the builder keeps does not grow with the input."""

    def journal(count: int) -> list[Line]:
        out = []
        for i in range(count):
            ts = T0 + i * SECOND // 5
            if i % 300 == 0:
                out.append(entry(ts, "sshd-session", 4242, f"tick {i}"))
            address = f"10.0.{(i >> 8) & 3}.{i & 255}"  # a thousand sources in turn
            out.append(
                entry(ts, "sshd-session", 100_000 + i, f"Failed password for root from {address} port 1024 ssh2")
            )
        return [from_journal(record) for record in out]

    # 100 and 400 minutes of a flood: both far beyond what is held (two gaps, a window and HOLD)
    assert _peak(journal(120_000)) < 1.3 * _peak(journal(30_000))


def test_one_burst_is_one_incident_whatever_the_sweeps():
    """Eight failures, then a ninth in a connection that keeps logging for ten minutes, in a busy journal: one
    incident of nine, at every sweep cadence (a connection logging for longer than HOLD may end it first)."""
    ip = "198.51.100.7"
    records = _failures(ip, 8, every=10 * SECOND)
    records += [
        entry(
            T0 + (100 + 150 * k) * SECOND,
            "sshd-session",
            999,
            f"tick {k}" if k else f"Failed password for root from {ip} port 5000 ssh2",
        )
        for k in range(5)
    ]
    records += _busy(30_000, per_second=20)
    lines = _lines_of(sorted(records, key=lambda r: int(r["__REALTIME_TIMESTAMP"])))
    for cadence in CADENCES:
        builder = EventBuilder(forget_every=cadence)
        events = [event for line in lines for event in builder.feed(line)] + builder.finish()
        incidents = [event for event in events if event.type == "brute_force"]
        assert [incident.reason for incident in incidents] == [f"9 failed login attempts from {ip}"], cadence


def _busy(count: int, per_second: int) -> list[dict]:
    """Another host's sudo lines, `per_second` a second: the builder sweeps every 2048 lines meanwhile."""
    command = "bob : TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/bin/true"
    return [entry(T0 + n * SECOND // per_second, "sudo", 9000 + n, command, host="db1") for n in range(count)]


def _lines_of(records: list[dict]) -> list[Line]:
    return [from_journal(record) for record in records]


def _burst_incidents(records: list[dict], cadence: int = 2048) -> list:
    builder = EventBuilder(forget_every=cadence)
    lines = _lines_of(sorted(records, key=lambda r: int(r["__REALTIME_TIMESTAMP"])))
    return [event for line in lines for event in builder.feed(line) if event.type == "brute_force"] + [
        event for event in builder.finish() if event.type == "brute_force"
    ]


def test_a_burst_counts_a_long_connections_try_released_after_a_later_short_one():
    """Seven tries, an eighth in a connection that stays open (released late), a ninth in a short connection
    started later (released first): releasing the ninth used to drop the seven before the eighth was counted."""
    ip = "198.51.100.7"
    records = _failures(ip, 7, every=10 * SECOND)
    records += [
        entry(T0 + 90 * SECOND, "sshd-session", 200, f"Failed password for root from {ip} port 5000 ssh2"),
        entry(T0 + 240 * SECOND, "sshd-session", 200, "pam_unix(sshd:auth): check pass; user unknown"),
        entry(
            T0 + 400 * SECOND,
            "sshd-session",
            200,
            f"Connection closed by authenticating user root {ip} port 5000 [preauth]",
        ),
        entry(T0 + 250 * SECOND, "sshd-session", 300, f"Failed password for root from {ip} port 6000 ssh2"),
    ]
    for cadence in CADENCES:
        busy = [entry(T0 + n * 10 * SECOND, "cron", 9000 + n, "(root) CMD (true)", host="db1") for n in range(180)]
        incidents = _burst_incidents(records + busy, cadence)
        assert [incident.reason for incident in incidents] == [f"9 failed login attempts from {ip}"], cadence


def test_a_chatty_daemon_elsewhere_does_not_delay_incidents():
    """A process on another host logging a line a minute (a kubelet) keeps a group open for ever: it cannot extend
    an SSH incident, so incidents end as soon as without it."""

    def released_after(chatty: bool) -> int:
        records = _failures("203.0.113.5", 8)
        records += _busy(12_000, per_second=10)  # twenty minutes
        if chatty:
            records += [entry(T0 + n * 60 * SECOND, "kubelet", 4242, f"tick {n}", host="node7") for n in range(20)]
        builder = EventBuilder()
        for line in _lines_of(sorted(records, key=lambda r: int(r["__REALTIME_TIMESTAMP"]))):
            if any(event.type == "brute_force" for event in builder.feed(line)):
                return line.arrival - T0
        raise AssertionError("no incident")

    # released by the first sweep after it is due (sweeps run every 2048 lines): within a minute of each other,
    # not HOLD (10 minutes) later
    quiet, chatty = released_after(chatty=False), released_after(chatty=True)
    assert quiet < 12 * 60 * SECOND and chatty < quiet + 60 * SECOND


def test_an_address_failing_for_hours_costs_time_in_proportion():
    """One address failing every second makes one incident of thousands of failures: each costs the same."""

    def cost(count: int) -> float:
        """The least of three runs' times (another process's work on this machine only adds to a run's time)."""
        records = _failures("198.51.100.9", count, pid=1000, port=1024)
        lines = _lines_of(records)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            builder = EventBuilder()
            for line in lines:
                builder.feed(line)
            builder.finish()
            times.append(time.perf_counter() - start)
        return min(times)

    cost(2000)
    assert cost(16_000) < 16 * cost(2000)  # 8 times the failures: 64 times the time if each cost them all


def test_a_login_delivered_late_is_still_one_a_child_may_belong_to():
    """Rows shipped an hour late: alice's login, a session child naming no port (sshd before 7.4p1), then bob's
    login from the same address, journal time between the two but arriving last. Two logins could own the child:
    the late one is counted although it came after the builder last forgot old logins."""
    address = "198.51.100.9"
    rows = [
        (0, 0, 100, f"Accepted password for alice from {address} port 5000 ssh2"),
        (10, 10, 101, f"Received disconnect from {address}: 11: disconnected by user"),
        (5, 210, 200, f"Accepted password for bob from {address} port 5001 ssh2"),
    ]
    lines = []
    for ts, arrival, pid, message in rows:
        line = from_journal(entry(T0 + ts * SECOND, "sshd", pid, message))
        line.arrival = T0 + (3600 + arrival) * SECOND
        lines.append(line)
    builder = EventBuilder(forget_every=1)
    events = [event for line in lines for event in builder.feed(line)] + builder.finish()
    assert sorted(event.pids for event in events) == [["100"], ["101", "200"]]


def test_an_address_logging_in_every_second_holds_back_no_memory():
    """Any local user can log `Accepted password … from ADDR` under sshd's name once a second for hours: what
    the builder keeps to join session children to logins stays what a few gaps hold."""

    def journal(seconds: int) -> list[Line]:
        message = "Accepted password for x from 10.9.9.9 port {} ssh2"
        return [
            from_journal(entry(T0 + i * SECOND, "sshd", 5000 + i, message.format(1024 + i), comm="logger"))
            for i in range(seconds)
        ]

    assert _peak(journal(8 * 3600)) < 1.3 * _peak(journal(2 * 3600))


def test_rows_stamped_before_1970_then_after_do_not_break_the_failure_windows():
    """Arrivals before 1970 hold the clock at 0: what the failure windows queued for a source emptied then must
    not name it once a forget has dropped it (a KeyError stopped the analysis)."""
    specs = [
        (341, -1059, 201, "Failed password for root from 2001:db8:0::1 port 5000 ssh2"),
        (1071, -329, 200, "Failed password for root from 2001:DB8::1 port 5000 ssh2"),
        (1871, 471, 101, "Connection closed by 2001:DB8::1 port 5001 [preauth]"),
        (2152, 752, 200, "Server listening on 0.0.0.0 port 22."),
    ]
    lines = []
    for ts, arrival, pid, message in specs:
        line = from_journal(entry(T0 + ts * SECOND, "sshd-session", pid, message))
        assert line is not None
        line.arrival = arrival * SECOND
        lines.append(line)
    for cadence in CADENCES:
        events = _events(lines, cadence)
        assert sum(b'"Failed password' in event for event in events) == 2
