"""The periodic review from lines in columns (the store's rows, `DatabaseSource.frames`): the `ReportData`
`report.build_report` makes line by line, its events from the analysis in columns
(`column_run.analyze_in_columns`, which reads the lines one by one where it refuses) and its counts of lines
(coverage, heartbeats, rows that failed authentication) as aggregations of each batch.
tests/test_report_columns.py checks both on generated journals."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from logstack.analyze.column_run import Reread, analyze_in_columns, columns_serve
from logstack.analyze.event import Event, Settings
from logstack.analyze.event_columns import event_objects
from logstack.analyze.export import journal_lines
from logstack.analyze.export_source import ExportSource
from logstack.analyze.run import RunOptions
from logstack.evidence.line_counts import LineCounts
from logstack.evidence.report import (
    OBJECT_TYPES,
    Counted,
    ReportData,
    build_report,
    count_event,
    end_counts,
    new_report,
)
from logstack.journal.line import Line
from logstack.journal.record import HEARTBEAT_IDENTIFIER
from logstack.journal.selection import Selection

if TYPE_CHECKING:
    import polars as pl


def export_report(journal: str, selection: Selection | None, **period: Any) -> ReportData:
    """`build_report` of a journal export (`-`: standard input): in columns where they serve (a regular file, or a
    pipe kept as it is read: `column_run.columns_serve`), its second read, where they refuse, checked to read the
    same bytes; line by line otherwise."""
    if not columns_serve(journal):
        return build_report(journal_lines(journal, selection=selection), **period)
    export = ExportSource(journal, None, selection, pinned=True)
    try:
        return build_report_in_columns(
            lambda: export(None, None), lambda: export.frames(None, None), reread=export, **period
        )
    finally:
        export.close()


def build_report_in_columns(
    lines: Callable[[], Iterable[Line]],
    frames: Callable[[], Iterable[pl.DataFrame]],
    settings: Settings | None = None,
    reread: Reread | None = None,
    **period: Any,
) -> ReportData:
    """`build_report` of the lines `frames` gives in columns, or `lines` gives one by one (the same lines) where
    the analysis in columns refuses them (`reread`: checks the input still begins as the columns read it);
    `period`: `new_report`'s."""
    data = new_report(**period)
    counts = _BatchCounts(data.since, data.until)

    def in_columns(start: int | None, end: int | None) -> Iterator[pl.DataFrame]:
        import polars as pl

        counts.clear()
        for frame in frames():
            counts.frame(frame)
            # the builder is not fed heartbeats: they are coverage, counted above
            yield frame.filter(pl.col("ident") != HEARTBEAT_IDENTIFIER)

    def one_by_one(start: int | None, end: int | None) -> Iterator[Line]:
        counts.clear()  # the whole input again: counted again from its start
        for line in lines():
            counts.line(line)
            if line.ident != HEARTBEAT_IDENTIFIER:
                yield line

    options = RunOptions(settings=settings or Settings())
    report = lambda event: count_event(data, event)  # noqa: E731 (the line-by-line engine's, where the columns refuse)
    counted = lambda events, lines: count_events(data, events, lines)  # noqa: E731
    analyze_in_columns(one_by_one, options, 0, report, counted, reread=reread, frames=in_columns)
    end_counts(data, counts)
    return data


def count_events(data: ReportData, events: pl.DataFrame, lines: pl.DataFrame) -> None:
    """`count_event` of each event of a batch in columns, in order: those the report lists (or reads the lines
    of) made `Event`s, the rest counted from their columns (making every event an object cost 1.9 s of a
    300k-row report)."""
    if events.is_empty():
        return
    rows = [Counted(*row) for row in _rows(events.select(Counted._fields))]
    listed = [n for n, row in enumerate(rows) if row.type in OBJECT_TYPES or "forged" in row.flags]
    made: dict[int, Event] = {}
    if listed:
        made = dict(zip(listed, event_objects(events[listed], lines), strict=True))
    for n, row in enumerate(rows):
        count_event(data, made.get(n, row))


class _BatchCounts(LineCounts):
    """`LineCounts`, also of a batch of lines in columns."""

    def frame(self, frame: pl.DataFrame) -> None:
        import polars as pl

        if frame.is_empty():
            return
        ts, inside = pl.col("ts"), pl.col("ts").is_between(self.since, self.until, closed="left")
        first, last, count = frame.select(ts.min().alias("a"), ts.max().alias("b"), inside.sum().alias("c")).row(0)
        self.first = first if self.first is None else min(self.first, first)
        self.last = last if self.last is None else max(self.last, last)
        self.inside += count
        self.outside += len(frame) - count
        period = pl.col("arrival").is_between(self.since, self.until, closed="left")
        failed = frame.filter(pl.col("auth").is_not_null() & period)
        for host, auth, n in _rows(failed.group_by("host", "auth", maintain_order=True).len()):
            self.unauthenticated[(host, auth)] = self.unauthenticated.get((host, auth), 0) + n
        beat = pl.col("ident") == HEARTBEAT_IDENTIFIER
        for host, at in _rows(frame.filter(beat & inside & pl.col("auth").is_null()).select("host", "ts")):
            self.heartbeats[host].append(at)
        spans = frame.filter(~beat & inside).group_by("host", maintain_order=True).agg(ts.min().alias("a"), ts.max())
        for host, low, high in _rows(spans):
            self.span(host, low, high)


def _rows(frame: pl.DataFrame) -> Iterator[tuple[Any, ...]]:
    return zip(*(column.to_list() for column in frame.get_columns()), strict=True)
