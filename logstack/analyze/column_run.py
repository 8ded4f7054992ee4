"""An analysis run over batches of columns: the line layer (`line_groups`), connections and releases
(`connection_columns`), incidents (`incident_columns`) and JSON lines (`event_json`) driven over a stream of
lines. It writes what the line-by-line engine (`run.run_analysis`, without a state) reports, byte for byte and
in its order; where a stage cannot answer in columns (a copy of a line still held, a session child naming no
port), the line-by-line engine runs the input again from its start and only its events after those already
written are reported."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from logstack.analyze.connection_columns import BatchConnections
from logstack.analyze.event import SEVERITY, Event
from logstack.analyze.event_columns import LINE_COLUMNS
from logstack.analyze.event_json import event_json, severity_column
from logstack.analyze.incident_columns import BatchIncidents
from logstack.analyze.line_groups import COLUMNS, BatchGroups, fed_lines
from logstack.analyze.run import LineSource, RunOptions, RunResult, run_analysis
from logstack.base.errors import RuntimeFailure
from logstack.columnar.facts import MIN_BATCH, fact_columns
from logstack.journal.line import Line

if TYPE_CHECKING:
    import polars as pl

# Lines a batch: the working set of a batch (its frames, the events it closes) is most of a run's memory.
BATCH = 50_000
_TIMES = ("ts", "arrival")
T = TypeVar("T")


def line_frame(lines: Sequence[Line], min_batch: int = MIN_BATCH) -> pl.DataFrame:
    """Lines as the column stages read them: what the line layer and `event_columns` read, and the facts."""
    import polars as pl

    facts = fact_columns([line.ident for line in lines], [line.message for line in lines], min_batch=min_batch)
    names = [name for name in dict.fromkeys([*COLUMNS, *LINE_COLUMNS]) if name not in facts.columns]
    frame = pl.DataFrame(
        {name: [getattr(line, name) for line in lines] for name in names},
        schema={name: pl.Int64 if name in _TIMES else pl.String for name in names},
    )
    return pl.concat([frame, facts], how="horizontal")


@dataclass
class ColumnRun:
    """What a run in columns wrote: the events' ids in order, and whether it read the whole input (False: a
    stage refused a batch, the events after these are the line-by-line engine's to give)."""

    result: RunResult = field(default_factory=RunResult)
    ids: list[str] = field(default_factory=list)
    whole: bool = True


def run_columns(
    lines: Iterable[Line], options: RunOptions, write: Callable[[bytes], None], batch: int = BATCH
) -> ColumnRun:
    """Events of `lines` as JSON lines to `write`, batch by batch; stops at a batch a stage cannot answer.
    A run without a state only (`options.state_path` None): the exactly-once state is the builder's."""
    if options.state_path is not None:
        raise ValueError("a run in columns keeps no state")
    settings = options.settings
    grouper, joiner, incidents = BatchGroups(settings.gap), BatchConnections(settings.gap), BatchIncidents(settings)
    run = ColumnRun()
    for count, part in _read_ahead(_frames(lines, batch)):
        run.result.lines += count
        closed = grouper.feed(part, joiner.held_keys())
        fed = fed_lines(part)
        released = None if closed is None else joiner.feed(*closed, fed["arrival"])
        if released is None:
            run.whole = False
            return run
        _write(run, options, write, *incidents.feed(fed, *released))
    rest = joiner.finish(grouper.finish())
    if rest is None:
        run.whole = False
        return run
    _write(run, options, write, *incidents.finish(*rest))
    return run


def _frames(lines: Iterable[Line], batch: int) -> Iterator[tuple[int, pl.DataFrame]]:
    source = iter(lines)
    while chunk := list(itertools.islice(source, batch)):
        yield len(chunk), line_frame(chunk)


def _read_ahead(items: Iterator[T]) -> Iterator[T]:
    """`items`, the next one made in a thread while the caller works on this one: reading and parsing (Python)
    overlap the stages' column work (polars, which lets go of the interpreter while it runs)."""
    with ThreadPoolExecutor(1, thread_name_prefix="logstack-read") as pool:
        coming = pool.submit(next, items, None)
        while (item := coming.result()) is not None:
            coming = pool.submit(next, items, None)
            yield item


def _write(
    run: ColumnRun, options: RunOptions, write: Callable[[bytes], None], events: pl.DataFrame, lines: pl.DataFrame
) -> None:
    import polars as pl

    if options.until is not None and not events.is_empty():
        # as the line-by-line run holds back an event still growing at --until (it would be reported later)
        upper = options.until
        growing = (pl.col("last_arrival") > upper - options.settle) & (
            pl.col("first_arrival") > upper - options.max_pending
        )
        run.result.pending += events.select(growing.sum()).item()
        events = events.filter(~growing)
    if events.is_empty():
        return
    write(event_json(events, lines, by="idx"))
    run.ids += events["id"].to_list()
    run.result.reported += len(events)
    worst = events.select(severity_column().replace_strict(SEVERITY, return_dtype=pl.Int64).max()).item()
    run.result.worst = max(run.result.worst, worst)


def analyze_export(
    source: LineSource,
    options: RunOptions,
    now: int,
    write: Callable[[bytes], None],
    report: Callable[[Event], None],
    batch: int = BATCH,
) -> RunResult:
    """An export without a state: in columns (JSON lines to `write`); where they refuse, the line-by-line engine
    reads `source` again from its start and `report`s its events after those the columns wrote (checked to be
    the same events, in the same order)."""
    run = run_columns(source(options.since, options.until), options, write, batch)
    if run.whole:
        return run.result
    written = iter(run.ids)

    def after_written(event: Event) -> None:
        expected = next(written, None)
        if expected is None:
            report(event)
        elif event.id != expected:
            raise RuntimeFailure(
                f"analysis: the columnar engine wrote event {expected} where the line-by-line engine gives "
                f"{event.id} (a defect of logstack; --format text runs the line-by-line engine alone)"
            )

    result = run_analysis(source, options, after_written, now)
    if (expected := next(written, None)) is not None:
        raise RuntimeFailure(f"analysis: the columnar engine wrote event {expected}, the line-by-line engine none such")
    return result


def columns_serve(journal: str, options: RunOptions, output: str) -> bool:
    """Whether a run is one the columns answer: an export read from a file (the line-by-line engine may have to
    read it again), without a state, its events written as JSON."""
    return journal != "-" and options.state_path is None and output in ("json", "jsonl")
