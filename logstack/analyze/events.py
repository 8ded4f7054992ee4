"""Group journal lines into security events, streaming, in bounded memory.

Lines group by (machine, boot, PID, program) while they stay within `gap` of each other: PIDs are
reused within a boot, and two hosts use the same PID at the same moment. An SSH connection's monitor
and user-child processes are joined by source address and port. Events are released once nothing can
join them any more; brute-force incidents and `after_failures` flags look back over a time window.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from logstack.analyze.classify import HEARTBEAT_IDENTIFIER, SSH_IDENTIFIERS, Fact, classify, is_forged
from logstack.analyze.records import Line
from logstack.clock import SECOND, iso

# Lines of one host repeat the same (identifier, _COMM, _EXE) triple.
_forged = lru_cache(maxsize=4096)(is_forged)

SEVERITY = {"never": 99, "info": 0, "failure": 1, "alert": 2}
_ALERT_TYPES = frozenset({"brute_force", "account_lockout", "log_gap"})


@dataclass(frozen=True)
class Settings:
    """Tunables of event building."""

    gap: int = 180 * SECOND  # lines further apart than this start a new event
    brute_force_count: int = 8
    brute_force_window: int = 120 * SECOND


@dataclass
class Event:
    """One security event, as reported."""

    id: str
    type: str
    outcome: str
    host: str
    machine_id: str | None
    boot_id: str | None
    pids: list[str]
    start: int
    end: int
    user: str | None = None
    target_user: str | None = None
    source_ip: str | None = None
    source_port: int | None = None
    method: str | None = None
    command: str | None = None
    flags: list[str] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    reason: str | None = None
    first_arrival: int = 0
    last_arrival: int = 0
    first_key: str = ""
    known: bool = False  # every line belongs to an event reported by an earlier run
    attempts: int = 0  # failed authentication attempts (one connection may make several)
    ssh: bool = False  # has a line of an SSH daemon

    @property
    def severity(self) -> str:
        flags = self.flags
        if self.type in _ALERT_TYPES or (flags and ("forged" in flags or "after_failures" in flags)):
            return "alert"
        if self.type == "sudo" and self.reason == "not in sudoers":
            return "alert"
        # an authentication program's line too long to read may hide a failure
        return "failure" if self.outcome == "failure" or "truncated" in flags else "info"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "outcome": self.outcome,
            "severity": self.severity,
            "host": self.host,
            "machine_id": self.machine_id,
            "boot_id": self.boot_id,
            "pids": self.pids,
            "start": iso(self.start),
            "end": iso(self.end),
            "user": self.user,
            "target_user": self.target_user,
            "source_ip": self.source_ip,
            "source_port": self.source_port,
            "method": self.method,
            "command": self.command,
            "reason": self.reason,
            "flags": self.flags,
            "lines": [
                {"ts": iso(line.ts), "identifier": line.ident, "pid": line.pid or None, "message": line.message}
                for line in self.lines
            ],
        }


class _Group:
    __slots__ = ("facts", "first_arrival", "last_arrival", "last_ts", "lines", "ordered", "own")

    def __init__(self, line: Line, fact: Fact) -> None:
        self.lines: list[Line] = [line]
        self.facts: list[Fact] = [fact]
        self.last_ts = line.ts
        self.first_arrival = line.arrival
        self.last_arrival = line.arrival
        self.own = fact.own_event
        self.ordered = True  # lines arrived in (ts, key) order: building needs no sort

    def add(self, line: Line, fact: Fact) -> None:
        prev = self.lines[-1]
        if line.ts < prev.ts or (line.ts == prev.ts and line.key < prev.key):
            self.ordered = False
        self.lines.append(line)
        self.facts.append(fact)
        if line.ts > self.last_ts:
            self.last_ts = line.ts
        if line.arrival < self.first_arrival:
            self.first_arrival = line.arrival
        elif line.arrival > self.last_arrival:
            self.last_arrival = line.arrival


def _event_id(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode(errors="replace")).hexdigest()[:20]


def _pid_order(pid: str) -> tuple[int, str]:
    return (len(pid), pid)


_SSH_KINDS_PREAUTH = frozenset({"ssh_preauth", "ssh_disconnect", "ssh_connect"})
_POLKIT = frozenset({"polkit_ok", "polkit_fail"})
_SSH_FAILED = frozenset({"ssh_fail", "ssh_invalid"})
_SUDO = frozenset({"sudo_cmd", "sudo_fail"})
_SUDO_FAILED = frozenset({"sudo_fail", "auth_failure"})
_SU = frozenset({"su_ok", "su_fail"})
_SU_SERVICES = frozenset({"su", "su-l", "runuser", "runuser-l"})
_SU_FAILED = frozenset({"su_fail", "auth_failure"})
_CONSOLE = frozenset({"console_ok", "console_fail"})
_CONSOLE_FAILED = frozenset({"console_fail", "auth_failure"})
_PAM_SESSION = frozenset({"session_open", "session_close"})
_SESSION = frozenset({"session_open", "session_close", "logind"})
_SECONDARY_KINDS = frozenset({"auth_failure", "session_open", "session_close", "pam_info"})
_REASON_KINDS = frozenset({"sudo_fail", "su_fail", "polkit_fail", "lockout", "account", "log_gap", "logind"})
_PAM_USER_TYPES = frozenset({"ssh_login", "session", "console_login"})


def _build(group: _Group) -> Event:
    lines, facts = group.lines, group.facts
    if not group.ordered:
        pairs = sorted(zip(lines, facts, strict=True), key=lambda p: (p[0].ts, p[0].key))
        lines = [line for line, _ in pairs]
        facts = [fact for _, fact in pairs]
    first = lines[0]
    kinds: set[str] = set()
    services: set[str] = set()
    for f in facts:
        kinds.add(f.kind)
        if f.service:
            services.add(f.service)
    ssh = False
    pids: set[str] = set()
    for ln in lines:
        if ln.ident in SSH_IDENTIFIERS:
            ssh = True
        if ln.pid:
            pids.add(ln.pid)
    outcome = "info"
    reason: str | None = None

    if "log_gap" in kinds:
        etype = "log_gap"
    elif "lockout" in kinds:
        etype, outcome = "account_lockout", "failure"
    elif "account" in kinds:
        etype, outcome = "account_change", "success"
    elif not kinds.isdisjoint(_POLKIT):
        etype = "polkit"
        outcome = "failure" if "polkit_fail" in kinds else "success"
    elif ssh and "ssh_accept" in kinds:
        etype, outcome = "ssh_login", "success"
    elif ssh and (not kinds.isdisjoint(_SSH_FAILED) or ("auth_failure" in kinds and "sshd" in services)):
        etype, outcome = "ssh_login", "failure"
    elif not kinds.isdisjoint(_SUDO) or "sudo" in services or "sudo-i" in services:
        etype = "sudo"
        outcome = "failure" if not kinds.isdisjoint(_SUDO_FAILED) else "success"
    elif not kinds.isdisjoint(_SU) or not services.isdisjoint(_SU_SERVICES):
        etype = "su"
        outcome = "failure" if not kinds.isdisjoint(_SU_FAILED) else "success"
    elif not kinds.isdisjoint(_CONSOLE) or "login" in services:
        etype = "console_login"
        outcome = "failure" if not kinds.isdisjoint(_CONSOLE_FAILED) else "success"
    elif ssh and not kinds.isdisjoint(_SSH_KINDS_PREAUTH) and kinds.isdisjoint(_PAM_SESSION):
        etype = "ssh_preauth"
    elif not kinds.isdisjoint(_SESSION):
        etype = "session"
    else:
        etype = "other"

    # The program's own statement names user and target best; PAM lines only fill gaps
    # (pam's `user=` is the target for su but the invoking user for sudo).
    secondary = [f for f in facts if f.kind in _SECONDARY_KINDS]
    ranked = [f for f in facts if f.kind not in _SECONDARY_KINDS] + secondary if secondary else facts
    user = target_user = source_ip = method = None
    source_port: int | None = None
    invalid_user = False
    pam_names_user = etype in _PAM_USER_TYPES
    for fact in ranked:
        kind = fact.kind
        if fact.invalid_user:
            invalid_user = True
        if pam_names_user and (kind == "session_open" or kind == "auth_failure"):
            # PAM names the account in target_user; for logins that is the user who logged in.
            user = user or fact.target_user
        elif kind == "account":
            target_user = target_user or fact.target_user
            user = user or fact.user
        else:
            user = user or fact.user
            target_user = target_user or fact.target_user
        source_ip = source_ip or fact.source_ip
        source_port = source_port or fact.source_port
        method = method or fact.method
        if kind in _REASON_KINDS or (kind == "ssh_preauth" and etype == "ssh_preauth"):
            reason = reason or fact.reason
    if etype in ("console_login", "su", "sudo") and user is None:
        user = next((f.user for f in facts if f.user), None)
    if etype == "console_login":
        user = user or next((f.target_user for f in facts if f.target_user), None)
    if etype == "account_change" and user is None:
        uid = next((ln.loginuid for ln in lines if ln.loginuid and ln.loginuid != "4294967295"), None)
        if uid is not None:
            user = f"uid={uid}"
    commands = [f.command for f in facts if f.command]
    attempts = 0
    if etype == "ssh_login" and outcome == "failure":
        attempts = max(1, sum(1 for ln in lines if ln.message.startswith(("Failed ", "error: Failed "))))
    flags: list[str] = []
    for ln in lines:
        if _forged(ln.ident, ln.comm, ln.exe):
            flags.append("forged")
            break
    if invalid_user:
        flags.append("invalid_user")
    if any(f.truncated for f in facts):
        flags.append("truncated")
    return Event(
        id=_event_id(first.machine or first.host, first.boot, first.key),
        type=etype,
        outcome=outcome,
        host=first.host,
        machine_id=first.machine or None,
        boot_id=first.boot or None,
        pids=sorted(pids, key=_pid_order) if len(pids) > 1 else list(pids),
        start=first.ts,
        end=lines[-1].ts,  # sorted by time
        user=user,
        target_user=target_user,
        source_ip=source_ip,
        source_port=source_port,
        method=method,
        command=" ".join(commands) if commands else None,
        flags=flags,  # sorted: "forged" < "invalid_user"
        lines=lines,
        reason=reason,
        first_arrival=group.first_arrival,
        last_arrival=group.last_arrival,
        first_key=first.key,
        attempts=attempts,
        ssh=ssh,
    )


class EventBuilder:
    """Feed lines (in arrival order); take finished events as they are released."""

    def __init__(self, settings: Settings | None = None, known: set[str] | frozenset[str] = frozenset()) -> None:
        self.settings = settings or Settings()
        self.known = known
        self._open: dict[tuple[str, ...], _Group] = {}
        # (arrival when queued, key): open groups roughly in arrival order, so a sweep looks only at
        # the oldest instead of every open group
        self._expiry: deque[tuple[int, tuple[str, ...]]] = deque()
        self._closed: deque[Event] = deque()  # built, waiting in case an SSH partner joins
        self._conn_index: dict[tuple[str, str, str, int], Event] = {}
        self._failures: dict[str, deque[Event]] = {}
        self._incidents: dict[str, Event] = {}
        self._members: dict[str, list[Event]] = {}  # brute-force incident id → failed logins
        self._seen: set[str] = set()  # de-duplication keys of recent lines
        self._seen_order: deque[tuple[int, str]] = deque()
        self.clock = 0
        self._since_sweep = 0
        self.duplicates = 0

    # -- input ---------------------------------------------------------------------------------------
    def feed(self, line: Line) -> Sequence[Event]:
        """Add one line; returns the events that can no longer change (mostly none)."""
        if line.ident == HEARTBEAT_IDENTIFIER:
            return ()
        key = line.key
        seen = self._seen
        if key in seen:
            self.duplicates += 1
            return ()
        seen.add(key)
        arrival = line.arrival
        self._seen_order.append((arrival, key))
        if arrival > self.clock:
            self.clock = arrival
        fact = classify(line.ident, line.message)
        if fact.own_event:
            group_key: tuple[str, ...] = ("own", key)
        else:
            ident = line.ident
            family = "ssh" if ident in SSH_IDENTIFIERS else ident
            # Lines an earlier run reported never group with new ones: a new event stays new.
            marker = "known" if self.known and key in self.known else ""
            group_key = (line.machine or line.host, line.boot, line.pid, family, marker)
        group = self._open.get(group_key)
        if group is not None and not group.own and abs(line.ts - group.last_ts) <= self.settings.gap:
            group.add(line, fact)
        else:
            if group is not None:
                self._close(group)
            self._open[group_key] = _Group(line, fact)
            self._expiry.append((arrival, group_key))
        self._since_sweep += 1
        if self._since_sweep >= 2048:
            self._since_sweep = 0
            return self._sweep(final=False)
        return ()

    def finish(self) -> list[Event]:
        """End of input: release everything."""
        return self._sweep(final=True)

    # -- internals -----------------------------------------------------------------------------------
    def _close(self, group: _Group) -> None:
        event = _build(group)
        known = self.known
        event.known = bool(known) and all(line.key in known for line in event.lines)
        if event.source_ip and event.source_port and event.ssh:
            conn = (event.machine_id or event.host, event.boot_id or "", event.source_ip, event.source_port)
            partner = self._conn_index.get(conn)
            if (
                partner is not None
                and partner.known == event.known
                and abs(event.start - partner.end) <= self.settings.gap
            ):
                self._merge(partner, event)
                return
            self._conn_index[conn] = event
        self._closed.append(event)

    def _merge(self, into: Event, other: Event) -> None:
        group = _Group(into.lines[0], classify(into.lines[0].ident, into.lines[0].message))
        for line in into.lines[1:] + other.lines:
            group.add(line, classify(line.ident, line.message))
        group.first_arrival = min(into.first_arrival, other.first_arrival)
        group.last_arrival = max(into.last_arrival, other.last_arrival)
        merged = _build(group)
        merged.known = into.known
        into.__dict__.update(merged.__dict__)

    def _sweep(self, final: bool) -> list[Event]:
        out: list[Event] = []
        horizon = self.clock - self.settings.gap
        if final:
            for group in self._open.values():
                self._close(group)
            self._open.clear()
            self._expiry.clear()
        expiry = self._expiry
        while expiry and expiry[0][0] < horizon:
            _, key = expiry.popleft()
            group = self._open.get(key)
            if group is None:
                continue
            if group.last_arrival < horizon:
                del self._open[key]
                self._close(group)
            else:
                expiry.append((group.last_arrival, key))  # still growing: look again later
        release = self.clock - 2 * self.settings.gap
        closed = self._closed
        while closed and (final or closed[0].last_arrival < release):
            event = closed.popleft()
            if event.source_ip and event.source_port:
                conn = (event.machine_id or event.host, event.boot_id or "", event.source_ip, event.source_port)
                if self._conn_index.get(conn) is event:
                    del self._conn_index[conn]
            self._finalise(event, out)
        self._end_incidents(final, out)
        if not final:
            # Forget what can no longer meet a duplicate or a failure window: memory stays bounded.
            keep_after = self.clock - 4 * self.settings.gap
            order = self._seen_order
            while order and order[0][0] < keep_after:
                self._seen.discard(order.popleft()[1])
            stale = self.clock - 2 * self.settings.gap - self.settings.brute_force_window
            for ip in [ip for ip, recent in self._failures.items() if not recent or recent[-1].last_arrival < stale]:
                if ip not in self._incidents:
                    del self._failures[ip]
        return out

    def _finalise(self, event: Event, out: list[Event]) -> None:
        window = self.settings.brute_force_window
        ip = event.source_ip
        if event.type == "ssh_login" and ip:
            recent = self._failures.setdefault(ip, deque())
            while recent and recent[0].end < event.start - window:
                recent.popleft()
            if event.outcome == "success":
                if recent:
                    event.flags = sorted({*event.flags, "after_failures"})
            else:
                recent.append(event)
                incident = self._incidents.get(ip)
                if incident is not None:
                    if event.start - incident.end <= window:
                        self._extend(incident, event)
                    else:
                        out.append(self._release_incident(ip))
                        incident = None
                if incident is None and sum(e.attempts for e in recent) >= self.settings.brute_force_count:
                    self._incidents[ip] = self._incident(ip, list(recent))
        out.append(event)

    def _incident(self, ip: str, failures: list[Event]) -> Event:
        first = failures[0]
        incident = Event(
            id=_event_id("brute_force", ip, first.id),
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
        members = self._members[incident.id]
        members.append(failure)
        incident.end = max(incident.end, failure.end)
        incident.last_arrival = max(incident.last_arrival, failure.last_arrival)
        users = sorted({m.user for m in members if m.user})
        hosts = sorted({m.host for m in members})
        incident.user = ", ".join(users) or None
        incident.host = ", ".join(hosts)
        tries = sum(m.attempts for m in members)
        incident.reason = f"{tries} failed login attempts from {incident.source_ip}"
        incident.flags = ["invalid_user"] if any("invalid_user" in m.flags for m in members) else []
        incident.lines = [line for m in members for line in m.lines[:1]]

    def _end_incidents(self, final: bool, out: list[Event]) -> None:
        horizon = self.clock - 2 * self.settings.gap - self.settings.brute_force_window
        for ip, incident in list(self._incidents.items()):
            if final or incident.last_arrival < horizon:
                out.append(self._release_incident(ip))

    def _release_incident(self, ip: str) -> Event:
        incident = self._incidents.pop(ip)
        del self._members[incident.id]
        return incident


def build_events(lines: Iterable[Line], settings: Settings | None = None) -> Iterator[Event]:
    """All events of `lines`, released in order of completion."""
    builder = EventBuilder(settings)
    for line in lines:
        yield from builder.feed(line)
    yield from builder.finish()
