"""An analysis run over batches of columns: the line layer (`line_groups`, copies dropped by `copy_columns`),
connections and releases (`connection_columns`), incidents (`incident_columns`) and JSON lines (`event_json`)
driven over a stream of lines, with the run's state (`column_state`) where it has one. It writes what the
line-by-line engine (`run.run_lines`) reports, byte for byte and in its order, and leaves the same state; where a
stage cannot answer in columns (a session child naming no port that may join a login, a copy read as a line of
its own going back in journal time within its process), the line-by-line engine runs the input again from its
start and only its events after those already written are reported."""

from __future__ import annotations

import dataclasses
import io
import os
import sqlite3
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import orjson

from logstack.analyze.column_batches import BATCH, BATCH_TEXT, at_most, line_batches, read_ahead
from logstack.analyze.column_state import ColumnLedger
from logstack.analyze.connection_columns import BatchConnections
from logstack.analyze.event import SEVERITY, Event
from logstack.analyze.event_columns import event_objects, lines_of
from logstack.analyze.event_json import event_json, severity_column
from logstack.analyze.export import CHANGED, Read
from logstack.analyze.export_source import ExportSource
from logstack.analyze.incident_columns import BatchIncidents
from logstack.analyze.line_groups import BatchGroups
from logstack.analyze.output import EventWriter
from logstack.analyze.run import LineSource, RunOptions, RunResult, run_analysis, run_lines, window
from logstack.analyze.state import StateStore
from logstack.analyze.text_columns import text_blocks
from logstack.base.errors import BadInputError, RuntimeFailure
from logstack.columnar.facts import MIN_BATCH, fact_columns
from logstack.journal.line import Line
from logstack.journal.selection import Selection

if TYPE_CHECKING:
    import polars as pl

# Pieces a batch is fed in at most: it ends early where a copy's answer depends on what is held when it comes, and
# each piece costs a pass of the stages (rows a hostile sender delivers again and again, four gaps apart, would
# make one a row); past this the line-by-line engine answers, at its bounded cost.
PIECES = 8


def with_facts(lines: pl.DataFrame, min_batch: int = MIN_BATCH) -> pl.DataFrame:
    """Lines in columns (`journal.columns.LINE_FIELDS`) with their facts' columns."""
    import polars as pl

    facts = fact_columns(lines["ident"], lines["message"], min_batch=min_batch)
    return pl.concat([lines, facts.drop(name for name in facts.columns if name in lines.columns)], how="horizontal")


@dataclass
class ColumnRun:
    """What a run in columns gave: its events' ids in order (one a line, as a size and a digest: memory does not
    grow with the events), and whether it read the whole input (False: a stage refused a batch, or reading
    failed; the events after these are the line-by-line engine's to give)."""

    result: RunResult = field(default_factory=RunResult)
    given: Read = field(default_factory=Read)
    whole: bool = True


class Reread(Protocol):
    """An input the line-by-line engine reads again where the columns refuse: checked to begin with what the
    columns read, before the second read and as it goes."""

    def same_start(self) -> bool:
        """Whether the input still begins with what the last read consumed (then the next read is checked)."""
        ...

    def checked(self) -> bool:
        """Whether the read going on has read past that beginning, the same."""
        ...


# the lines of a window of arrival times (`run.LineSource`'s), in columns (`journal.columns.LINE_FIELDS`)
FrameSource = Callable[[int | None, int | None], Iterable["pl.DataFrame"]]
# what a run gives its events to, batch by batch: the events (`event_columns`' rows) and the lines they name by `idx`
EventSink = Callable[["pl.DataFrame", "pl.DataFrame"], None]


