"""One analysis run: read lines, build events, report each event exactly once."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from logstack.analyze.events import SEVERITY, Event, EventBuilder, Settings
from logstack.analyze.records import Line
from logstack.analyze.state import RunState, load_state, save_state
from logstack.clock import SECOND

LineSource = Callable[[int | None, int | None], Iterable[Line]]


@dataclass(frozen=True)
class RunOptions:
    """How a run selects and releases events."""

    since: int | None = None
    state_path: Path | None = None  # set: --since-last-run
    settle: int = 120 * SECOND  # an event is reported once no line arrived for this long
    safety_lag: int = 10 * SECOND  # rows newer than now - lag may not be visible yet
    overlap: int = 600 * SECOND  # re-read this much before the resume point (late, out-of-order rows)
    remember: int = 7 * 86400 * SECOND  # ids of reported events are kept this long: redelivered rows stay silent
    settings: Settings = field(default_factory=Settings)


@dataclass
class RunResult:
    """What a run reported."""

    reported: int = 0
    pending: int = 0
    worst: int = -1
    duplicates: int = 0
    lines: int = 0

    def fails(self, level: str) -> bool:
        return self.worst >= SEVERITY[level]


def run_analysis(source: LineSource, options: RunOptions, report: Callable[[Event], None], now: int) -> RunResult:
    """Stream `source` through the event builder and `report` new, settled events.

    With a state path the run resumes where the last one stopped and writes the new state only after
    every event was reported; an exception (a database error) leaves the state untouched.
    """
    incremental = options.state_path is not None
    state = load_state(options.state_path) if options.state_path else RunState()
    upper = now - options.safety_lag if incremental else None
    start = options.since
    if incremental and state.resume_from is not None:
        start = state.resume_from - options.overlap
    builder = EventBuilder(options.settings, known=state.reported_lines)
    result = RunResult()
    pending_from: int | None = None
    done_lines: dict[str, int] = {}
    ids = dict(state.reported_ids)
    # Only lines the next run can re-read need remembering; older ones would grow the state (and
    # memory) with the whole table on a first run.
    remember_from = upper - options.settle - options.overlap - 4 * options.settings.gap if upper is not None else None

    def handle(event: Event) -> None:
        nonlocal pending_from
        if upper is not None and event.last_arrival > upper - options.settle:
            result.pending += 1
            pending_from = event.first_arrival if pending_from is None else min(pending_from, event.first_arrival)
            return
        if remember_from is not None and event.last_arrival >= remember_from:
            for line in event.lines:
                done_lines[line.key] = line.arrival
        if event.known or event.id in ids:
            return
        report(event)
        ids[event.id] = now
        result.reported += 1
        result.worst = max(result.worst, SEVERITY[event.severity])

    for line in source(start, upper):
        result.lines += 1
        for event in builder.feed(line):
            handle(event)
    for event in builder.finish():
        handle(event)
    result.duplicates = builder.duplicates

    if incremental and options.state_path is not None and upper is not None:
        resume = upper if pending_from is None else min(upper, pending_from)
        keep_from = resume - options.overlap
        save_state(
            options.state_path,
            RunState(
                resume_from=resume,
                reported_lines={k for k, arrival in done_lines.items() if arrival >= keep_from},
                reported_ids={i: t for i, t in ids.items() if t >= now - options.remember},
            ),
        )
    return result
