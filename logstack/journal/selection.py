"""Which journal lines senders forward and analysis reads: one table, read by Python and written as VRL.

The senders' journald source matches `identifiers()` (journald's own identifier included when its
notices are forwarded), their filter transform runs `vrl()`, and analysis keeps a line of an export
when `keeps()` says so: all three come from `clauses()`, so the sender and the analysis cannot differ.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from logstack.base.errors import BadInputError
from logstack.base.validation import IDENTIFIER_RE
from logstack.classify.programs import DEFAULT_IDENTIFIERS
from logstack.journal.record import HEARTBEAT_IDENTIFIER

if TYPE_CHECKING:
    from logstack.site.inventory import Inventory

# journald's "Suppressed N messages" notices are forwarded too: a rate-limited sender is a log gap.
JOURNALD_IDENTIFIER = "systemd-journald"
SUPPRESSION_PREFIX = "Suppressed "


@dataclass(frozen=True)
class Clause:
    """Lines of these identifiers are kept; only those whose message starts with `prefix`, when it is set."""

    identifiers: tuple[str, ...]
    prefix: str | None = None


@dataclass(frozen=True)
class Selection:
    """The senders' filter: listed identifiers (in the inventory's order) and journald's suppression notices."""

    listed: tuple[str, ...]
    suppression_notices: bool = True
    _lookup: frozenset[str] = field(init=False, repr=False, compare=False)
    _prefixed: tuple[Clause, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        bad = [ident for ident in self.listed if not IDENTIFIER_RE.fullmatch(ident)]
        if bad:  # written into VRL: a quote, brace or non-ASCII character would change or break the program
            raise BadInputError(f"senders.identifiers: {bad[0][:40]!r} is not a journal identifier")
        object.__setattr__(self, "_lookup", frozenset(self.listed))
        object.__setattr__(self, "_prefixed", tuple(c for c in self.clauses() if c.prefix is not None))

    @classmethod
    def of(cls, inventory: Inventory | None) -> Selection:
        """The selection the inventory's senders are rendered with; the defaults without one."""
        if inventory is None:
            return cls(DEFAULT_IDENTIFIERS)
        senders = inventory.spec.senders
        return cls(tuple(senders.identifiers), senders.forward_suppression_notices)

    @property
    def identifiers(self) -> frozenset[str]:
        """The listed identifiers, as a set."""
        return self._lookup

    def clauses(self) -> tuple[Clause, ...]:
        """The filter as data: a line is kept when any clause keeps it."""
        notices = (Clause((JOURNALD_IDENTIFIER,), SUPPRESSION_PREFIX),) if self.suppression_notices else ()
        return (Clause(self.listed), *notices)

    def journal_identifiers(self) -> list[str]:
        """Identifiers the senders' journald source reads: every clause's, in order, once each."""
        return list(dict.fromkeys(ident for clause in self.clauses() for ident in clause.identifiers))

    def vrl(self) -> str:
        """The senders' filter condition in VRL."""
        parts = []
        for clause in self.clauses():
            if clause.prefix is None:
                parts.append(f"includes({json.dumps(list(clause.identifiers))}, ident)")
            else:
                names = " || ".join(f"ident == {json.dumps(ident)}" for ident in clause.identifiers)
                names = f"({names})" if len(clause.identifiers) > 1 else names
                parts.append(f"({names} && starts_with(msg, {json.dumps(clause.prefix)}))")
        condition = " || ".join(parts)
        return f'ident = string(.SYSLOG_IDENTIFIER) ?? ""\nmsg = string(.message) ?? ""\n{condition}\n'

    def keeps(self, identifier: str, message: str) -> bool:
        """Whether a sender forwards this line (its heartbeats are always read)."""
        if identifier in self._lookup or identifier == HEARTBEAT_IDENTIFIER:
            return True
        return any(identifier in c.identifiers and message.startswith(c.prefix) for c in self._prefixed)  # type: ignore[arg-type]

    def identifier_bytes(self) -> frozenset[bytes]:
        """Identifiers (as they appear in journal JSON) whose lines may be kept."""
        return frozenset(name.encode() for name in (*self.journal_identifiers(), HEARTBEAT_IDENTIFIER))
