"""Which lines the event builder has fed already: a copy (the same journal entry delivered again) is dropped.

A copy is dropped while its line was fed within four gaps of the clock, or while the builder still holds the group
or event its line is in. After that a copy is a new line: a run with a state recognises it as reported (by an
earlier run, or by this one when it released the event), a run without one reports it again. Sweeps release
events two gaps after their last line at the soonest: how much later depends on how often they run, so whether a
copy later than four gaps meets its line still held does too (it is then dropped either way with a state)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from logstack.analyze.event import Event, Group


class Copies:
    """The keys of the lines fed lately, each with the clock once it was fed and the group that took it."""

    def __init__(self, gap: int, held: Callable[[Group], bool]) -> None:
        self.gap = gap
        self._held = held  # whether the builder still holds the group, or the event its lines are in
        # two maps, not one of pairs: a pair a line is one more object for the garbage collector to pass over
        self._fed: dict[str, int] = {}
        self._group: dict[str, Group] = {}
        self._order: deque[tuple[int, str]] = deque()  # (clock when fed, key): the clock only grows
        # groups still held whose lines were fed more than four gaps ago: their keys stay until they are released
        self._pinned: dict[int, Group] = {}

    def is_copy(self, key: str, clock: int) -> bool:
        """Whether a line with this key, arriving now (`clock`: the latest arrival before it), is a copy."""
        fed = self._fed.get(key)
        return fed is not None and (fed >= clock - 4 * self.gap or self._held(self._group[key]))

    def fed(self, key: str, clock: int, group: Group) -> None:
        """A line was fed (`clock`: the clock once it was) into `group`."""
        self._fed[key] = clock
        self._group[key] = group
        self._order.append((clock, key))

    def moved(self, event: Event, into: Event) -> None:
        """An event closed earlier was merged into another: its lines are held as long as that one is."""
        for line in event.lines:
            group = self._group.get(line.key)
            if group is not None and group.event is event:
                group.event = into

    def forget(self, clock: int) -> None:
        """Forget the keys no copy can meet any more: fed four gaps ago, and their group released."""
        keep_after = clock - 4 * self.gap
        order, fed, groups = self._order, self._fed, self._group
        while order and order[0][0] < keep_after:
            at, key = order.popleft()
            if fed.get(key) != at:
                continue  # fed again since (a copy later than this is a line of its own)
            group = groups[key]
            if self._held(group):
                self._pinned[id(group)] = group  # looked at again as one group, not key by key
            else:
                del fed[key], groups[key]
        for ident, group in list(self._pinned.items()):
            if not self._held(group):
                del self._pinned[ident]
                for line in group.lines:
                    key = line.key
                    if groups.get(key) is group and fed[key] < keep_after:
                        del fed[key], groups[key]
