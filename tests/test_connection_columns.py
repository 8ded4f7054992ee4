"""Connections joined across processes over columns: lines cut into batches anywhere, grouped by `BatchGroups`,
joined and released by `BatchConnections`, read by `event_columns`: the builder's events (all but brute-force
incidents and the `after_failures` flag, which other stages give), in the order it releases them."""

from __future__ import annotations

import itertools
import random

import hypothesis
import polars as pl

from logstack.analyze.connection_columns import BatchConnections
from logstack.analyze.event_columns import EVENT_COLUMNS
from logstack.analyze.grouping import EventBuilder
from logstack.analyze.line_groups import BatchGroups
from logstack.base.clock import SECOND
from logstack.journal.line import Line, from_journal
from tests.journal import entry
from tests.test_line_groups import BATCHES, delayed, delivered_late, generated_lines, line_frame
from tests.test_sweep_cadence import T0

GAP = 180 * SECOND


def released(
    lines: list[Line], cuts: list[int], gap: int = GAP
) -> list[tuple[pl.DataFrame | None, pl.DataFrame, pl.DataFrame]] | None:
    """`lines` through the line and connection stages, batches cut at `cuts`: for each batch the lines fed and
    the events and lines released (then, fed None, what the end of input released); None if a stage refused."""
    frame = line_frame(lines)
    bounds = sorted({0, len(lines), *(cut for cut in cuts if cut < len(lines))})
    groups, connections = BatchGroups(gap), BatchConnections(gap)
    out: list[tuple[pl.DataFrame | None, pl.DataFrame, pl.DataFrame]] = []
    for start, end in itertools.pairwise(bounds):
        rest: pl.DataFrame | None = frame.slice(start, end - start)
        while rest is not None:  # a batch ended early at a copy is fed on from there
            split = groups.to_feed(rest, connections.held_keys())
            if split is None:
                return None
            fed, rest = split
            closed = groups.feed(fed)
            given = None if closed is None else connections.feed(*closed, fed["arrival"])
            if given is None:
                return None
            out.append((fed, *given))
    last = connections.finish(groups.finish())
    return None if last is None else [*out, (None, *last)]


def rows_of(batches: list[tuple[pl.DataFrame, pl.DataFrame]]) -> list[dict[str, object]]:
    """The events given out, in order, as rows with their lines' keys."""
    rows: list[dict[str, object]] = []
    for events, lines_out in batches:
        if not events.is_empty():
            keys = dict(zip(lines_out["idx"].to_list(), lines_out["key"].to_list(), strict=True))
            for row in events.iter_rows(named=True):
                row["lines"] = [keys[i] for i in row.pop("line_order")]
                rows.append(row)
    return rows


def _columns(lines: list[Line], cuts: list[int]) -> list[dict[str, object]] | None:
    """The events of `lines` through the column stages, batches cut at `cuts`; None if a stage refused."""
    batches = released(lines, cuts)
    return None if batches is None else rows_of([(events, out) for _, events, out in batches])


_FIELDS = [name for name in EVENT_COLUMNS if name not in ("group", "line_order")]


def _builders(lines: list[Line]) -> list[dict[str, object]]:
    """The builder's events (not incidents) as the columns give them: every field, the lines' keys, and the flags
    but `after_failures` (another stage's)."""
    builder = EventBuilder()
    events = [event for line in lines for event in builder.feed(line)] + builder.finish()
    return [
        {
            **{name: getattr(event, name) for name in _FIELDS},
            "flags": [flag for flag in event.flags if flag != "after_failures"],
            "lines": [line.key for line in event.lines],
        }
        for event in events
        if event.type != "brute_force"
    ]


def _same(rows: list[dict[str, object]], want: list[dict[str, object]]) -> None:
    got = [{name: row[name] for name in want[0]} for row in rows] if want else rows
    # `after_failures` is compared on neither side: a success after failures in its own connection is flagged by
    # both (`build_event`, `event_columns`), one after other connections' tries only by the builder (another stage)
    for row in got:
        row["flags"] = [flag for flag in row["flags"] if flag != "after_failures"]  # type: ignore[attr-defined]
    assert [row["id"] for row in got] == [row["id"] for row in want]  # released in the builder's order
    assert got == want


