"""Journal SYSLOG_IDENTIFIERs the senders forward by default (rendering and analysis share them)."""

from __future__ import annotations

# journald's "Suppressed N messages" notices are forwarded too: a rate-limited sender is a log gap.
JOURNALD_IDENTIFIER = "systemd-journald"

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
    "pkexec",
    "polkitd",
)
