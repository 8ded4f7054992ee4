"""Brute-force incidents and `after_failures` over columns: lines cut into batches anywhere, through
`BatchGroups`, `BatchConnections` and `BatchIncidents`, give the builder's events, incidents included (every
field, the lines, the flags) in the order it releases them."""

from __future__ import annotations

import random

import hypothesis
from hypothesis import strategies as st

from logstack.analyze.event import Settings
from logstack.analyze.event_columns import EVENT_COLUMNS
from logstack.analyze.failures import FailureWindows, source_key
from logstack.analyze.grouping import EventBuilder
from logstack.analyze.incident_columns import BatchIncidents
from logstack.base.clock import SECOND
from logstack.journal.line import Line, from_journal
from tests.journal import entry
from tests.test_connection_columns import released, rows_of
from tests.test_line_groups import BATCHES, delayed, delivered_late, generated_lines
from tests.test_sweep_cadence import T0

_FIELDS = [name for name in EVENT_COLUMNS if name not in ("group", "line_order")]


def columns(
    lines: list[Line], cuts: list[int], settings: Settings | None = None, windows: FailureWindows | None = None
) -> list[dict[str, object]] | None:
    """The events of `lines` through the column stages, batches cut at `cuts`; None if a stage refused."""
    settings = settings or Settings()
    batches = released(lines, cuts, settings.gap)
    if batches is None:
        return None
    incidents = BatchIncidents(settings)
    if windows is not None:
        incidents.windows = windows
    given = [incidents.feed(fed, *out) if fed is not None else incidents.finish(*out) for fed, *out in batches]
    return [{name: row[name] for name in (*_FIELDS, "lines")} for row in rows_of(given)]


def builders(
    lines: list[Line], settings: Settings | None = None, windows: FailureWindows | None = None
) -> list[dict[str, object]]:
    """The builder's events as the columns give them: every field and the lines' keys."""
    builder = EventBuilder(settings)
    if windows is not None:
        builder.failures = windows
    events = [event for line in lines for event in builder.feed(line)] + builder.finish()
    return [
        {**{name: getattr(event, name) for name in _FIELDS}, "lines": [line.key for line in event.lines]}
        for event in events
    ]


def _same(rows: list[dict[str, object]], want: list[dict[str, object]]) -> None:
    assert [row["id"] for row in rows] == [row["id"] for row in want]  # released in the builder's order
    assert rows == want


def _bursts(rng: random.Random, count: int) -> list[dict[str, object]]:
    """Failed connections from a few addresses (an IPv6 /64 among them), seconds apart in bursts: enough to make
    incidents, some ended by a later failure, some by the clock."""
    out = []
    ts = T0 + rng.randint(0, 600) * SECOND
    addresses = ["203.0.113.7", "203.0.113.8", "2001:db8:1::5", "2001:db8:1::6"]
    ip = addresses[0]
    for n in range(count):
        if rng.random() < 0.15:  # another address's run, after a pause (some end an incident, some do not)
            ip = rng.choice(addresses)
            ts += rng.choice([5, 60, 130, 400]) * SECOND
        ts += rng.choice([1, 2, 5, 20]) * SECOND
        pid, port = 50000 + 2 * n, 20000 + n
        message = rng.choice(
            [
                f"Failed password for root from {ip} port {port} ssh2",
                f"Failed password for invalid user admin{n % 3} from {ip} port {port} ssh2",
                f"Connection closed by authenticating user root {ip} port {port} [preauth]",
                f"Failed publickey for root from {ip} port {port} ssh2: ED25519 SHA256:k",
                f"Accepted password for root from {ip} port {port} ssh2",
            ]
        )
        out.append(entry(ts, "sshd-session", pid, message, host=rng.choice(["web1", "web2"])))
    return out


