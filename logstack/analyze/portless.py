"""Session children that name no port (sshd before 7.4p1: `Received disconnect from ADDR: 11: …`, `subsystem
request …`), joined to the one successful login from that address, on that machine and boot, whose connection
they can be (another PID, within the gap); with two such logins, to neither. Whether the child's event closes
before or after the login's, the pair is found.

What is forgotten is said by the clock, not by when the builder last swept: a login line is remembered while it
is within four gaps of the clock before the line being fed (or is that line); the first line of an SSH daemon's
process for an hour (a session child may log nothing between its start and its end: an older process's late line
must not join a later login from the same address)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from logstack.analyze.connections import child_of, is_session_child, peer_key, processes_of
from logstack.analyze.event import Event
from logstack.base.clock import HOUR

Peer = tuple[str, ...]
Process = tuple[str, str, str]
PROCESS_MEMORY = HOUR  # how long an SSH daemon's process's first line is remembered (by the clock)
RECENT = 32  # more logins (or port-less children) from one peer waiting at once: no child joins any of them


class PortlessChildren:
    """The logins and port-less children by peer, and each process's first line, for the event builder."""

    def __init__(
        self,
        gap: int,
        waiting: Callable[[Event], bool],
        merge: Callable[[Event, Event], None],
        absorb: Callable[[Event, Event], None],
    ) -> None:
        self.gap = gap
        self._waiting = waiting  # whether an event is closed and not yet released
        self._merge = merge  # (login, child): the child's event merged into the login's, which waits on
        self._absorb = absorb  # (login, child): a child waiting already merged into a login closing now
        self.line = 0  # the number of the line being fed
        self.bound = -1  # what was fed before this line four gaps behind its clock (journal time) is forgotten
        self._logins: dict[Peer, list[Event]] = {}
        self._orphans: dict[Peer, list[Event]] = {}
        self._accepts: dict[Peer, deque[tuple[int, str, int]]] = {}  # (journal time, PID, line) of each login
        self._first: dict[Process, tuple[int, int]] = {}  # process → (its first line's journal time, clock then)
        # (clock, peer), once per peer, as an index above gained an entry: the peers a forget looks at
        self._due: deque[tuple[int, Peer]] = deque()
        self._scheduled: set[Peer] = set()
        self._first_order: deque[tuple[int, Process]] = deque()

    def at(self, line: int, clock_before: int) -> None:
        """A line is being fed (`clock_before`: the clock before it)."""
        self.line, self.bound = line, clock_before - 4 * self.gap

    def login_line(self, peer: Peer, ts: int, pid: str, clock: int) -> None:
        """A line saying a login from `peer` succeeded, whichever event it ends in."""
        self._accepts.setdefault(peer, deque()).append((ts, pid, self.line))
        self._schedule(clock, peer)

    def process_line(self, process: Process, ts: int, clock: int) -> None:
        """A line of an SSH daemon's `process` (not one a local user wrote under its name) opened a group (a
        process's first line always does)."""
        first = self._first.get(process)
        if first is None or not self._remembered(first):
            self._first[process] = (ts, clock)
            self._first_order.append((clock, process))

    def _remembered(self, first: tuple[int, int]) -> bool:
        return first[1] >= self.bound + 4 * self.gap - PROCESS_MEMORY

    def joined(self, event: Event, clock: int) -> Event | None:
        """The login a closing SSH event was merged into, if it is a port-less child that has its one login; a
        successful login closing takes the one waiting child that can be its own. A forged event (a line any local
        user can write under an SSH daemon's name) joins nothing by its address alone, nor takes anything: its
        lines stay its own event, and two such lines cannot send a run in columns to the line-by-line engine."""
        if "forged" in event.flags:
            return None
        key = peer_key(event)
        if event.source_port is None and is_session_child(event):
            logins = [e for e in self._recent(self._logins, key) if child_of(e, event, self.gap)]
            if len(logins) == 1 and self._the_only_login(key, event, logins[0]):
                self._merge(logins[0], event)
                return logins[0]
            self._orphans.setdefault(key, []).append(event)
            self._schedule(clock, key)
        elif event.source_port is not None and event.type == "ssh_login" and event.outcome == "success":
            orphans = [o for o in self._recent(self._orphans, key) if child_of(event, o, self.gap)]
            if len(orphans) == 1 and self._the_only_login(key, orphans[0], event):
                self._orphans[key] = [o for o in self._orphans[key] if o is not orphans[0]]
                self._absorb(event, orphans[0])
            self._logins.setdefault(key, []).append(event)
            self._schedule(clock, key)
        return None

    def _recent(self, index: dict[Peer, list[Event]], key: Peer) -> list[Event]:
        """The peer's events in `index` still waiting to be released, newest first; with more than RECENT of them
        (a flood of logins from one address: a local user's, or a NAT's) none, so that nothing joins (as when
        two could) and a join costs no pass over the flood."""
        found: list[Event] = []
        for event in reversed(index.get(key, ())):
            if self._waiting(event):
                found.append(event)
                if len(found) > RECENT:
                    return []
        return found

    def _the_only_login(self, key: Peer, child: Event, login: Event) -> bool:
        """Whether `login` is the only login from the peer the child can belong to: the child's process was not
        seen before the login, and no other login from the peer (open or closed) is recent enough to be its."""
        firsts = [self._first.get(process) for process in processes_of(child)]
        first = min((f[0] if f is not None and self._remembered(f) else child.start) for f in firsts)
        if first < login.start:
            return False  # the child's process was there before this login: another connection's
        since = child.start - 2 * self.gap
        accepts = self._accepts.get(key, ())
        others = {pid for ts, pid, _ in self._current(accepts) if since <= ts <= child.start and pid not in login.pids}
        return not others

    def _current(self, accepts: deque[tuple[int, str, int]] | tuple) -> list[tuple[int, str, int]]:
        """The logins not forgotten: within four gaps of the clock (by journal time), or fed with this line."""
        return [entry for entry in accepts if entry[2] == self.line or entry[0] >= self.bound]

    def forget(self, clock: int) -> None:
        """Forget what only takes memory: released events, and logins and first lines no rule reads any more
        (`clock`: the clock before the line last fed, as the rules read them until the next one)."""
        keep_after = clock - 4 * self.gap
        while self._due and self._due[0][0] < keep_after:
            peer = self._due.popleft()[1]
            self._scheduled.discard(peer)
            self._forget_peer(peer, clock)
        order = self._first_order
        while order and order[0][0] < clock - PROCESS_MEMORY:
            at, process = order.popleft()
            first = self._first.get(process)
            if first is not None and first[1] == at:
                del self._first[process]

    def _forget_peer(self, peer: Peer, clock: int) -> None:
        """Forget a peer's events released already (only those still waiting can join) and its logins forgotten;
        a peer with some left is looked at again later."""
        left = False
        for index in (self._logins, self._orphans):
            events = [e for e in index.get(peer, ()) if self._waiting(e)]
            if events:
                index[peer] = events
                left = True
            else:
                index.pop(peer, None)
        accepts = self._accepts.get(peer)
        if accepts is not None:
            kept = [entry for entry in accepts if entry[0] >= clock - 4 * self.gap]
            if kept:
                self._accepts[peer] = deque(kept)
                left = True
            else:
                del self._accepts[peer]
        if left:
            self._schedule(clock, peer)

    def _schedule(self, clock: int, peer: Peer) -> None:
        """Have a forget look at `peer` (once, however often it logs in: a login a second is no queue)."""
        if peer not in self._scheduled:
            self._scheduled.add(peer)
            self._due.append((clock, peer))
