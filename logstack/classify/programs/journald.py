"""systemd-journald: its notices of suppressed (lost) messages."""

from __future__ import annotations

from logstack.classify import rules
from logstack.classify.fact import Fact
from logstack.classify.programs.base import Program


def _journald(message: str) -> Fact:
    match = rules.SUPPRESSED.match(message)
    if match:
        return Fact("log_gap", reason=message, own_event=True)
    return Fact("journald_other", reason=message, own_event=True)


# Forwarded only as its suppression notices (journal.selection): a rate-limited sender is a log gap.
PROGRAM = Program(
    "systemd-journald",
    {"systemd-journald": frozenset({"systemd-journal", "systemd-journald"})},
    parse=_journald,
    forwarded=False,
)
