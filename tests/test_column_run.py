"""`analyze` in columns: the bytes the line-by-line engine writes, in its order, whether the columns answer the
whole input or refuse a batch and the line-by-line engine gives the rest."""

from __future__ import annotations

import copy
import io
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import hypothesis
import pytest
from hypothesis import strategies as st
from typer.testing import CliRunner

from logstack.analyze.column_run import analyze_export, run_columns
from logstack.analyze.event import Settings
from logstack.analyze.export import ExportSource
from logstack.analyze.output import EventWriter
from logstack.analyze.run import RunOptions, run_analysis
from logstack.base.clock import SECOND
from logstack.base.errors import BadInputError, RuntimeFailure
from logstack.cli import app
from logstack.journal.line import Line, from_journal
from logstack.journal.selection import Selection
from tests.journal import entry, write
from tests.test_incident_columns import attacked_journal
from tests.test_line_groups import delayed, delivered_late
from tests.test_sweep_cadence import T0

NOW = T0 + 30 * 86400 * SECOND


def _source(lines: list[Line]) -> Callable[[int | None, int | None], Iterator[Line]]:
    """The lines as a line source gives them, fresh objects each read (a run may read its source twice)."""

    def read(start: int | None, end: int | None) -> Iterator[Line]:
        for line in lines:
            if (start is None or line.arrival >= start) and (end is None or line.arrival <= end):
                yield copy.copy(line)

    return read


def _writer(fmt: str) -> tuple[EventWriter, io.BytesIO]:
    raw = io.BytesIO()
    return EventWriter(io.TextIOWrapper(raw, encoding="utf-8", write_through=True), fmt), raw


def reference(
    source: Callable[[int | None, int | None], Iterator[Line]], options: RunOptions, fmt: str = "jsonl"
) -> bytes:
    """What the line-by-line engine writes."""
    writer, raw = _writer(fmt)
    run_analysis(source, options, writer.write, NOW)
    writer.close()
    return raw.getvalue()


def in_columns(
    source: Callable[[int | None, int | None], Iterator[Line]], options: RunOptions, batch: int, fmt: str = "jsonl"
) -> bytes:
    """What `analyze_export` writes, batches of `batch` lines."""
    writer, raw = _writer(fmt)
    analyze_export(source, options, NOW, writer.write_json_lines, writer.write, batch)
    writer.close()
    return raw.getvalue()


def _copies(lines: list[Line], rng: random.Random, count: int) -> list[Line]:
    """`count` lines again (the same key), a few lines after their first copy: the builder drops them."""
    for _ in range(count if lines else 0):
        at = rng.randrange(len(lines))
        lines.insert(min(len(lines), at + rng.randint(1, 5)), copy.copy(lines[at]))
    return lines


def _portless(lines: list[Line], rng: random.Random, count: int) -> list[Line]:
    """Session children naming no port (sshd before 7.4p1), each after a login from its address."""
    for _ in range(count):
        logins = [n for n, line in enumerate(lines) if line.message.startswith("Accepted ")]
        if not logins:
            return lines
        at = rng.choice(logins)
        ip = lines[at].message.split(" from ")[1].split(" ")[0]
        made = from_journal(entry(lines[at].ts + SECOND, "sshd", 9_000 + at, f"Received disconnect from {ip}: 11: bye"))
        assert made is not None
        made.arrival = lines[at].arrival + SECOND
        lines.insert(at + 1, made)
    return lines


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
    seed=st.integers(0, 2**32 - 1),
    count=st.integers(1, 120),
    burst=st.integers(0, 40),
    late=st.integers(0, 4),
    copies=st.integers(0, 2),
    portless=st.integers(0, 1),
    batch=st.integers(1, 400),
    fmt=st.sampled_from(["jsonl", "json"]),
)
def test_a_run_writes_what_the_line_by_line_engine_writes(seed, count, burst, late, copies, portless, batch, fmt):
    rng = random.Random(seed)
    lines = delivered_late(delayed(attacked_journal(seed, count, burst), rng, 30), rng, late)
    lines = _portless(_copies(lines, rng, copies), rng, portless)
    options = RunOptions(settings=Settings())
    assert in_columns(_source(lines), options, batch, fmt) == reference(_source(lines), options, fmt)


