"""Journal SYSLOG_IDENTIFIERs the senders forward by default (rendering and analysis share them)."""

from __future__ import annotations

from collections.abc import Iterable

# journald's "Suppressed N messages" notices are forwarded too: a rate-limited sender is a log gap.
JOURNALD_IDENTIFIER = "systemd-journald"
SUPPRESSION_PREFIX = "Suppressed "

# OpenSSH >= 9.8 logs as sshd-session (and sshd-auth); the seed procedure's list missed both.
DEFAULT_IDENTIFIERS: tuple[str, ...] = (
    "sshd",
    "sshd-session",
    "sshd-auth",
    "sudo",
    "su",
    "runuser",
    "login",
    "systemd-logind",
    "useradd",
    "usermod",
    "userdel",
    "groupadd",
    "groupdel",
    "groupmod",
    "gpasswd",
    "passwd",
    "chpasswd",
    "chage",
    "chfn",
    "chsh",
    "pkexec",
    "polkitd",
)


def forwarded_identifiers(identifiers: Iterable[str], suppression_notices: bool) -> list[str]:
    """Identifiers the senders' journald source matches: those listed, plus journald for its notices."""
    idents = list(identifiers)
    if suppression_notices and JOURNALD_IDENTIFIER not in idents:
        idents.append(JOURNALD_IDENTIFIER)
    return idents
