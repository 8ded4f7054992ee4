"""The programs the classifier reads, in the order senders forward their identifiers: one module each.

A new program is one module here (its identifiers, binaries and, if its rows alone do not read it, a
parser), its line in `PROGRAMS`, and its rows in the message table (`classify/messages/*.yaml`).
"""

from __future__ import annotations

from logstack.classify.programs import doas, journald, login, logind, openssh, polkit, run0, shadow, su, sudo
from logstack.classify.programs.base import Program

PROGRAMS: tuple[Program, ...] = (
    openssh.PROGRAM,
    sudo.PROGRAM,
    su.PROGRAM,
    login.PROGRAM,
    logind.PROGRAM,
    shadow.PROGRAM,
    polkit.PKEXEC,
    polkit.POLKITD,
    journald.PROGRAM,
    doas.PROGRAM,
    run0.PROGRAM,
)

BY_IDENTIFIER: dict[str, Program] = {ident: p for p in PROGRAMS for ident in p.identifiers}
# What senders forward when the inventory lists nothing else (journald's notices are added by the filter).
DEFAULT_IDENTIFIERS: tuple[str, ...] = tuple(ident for p in PROGRAMS if p.forwarded for ident in p.identifiers)
SSH_IDENTIFIERS = frozenset(openssh.PROGRAM.identifiers)


def pam_services(event_type: str) -> frozenset[str]:
    """The PAM services whose lines make events of this type (`sudo-i` a sudo event, `doas` a privilege one)."""
    return frozenset().union(*(p.pam_services for p in PROGRAMS if p.event_type == event_type))
