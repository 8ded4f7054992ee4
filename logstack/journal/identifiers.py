"""Journal SYSLOG_IDENTIFIERs the senders forward by default (rendering and analysis share them)."""

from __future__ import annotations

from collections.abc import Iterable

# journald's "Suppressed N messages" notices are forwarded too: a rate-limited sender is a log gap.
JOURNALD_IDENTIFIER = "systemd-journald"
SUPPRESSION_PREFIX = "Suppressed "

# shadow-utils' account tools: their lines are account changes (analysis reads them alike)
ACCOUNT_IDENTIFIERS: tuple[str, ...] = (
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
)

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
    *ACCOUNT_IDENTIFIERS,
    "pkexec",
    "polkitd",
)


def forwarded_identifiers(identifiers: Iterable[str], suppression_notices: bool) -> list[str]:
    """Identifiers the senders' journald source matches: those listed, plus journald for its notices."""
    idents = list(identifiers)
    if suppression_notices and JOURNALD_IDENTIFIER not in idents:
        idents.append(JOURNALD_IDENTIFIER)
    return idents
