"""Failed logins per source (an IPv4 address, an IPv6 /64): the failed tries a successful login looks back on
(`after_failures`), and brute-force incidents (`brute_force_count` failed tries within `brute_force_window`)."""

from __future__ import annotations

import heapq
import ipaddress
from collections import deque
from collections.abc import Callable
from functools import lru_cache

from logstack.analyze.connections import processes_of
from logstack.analyze.event import FAILED_TRY_KINDS, Event, Settings, event_id
from logstack.base.clock import MINUTE

# How long an event not yet released may hold back what is forgotten and when an incident ends: for events
# shorter than this (a failed connection ends within sshd's LoginGraceTime, 2 minutes by default), the answer
# does not depend on when sweeps run; memory holds what arrived within 2 gaps, a window and this.
HOLD = 10 * MINUTE
# What is forgotten is looked at once the clock enters a new tick: when, is the journal's (its clock), not how
# often the builder sweeps; no failure anyone may still count goes (a rule reads what it keeps, by time).
TICK = MINUTE
# the lines that are failed tries from their address (`tried`): a failed try, or leaving before authenticating
TRIED_KINDS = FAILED_TRY_KINDS | {"ssh_abandon"}


class FailureWindows:
    """What the event builder knows of failed logins by source, as events are released."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._failures: dict[str, deque[Event]] = {}
        # failed tries per address as lines arrive, (arrival, journal time): a success is flagged even when
        # the failing connection's event is still open (an attacker leaving it idle until the login grace ends)
        # a key probe's try carries its connection (machine, boot, PID): it flags any success but its own
        self._failed_at: dict[str, deque[tuple[int, int, tuple[str, str, str] | None]]] = {}
        self._incidents: dict[str, Event] = {}
        self._members: dict[str, list[Event]] = {}  # brute-force incident id → failed logins
        # What `forget` must look at, without a pass over every source at every sweep: (arrival, source) by
        # the arrival of what a source's queue could lose first, and the sources it looks at again each time.
        self._failures_due: list[tuple[int, str]] = []
        self._tries_due: list[tuple[int, str]] = []
        self._failures_held: set[str] = set()
        self._tries_held: set[str] = set()
        self._tick = -1  # the clock's tick at the last forget
        self._incident_ends: list[tuple[int, str]] = []  # (last arrival, source) of open incidents, smallest first
        # of those that arrived two gaps and a window ago: (end, last arrival, source) and (last arrival, source)
        self._arrived: list[tuple[int, int, str]] = []
        self._arrived_at: list[tuple[int, str]] = []

    def tried(self, address: str, arrival: int, ts: int, tag: tuple[str, str, str] | None) -> None:
        """A line that is a failed try from `address` arrived."""
        ip = source_key(address)
        tries = self._failed_at.get(ip)
        if tries is None:
            tries = self._failed_at[ip] = deque()
            heapq.heappush(self._tries_due, (arrival, ip))
        tries.append((arrival, ts, tag))

    def knows(self, address: str) -> bool:
        """Whether anything is kept of the source of `address` (a success from one that is not changes nothing)."""
        ip = source_key(address)
        return ip in self._failures or ip in self._failed_at

    def finalise(self, event: Event, out: list[Event], oldest_unreleased: int) -> None:
        """An event is released: flag a success after failures; count a failure toward its source's incident
        (an incident it ends is added to `out`). `oldest_unreleased`: the earliest journal time of an SSH event
        not yet released (events are released by last arrival, not by start: a failure an earlier-starting
        connection still counts stays)."""
        window = self.settings.brute_force_window
        ip = source_key(event.source_ip) if event.source_ip else None
        if event.type != "ssh_login" or not ip:
            return
        recent = self._failures.get(ip)  # none and empty are alike: a success makes no queue of its own
        if recent is not None:
            floor = min(event.start, oldest_unreleased) - window
            while recent and recent[0].end < floor:
                recent.popleft()
            self._failures_changed(ip)
        if event.outcome == "success":
            tries = self._failed_at.get(ip, ())
            own = processes_of(event) if event.pids else set()
            # by the failed tries' journal times, as their lines arrived: not by which failed connection's
            # event happened to be released first (a sweep's timing decides that)
            if any(event.start - window <= at <= event.end and (tag is None or tag not in own) for _, at, tag in tries):
                event.flags = sorted({*event.flags, "after_failures"})
            return
        if recent is None:
            recent = self._failures[ip] = deque()
        recent.append(event)
        self._failures_changed(ip)
        incident = self._incidents.get(ip)
        if incident is not None:
            if event.start - incident.end <= window:
                self._extend(incident, event)
            else:
                out.append(self._release(ip))
                incident = None
        if incident is None:
            # the failures of the window that ends with this one (released out of journal order, later ones
            # may be known already: they count in their own window, not in this one)
            counted = [f for f in recent if f.end >= event.start - window and f.start <= event.end]
            if sum(failure.attempts for failure in counted) >= self.settings.brute_force_count:
                self._incidents[ip] = self._incident(ip, counted)

    def end(self, clock: int, final: bool, out: list[Event], oldest_unreleased: int) -> None:
        """Add to `out` the incidents no failure can extend any more (all of them at the end of input): arrived
        long enough ago, and no event still to be released begins within the window of their end (unless that
        event is older than HOLD: one connection that never goes quiet holds back nothing for ever)."""
        horizon = clock - 2 * self.settings.gap - self.settings.brute_force_window
        for ip, incident in list(self._incidents.items()):
            quiet = incident.end + self.settings.brute_force_window < oldest_unreleased
            if final or (incident.last_arrival < horizon and (quiet or incident.last_arrival < horizon - HOLD)):
                out.append(self._release(ip))

    def busy(self, clock: int, oldest_unreleased: Callable[[], int]) -> bool:
        """Whether `end` or `forget` would do anything now: an incident ends (as `end` decides), or the clock
        entered a new tick (no sweep is needed for them otherwise). Looks only at the incidents that arrived long
        enough ago, the one that ends first by journal time and the one that arrived first (an incident held back
        by a connection that never goes quiet makes no sweep until HOLD has passed)."""
        if clock // TICK != self._tick:
            return True
        horizon = clock - 2 * self.settings.gap - self.settings.brute_force_window
        ends, arrived, held, incidents = self._incident_ends, self._arrived, self._arrived_at, self._incidents
        while ends and ends[0][0] < horizon:
            at, ip = heapq.heappop(ends)
            incident = incidents.get(ip)
            if incident is not None and incident.last_arrival == at:  # not ended, nor extended since
                heapq.heappush(arrived, (incident.end, at, ip))
                heapq.heappush(held, (at, ip))
        while arrived and not _current(incidents, arrived[0][2], arrived[0][1], arrived[0][0]):
            heapq.heappop(arrived)
        while held and not _current(incidents, held[0][1], held[0][0]):
            heapq.heappop(held)
        if held and held[0][0] < horizon - HOLD:
            return True
        return bool(arrived) and arrived[0][0] + self.settings.brute_force_window < oldest_unreleased()

    def next_due(self, nothing_unreleased: bool) -> int:
        """The least clock at which `busy` may turn true while no event is released and no SSH line is fed
        (`oldest_unreleased` then stays, or grows with the clock when `nothing_unreleased`): the next tick, an
        incident coming within the horizon or past HOLD, or then going quiet. A line fed while nothing is
        unreleased may raise `oldest_unreleased` past the clock: the caller looks there too. Earlier is allowed
        (a stale entry): `busy` decides."""
        window, gap = self.settings.brute_force_window, self.settings.gap
        due = (self._tick + 1) * TICK
        if self._incident_ends:
            due = min(due, self._incident_ends[0][0] + 2 * gap + window + 1)
        if self._arrived_at:
            due = min(due, self._arrived_at[0][0] + 2 * gap + window + HOLD + 1)
        if nothing_unreleased and self._arrived:
            due = min(due, self._arrived[0][0] + window + 1)
        return due

    def forget(self, clock: int, oldest_unreleased: int) -> None:
        """Forget failures no event still to be released can look back on (`oldest_unreleased`: the earliest
        journal time of such an event) and that arrived long enough ago; whatever arrived more than HOLD before
        that is forgotten anyway (a connection that never goes quiet, a sender's clock far ahead): memory stays
        bounded. Once a tick of the clock (called more often, the rest do nothing)."""
        tick = clock // TICK
        if tick == self._tick:
            return
        self._tick = tick
        window = self.settings.brute_force_window
        stale = clock - 2 * self.settings.gap - window
        hard = stale - HOLD
        needed = oldest_unreleased - window
        # only a source whose queue holds something that arrived before `stale` can lose anything
        # an entry queued while the source's queue was empty names no queue once the source is forgotten (with
        # clocks before 1970 it outlives that forget: `stale` is below -1)
        failures = self._failures
        _due(
            self._failures_due,
            stale,
            self._failures_held,
            lambda ip, at: ip in failures and _failures_key(failures, ip) == at,
        )
        for ip in list(self._failures_held):
            recent = self._failures[ip]
            while recent and recent[0].last_arrival < hard:  # an unreleased event holds back HOLD at most
                recent.popleft()
            last = recent[-1] if recent else None
            gone = last is None or last.last_arrival < hard or (last.last_arrival < stale and last.end < needed)
            if gone and ip not in self._incidents:
                del self._failures[ip]
                self._failures_held.discard(ip)
            elif (key := _failures_key(self._failures, ip)) >= stale:
                self._failures_held.discard(ip)
                heapq.heappush(self._failures_due, (key, ip))
        tried = self._failed_at
        _due(self._tries_due, stale, self._tries_held, lambda ip, at: ip in tried and tried[ip][0][0] == at)
        for ip in list(self._tries_held):
            tries = self._failed_at[ip]
            # by arrival: a sender's clock cannot keep them past the unreleased events' lifetime
            while tries and (tries[0][0] < hard or (tries[0][0] < stale and tries[0][1] < needed)):
                tries.popleft()
            if not tries:
                del self._failed_at[ip]
                self._tries_held.discard(ip)
            elif tries[0][0] >= stale:
                self._tries_held.discard(ip)
                heapq.heappush(self._tries_due, (tries[0][0], ip))

    def _failures_changed(self, ip: str) -> None:
        heapq.heappush(self._failures_due, (_failures_key(self._failures, ip), ip))

    def _incident(self, ip: str, failures: list[Event]) -> Event:
        first = failures[0]
        incident = Event(
            id=event_id("brute_force", ip, first.id),
            type="brute_force",
            outcome="failure",
            host=first.host,
            machine_id=None,
            boot_id=None,
            pids=[],
            start=first.start,
            end=first.end,
            source_ip=ip,
            first_arrival=first.first_arrival,
            last_arrival=first.last_arrival,
        )
        self._members[incident.id] = []
        for failure in failures:
            self._extend(incident, failure)
        return incident

    def _extend(self, incident: Event, failure: Event) -> None:
        self._members[incident.id].append(failure)
        incident.end = max(incident.end, failure.end)
        incident.last_arrival = max(incident.last_arrival, failure.last_arrival)
        heapq.heappush(self._incident_ends, (incident.last_arrival, incident.source_ip or ""))

    def _release(self, ip: str) -> Event:
        """The incident, its fields read from its failures once (an address failing for hours makes one
        incident of thousands: reading them at every failure cost time growing with their square)."""
        incident = self._incidents.pop(ip)
        members = self._members.pop(incident.id)
        users = sorted({m.user for m in members if m.user})
        incident.user = ", ".join(users) or None
        incident.host = ", ".join(sorted({m.host for m in members}))
        incident.reason = f"{sum(m.attempts for m in members)} failed login attempts from {incident.source_ip}"
        incident.flags = ["invalid_user"] if any("invalid_user" in m.flags for m in members) else []
        # in journal order, not in the order its failures were released
        incident.lines = sorted((m.lines[0] for m in members), key=lambda line: (line.ts, line.key))
        # an incident of failures an earlier run reported was reported by it too
        incident.known = all(member.known for member in members)
        # a failure belongs to one incident: it does not count toward the next one
        taken = {id(member) for member in members}
        if ip in self._failures:
            self._failures[ip] = deque(f for f in self._failures[ip] if id(f) not in taken)
            self._failures_changed(ip)
        return incident


def _current(incidents: dict[str, Event], ip: str, last_arrival: int, end: int | None = None) -> bool:
    """Whether a queued entry still describes the source's open incident (not ended, nor extended since)."""
    incident = incidents.get(ip)
    return incident is not None and incident.last_arrival == last_arrival and end in (None, incident.end)


def _failures_key(failures: dict[str, deque[Event]], ip: str) -> int:
    """The earliest arrival `forget` looks at in a source's failures: the first's (lost after HOLD) or the last's
    (the source is forgotten); -1 for an empty queue."""
    recent = failures.get(ip)
    if not recent:
        return -1
    return min(recent[0].last_arrival, recent[-1].last_arrival)


def _due(heap: list[tuple[int, str]], before: int, held: set[str], current: Callable[[str, int], bool]) -> None:
    """Move to `held` the sources whose entry (still current) is due before `before`."""
    while heap and heap[0][0] < before:
        at, ip = heapq.heappop(heap)
        if current(ip, at):
            held.add(ip)


@lru_cache(maxsize=65536)
def source_key(address: str) -> str:
    """Where failed tries are counted together: an IPv4 address, or an IPv6 address's /64 (one subscriber's
    network: an attacker holding it has 2^64 addresses to rotate through); a host name as it is."""
    if ":" not in address:  # an IPv4 address or a host name: counted as it is (parsing it costs 4 µs)
        return address
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return address