def run_columns(
    batches: Iterable[pl.DataFrame],
    options: RunOptions,
    give: EventSink,
    upper: int | None = None,
    ledger: ColumnLedger | None = None,
    batch: int = BATCH,
    text: int = BATCH_TEXT,
) -> ColumnRun:
    """Events of the lines of `batches` (in columns, `line_batches`) to `give`, at most `batch` lines (or `text`
    characters of messages) at a time; stops at a batch a stage cannot answer. `upper`: events still growing by
    then are held back (`run.window`); `ledger`: the run's state (None: the builder's own, no state)."""
    settings = options.settings
    grouper, joiner, incidents = BatchGroups(settings.gap), BatchConnections(settings.gap), BatchIncidents(settings)
    run = ColumnRun()
    release = _Release(run, options, give, upper, ledger)
    try:
        for part in read_ahead(with_facts(part) for part in at_most(batches, batch, text)):
            run.result.lines += len(part)
            piece = part
            for _ in range(PIECES):  # a batch ends early where a copy's answer depends on what is held then
                if ledger is not None:  # asked now: the batches before it are reported and recorded
                    piece = ledger.known(piece)
                split = grouper.to_feed(piece, joiner.held_keys())
                if split is None:
                    run.whole = False
                    return run
                fed, rest = split
                closed = grouper.feed(fed)
                released = None if closed is None else joiner.feed(*closed, fed["arrival"])
                if released is None:
                    run.whole = False
                    return run
                release(*incidents.feed(fed, *released))
                if rest is None:
                    break
                piece = rest
            else:
                run.whole = False
                return run
    except BadInputError:
        # a bad line of the input: the line-by-line engine, reading it again, writes what it releases before the
        # line (a batch's events come out only once the batch is read) and stops there with the same error
        run.whole = False
        return run
    run.result.duplicates = grouper.duplicates
    rest = joiner.finish(grouper.finish())
    if rest is None:
        run.whole = False
        return run
    release(*incidents.finish(*rest))
    return run


@dataclass
class _Release:
    """Released events as `run_lines` reports them: those still growing at `upper` held back (the resume point
    is the first arrival of the oldest), the rest through the state (`ledger`), then given."""

    run: ColumnRun
    options: RunOptions
    give: EventSink
    upper: int | None
    ledger: ColumnLedger | None

    def __call__(self, events: pl.DataFrame, lines: pl.DataFrame) -> None:
        import polars as pl

        result, options = self.run.result, self.options
        if self.upper is not None and not events.is_empty():
            growing = (pl.col("last_arrival") > self.upper - options.settle) & (
                pl.col("first_arrival") > self.upper - options.max_pending
            )
            held = events.filter(growing)
            if not held.is_empty():
                result.pending += len(held)
                oldest = held["first_arrival"].min()
                result.resume_from = oldest if result.resume_from is None else min(result.resume_from, oldest)
                events = events.filter(~growing)
        if self.ledger is not None:
            events = self.ledger.new(events, lines)
        if events.is_empty():
            return
        self.give(events, lines)
        given = self.run.given
        for event_id, keys in zip(events["id"].to_list(), _line_keys(events, lines), strict=True):
            given.add(_given(event_id, keys))
        result.reported += len(events)
        worst = events.select(severity_column().replace_strict(SEVERITY, return_dtype=pl.Int64).max()).item()
        result.worst = max(result.worst, worst)


def analyze_in_columns(
    source: LineSource,
    options: RunOptions,
    now: int,
    report: Callable[[Event], None],
    write: EventSink | None = None,
    batch: int = BATCH,
    reread: Reread | None = None,
    flush: Callable[[], None] = lambda: None,
    before_commit: Callable[[sqlite3.Connection], None] | None = None,
    frames: FrameSource | None = None,
) -> RunResult:
    """A run in columns (an export, or the store's rows), as `run.run_analysis` runs it (with a state: exactly once
    across runs): events given in columns to `write` (`columns_writer`), or made objects and given to `report`
    (None). Where the columns refuse, the line-by-line engine reads `source` again from its start (the state as it
    was before) and `report`s its events after those the columns gave (checked to be the same, in the same order);
    `reread` checks that the input still begins with what the columns read (it may have grown). `frames`: the same
    lines as `source`'s, already in columns (an export read by polars), for the columns to read."""
    give: EventSink
    if write is not None:
        give = write
    else:
        give = lambda events, lines: [report(event) for event in event_objects(events, lines)]  # noqa: E731

    def engine(
        source: LineSource, options: RunOptions, report: Callable[[Event], None], now: int, state: StateStore | None
    ) -> RunResult:
        start, upper = window(options, now, state)
        ledger = None
        if state is not None:
            state.mark()
            ledger = ColumnLedger(state, now, options.settings.gap, options.horizon)
        batches = frames(start, upper) if frames is not None else line_batches(source(start, upper), batch)
        run = run_columns(batches, options, give, upper, ledger, batch)
        if run.whole:
            return run.result
        if reread is not None and not reread.same_start():
            raise RuntimeFailure(CHANGED)
        if state is not None:
            state.back_to_mark()
        return _again(source, options, report, now, state, run, reread)

    return run_analysis(source, options, report, now, flush, before_commit, engine=engine)


