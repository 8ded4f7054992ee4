"""What the failure windows are told is still open, as the columns can read it: at a sweep, the builder's
earliest journal time of an SSH group open or event not released (`_oldest_unreleased`) is the least journal time
of the SSH daemon's lines fed up to that line whose event is released at that line or later (before that
sweep's releases; after them, later), the clock when there is none. Brute-force incidents in columns rest on it
(docs/analysis.md, "The columnar engine")."""

from __future__ import annotations

import random

import hypothesis
from hypothesis import strategies as st

from logstack.analyze.event import Event
from logstack.analyze.grouping import EventBuilder
from logstack.classify.programs import SSH_IDENTIFIERS
from logstack.journal.line import Line
from logstack.journal.record import HEARTBEAT_IDENTIFIER
from tests.test_line_groups import delayed, delivered_late, generated_lines


class _Told(EventBuilder):  # by its internals: what it tells the failure windows is nothing it reports
    """The builder, noting at each sweep the line, what `finalise` is told before the releases and `end` after
    them, and the line at which each event is released (None: at the end of input)."""

    def __init__(self) -> None:
        super().__init__()
        self.before: list[tuple[int | None, int, int]] = []
        self.after: list[tuple[int | None, int, int]] = []
        self.released: dict[int, int | None] = {}
        self._final = False

    def _at(self) -> int | None:
        return None if self._final else self._lines - 1

    def _finalise(self, event: Event, out: list[Event], oldest_unreleased: int) -> None:
        self.before.append((self._at(), oldest_unreleased, self.clock))
        self.released[id(event)] = self._at()
        super()._finalise(event, out, oldest_unreleased)

    def _sweep(self, final: bool) -> list[Event]:
        self._final = final
        end = self.failures.end

        def told(clock: int, final: bool, out: list[Event], oldest_unreleased: int) -> None:
            self.after.append((self._at(), oldest_unreleased, self.clock))
            end(clock, final, out, oldest_unreleased)

        self.failures.end = told  # type: ignore[method-assign]
        try:
            return super()._sweep(final)
        finally:
            self.failures.end = end  # type: ignore[method-assign]


def _alive(at: int | None, lines: list[tuple[int, int | None, int]], clock: int, released_too: bool) -> int:
    """The least journal time of the lines fed by line `at` whose event is released at `at` or later (`released_too`)
    or after it; at the end of input (None), of those released only then."""
    if at is None:
        times = [ts for _, released, ts in lines if released is None]
    else:
        times = [
            ts
            for fed, released, ts in lines
            if fed <= at and (released is None or released > at or (released_too and released == at))
        ]
    return min(times, default=clock)


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(seed=st.integers(0, 2**32 - 1), count=st.integers(5, 120), late=st.integers(0, 6))
def test_what_is_still_open_is_the_ssh_lines_not_yet_released(seed, count, late):
    rng = random.Random(seed)
    lines: list[Line] = generated_lines(seed, count, count // 3)
    delivered_late(delayed(lines, rng, 20), rng, late)
    builder = _Told()
    events = [event for line in lines for event in builder.feed(line)] + builder.finish()
    position = {line.key: n for n, line in enumerate(line for line in lines if line.ident != HEARTBEAT_IDENTIFIER)}
    ssh = [
        (position[line.key], builder.released[id(event)], line.ts)
        for event in events
        if event.type != "brute_force"
        for line in event.lines
        if line.ident in SSH_IDENTIFIERS
    ]
    assert builder.before  # something was released: the property was looked at
    for at, told, clock in builder.before:
        assert told == _alive(at, ssh, clock, released_too=True)
    for at, told, clock in builder.after:
        if at is not None:  # at the end of input every event is released
            assert told == _alive(at, ssh, clock, released_too=False)
