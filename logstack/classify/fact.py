"""What one journal line states (a fact), and the fact a message table row gives with the values it read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from logstack.classify.kinds import Subject

if TYPE_CHECKING:
    from logstack.classify.messages import Message


@dataclass(slots=True)
class Fact(Subject):
    """What one line says. `kind` drives the event type; the rest fills event fields."""

    kind: str
    tty: str | None = None
    cwd: str | None = None
    invalid_user: bool = False
    own_event: bool = False  # lines of long-lived daemons are events of their own
    service: str | None = None  # the PAM service of a pam_* line
    truncated: bool = False  # longer than any rule reads: reported as it is, flagged
    ambiguous: bool = False  # fields whose values may hold their own delimiters: read, but flagged


# Kinds a table row gives that are events of their own (as the parsers make them).
OWN_EVENT_KINDS = frozenset({"lockout", "account", "logind", "log_gap"})


# Kinds whose whole message is the reason an event shows (no rule names a shorter one).
WHOLE_TEXT_KINDS = frozenset({"ssh_preauth"})


def table_fact(row: Message, values: tuple[str | None, ...], text: str, preauth: bool = False) -> Fact:
    """The fact a message table row states, with the values its pattern read (in rules.FACT_SLOTS order)."""
    kind = row.kind_preauth if preauth and row.kind_preauth else row.kind
    user, target, address, port, method, tty, command, reason = values
    reason = row.reason or reason
    if kind == "ssh_abandon":  # the client gave up or was cut off before it authenticated
        reason = "disconnected before authenticating" + (f": {reason}" if reason else "")
    fact = Fact(
        kind,
        user=user,
        source_ip=address,
        source_port=int(port) if port and len(port) <= 5 and int(port) <= 65535 else None,
        method=method or row.method,
        reason=reason or (text if kind in WHOLE_TEXT_KINDS else None),
        invalid_user=row.invalid_user or kind == "ssh_invalid",
    )
    if target is not None or tty is not None or command is not None:  # not on sshd's lines: set apart
        fact.target_user, fact.tty, fact.command = target, tty, command
    if kind in OWN_EVENT_KINDS:
        fact.own_event = True
    return fact