def attacked_journal(seed: int, count: int, burst: int) -> list[Line]:
    lines = generated_lines(seed, count, count // 3)
    burst_lines = [line for line in map(from_journal, _bursts(random.Random(seed), burst)) if line is not None]
    return sorted(lines + burst_lines, key=lambda line: line.ts)


def _ahead(lines: list[Line], rng: random.Random, hosts: tuple[str, ...]) -> list[Line]:
    """Rows from `hosts` written by a clock ahead of the store's: each host's stamped later than they arrived by
    up to an hour (in place)."""
    ahead = {host: rng.choice([30, 600, 3600]) * SECOND for host in hosts}
    for line in lines:
        line.arrival -= ahead.get(line.host, 0)
    return lines


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(**BATCHES, burst=st.integers(0, 60), ahead=st.sampled_from([(), ("web1",), ("web1", "web2")]))
def test_incidents_and_flags_are_the_builders(seed, count, late, cuts, burst, ahead):
    rng = random.Random(seed)
    lines = delivered_late(_ahead(delayed(attacked_journal(seed, count, burst), rng, 30), rng, ahead), rng, late)
    rows = columns(lines, cuts)
    if late == 0:
        assert rows is not None
    hypothesis.assume(rows is not None)
    assert rows is not None
    _same(rows, builders(lines))


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(seed=st.integers(0, 2**32 - 1), count=st.integers(1, 25), burst=st.integers(0, 40))
def test_a_line_a_batch(seed, count, burst):
    """A line alone in its batch, neither a try nor a release, is still looked at when the clock makes an
    incident end or a tick forget there."""
    rng = random.Random(seed)
    lines = delayed(attacked_journal(seed, count, burst), rng, 30)
    rows = columns(lines, list(range(len(lines))))
    assert rows is not None
    _same(rows, builders(lines))


class _Told(FailureWindows):
    """The windows, noting what they are told (by their public methods, as the builder tells them)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.told: list[tuple[object, ...]] = []

    def tried(self, address, arrival, ts, tag):
        self.told.append(("tried", address, arrival, ts, tag))
        super().tried(address, arrival, ts, tag)

    def finalise(self, event, out, oldest_unreleased):
        # the rest it ignores: other events, a success from a source it keeps nothing of
        login = event.type == "ssh_login" and event.source_ip and source_key(event.source_ip)
        if login and (event.outcome != "success" or self.knows(event.source_ip)):
            self.told.append(("finalise", event.id, oldest_unreleased))
        super().finalise(event, out, oldest_unreleased)

    def end(self, clock, final, out, oldest_unreleased):
        self.told.append(("end", clock, final, oldest_unreleased))
        super().end(clock, final, out, oldest_unreleased)

    def forget(self, clock, oldest_unreleased):
        self.told.append(("forget", clock, oldest_unreleased))
        super().forget(clock, oldest_unreleased)


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(**BATCHES, burst=st.integers(0, 60))
def test_the_windows_are_told_what_the_builder_tells_them(seed, count, late, cuts, burst):
    """The same calls with the same values in the same order: which tries, each login with the least journal
    time still unreleased (before the releases of its line), and each end and forget at the builder's lines (by
    the clock they are told) with what is unreleased after them. `busy` is not compared: the builder asks it at
    every line, the columns at those where it may turn true."""
    rng = random.Random(seed)
    lines = delivered_late(delayed(attacked_journal(seed, count, burst), rng, 30), rng, late)
    theirs, ours = _Told(Settings()), _Told(Settings())
    builders(lines, windows=theirs)
    hypothesis.assume(columns(lines, cuts, windows=ours) is not None)
    assert ours.told == theirs.told


_LOGIN = [  # (journal time s, arrival s, PID, message)
    (0, 0, 10, "Accepted password for alice from 203.0.113.9 port 5000 ssh2"),
    (1, 1, 10, "pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)"),
]


def _login_flags(specs: list[tuple[int, int, int, str]]) -> list[str]:
    """Lines delivered as `specs` say: the successful login's flags, the builder's and the columns' (checked
    equal, in one batch and a line a batch)."""
    lines = []
    for ts, arrival, pid, message in specs:
        line = from_journal(entry(T0 + ts * SECOND, "sshd", pid, message))
        assert line is not None
        line.arrival = T0 + arrival * SECOND
        lines.append(line)
    want = builders(lines)
    for cuts in ([], list(range(len(lines)))):
        rows = columns(lines, cuts)
        assert rows is not None
        _same(rows, want)
    return next(row["flags"] for row in want if row["type"] == "ssh_login" and row["outcome"] == "success")


def test_a_failed_try_delivered_after_the_login_was_released_flags_nothing():
    """A failed try written before a login but delivered long after it (a sender that could not deliver): the
    builder had released the login by then, so it is not flagged; nor is it in columns."""
    late = [
        (500, 500, 11, "Connection closed by 198.51.100.1 port 7 [preauth]"),
        (-10, 1000, 12, "Failed password for root from 203.0.113.9 port 4000 ssh2"),
    ]
    assert "after_failures" not in _login_flags(_LOGIN + late)


def test_a_failed_try_delivered_with_the_line_that_releases_the_login_flags_it():
    """The builder releases a login at the sweep after the line that takes its clock two gaps past the login's
    last line: a try that line carries was noted before, and counts."""
    late = [(1, 1 + 2 * 180 + 1, 12, "Failed password for root from 203.0.113.9 port 4000 ssh2")]
    assert "after_failures" in _login_flags(_LOGIN + late)


def test_an_ssh_line_stamped_ahead_of_the_clock_ends_a_quiet_incident_where_it_is_fed():
    """Nothing SSH is unreleased, so what is unreleased is the clock; then an SSH line stamped an hour ahead of
    the clock (its sender's clock) is fed: the incident is quiet from that line on and the builder ends it there,
    so a failure released later starts anew (8 attempts, not 9), and the incident comes before later events."""

    def line(ts: float, arrival: float, ident: str, pid: int, message: str) -> Line:
        made = from_journal(entry(T0 + int(ts * SECOND), ident, pid, message))
        assert made is not None
        made.arrival = T0 + int(arrival * SECOND)
        return made

    cron = "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"
    failed = "Failed password for root from 203.0.113.7 port {} ssh2"
    lines = [line(3600 + n, n, "sshd", 100 + n, failed.format(4000 + n)) for n in range(8)]
    lines += [
        line(490, 490, "CRON", 5000, cron),  # releases the failures: an incident, nothing SSH unreleased
        line(490.5, 490.5, "CRON", 5001, cron),
        line(3900, 491, "sshd", 999, "Connection closed by 198.51.100.1 port 7 [preauth]"),  # stamped ahead
        line(3667, 492, "sshd", 998, failed.format(4999)),
        line(900, 900, "CRON", 5002, cron),
    ]
    want = builders(lines)
    assert [row["reason"] for row in want if row["type"] == "brute_force"] == [
        "8 failed login attempts from 203.0.113.7"
    ]
    for cuts in ([], [9], [10], list(range(len(lines)))):
        rows = columns(lines, cuts)
        assert rows is not None
        _same(rows, want)
