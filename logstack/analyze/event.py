"""One event from a group of lines: its type decided by a table, its fields merged from the lines' facts."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any

from logstack.base.clock import SECOND, iso
from logstack.classify.classifier import is_forged
from logstack.classify.fact import Fact
from logstack.classify.kinds import EventType, FactKind, Subject
from logstack.classify.programs import SSH_IDENTIFIERS, pam_services
from logstack.journal.line import Line

# Lines of one host repeat the same (identifier, _COMM, _EXE) triple.
_forged = lru_cache(maxsize=4096)(is_forged)

SEVERITY = {"never": 99, "info": 0, "failure": 1, "alert": 2}
# The JSON shape: these, start and end, the subject's fields, flags and lines, in this order.
_HEAD_FIELDS = ("id", "type", "outcome", "severity", "host", "machine_id", "boot_id", "pids")
_SUBJECT_FIELDS = tuple(f.name for f in fields(Subject))
_FAILURE_FLAGS = frozenset({"truncated", "ambiguous"})
_ALERT_FLAGS = frozenset({"after_failures", "forged", "forged_host", "unauthenticated"})
_ALERT_TYPES = frozenset({EventType.BRUTE_FORCE.value, EventType.ACCOUNT_LOCKOUT.value, EventType.LOG_GAP.value})


@dataclass(frozen=True)
class Settings:
    """Tunables of event building."""

    gap: int = 180 * SECOND  # lines further apart than this start a new event
    brute_force_count: int = 8
    brute_force_window: int = 120 * SECOND


@dataclass(kw_only=True)
class Event(Subject):
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
    flags: list[str] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    continues: str | None = None  # the reported event a late line belongs to
    first_arrival: int = 0
    last_arrival: int = 0
    first_key: str = ""
    known: bool = False  # every line belongs to an event reported by an earlier run
    attempts: int = 0  # failed authentication attempts (one connection may make several)
    tried_users: list[str] = field(default_factory=list)  # names of failed tries, in order
    ssh: bool = False  # has a line of an SSH daemon

    @property
    def severity(self) -> str:
        flags = self.flags
        if self.type in _ALERT_TYPES or (flags and not _ALERT_FLAGS.isdisjoint(flags)):
            return "alert"
        if self.type == "sudo" and self.reason == "not in sudoers":
            return "alert"
        # an authentication program's line too long to read may hide a failure
        return "failure" if self.outcome == "failure" or (flags and not _FAILURE_FLAGS.isdisjoint(flags)) else "info"

    def as_dict(self) -> dict[str, Any]:
        return {
            **{name: getattr(self, name) for name in _HEAD_FIELDS},
            "start": iso(self.start),
            "end": iso(self.end),
            **{name: getattr(self, name) for name in _SUBJECT_FIELDS},
            "flags": self.flags,
            "tried_users": self.tried_users,
            "authentication": sorted({line.auth for line in self.lines if line.auth}),
            "continues": self.continues,
            "lines": [
                {"ts": iso(line.ts), "identifier": line.ident, "pid": line.pid or None, "message": line.message}
                for line in self.lines
            ],
        }


class Group:
    """The lines of one event while it is open (then `event`: the event that holds them, merged or not)."""

    __slots__ = ("address", "event", "facts", "first_arrival", "first_ts", "last_arrival", "last_ts", "lines")
    __slots__ += ("ordered", "own")

    def __init__(self, line: Line, fact: Fact) -> None:
        self.lines: list[Line] = [line]
        self.facts: list[Fact] = [fact]
        self.first_ts = self.last_ts = line.ts
        self.first_arrival = line.arrival
        self.last_arrival = line.arrival
        self.own = fact.own_event
        self.ordered = True  # lines arrived in (ts, key) order: building needs no sort
        self.address = fact.source_ip if fact.kind in ADDRESS_KINDS else None
        self.event: Event | None = None

    def add(self, line: Line, fact: Fact) -> None:
        if self.address is None and fact.kind in ADDRESS_KINDS:
            self.address = fact.source_ip
        prev = self.lines[-1]
        if line.ts < prev.ts or (line.ts == prev.ts and line.key < prev.key):
            self.ordered = False
        self.lines.append(line)
        self.facts.append(fact)
        if line.ts > self.last_ts:
            self.last_ts = line.ts
        elif line.ts < self.first_ts:
            self.first_ts = line.ts
        if line.arrival < self.first_arrival:
            self.first_arrival = line.arrival
        elif line.arrival > self.last_arrival:
            self.last_arrival = line.arrival


# Kinds whose address the daemon itself wrote (PAM's rhost may be a resolved name of the same peer).
ADDRESS_KINDS = frozenset(k.value for k in FactKind if k.value.startswith("ssh_")) - {FactKind.SSH_PAM_FAIL.value}
# Failed tries inside one connection: a success after any of them, whatever the name, is suspicious.
FAILED_TRY_KINDS = frozenset(
    k.value
    for k in (
        FactKind.SSH_FAIL,
        FactKind.SSH_INVALID,
        FactKind.SSH_REFUSED,
        FactKind.AUTH_FAILURE,
        FactKind.SSH_PAM_FAIL,
    )
)


def event_id(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode(errors="replace")).hexdigest()[:20]


def _pid_order(pid: str) -> tuple[int, str]:
    return (len(pid), pid)


def _kinds(*kinds: FactKind) -> frozenset[str]:
    return frozenset(k.value for k in kinds)


@dataclass(frozen=True)
class TypeRule:
    """A group of lines is of `type` when it has one of `kinds`, or a PAM line of one of `services`, or
    `kind_and_service` together (all on an SSH daemon's lines when `ssh`), and none of `unless`.
    Its outcome is failure when it has one of `failure_kinds` (success otherwise), or else `outcome`."""

    type: EventType
    kinds: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()
    kind_and_service: tuple[str, str] | None = None
    ssh: bool = False
    unless: frozenset[str] = frozenset()
    failure_kinds: frozenset[str] | None = None
    outcome: str = "info"

    def matches(self, kinds: set[str], services: set[str], ssh: bool) -> bool:
        if self.ssh and not ssh:
            return False
        hit = not kinds.isdisjoint(self.kinds) or not services.isdisjoint(self.services)
        if not hit and self.kind_and_service is not None:
            hit = self.kind_and_service[0] in kinds and self.kind_and_service[1] in services
        return hit and kinds.isdisjoint(self.unless)


K = FactKind
_PAM_SESSION = _kinds(K.SESSION_OPEN, K.SESSION_CLOSE)


def _by_program(etype: EventType, done: FactKind, failed: FactKind) -> TypeRule:
    """A program's own lines or a PAM line of one of its services make an event of its type; a failure
    of its own or of PAM's authentication makes it a failure."""
    return TypeRule(etype, _kinds(done, failed), pam_services(etype), failure_kinds=_kinds(failed, K.AUTH_FAILURE))


# First match wins: the order is the precedence of what a group of lines is.
TYPE_RULES: tuple[TypeRule, ...] = (
    TypeRule(EventType.LOG_GAP, _kinds(K.LOG_GAP)),
    TypeRule(EventType.ACCOUNT_LOCKOUT, _kinds(K.LOCKOUT), outcome="failure"),
    TypeRule(EventType.ACCOUNT_CHANGE, _kinds(K.ACCOUNT), outcome="success"),
    TypeRule(EventType.POLKIT, _kinds(K.POLKIT_OK, K.POLKIT_FAIL), failure_kinds=_kinds(K.POLKIT_FAIL)),
    # refused after it authenticated (PAM account checks, a nologin file): sshd wrote "Accepted" first
    TypeRule(EventType.SSH_LOGIN, _kinds(K.SSH_REFUSED), ssh=True, outcome="failure"),
    TypeRule(EventType.SSH_LOGIN, _kinds(K.SSH_ACCEPT), ssh=True, outcome="success"),
    TypeRule(
        EventType.SSH_LOGIN,
        # a PAM failure in an SSH daemon's lines, whatever its PAM service is called (PAMServiceName, 9.8+)
        _kinds(K.SSH_FAIL, K.SSH_INVALID, K.SSH_REFUSED, K.SSH_ABANDON, K.AUTH_FAILURE, K.SSH_PAM_FAIL),
        ssh=True,
        outcome="failure",
    ),
    _by_program(EventType.SUDO, K.SUDO_CMD, K.SUDO_FAIL),
    _by_program(EventType.SU, K.SU_OK, K.SU_FAIL),
    _by_program(EventType.CONSOLE_LOGIN, K.CONSOLE_OK, K.CONSOLE_FAIL),
    _by_program(EventType.PRIVILEGE, K.PRIVILEGE_CMD, K.PRIVILEGE_FAIL),
    TypeRule(
        EventType.SSH_PREAUTH, _kinds(K.SSH_PREAUTH, K.SSH_DISCONNECT, K.SSH_CONNECT), ssh=True, unless=_PAM_SESSION
    ),
    TypeRule(EventType.SESSION, _kinds(K.SESSION_OPEN, K.SESSION_CLOSE, K.LOGIND)),
)


def event_type(kinds: set[str], services: set[str], ssh: bool) -> tuple[str, str]:
    """(type, outcome) of a group with these fact kinds and PAM services, by the first matching rule."""
    return _event_type(frozenset(kinds), frozenset(services), ssh)


@lru_cache(maxsize=4096)  # groups repeat a few combinations of kinds: the rules are read once for each
def _event_type(kinds: frozenset[str], services: frozenset[str], ssh: bool) -> tuple[str, str]:
    for rule in TYPE_RULES:
        if rule.matches(kinds, services, ssh):
            if rule.failure_kinds is not None:
                return rule.type.value, "failure" if not kinds.isdisjoint(rule.failure_kinds) else "success"
            return rule.type.value, rule.outcome
    return EventType.OTHER.value, "info"


# PAM lines only fill gaps the program's own statement left; they name the account in target_user.
_SECONDARY_KINDS = _kinds(K.AUTH_FAILURE, K.SSH_PAM_FAIL, K.SESSION_OPEN, K.SESSION_CLOSE, K.PAM_INFO)
_REASON_KINDS = _kinds(
    K.SSH_REFUSED, K.SSH_ABANDON, K.SUDO_FAIL, K.SU_FAIL, K.POLKIT_FAIL, K.LOCKOUT, K.ACCOUNT, K.LOG_GAP, K.LOGIND
) | _kinds(K.AUTH_FAILURE, K.PRIVILEGE_FAIL)  # a PAM module's refusal says which (pam_access, pam_listfile, …)
_PAM_USER_TYPES = frozenset({EventType.SSH_LOGIN.value, EventType.SESSION.value, EventType.CONSOLE_LOGIN.value})
_PAM_NAMES_USER = _kinds(K.SESSION_OPEN, K.AUTH_FAILURE)
# Types whose user, when the program's own line names none, is any line's (a PAM line's invoking user).
_USER_FROM_FACTS = frozenset({EventType.CONSOLE_LOGIN, EventType.SU, EventType.SUDO, EventType.PRIVILEGE})


def merge_fields(etype: str, facts: list[Fact], lines: list[Line]) -> Fact:
    """The program's own statement names user and target best; PAM lines only fill gaps
    (pam's `user=` is the target for su but the invoking user for sudo)."""
    secondary = [f for f in facts if f.kind in _SECONDARY_KINDS]
    ranked = [f for f in facts if f.kind not in _SECONDARY_KINDS] + secondary if secondary else facts
    out = Fact(etype)
    pam_names_user = etype in _PAM_USER_TYPES
    for fact in ranked:
        kind = fact.kind
        if fact.invalid_user:
            out.invalid_user = True
        if (pam_names_user and kind in _PAM_NAMES_USER) or (etype == "privilege" and kind == "auth_failure"):
            out.user = out.user or fact.target_user
        elif kind == "account":
            out.target_user = out.target_user or fact.target_user
            out.user = out.user or fact.user
        else:
            out.user = out.user or fact.user
            out.target_user = out.target_user or fact.target_user
        out.source_ip = out.source_ip or fact.source_ip
        out.source_port = out.source_port or fact.source_port
        out.method = out.method or fact.method
        if kind in _REASON_KINDS or (kind == "ssh_preauth" and etype == "ssh_preauth"):
            out.reason = out.reason or fact.reason
    if etype in _USER_FROM_FACTS and out.user is None:
        out.user = next((f.user for f in facts if f.user), None)
    if etype == "console_login":
        out.user = out.user or next((f.target_user for f in facts if f.target_user), None)
    if etype == "account_change" and out.user is None:
        uid = next((ln.loginuid for ln in lines if ln.loginuid and ln.loginuid != "4294967295"), None)
        if uid is not None:
            out.user = f"uid={uid}"
    return out


def _tried_users(facts: list[Fact]) -> list[str]:
    names: dict[str, None] = {}
    for fact in facts:
        if fact.kind in FAILED_TRY_KINDS:
            for name in (fact.user, fact.target_user):
                if name:
                    names[name] = None
    return list(names)


def _flags(
    lines: list[Line], truncated: bool, invalid_user: bool, after_failures: bool, ambiguous: bool = False
) -> list[str]:
    flags: list[str] = []  # kept sorted
    if after_failures:
        flags.append("after_failures")
    if ambiguous:
        flags.append("ambiguous")
    forged = False
    auth: set[str] = set()
    for ln in lines:
        if not forged and _forged(ln.ident, ln.comm, ln.exe):
            forged = True
        if ln.auth is not None:
            auth.add(ln.auth)
    if forged:
        flags.append("forged")
    if auth and any(a.startswith("forged_host") for a in auth):
        flags.append("forged_host")
    if invalid_user:
        flags.append("invalid_user")
    if truncated:
        flags.append("truncated")
    if auth:  # a record another host's key signed, or none proves: who wrote it is not known
        flags.append("unauthenticated")
    return flags


# One try each: sshd's own "Failed …" and refusal lines (PAM's lines repeat them).
_COUNTED_KINDS = _kinds(K.SSH_FAIL, K.SSH_REFUSED)
_NAMING_KINDS = _kinds(K.SSH_INVALID, K.AUTH_FAILURE, K.SSH_PAM_FAIL)


def _attempts(facts: list[Fact], kinds: set[str], user: str | None) -> int:
    """Failed tries of a failed SSH login. A connection that named an account and gave up is one try; one
    that never named any (a scanner's `Received disconnect … Bye Bye`) counts toward no brute-force incident."""
    attempts = sum(1 for f in facts if f.kind in _COUNTED_KINDS)
    return 1 if attempts == 0 and (user or not kinds.isdisjoint(_NAMING_KINDS)) else attempts


def is_key_probe(fact: Fact) -> bool:
    """A public key the server did not take: a client offers each key it holds in turn (ssh-agent), so these
    before an acceptance are the normal way in, not failed logins."""
    return fact.kind == "ssh_fail" and fact.method == "publickey"


def _key_probes(lines: list[Line], facts: list[Fact]) -> list[str]:
    """The key type and fingerprint of each key offered and not taken, as sshd logged them."""
    return [
        line.message.rpartition(" ssh2: ")[2][:200] if " ssh2: " in line.message else "(key not logged)"
        for line, fact in zip(lines, facts, strict=True)
        if is_key_probe(fact)
    ]


def _success_after_failures(lines: list[Line], facts: list[Fact], fields: Fact) -> bool:
    """Whether a successful login followed failed tries in its connection; keys offered before the accepted
    one are no failed tries: they become its detail (`fields.reason`)."""
    probes = _key_probes(lines, facts)
    if probes and fields.reason is None:
        fields.reason = f"{len(probes)} keys offered before the accepted one: {', '.join(probes)}"
    return any(f.kind in FAILED_TRY_KINDS and not is_key_probe(f) for f in facts)


def build_event(group: Group) -> Event:
    """The event a closed group of lines makes."""
    lines, facts = group.lines, group.facts
    if not group.ordered:
        pairs = sorted(zip(lines, facts, strict=True), key=lambda p: (p[0].ts, p[0].key))
        lines = [line for line, _ in pairs]
        facts = [fact for _, fact in pairs]
    first = lines[0]
    kinds: set[str] = set()
    services: set[str] = set()
    truncated = ambiguous = False
    for f in facts:
        kinds.add(f.kind)
        if f.service:
            services.add(f.service)
        truncated |= f.truncated
        ambiguous |= f.ambiguous
    ssh = False
    pids: set[str] = set()
    for ln in lines:
        ssh |= ln.ident in SSH_IDENTIFIERS
        if ln.pid:
            pids.add(ln.pid)
    etype, outcome = event_type(kinds, services, ssh)
    fields = merge_fields(etype, facts, lines)
    commands = [f.command for f in facts if f.command]
    attempts = _attempts(facts, kinds, fields.user) if etype == "ssh_login" and outcome == "failure" else 0
    after_failures = etype == "ssh_login" and outcome == "success" and _success_after_failures(lines, facts, fields)
    return Event(
        id=event_id(first.machine or first.host, first.boot, first.key),
        type=etype,
        outcome=outcome,
        host=first.host,
        machine_id=first.machine or None,
        boot_id=first.boot or None,
        pids=sorted(pids, key=_pid_order) if len(pids) > 1 else list(pids),
        start=first.ts,
        end=lines[-1].ts,  # sorted by time
        user=fields.user,
        target_user=fields.target_user,
        source_ip=fields.source_ip,
        source_port=fields.source_port,
        method=fields.method,
        command=" ".join(commands) if commands else None,
        flags=_flags(lines, truncated, fields.invalid_user, after_failures, ambiguous),
        tried_users=_tried_users(facts) if not kinds.isdisjoint(FAILED_TRY_KINDS) else [],
        lines=lines,
        reason=fields.reason,
        first_arrival=group.first_arrival,
        last_arrival=group.last_arrival,
        first_key=first.key,
        attempts=attempts,
        ssh=ssh,
    )
