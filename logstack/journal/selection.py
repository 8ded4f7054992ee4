"""Which journal lines analysis reads from an export: the same ones the senders forward."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from logstack.classify.classifier import HEARTBEAT_IDENTIFIER
from logstack.journal.identifiers import (
    DEFAULT_IDENTIFIERS,
    JOURNALD_IDENTIFIER,
    SUPPRESSION_PREFIX,
    forwarded_identifiers,
)

if TYPE_CHECKING:
    from logstack.site.inventory import Inventory


@dataclass(frozen=True)
class Selection:
    """The senders' filter: listed identifiers, journald's suppression notices, and heartbeats."""

    identifiers: frozenset[str]
    suppression_notices: bool = True

    @classmethod
    def of(cls, inventory: Inventory | None) -> Selection:
        """The selection the inventory's senders are rendered with; the defaults without one."""
        if inventory is None:
            return cls(frozenset(DEFAULT_IDENTIFIERS))
        senders = inventory.spec.senders
        return cls(frozenset(senders.identifiers), senders.forward_suppression_notices)

    def keeps(self, identifier: str, message: str) -> bool:
        if identifier in self.identifiers or identifier == HEARTBEAT_IDENTIFIER:
            return True
        return self.suppression_notices and identifier == JOURNALD_IDENTIFIER and message.startswith(SUPPRESSION_PREFIX)

    def identifier_bytes(self) -> frozenset[bytes]:
        """Identifiers (as they appear in journal JSON) whose lines may be kept."""
        names = [*forwarded_identifiers(self.identifiers, self.suppression_notices), HEARTBEAT_IDENTIFIER]
        return frozenset(name.encode() for name in names)
