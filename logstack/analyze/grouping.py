"""Group journal lines into security events, streaming, in bounded memory.

Lines group by (machine, boot, PID, program) while they stay within `gap` of each other: PIDs are
reused within a boot, and two hosts use the same PID at the same moment. An SSH connection's monitor
and user-child processes are joined by source address and port. Events are released once nothing can
join them any more; brute-force incidents and `after_failures` flags look back over a time window.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import fields

from logstack.analyze.connections import connection_key, peer_of_line, process_of
from logstack.analyze.copies import Copies
from logstack.analyze.event import (
    ADDRESS_KINDS,
    SEVERITY,
    Event,
    Group,
    Settings,
    build_event,
    is_key_probe,
)
from logstack.analyze.failures import TRIED_KINDS, FailureWindows
from logstack.analyze.portless import PortlessChildren
from logstack.classify.classifier import classify, is_forged
from logstack.classify.fact import Fact
from logstack.classify.programs import SSH_IDENTIFIERS
from logstack.journal.line import Line
from logstack.journal.record import HEARTBEAT_IDENTIFIER

__all__ = ["SEVERITY", "Event", "EventBuilder", "Settings", "build_events"]

_EVENT_FIELDS = tuple(f.name for f in fields(Event))


class EventBuilder:
    """Feed lines (in arrival order); take finished events as they are released."""

    def __init__(
        self, settings: Settings | None = None, known: Container[str] = frozenset(), forget_every: int = 2048
    ) -> None:
        self.settings = settings or Settings()
        # lines between forgets of what takes memory only (what is kept that no rule reads any more): what the
        # builder says does not depend on it
        self.forget_every = forget_every
        self.known = known
        self._open: dict[tuple[str, ...], Group] = {}
        # (arrival when queued, key), smallest first: a sweep looks only at the groups that may have gone quiet,
        # and closes each at the first sweep past its last line by the gap (a queue in order fed held a group
        # queued again behind newer ones for up to a gap longer: when it closed depended on the others)
        self._expiry: list[tuple[int, tuple[str, ...]]] = []
        # (last arrival when queued, n, event): built, waiting in case an SSH partner joins; smallest first, so
        # a sweep looks only at those due (an event that grew by a merge is queued again when it comes up)
        self._closed: list[tuple[int, int, Event]] = []
        self._waiting: set[int] = set()  # id() of the events in _closed (membership without a scan)
        self._merged_away: set[int] = set()  # id() of events in _closed merged into another: skipped
        self._conn_index: dict[tuple[str, str, str, int], Event] = {}
        self.portless = PortlessChildren(self.settings.gap, self._waits, self._merge_child, self._absorb_child)
        self.failures = FailureWindows(self.settings)
        # (start, n, key, group) of open SSH groups and (start, n, event) of waiting SSH events, smallest first;
        # entries of a group closed or an event released are dropped when they reach the top
        self._group_starts: list[tuple[int, int, tuple[str, ...], Group]] = []
        self._event_starts: list[tuple[int, int, Event]] = []
        self._pushed = 0
        self.copies = Copies(self.settings.gap, self._holds)
        self.clock = 0
        self._clock_before = 0  # the clock before the line being fed
        self._lines = 0
        self._since_forget = 0
        self.duplicates = 0

    # -- input ---------------------------------------------------------------------------------------
    def feed(self, line: Line) -> Sequence[Event]:
        """Add one line; returns the events that can no longer change (mostly none)."""
        if line.ident == HEARTBEAT_IDENTIFIER:
            return ()
        key = line.key
        if self.copies.is_copy(key, self.clock):
            self.duplicates += 1
            return ()
        self._lines += 1
        self._clock_before = self.clock
        arrival = line.arrival
        if arrival > self.clock:
            self.clock = arrival
        fact = classify(line.ident, line.message)
        if fact.source_ip is not None and fact.kind in TRIED_KINDS:
            tag = process_of(line) if is_key_probe(fact) else None
            self.failures.tried(fact.source_ip, arrival, line.ts, tag)
        if fact.kind == "ssh_accept" and fact.source_ip is not None and fact.source_port is not None:
            # every login as it arrives, open or not: a child naming no port joins one only if it is the one
            self.portless.at(self._lines, self._clock_before)
            self.portless.login_line(peer_of_line(line, fact.source_ip), line.ts, line.pid, self.clock)
        if fact.own_event:
            group_key: tuple[str, ...] = ("own", key)
        else:
            ident = line.ident
            family = "ssh" if ident in SSH_IDENTIFIERS else ident
            # Lines an earlier run reported never group with new ones: a new event stays new.
            marker = "known" if self.known and key in self.known else ""
            group_key = (line.machine or line.host, line.boot, line.pid, family, marker, line.auth or "")
        group = self._open.get(group_key)
        if (
            group is not None
            and not group.own
            and abs(line.ts - group.last_ts) <= self.settings.gap
            # nothing joins a group once the clock is more than the gap past its last line: a sweep closes it
            # then, and whether one ran in between is no property of the journal
            and self.clock - group.last_arrival <= self.settings.gap
            # a daemon's line naming another peer than the group's starts a new connection's event
            and (group.address is None or fact.source_ip in (None, group.address) or fact.kind not in ADDRESS_KINDS)
        ):
            earlier = line.ts < group.first_ts
            group.add(line, fact)
            if earlier and group.lines[0].ident in SSH_IDENTIFIERS:
                self._group_started(group_key, group)
        else:
            if group is not None:
                self._close(group)
            group = self._open_group(group_key, line, fact)
        self.copies.fed(key, self.clock, group)
        return self._after_line()

    def _after_line(self) -> Sequence[Event]:
        """A sweep after every line that makes something due (the answer is the journal's, not a batch size's);
        now and then a forget."""
        out = self._sweep(final=False) if self._due() else ()
        self._since_forget += 1
        if self._since_forget >= self.forget_every:
            self._since_forget = 0
            self._forget()
        return out

    def _due(self) -> bool:
        """Whether a sweep now would close a group, release an event or change what failures say (most lines
        make nothing due)."""
        horizon = self.clock - self.settings.gap
        return (
            self._expired(horizon) is not None
            or self._ready(horizon - self.settings.gap) is not None
            or self.failures.busy(self.clock, self._oldest_unreleased)
        )

    def _expired(self, horizon: int) -> Group | None:
        """The open group at the top of the expiry heap if nothing arrived for it since before `horizon`; entries
        of groups closed since (or of an older group of the key) are dropped and those of groups still growing
        queued again by their last arrival on the way."""
        expiry, open_ = self._expiry, self._open
        while expiry and expiry[0][0] < horizon:
            queued, key = expiry[0]
            group = open_.get(key)
            if group is None or group.first_arrival > queued:
                heapq.heappop(expiry)
            elif group.last_arrival < horizon:
                return group
            else:
                heapq.heapreplace(expiry, (group.last_arrival, key))
        return None

    def _ready(self, release: float) -> Event | None:
        """The waiting event at the top of its heap if its last line arrived before `release`; entries of events
        merged away are dropped and those of events grown by a merge queued again on the way."""
        closed = self._closed
        while closed and closed[0][0] < release:
            queued, n, event = closed[0]
            if id(event) in self._merged_away:
                heapq.heappop(closed)
                self._merged_away.discard(id(event))
            elif event.last_arrival > queued:
                heapq.heapreplace(closed, (event.last_arrival, n, event))
            else:
                return event
        return None

    def _open_group(self, key: tuple[str, ...], line: Line, fact: Fact) -> Group:
        group = self._open[key] = Group(line, fact)
        heapq.heappush(self._expiry, (line.arrival, key))
        if line.ident in SSH_IDENTIFIERS:
            self._group_started(key, group)
        # a process's first line always opens a group: recorded here, not per line
        if line.pid and line.ident in SSH_IDENTIFIERS and not is_forged(line.ident, line.comm, line.exe):
            self.portless.at(self._lines, self._clock_before)
            self.portless.process_line(process_of(line), line.ts, self.clock)
        return group

    def finish(self) -> list[Event]:
        """End of input: release everything."""
        return self._sweep(final=True)

    # -- internals -----------------------------------------------------------------------------------
    def _close(self, group: Group) -> None:
        event = group.event = build_event(group)
        known = self.known
        event.known = bool(known) and all(line.key in known for line in event.lines)
        if event.source_ip and event.source_port and event.ssh:
            conn = connection_key(event)
            partner = self._conn_index.get(conn)
            if (
                partner is not None
                and partner.known == event.known
                and abs(event.start - partner.end) <= self.settings.gap
                # one connection's lines come from its monitor and its user child: a third PID at the same
                # address and port is a new connection (a client reusing its source port), not this one
                and len({*partner.pids, *event.pids}) <= 2
            ):
                self._merge(partner, event)
                self._event_waits(partner)
                group.event = partner
                return
            self._conn_index[conn] = event
        if event.ssh and event.source_ip:
            self.portless.at(self._lines, self._clock_before)
            if (login := self.portless.joined(event, self.clock)) is not None:
                group.event = login
                return
        self._pushed += 1
        heapq.heappush(self._closed, (event.last_arrival, self._pushed, event))
        self._waiting.add(id(event))
        self._event_waits(event)

    def _waits(self, event: Event) -> bool:
        return id(event) in self._waiting

    def _merge_child(self, login: Event, child: Event) -> None:
        self._merge(login, child)
        self._event_waits(login)

    def _absorb_child(self, login: Event, child: Event) -> None:
        self._merged_away.add(id(child))
        self._waiting.discard(id(child))
        self._merge(login, child)
        self.copies.moved(child, login)

    def _holds(self, group: Group) -> bool:
        """Whether a group is open, or the event that took its lines waits to be released."""
        return group.event is None or id(group.event) in self._waiting

    def _merge(self, into: Event, other: Event) -> None:
        group = Group(into.lines[0], classify(into.lines[0].ident, into.lines[0].message))
        for line in into.lines[1:] + other.lines:
            group.add(line, classify(line.ident, line.message))
        group.first_arrival = min(into.first_arrival, other.first_arrival)
        group.last_arrival = max(into.last_arrival, other.last_arrival)
        merged = build_event(group)
        merged.known = into.known
        for name in _EVENT_FIELDS:  # in place: the connection index and the closed queue hold `into`
            setattr(into, name, getattr(merged, name))

    def _sweep(self, final: bool) -> list[Event]:
        """Close the groups nothing can join any more, and release the events nothing can join any more.

        Both in the order of their last arrival (then first line): what the events say must not depend on
        how often sweeps run, which only decides how many are done at once."""
        out: list[Event] = []
        horizon = self.clock - self.settings.gap
        expired: list[Group] = []
        if final:
            expired = list(self._open.values())
            self._open.clear()
            self._expiry.clear()
        while (group := self._expired(horizon)) is not None:
            del self._open[heapq.heappop(self._expiry)[1]]
            expired.append(group)
        if len(expired) > 1:
            expired.sort(key=_group_order)
        for group in expired:
            self._close(group)
        ready: list[Event] = []
        release = math.inf if final else self.clock - 2 * self.settings.gap
        while (event := self._ready(release)) is not None:
            heapq.heappop(self._closed)
            ready.append(event)
        # before any is released: those being released count as unreleased, so nothing they need goes first
        oldest = self._oldest_unreleased() if ready else self.clock
        if len(ready) > 1:
            ready.sort(key=_event_order)
        for event in ready:
            self._waiting.discard(id(event))
            if event.source_ip and event.source_port:
                conn = connection_key(event)
                if self._conn_index.get(conn) is event:
                    del self._conn_index[conn]
            self._finalise(event, out, oldest)
        if final or self.failures.busy(self.clock, self._oldest_unreleased):
            oldest = self._oldest_unreleased()
            self.failures.end(self.clock, final, out, oldest)
            if not final:
                # a login not yet released looks back a window from its start for failures, however long ago it
                # arrived: what it may still need is kept
                self.failures.forget(self.clock, oldest)
        return out

    def _forget(self) -> None:
        """Forget what takes memory only: keys no copy can meet, logins and processes no join reads any more."""
        self.copies.forget(self.clock)
        self.portless.forget(self._clock_before)  # what the join rules read until the next line, or at the end

    def _group_started(self, key: tuple[str, ...], group: Group) -> None:
        self._pushed += 1
        heapq.heappush(self._group_starts, (group.first_ts, self._pushed, key, group))

    def _event_waits(self, event: Event) -> None:
        if event.ssh and id(event) in self._waiting:
            self._pushed += 1
            heapq.heappush(self._event_starts, (event.start, self._pushed, event))

    def _oldest_unreleased(self) -> int:
        """The earliest journal time of an SSH connection's group or event still open or waiting to be released
        (the clock when none): only those can still look back on failures or extend an incident. Kept in heaps,
        not found by a scan at every sweep (thousands of open groups)."""
        groups, events, group_current, event_current = (
            self._group_starts,
            self._event_starts,
            self._group_current,
            self._event_current,
        )
        while groups and not group_current(groups[0]):
            heapq.heappop(groups)
        while events and not event_current(events[0]):
            heapq.heappop(events)
        # entries below a top that stays (one connection that never closes) are dropped now and then
        if len(groups) + len(events) > 4 * (len(self._open) + len(self._waiting)) + 4096:
            self._group_starts = [entry for entry in groups if group_current(entry)]
            self._event_starts = [entry for entry in events if event_current(entry)]
            heapq.heapify(self._group_starts)
            heapq.heapify(self._event_starts)
            groups, events = self._group_starts, self._event_starts
        if groups:
            return min(groups[0][0], events[0][0]) if events else groups[0][0]
        return events[0][0] if events else self.clock

    def _group_current(self, entry: tuple[int, int, tuple[str, ...], Group]) -> bool:
        return self._open.get(entry[2]) is entry[3] and entry[3].first_ts == entry[0]

    def _event_current(self, entry: tuple[int, int, Event]) -> bool:
        return id(entry[2]) in self._waiting and entry[2].start == entry[0]

    def _finalise(self, event: Event, out: list[Event], oldest_unreleased: int) -> None:
        self.failures.finalise(event, out, oldest_unreleased)
        out.append(event)


def _group_order(group: Group) -> tuple[int, str]:
    return group.last_arrival, group.lines[0].key


def _event_order(event: Event) -> tuple[int, str]:
    return event.last_arrival, event.first_key


def build_events(lines: Iterable[Line], settings: Settings | None = None) -> Iterator[Event]:
    """All events of `lines`, released in order of completion."""
    builder = EventBuilder(settings)
    for line in lines:
        yield from builder.feed(line)
    yield from builder.finish()
