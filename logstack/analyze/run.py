"""One analysis run: read lines, build events, report each event exactly once."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from logstack.analyze.grouping import SEVERITY, Event, EventBuilder, Settings
from logstack.analyze.state import StateStore, event_groups
from logstack.base.clock import DAY, HOUR, SECOND, iso
from logstack.base.errors import RuntimeFailure
from logstack.journal.line import Line

LineSource = Callable[[int | None, int | None], Iterable[Line]]


@dataclass(frozen=True)
class RunOptions:
    """How a run selects and releases events."""

    since: int | None = None
    until: int | None = None  # lines up to this time only (not with a state: its resume point would skip ahead)
    state_path: Path | None = None  # set: --since-last-run
    settle: int = 120 * SECOND  # an event is reported once no line arrived for this long
    safety_lag: int = 10 * SECOND  # rows newer than now - lag may not be visible yet
    overlap: int = 600 * SECOND  # re-read this much before the resume point (late, out-of-order rows)
    horizon: int = 14 * DAY  # journal time up to which a copy of a reported line is recognised
    max_pending: int = HOUR  # an event still growing after this long is reported (and then continued)
    settings: Settings = field(default_factory=Settings)
    # a source whose lines may come in any order of time (an export, merged or late): every line the horizon
    # covers is read again, and the lines earlier runs reported are recognised, not skipped by time
    reread: bool = False


@dataclass
class RunResult:
    """What a run reported."""

    reported: int = 0
    pending: int = 0
    worst: int = -1
    duplicates: int = 0
    lines: int = 0
    resume_from: int | None = None  # arrival of the oldest event still settling: the next run starts there

    def fails(self, level: str) -> bool:
        return self.worst >= SEVERITY[level]


class _Reported:
    """Membership in the lines reported already (by earlier runs, or by this one), for the event builder."""

    def __init__(self, state: StateStore, size: int = 65536) -> None:
        self.state, self.size = state, size
        # a line is asked about when it arrives and again when its group closes: recent answers are kept
        self.answers: dict[str, bool] = {}

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        answer = self.answers.get(key)
        if answer is None:
            answer = self.answers[key] = self.state.seen(key)
            if len(self.answers) > self.size:
                del self.answers[next(iter(self.answers))]  # the oldest answer
        return answer

    def reported(self, keys: Iterable[str]) -> None:
        """These lines were reported now: a copy of one arriving later in the run is known (not a new line)."""
        for key in keys:
            if key in self.answers:
                self.answers[key] = True

    def __bool__(self) -> bool:
        return True


def _groups(event: Event) -> list[bytes]:
    first = event.lines[0]
    where = (first.machine or first.host, first.boot, first.pid, first.ident, first.auth)
    return event_groups(event.type, event.source_ip, event.pids, *where)


def resume_clock(store: int, window: int, local: int | None = None) -> int:
    """The time a resumable run over the store goes by: the store's own (`now` of the rows' timestamps), so the
    resume point and the rows are on one clock. Clocks apart by more than the re-read `window` are refused,
    the skew named: whichever is wrong, a run now could skip what arrives meanwhile. This machine's clock is
    read after the store's answer, so the time the query took does not count as skew."""
    if local is None:
        local = time.time_ns() // 1000
    skew = local - store
    if abs(skew) > window:
        side = "ahead of" if skew > 0 else "behind"
        raise RuntimeFailure(
            f"this machine's clock is {_seconds(abs(skew))} {side} the store's ({iso(store)}), more than the "
            f"{_seconds(window)} a run re-reads: fix the clock (NTP) on whichever is wrong"
        )
    return store


def _seconds(micros: int) -> str:
    return f"{micros // SECOND} s"


# a way to run the events of a source, given the state (None: no state) and the time of the run
Engine = Callable[[LineSource, RunOptions, Callable[[Event], None], int, StateStore | None], RunResult]