def _delayed(lines: list[Line], rng: random.Random, late: int) -> list[Line]:
    """Rows as the store gives them: delayed, some delivered late."""
    return delivered_late(delayed(lines, rng, 30), rng, late)


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(**BATCHES)
def test_connections_are_joined_and_released_as_the_builder_does(seed, count, late, cuts):
    lines = _delayed(generated_lines(seed, count, count // 3), random.Random(seed), late)
    rows = _columns(lines, cuts)
    if late == 0:  # rows only delayed: nothing goes back within a key, so the columns always answer
        assert rows is not None
    hypothesis.assume(rows is not None)
    assert rows is not None
    _same(rows, _builders(lines))


def _line(ts: int, arrival: int, pid: int, message: str) -> Line:
    line = from_journal(entry(T0 + ts * SECOND, "sshd-session", pid, message))
    assert line is not None
    line.arrival = T0 + arrival * SECOND
    return line


def _joined(lines: list[Line]) -> list[list[str]]:
    """The PIDs of each event the builder releases (and the columns, checked equal to it)."""
    want = _builders(lines)
    for cuts in ([], list(range(len(lines)))):  # one batch, and a line a batch
        rows = _columns(lines, cuts)
        assert rows is not None
        _same(rows, want)
    return [row["pids"] for row in want]  # type: ignore[misc]


def test_a_client_reusing_its_source_port_is_a_new_connection():
    """A third PID at the same address and port within the gap: not the monitor's and child's connection."""
    ip = "203.0.113.9"
    lines = [
        _line(0, 0, 100, f"Accepted password for alice from {ip} port 5000 ssh2"),
        _line(5, 5, 101, f"Received disconnect from {ip} port 5000:11: disconnected by user"),
        _line(20, 20, 300, f"Connection closed by {ip} port 5000 [preauth]"),
    ]
    assert _joined(lines) == [["100", "101"], ["300"]]


def test_a_child_closing_after_its_monitors_event_was_released_stays_apart():
    """The child's group closes after the sweep released the monitor's event (its last line arrived more than
    a gap after the monitor's): nothing is left to join, though it began within the gap of the monitor's end."""
    ip = "203.0.113.9"
    lines = [
        _line(0, 0, 100, f"Accepted password for alice from {ip} port 5000 ssh2"),
        _line(100, 100, 100, "pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)"),
        _line(250, 250, 101, f"Received disconnect from {ip} port 5000:11: disconnected by user"),
        _line(300, 300, 101, "pam_unix(sshd:session): session closed for user alice"),
        _line(470, 470, 900, "Connection closed by 198.51.100.1 port 1 [preauth]"),  # releases the login
        _line(700, 700, 901, "Connection closed by 198.51.100.1 port 2 [preauth]"),  # closes the child
    ]
    assert _joined(lines) == [["100"], ["101"], ["900"], ["901"]]
    lines[4].arrival -= 20 * SECOND  # the login still waits when the child closes: one connection
    assert ["100", "101"] in _joined(lines)


def test_groups_closing_at_one_line_join_in_the_order_the_builder_closes_them():
    """At one line a group closes as the next line of its key is fed (another peer), and another by the sweep
    after it (older last arrival): the one closed last is what its connection key names, so a later child joins
    that one, not the group that arrived last."""
    ip = "203.0.113.9"
    lines = [
        _line(1000, 0, 200, f"Accepted password for alice from {ip} port 5000 ssh2"),
        _line(0, 100, 100, f"Connection closed by {ip} port 5000 [preauth]"),
        _line(1, 190, 100, "Connection closed by 198.51.100.7 port 1 [preauth]"),
        _line(1010, 200, 300, f"Received disconnect from {ip} port 5000:11: disconnected by user"),
    ]
    assert ["200", "300"] in _joined(lines)


def test_a_session_child_naming_no_port_is_refused():
    """sshd before 7.4p1: the child names no port and joins by address alone, which only the builder does."""
    ip = "203.0.113.9"
    lines = [
        _line(0, 0, 100, f"Accepted password for alice from {ip} port 5000 ssh2"),
        _line(5, 5, 101, f"Received disconnect from {ip}: 11: disconnected by user"),
    ]
    assert _columns(lines, []) is None
    assert _builders(lines)[0]["pids"] == ["100", "101"]  # the builder joins them


def test_a_merged_event_lacking_a_field_the_waiting_one_had_lacks_it():
    """The child's `Connection closed` (an event with a reason) closes first and the monitor's login joins it: the
    merged login has no reason and, its first line naming no machine, no machine id, as the builder reads it."""
    ip = "203.0.113.9"
    lines = [
        _line(0, 0, 100, f"Accepted publickey for alice from {ip} port 5000 ssh2: ED25519 SHA256:k"),
        _line(0, 0, 100, "pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)"),
        _line(5, 5, 101, f"Connection closed by {ip} port 5000"),
        _line(6, 6, 100, "pam_unix(sshd:session): session closed for user alice"),
        _line(400, 400, 900, "Connection closed by 198.51.100.1 port 1 [preauth]"),
    ]
    assert ["100", "101"] in _joined(lines)
    assert _builders(lines)[0]["reason"] is None
    first, second = (
        _line(10, 10, 100, f"Accepted password for alice from {ip} port 5000 ssh2"),
        _line(5, 20, 101, f"Received disconnect from {ip} port 5000:11: disconnected by user"),
    )
    second.machine, second.host = "", first.machine  # its host names the other's machine: one connection key
    assert _joined([first, second]) == [["100", "101"]]
    assert _builders([first, second])[0]["machine_id"] is None


def test_port_0_joins_nothing():
    """The builder joins only an address and port that are there: port 0 is not."""
    ip = "203.0.113.9"
    lines = [
        _line(0, 0, 100, f"Accepted password for alice from {ip} port 0 ssh2"),
        _line(5, 5, 101, f"Received disconnect from {ip} port 0:11: disconnected by user"),
    ]
    assert _joined(lines) == [["100"], ["101"]]


def test_a_success_after_failures_in_its_own_connection():
    """Flagged in the columns as by the builder (which `_same` does not compare)."""
    ip = "203.0.113.9"
    lines = [
        _line(0, 0, 100, f"Failed password for alice from {ip} port 5000 ssh2"),
        _line(1, 1, 100, f"Accepted password for alice from {ip} port 5000 ssh2"),
    ]
    assert _joined(lines) == [["100"]]
    rows = _columns(lines, [])
    assert rows is not None and rows[0]["flags"] == ["after_failures"]
    builder = EventBuilder()
    assert [event.flags for line in lines for event in builder.feed(line)] + [e.flags for e in builder.finish()] == [
        ["after_failures"]
    ]


def test_one_process_logging_for_ever_keeps_no_clock_per_line():
    """Nothing closes while one process logs a line a second: the clocks of its lines are not kept (memory holds
    what waits, not the input)."""
    lines = [_line(n, n, 42, f"debug1: tick {n}") for n in range(3000)]
    frame = line_frame(lines)
    groups, connections = BatchGroups(GAP), BatchConnections(GAP)
    for start in range(0, len(lines), 100):
        batch = frame.slice(start, 100)
        split = groups.to_feed(batch, connections.held_keys())
        assert split is not None and split[1] is None
        fed = split[0]
        closed = groups.feed(fed)
        assert closed is not None
        assert connections.feed(*closed, fed["arrival"]) is not None
        assert len(connections._clocks) <= 100  # what it keeps per line fed: no public measure of it
    last = connections.finish(groups.finish())
    assert last is not None and len(last[1]) == 3000
