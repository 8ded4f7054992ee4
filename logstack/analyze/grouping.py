"""Group journal lines into security events, streaming, in bounded memory.

Lines group by (machine, boot, PID, program) while they stay within `gap` of each other: PIDs are
reused within a boot, and two hosts use the same PID at the same moment. An SSH connection's monitor
and user-child processes are joined by source address and port. Events are released once nothing can
join them any more; brute-force incidents and `after_failures` flags look back over a time window.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import fields

from logstack.analyze.connections import (
    child_of,
    connection_key,
    is_session_child,
    peer_key,
    peer_of_line,
    process_of,
    processes_of,
)
from logstack.analyze.copies import Copies
from logstack.analyze.event import (
    ADDRESS_KINDS,
    FAILED_TRY_KINDS,
    SEVERITY,
    Event,
    Group,
    Settings,
    build_event,
    is_key_probe,
)
from logstack.analyze.failures import FailureWindows
from logstack.classify.classifier import classify
from logstack.classify.fact import Fact
from logstack.classify.programs import SSH_IDENTIFIERS
from logstack.journal.line import Line
from logstack.journal.record import HEARTBEAT_IDENTIFIER

__all__ = ["SEVERITY", "Event", "EventBuilder", "Settings", "build_events"]

_EVENT_FIELDS = tuple(f.name for f in fields(Event))


class EventBuilder:
    """Feed lines (in arrival order); take finished events as they are released."""

    def __init__(
        self, settings: Settings | None = None, known: Container[str] = frozenset(), sweep_every: int = 2048
    ) -> None:
        self.settings = settings or Settings()
        self.sweep_every = sweep_every  # lines between sweeps: what they release must not depend on it
        self.known = known
        self._open: dict[tuple[str, ...], Group] = {}
        # (arrival when queued, key), smallest first: a sweep looks only at the groups that may have gone quiet,
        # and closes each at the first sweep past its last line by the gap (a queue in order fed held a group
        # queued again behind newer ones for up to a gap longer: when it closed depended on the others)
        self._expiry: list[tuple[int, tuple[str, ...]]] = []
        self._closed: deque[Event] = deque()  # built, waiting in case an SSH partner joins
        self._waiting: set[int] = set()  # id() of the events in _closed (membership without a scan)
        self._merged_away: set[int] = set()  # id() of events in _closed merged into another: skipped
        self._conn_index: dict[tuple[str, str, str, int], Event] = {}
        # by machine, boot, peer address: successful logins, and session children that named no port
        self._logins: dict[tuple[str, ...], list[Event]] = {}
        self._orphans: dict[tuple[str, ...], list[Event]] = {}
        # (journal time, PID, forgets done before it came) of each login
        self._accepts: dict[tuple[str, ...], deque[tuple[int, str, int]]] = {}
        # (arrival, peer), once per peer, as the three indexes above gained an entry: the peers a forget looks at
        self._peers_due: deque[tuple[int, tuple[str, ...]]] = deque()
        self._peers_scheduled: set[tuple[str, ...]] = set()
        self._forgets = 0
        self._keep_after = -1  # the last forget's: logins it saw that are older (by journal time) are gone
        self._pid_first: dict[tuple[str, str, str], int] = {}  # process → its first line's journal time
        self._pid_order: deque[tuple[int, tuple[str, str, str]]] = deque()  # (arrival, process), to forget them
        self.failures = FailureWindows(self.settings)
        # (start, n, key, group) of open SSH groups and (start, n, event) of waiting SSH events, smallest first;
        # entries of a group closed or an event released are dropped when they reach the top
        self._group_starts: list[tuple[int, int, tuple[str, ...], Group]] = []
        self._event_starts: list[tuple[int, int, Event]] = []
        self._pushed = 0
        self.copies = Copies(self.settings.gap, self._holds)
        self.clock = 0
        self._since_sweep = 0
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
        arrival = line.arrival
        if arrival > self.clock:
            self.clock = arrival
        fact = classify(line.ident, line.message)
        if fact.source_ip is not None and (fact.kind in FAILED_TRY_KINDS or fact.kind == "ssh_abandon"):
            tag = process_of(line) if is_key_probe(fact) else None
            self.failures.tried(fact.source_ip, arrival, line.ts, tag)
        if fact.kind == "ssh_accept" and fact.source_ip is not None and fact.source_port is not None:
            # every login as it arrives, open or not: a child naming no port joins one only if it is the one
            peer = peer_of_line(line, fact.source_ip)
            self._accepts.setdefault(peer, deque()).append((line.ts, line.pid, self._forgets))
            self._schedule(arrival, peer)
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
            # nothing joins a group more than the gap after its last line arrived: a sweep closes it then,
            # and whether one ran in between is no property of the journal
            and arrival - group.last_arrival <= self.settings.gap
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
        self._since_sweep += 1
        if self._since_sweep >= self.sweep_every:
            self._since_sweep = 0
            return self._sweep(final=False)
        return ()

    def _open_group(self, key: tuple[str, ...], line: Line, fact: Fact) -> Group:
        group = self._open[key] = Group(line, fact)
        heapq.heappush(self._expiry, (line.arrival, key))
        if line.ident in SSH_IDENTIFIERS:
            self._group_started(key, group)
        process = process_of(line)  # a process's first line always opens a group: recorded here, not per line
        if line.pid and process not in self._pid_first:
            self._pid_first[process] = line.ts
            self._pid_order.append((line.arrival, process))
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
        if event.ssh and event.source_ip and (login := self._joined_by_peer(event)) is not None:
            group.event = login
            return
        self._closed.append(event)
        self._waiting.add(id(event))
        self._event_waits(event)

    def _joined_by_peer(self, event: Event) -> Event | None:
        """sshd before 7.4p1 wrote no port on its session child's lines (`Received disconnect from ADDR: 11:
        …`, `subsystem request …`): such an event joins the one successful login from that address, on that
        machine and boot, whose connection it can be (another PID, within the gap); with two such logins it
        joins neither. Whether it closes before or after the login, the pair is found (the login it was merged
        into, or None)."""
        key = peer_key(event)
        gap = self.settings.gap
        if event.source_port is None and is_session_child(event):
            logins = [e for e in self._logins.get(key, ()) if child_of(e, event, gap) and id(e) in self._waiting]
            if len(logins) == 1 and self._the_only_login(key, event, logins[0]):
                self._merge(logins[0], event)
                self._event_waits(logins[0])
                return logins[0]
            self._orphans.setdefault(key, []).append(event)
            self._schedule(self.clock, key)
        elif event.source_port is not None and event.type == "ssh_login" and event.outcome == "success":
            orphans = [o for o in self._orphans.get(key, ()) if child_of(event, o, gap) and id(o) in self._waiting]
            if len(orphans) == 1 and self._the_only_login(key, orphans[0], event):
                self._merged_away.add(id(orphans[0]))
                self._waiting.discard(id(orphans[0]))
                self._orphans[key] = [o for o in self._orphans[key] if o is not orphans[0]]
                self._merge(event, orphans[0])
                self.copies.moved(orphans[0], event)
            self._logins.setdefault(key, []).append(event)
            self._schedule(self.clock, key)
        return None

    def _the_only_login(self, key: tuple[str, ...], child: Event, login: Event) -> bool:
        """Whether `login` is the only login from the peer the child can belong to: the child's process was not
        seen before the login, and no other login from the peer (open or closed) is recent enough to be its."""
        first = min(self._pid_first.get(process, child.start) for process in processes_of(child))
        if first < login.start:
            return False  # the child's process was there before this login: another connection's
        since = child.start - 2 * self.settings.gap
        accepts = self._accepts.get(key, deque())
        self._trim(accepts)  # as the last forget would have left it
        others = {pid for ts, pid, _ in accepts if since <= ts <= child.start and pid not in login.pids}
        return not others

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
        expiry = self._expiry
        while expiry and expiry[0][0] < horizon:
            queued, key = heapq.heappop(expiry)
            group = self._open.get(key)
            if group is None or group.first_arrival > queued:
                continue  # closed, or a newer group of the key (queued itself when it opened)
            if group.last_arrival < horizon:
                del self._open[key]
                expired.append(group)
            else:
                heapq.heappush(expiry, (group.last_arrival, key))  # still growing: look again later
        for group in sorted(expired, key=_group_order):
            self._close(group)
        release = self.clock - 2 * self.settings.gap
        # before any is released: those being released count as unreleased, so nothing they need goes first
        oldest = self._oldest_unreleased()
        ready = [e for e in self._closed if final or e.last_arrival < release]
        if ready:
            taken = {id(e) for e in ready}
            self._closed = deque(e for e in self._closed if id(e) not in taken)
        for event in sorted(ready, key=_event_order):
            self._waiting.discard(id(event))
            if id(event) in self._merged_away:
                self._merged_away.discard(id(event))
                continue
            if event.source_ip and event.source_port:
                conn = connection_key(event)
                if self._conn_index.get(conn) is event:
                    del self._conn_index[conn]
            self._finalise(event, out, oldest)
        oldest = self._oldest_unreleased()
        self.failures.end(self.clock, final, out, oldest)
        if not final:
            self._forget(oldest)
        return out

    def _forget(self, oldest_unreleased: int) -> None:
        """Forget what can no longer meet a duplicate, a join or a failure window: memory stays bounded."""
        keep_after = self.clock - 4 * self.settings.gap
        self.copies.forget(self.clock)
        self._keep_after = keep_after
        self._forgets += 1
        due = self._peers_due
        while due and due[0][0] < keep_after:
            peer = due.popleft()[1]
            self._peers_scheduled.discard(peer)
            self._forget_peer(peer)
        while self._pid_order and self._pid_order[0][0] < keep_after:
            del self._pid_first[self._pid_order.popleft()[1]]
        # a login not yet released looks back a window from its start for failures, however long ago it
        # arrived: what it may still need is kept, whenever the sweep runs
        self.failures.forget(self.clock, oldest_unreleased)

    def _forget_peer(self, peer: tuple[str, ...]) -> None:
        """Forget a peer's logins and children released already (only those still waiting can join) and its
        logins older than the last forget's bound; a peer with some left is looked at again later."""
        left = False
        for index in (self._logins, self._orphans):
            events = [e for e in index.get(peer, ()) if id(e) in self._waiting]
            if events:
                index[peer] = events
                left = True
            else:
                index.pop(peer, None)
        accepts = self._accepts.get(peer)
        if accepts is not None:
            self._trim(accepts)
            if accepts:
                left = True
            else:
                del self._accepts[peer]
        if left:
            self._schedule(self.clock, peer)

    def _trim(self, accepts: deque[tuple[int, str, int]]) -> None:
        """Drop the logins a forget would have dropped: older than its bound, and there when it ran (a login
        delivered late, after it, stays until the next one)."""
        while accepts and accepts[0][2] < self._forgets and accepts[0][0] < self._keep_after:
            accepts.popleft()

    def _schedule(self, arrival: int, peer: tuple[str, ...]) -> None:
        """Have a forget look at `peer` (once, however often it logs in: a login a second is no queue)."""
        if peer not in self._peers_scheduled:
            self._peers_scheduled.add(peer)
            self._peers_due.append((arrival, peer))

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
        groups, events, open_, waiting = self._group_starts, self._event_starts, self._open, self._waiting

        def group_current(entry: tuple[int, int, tuple[str, ...], Group]) -> bool:
            return open_.get(entry[2]) is entry[3] and entry[3].first_ts == entry[0]

        def event_current(entry: tuple[int, int, Event]) -> bool:
            return id(entry[2]) in waiting and entry[2].start == entry[0]

        while groups and not group_current(groups[0]):
            heapq.heappop(groups)
        while events and not event_current(events[0]):
            heapq.heappop(events)
        # entries below a top that stays (one connection that never closes) are dropped now and then
        if len(groups) + len(events) > 4 * (len(open_) + len(waiting)) + 4096:
            self._group_starts = [entry for entry in groups if group_current(entry)]
            self._event_starts = [entry for entry in events if event_current(entry)]
            heapq.heapify(self._group_starts)
            heapq.heapify(self._event_starts)
            groups, events = self._group_starts, self._event_starts
        starts = [heap[0][0] for heap in (groups, events) if heap]
        return min(starts, default=self.clock)

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
