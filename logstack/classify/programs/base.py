"""What the classifier knows of one program: the identifiers it logs under, the binaries that may write
them, how its lines are read, and the PAM services its sessions run under."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from logstack.classify.fact import Fact


@dataclass(frozen=True)
class Program:
    """A program whose journal lines the classifier reads.

    `binaries` maps each SYSLOG_IDENTIFIER the program logs under to the names its trusted _EXE (else
    _COMM) may have: a line under that identifier from any other binary is forged (`logger -t sudo …`).
    `parse` reads one message; None reads it by the program's rows of the message table alone.
    """

    name: str
    binaries: Mapping[str, frozenset[str]]
    parse: Callable[[str], Fact] | None = None
    unread_kind: str = "other"  # what a line no rule reads is, for a program read by its table rows
    pam: bool = False  # its pam_*(service:type) lines are read as PAM's
    pam_services: frozenset[str] = frozenset()  # PAM services its sessions run under
    event_type: str | None = None  # what a group of its PAM lines (by those services) is
    forwarded: bool = True  # senders forward its identifiers unless the inventory lists others
    table_fallback: bool = True  # a line its parser leaves unread is read by its rows of the message table

    @property
    def identifiers(self) -> tuple[str, ...]:
        return tuple(self.binaries)


def named_as_logged(*identifiers: str) -> dict[str, frozenset[str]]:
    """Identifiers written only by a binary of the same name."""
    return {ident: frozenset({ident}) for ident in identifiers}


def pam_program(
    name: str,
    binaries: Mapping[str, frozenset[str]],
    parse: Callable[[str], Fact],
    services: set[str],
    event_type: str,
    **more: bool,
) -> Program:
    """A program that logs through PAM, whose sessions run under `services` and make `event_type` events."""
    return Program(
        name, binaries, parse=parse, pam=True, pam_services=frozenset(services), event_type=event_type, **more
    )