@hypothesis.settings(max_examples=30, deadline=None)
@hypothesis.given(
    seed=st.integers(0, 2**32 - 1), count=st.integers(5, 80), until=st.integers(0, 100), batch=st.integers(1, 200)
)
def test_until_holds_back_what_the_line_by_line_engine_holds_back(seed, count, until, batch):
    """With --until an event still growing there is not reported (a later run would report it whole)."""
    lines = delayed(attacked_journal(seed, count, 20), random.Random(seed), 30)
    bounds = sorted(line.arrival for line in lines)
    options = RunOptions(until=bounds[min(len(bounds) - 1, until * len(bounds) // 100)])
    assert in_columns(_source(lines), options, batch) == reference(_source(lines), options)


def test_a_refused_batch_leaves_the_rest_to_the_line_by_line_engine():
    """A session child naming no port in a later batch: the events the columns wrote before it stay, the line-by-line
    engine gives the rest, none twice."""
    lines = delayed(attacked_journal(3, 120, 30), random.Random(3), 30)
    lines = lines[:-20] + _portless(lines[-20:], random.Random(1), 1)
    options = RunOptions()
    written: list[bytes] = []
    run = run_columns(_source(lines)(None, None), options, written.append, batch=50)
    assert not run.whole and run.ids  # refused, after events were written
    assert in_columns(_source(lines), options, 50) == reference(_source(lines), options)
    assert in_columns(_source(lines), options, 50).startswith(b"".join(written))


def test_a_copy_of_a_line_still_held_is_the_line_by_line_engines():
    lines = delayed(attacked_journal(5, 60, 0), random.Random(5), 30)
    lines.insert(len(lines) - 2, copy.copy(lines[len(lines) - 4]))
    options = RunOptions()
    assert not run_columns(_source(lines)(None, None), options, lambda _: None, batch=10).whole
    assert in_columns(_source(lines), options, 10) == reference(_source(lines), options)


def test_a_source_that_reads_otherwise_the_second_time_is_an_error():
    """The line-by-line engine gives the rest only if it reads what the columns read: an export rewritten while a
    run reads it is named, not reported from two different files."""
    lines = delayed(attacked_journal(3, 120, 30), random.Random(3), 30)
    lines = _portless(lines, random.Random(1), 1)
    reads = iter([lines, lines[40:]])

    def source(start: int | None, end: int | None) -> Iterator[Line]:
        return iter(next(reads))

    writer, _ = _writer("jsonl")
    with pytest.raises(RuntimeFailure, match="columnar engine wrote event"):
        analyze_export(source, RunOptions(), NOW, writer.write_json_lines, writer.write, 30)


def _export(tmp_path: Path) -> Path:
    rng = random.Random(11)
    lines = attacked_journal(11, 150, 40)
    entries = []
    for line in lines:
        record = entry(line.ts, line.ident, line.pid, line.message, host=line.host)
        entries.append(record)
        if rng.random() < 0.02:
            entries.append(dict(record))  # a copy: the columns refuse it, the line-by-line engine drops it
    return write(tmp_path / "export.json", entries)


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_analyze_journal_writes_what_the_line_by_line_engine_writes(tmp_path, fmt):
    path = _export(tmp_path)
    got = CliRunner().invoke(app, ["analyze", "--journal", str(path), "--format", fmt, "--fail-on", "failure"])
    want = reference(ExportSource(str(path), None, Selection.of(None)), RunOptions(), fmt)
    assert got.exit_code == 1, got.output  # failed logins are reported
    assert got.stdout_bytes == want
    assert len(json.loads(want) if fmt == "json" else want.splitlines()) > 20


def test_an_error_reading_a_later_batch_is_the_runs_error():
    """Batches are read ahead in a thread: what goes wrong there (a bad line of the export) stops the run with
    its own error, after the events of the batches before it."""
    lines = delayed(attacked_journal(4, 100, 20), random.Random(4), 30)

    def source(start: int | None, end: int | None) -> Iterator[Line]:
        yield from lines[:150]
        raise BadInputError("export.json:151: not a JSON object")

    writer, raw = _writer("jsonl")
    with pytest.raises(BadInputError, match=r"export\.json:151"):
        analyze_export(source, RunOptions(), NOW, writer.write_json_lines, writer.write, 50)
    assert raw.getvalue() and reference(_source(lines), RunOptions()).startswith(raw.getvalue())