def run_analysis(
    source: LineSource,
    options: RunOptions,
    report: Callable[[Event], None],
    now: int,
    flush: Callable[[], None] = lambda: None,
    before_commit: Callable[[sqlite3.Connection], None] | None = None,
    engine: Engine | None = None,
) -> RunResult:
    """Stream `source` through the event builder and `report` new, settled events, each exactly once.

    With a state path the run resumes where the last one stopped, skips every line an earlier run reported
    (however late its copy arrives, within the horizon), reports a late line of a reported event as its
    continuation, and commits the state only after `flush` returned; an exception (a database error, a
    crash) leaves the state as it was. `before_commit` writes into the same transaction (alert queues).
    `engine`: what builds the events (`run_lines`, line by line, unless given).
    """
    engine = engine or run_lines
    if options.state_path is None:
        return engine(source, options, report, now, None)
    state = StateStore(options.state_path)
    try:
        state.migrate(options.state_path.with_suffix(".json"), now)
        resume = state.resume_from
        # a clock stepped back by more than a run re-reads would skip rows: refused (a smaller step is re-read)
        if resume is not None and now < resume - (options.overlap - options.safety_lag):
            raise RuntimeFailure(
                f"{options.state_path}: this machine's clock is behind the last run's ({iso(resume)}); "
                "fix the clock (a run now would read nothing and skip what arrived meanwhile)"
            )
        state.forget_before(now - options.horizon)
        result = engine(source, options, report, now, state)
        flush()
        if before_commit is not None:
            before_commit(state.db)
        upper = now - options.safety_lag
        state.commit(min(upper, result.resume_from or upper))
        return result
    except sqlite3.Error as exc:
        raise RuntimeFailure(f"{options.state_path}: analysis state: {exc}") from None
    finally:
        state.close()


def window(options: RunOptions, now: int, state: StateStore | None) -> tuple[int | None, int | None]:
    """The arrivals a run reads (from, up to; None: no bound), and up to which events may be reported: the
    state's resume point less the re-read overlap (every line the horizon covers, for a source read again), and
    now less the safety lag (a run with a state), or --until."""
    upper = now - options.safety_lag if state is not None else None
    if options.until is not None:
        upper = options.until if upper is None else min(upper, options.until)
    start = options.since
    resume = state.resume_from if state is not None else None
    if resume is not None:
        start = now - options.horizon if options.reread else resume - options.overlap
        if options.since is not None:
            start = max(start, options.since)
    return start, upper


def run_lines(
    source: LineSource, options: RunOptions, report: Callable[[Event], None], now: int, state: StateStore | None
) -> RunResult:
    """The line-by-line engine: every line through the event builder, each event to `report` once (given a
    state: once across runs)."""
    start, upper = window(options, now, state)
    # Lines an earlier run reported group apart from new ones (and are not reported again); they still
    # count in brute-force windows.
    known = _Reported(state) if state is not None else None
    builder = EventBuilder(options.settings, known=known if known is not None else frozenset())
    result = RunResult()
    horizon = now - options.horizon
    gap = options.settings.gap

    def handle(event: Event) -> None:
        # an event still growing waits, unless it began so long ago that waiting would pin the resume
        # point (a PID that logs for ever): then it is reported, and what follows continues it
        if (
            upper is not None
            and event.last_arrival > upper - options.settle
            and event.first_arrival > upper - options.max_pending
        ):
            result.pending += 1
            pending = result.resume_from
            result.resume_from = event.first_arrival if pending is None else min(pending, event.first_arrival)
            return
        if state is not None:
            if event.known or state.was_reported(event.id):
                return
            event.continues = state.continued(_groups(event), event.start, event.end, gap)
            if event.continues or any(line.ts < horizon for line in event.lines):
                event.flags = sorted({*event.flags, "late"})
        report(event)
        result.reported += 1
        result.worst = max(result.worst, SEVERITY[event.severity])
        if state is not None:
            own = event.type != "brute_force"  # an incident's lines are its failures', recorded with them
            lines = [(line.key, line.ts) for line in event.lines] if own else []
            state.record(event.id, _groups(event), event.start, event.end, lines, now)
            if known is not None:
                known.reported(key for key, _ in lines)

    for line in source(start, upper):
        result.lines += 1
        for event in builder.feed(line):
            handle(event)
    for event in builder.finish():
        handle(event)
    result.duplicates += builder.duplicates
    return result