def _again(
    source: LineSource,
    options: RunOptions,
    report: Callable[[Event], None],
    now: int,
    state: StateStore | None,
    run: ColumnRun,
    reread: Reread | None,
) -> RunResult:
    """The line-by-line engine over the whole input, its events after those `run` gave reported."""
    again = Read(run.given, _OTHER_EVENTS)  # the line-by-line engine's first events: checked to be those given
    held: list[Event] = []  # not yet known to come from the bytes first read: out once they are checked

    def release_held() -> None:
        for waiting in held:
            report(waiting)
        held.clear()

    def after_given(event: Event) -> None:
        if not again.past:
            again.add(_given(event.id, [line.key for line in event.lines]))
        elif reread is not None and not reread.checked():
            held.append(event)
        else:
            release_held()
            report(event)

    try:
        result = run_lines(source, options, after_given, now, state)
    except BadInputError:  # a bad line, past what was checked: what came before it is out, as line by line
        if reread is None or reread.checked():
            release_held()
        raise
    again.end()
    release_held()  # the read is over: what it read was checked
    return result


def _given(event_id: str, keys: list[str]) -> bytes:
    """What the second read's events are checked to be, one given event: its id and its lines (a row the store
    made visible between the reads, joining an event already given, must not pass as that event: the state would
    record it as reported, and it was never written)."""
    return orjson.dumps([event_id, keys]) + b"\n"


def _line_keys(events: pl.DataFrame, lines: pl.DataFrame) -> list[list[str]]:
    """Each event's lines' keys, in its order."""
    return lines_of(events, lines, ["key"]).group_by("event", maintain_order=True).agg("key")["key"].to_list()


_OTHER_EVENTS = "the input, read again, gives other events than the first reading: did it change while it was read?"


def analyze_journal(
    path: str,
    selection: Selection | None,
    options: RunOptions,
    now: int,
    output: tuple[Callable[[Event], None], EventSink | None],
    flush: Callable[[], None] = lambda: None,
    before_commit: Callable[[sqlite3.Connection], None] | None = None,
    progress: Callable[[int], None] = lambda count: None,
) -> tuple[RunResult, ExportSource]:
    """An export analysed, every line the horizon covers read again (it may be merged or late): in columns, pinned
    (a second read, where the columns refuse, reads the same file, checked to begin as the first did; a pipe's
    bytes are kept as they are read, `spool`); a terminal line by line. `output`: events as objects, and in columns
    where they may go so (`columns_writer`); `progress` is told how many lines a read has read so far, now and then. The
    export is returned for its counts of lines outside the run's window."""
    report, write = output
    columns = columns_serve(path)
    lines = ExportSource(path, options.since, selection, pinned=columns)
    source, frames = counted_lines(lines, progress), counted_frames(lines.frames, progress)
    options = dataclasses.replace(options, reread=True)
    try:
        if columns:
            result = analyze_in_columns(
                source,
                options,
                now,
                report,
                write,
                reread=lines,
                flush=flush,
                before_commit=before_commit,
                frames=frames,
            )
        else:
            result = run_analysis(source, options, report, now, flush, before_commit)
    finally:
        lines.close()
    return result, lines


_EVERY = 4096  # lines between progress counts


def counted_lines(source: LineSource, progress: Callable[[int], None]) -> LineSource:
    """`source`, `progress` told how many lines a read has given every few thousand."""

    def counted(start: int | None, end: int | None) -> Iterator[Line]:
        for count, line in enumerate(source(start, end), 1):
            if count % _EVERY == 0:
                progress(count)
            yield line

    return counted


def counted_frames(source: FrameSource, progress: Callable[[int], None]) -> FrameSource:
    """`source`, `progress` told how many lines a read has given after each frame."""

    def counted(start: int | None, end: int | None) -> Iterator[pl.DataFrame]:
        count = 0
        for frame in source(start, end):
            count += len(frame)
            progress(count)
            yield frame

    return counted


def columns_serve(journal: str) -> bool:
    """Whether a run is one the columns answer: an export in a regular file, or a pipe (standard input, a FIFO:
    kept as it is read, `spool`; the line-by-line engine may have to read it again). Anything else (a terminal,
    a path that cannot be read) is read line by line, which names what is wrong."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode if journal == "-" else os.stat(journal).st_mode
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        # standard input a stream without a descriptor (a test's): kept as any pipe (closed: the read names it)
        return journal == "-"
    return stat.S_ISREG(mode) or stat.S_ISFIFO(mode)


def columns_writer(writer: EventWriter) -> EventSink:
    """Where a run in columns gives its events for `writer`: as JSON lines (`event_json`) or text blocks
    (`text_columns`), made of the batch's columns, not of an object an event."""
    if writer.fmt == "text":
        return lambda events, lines: writer.write_blocks(text_blocks(events, lines))
    return lambda events, lines: writer.write_json_lines(event_json(events, lines, by="idx"))
