"""The differential check of the two analysis engines, on every journal the suite analyzes: each run the columns
answer (`analyze --journal FILE` or the store's rows, in any test) is run line by line as well, and the JSON
lines must be the same bytes in the same order; with --since-last-run, the line-by-line run starts from a copy of
the state as the columns found it, and must leave the same state (lines, events, ids reported, resume point)."""

from __future__ import annotations

import dataclasses
import io
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import polars as pl
import pytest

from logstack.analyze import column_batches, column_run
from logstack.analyze.event import Event
from logstack.analyze.output import EventWriter
from logstack.analyze.run import LineSource, RunOptions, RunResult, run_analysis


def _copy_state(path: Path | None) -> Path | None:
    """A copy of a run's state as it is now (SQLite's backup: the write-ahead log's pages too), beside it."""
    if path is None:
        return None
    copy = Path(tempfile.mkdtemp(prefix="logstack-state-")) / path.name
    if path.exists():
        with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(copy)) as target:
            source.backup(target)
    return copy


def state_tables(path: Path) -> tuple[list[tuple[object, ...]], ...]:
    """What a run leaves in a state, as rows."""
    with closing(sqlite3.connect(path)) as db:
        return tuple(
            db.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in ("meta", "lines", "events", "reported")
        )


def _json_lines() -> tuple[EventWriter, io.BytesIO]:
    raw = io.BytesIO()
    return EventWriter(io.TextIOWrapper(raw, encoding="utf-8", write_through=True), "jsonl"), raw


@pytest.fixture(autouse=True)
def columns_checked_against_the_line_by_line_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Wraps `analyze_in_columns` as the CLI calls it; a difference fails the test that ran it."""
    from logstack.commands import analyze as command

    differences: list[str] = []
    real = column_run.analyze_in_columns

    def checked(
        source: LineSource,
        options: RunOptions,
        now: int,
        report: Callable[[Event], None],
        write: column_run.EventSink | None = None,
        batch: int = column_batches.BATCH,
        reread: column_run.Reread | None = None,
        flush: Callable[[], None] = lambda: None,
        before_commit: Callable[[sqlite3.Connection], None] | None = None,
        frames: column_run.FrameSource | None = None,
    ) -> RunResult:
        seen, raw = _json_lines()
        copy = _copy_state(options.state_path)

        seen_in_columns = column_run.columns_writer(seen)

        def both_write(events: pl.DataFrame, lines: pl.DataFrame) -> None:
            seen_in_columns(events, lines)
            if write is not None:
                write(events, lines)

        def both_report(event: Event) -> None:
            seen.write(event)
            report(event)

        writes = both_write if write is not None else None
        result = real(source, options, now, both_report, writes, batch, reread, flush, before_commit, frames)
        reference, want = _json_lines()
        run_analysis(source, dataclasses.replace(options, state_path=copy), reference.write, now)
        if raw.getvalue() != want.getvalue():
            differences.append(f"columns wrote {raw.getvalue()[:2000]!r}, line by line {want.getvalue()[:2000]!r}")
        if (
            options.state_path is not None
            and copy is not None
            and state_tables(options.state_path) != state_tables(copy)
        ):
            differences.append("the columns left another state than the line-by-line engine")
        return result

    monkeypatch.setattr(command, "analyze_in_columns", checked)  # the store's rows
    monkeypatch.setattr(column_run, "analyze_in_columns", checked)  # an export (`analyze_journal`)
    yield differences
    assert not differences, differences[0]
