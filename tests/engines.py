"""The differential check of the two analysis engines, on every journal the suite analyzes: each run the columns
answer (`analyze --journal FILE` without a state, in any test) is run line by line as well, and the JSON lines
must be the same bytes in the same order."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import pytest

from logstack.analyze import column_run
from logstack.analyze.event import Event
from logstack.analyze.output import EventWriter
from logstack.analyze.run import LineSource, RunOptions, RunResult, run_analysis


def _json_lines() -> tuple[EventWriter, io.BytesIO]:
    raw = io.BytesIO()
    return EventWriter(io.TextIOWrapper(raw, encoding="utf-8", write_through=True), "jsonl"), raw


@pytest.fixture(autouse=True)
def columns_checked_against_the_line_by_line_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Wraps `analyze_export` as the CLI calls it; a difference fails the test that ran it."""
    from logstack.commands import analyze as command

    differences: list[str] = []
    real = column_run.analyze_export

    def checked(
        source: LineSource,
        options: RunOptions,
        now: int,
        report: Callable[[Event], None],
        write: Callable[[bytes], None] | None = None,
        batch: int = column_run.BATCH,
        reread: column_run.Reread | None = None,
    ) -> RunResult:
        seen, raw = _json_lines()

        def both_write(data: bytes) -> None:
            seen.write_json_lines(data)
            if write is not None:
                write(data)

        def both_report(event: Event) -> None:
            seen.write(event)
            report(event)

        result = real(source, options, now, both_report, both_write if write is not None else None, batch, reread)
        reference, want = _json_lines()
        run_analysis(source, options, reference.write, now)
        if raw.getvalue() != want.getvalue():
            differences.append(f"columns wrote {raw.getvalue()[:2000]!r}, line by line {want.getvalue()[:2000]!r}")
        return result

    monkeypatch.setattr(command, "analyze_export", checked)
    yield differences
    assert not differences, differences[0]
