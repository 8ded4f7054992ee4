"""Runs with a state (`--since-last-run`) in columns: each run writes what the line-by-line engine writes from
the same state, and leaves the same state, over runs that read more of a journal each time, lines delivered
again after they were reported, events still growing at a run's end, and batches of any size."""

from __future__ import annotations

import copy
import dataclasses
import io
import random
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

import hypothesis
from hypothesis import strategies as st

from logstack.analyze import column_state
from logstack.analyze.column_run import analyze_in_columns, columns_writer
from logstack.analyze.output import EventWriter
from logstack.analyze.run import RunOptions, run_analysis
from logstack.base.clock import DAY, SECOND
from logstack.journal.line import Line
from tests.engines import state_tables
from tests.test_column_run import _source
from tests.test_incident_columns import attacked_journal
from tests.test_line_groups import delayed, delivered_late

Source = Callable[[int | None, int | None], Iterator[Line]]


def _run(engine: str, source: Source, options: RunOptions, now: int, batch: int) -> bytes:
    raw = io.BytesIO()
    writer = EventWriter(io.TextIOWrapper(raw, encoding="utf-8", write_through=True), "jsonl")
    if engine == "columns":
        analyze_in_columns(source, options, now, writer.write, columns_writer(writer), batch)
    else:
        run_analysis(source, options, writer.write, now)
    writer.close()
    return raw.getvalue()


def _again(lines: list[Line], rng: random.Random, count: int, after: int) -> list[Line]:
    """`count` lines delivered again (the same key) after `after`, as a sender resending does."""
    out = []
    for _ in range(count if lines else 0):
        line = copy.copy(rng.choice(lines))
        line.arrival = after + rng.randint(1, 600) * SECOND
        out.append(line)
    return sorted(out, key=lambda line: line.arrival)


@hypothesis.settings(max_examples=50, deadline=None)
@hypothesis.given(
    seed=st.integers(0, 2**32 - 1),
    count=st.integers(5, 100),
    burst=st.integers(0, 30),
    late=st.integers(0, 4),
    cuts=st.lists(st.integers(1, 100), min_size=1, max_size=4),
    again=st.integers(0, 4),
    wait=st.integers(0, 400),
    batch=st.integers(1, 300),
    reread=st.booleans(),
    load_at=st.sampled_from([0, 3, 10**9]),  # the state's keys searched in columns, from a batch on, or asked
)
# a batch that released an incident alone: its lines (the failures' first lines) show no machine
@hypothesis.example(seed=30, count=32, burst=29, late=0, cuts=[49], again=1, wait=0, batch=1, reread=False, load_at=0)
def test_runs_with_a_state_are_the_line_by_line_engines(
    seed, count, burst, late, cuts, again, wait, batch, reread, load_at
):
    rng = random.Random(seed)
    lines = delivered_late(delayed(attacked_journal(seed, count, burst), rng, 30), rng, late)
    with tempfile.TemporaryDirectory() as tmp:
        states = {engine: Path(tmp) / f"{engine}.db" for engine in ("columns", "lines")}
        for cut in sorted(cuts):
            read = lines[: max(1, cut * len(lines) // 100)]
            latest = max(line.arrival for line in read)
            read = read + _again(read, rng, again, latest)
            now = max(line.arrival for line in read) + wait * SECOND
            options = RunOptions(reread=reread, horizon=30 * DAY)
            with mock.patch.object(column_state, "LOAD_AT", load_at):
                out = {
                    engine: _run(engine, _source(read), dataclasses.replace(options, state_path=path), now, batch)
                    for engine, path in states.items()
                }
            assert out["columns"] == out["lines"]
            assert state_tables(states["columns"]) == state_tables(states["lines"])


def test_reported_ids_answers_as_was_reported_does(tmp_path):
    """The batch's question (one query a few hundred ids) and the event's (one an id) give the same answers: for
    ids written to the database, ids recorded in this run only, ids that are not hex, and ids never seen."""
    from logstack.analyze.state import StateStore, reported_id

    state = StateStore(tmp_path / "state.db")
    written = [f"{n:020x}" for n in range(1200)]  # more than one query's worth
    for event_id in written:
        state.record(event_id, [], 0, 0, [], 0)
    state.commit(0)
    state.close()
    state = StateStore(tmp_path / "state.db")
    state.record("abc1", [], 0, 0, [], 0)
    state.record("not hex: digested", [], 0, 0, [], 0)
    asked = [*written[::7], "abc1", "not hex: digested", "ffff", "also not hex", written[5].upper()]
    found = state.reported_ids(asked)
    assert found == {reported_id(event_id) for event_id in asked if state.was_reported(event_id)}
    assert reported_id("ffff") not in found and reported_id("abc1") in found
    state.close()


def test_a_row_visible_only_to_the_second_read_is_an_error_not_a_lost_line(tmp_path):
    """The store's rows queried again where the columns refuse: a row visible only then that joins an event the
    columns already wrote must not pass as that event (its id is the same): the line-by-line engine would record
    the row as reported, and no output ever showed it. An error, and nothing recorded."""
    import pytest

    from logstack.base.errors import RuntimeFailure
    from logstack.journal.line import from_journal
    from tests.journal import entry
    from tests.test_sweep_cadence import T0

    def line(seconds: int, pid: int, message: str) -> Line:
        made = from_journal(entry(T0 + seconds * SECOND, "sshd", pid, message))
        assert made is not None
        return made

    lines = [line(0, 2101, "Accepted publickey for alice from 203.0.113.4 port 40000 ssh2: ED25519 SHA256:x")]
    lines += [
        line(1000 * n, 3000 + n, f"Failed password for root from 198.51.100.7 port {n} ssh2") for n in range(1, 9)
    ]
    # a session child naming no port, from the login's address: the columns refuse that batch
    lines.insert(6, line(5500, 2102, "Received disconnect from 203.0.113.4: 11: bye"))
    late = line(2, 2101, "pam_unix(sshd:session): session closed for user alice")
    reads: list[int] = []

    def store(start: int | None, end: int | None) -> Iterator[Line]:
        reads.append(1)
        rows = lines if len(reads) == 1 else [lines[0], late, *lines[1:]]
        return _source(rows)(start, end)

    path = tmp_path / "state.db"
    writer = EventWriter(io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True), "jsonl")
    now = T0 + 3 * DAY
    with pytest.raises(RuntimeFailure, match="gives other events than the first reading"):
        analyze_in_columns(store, RunOptions(state_path=path), now, writer.write, columns_writer(writer), 2)
    assert len(reads) == 2
    assert state_tables(path)[1] == []  # no line recorded as reported
