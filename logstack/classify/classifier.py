"""Turn one journal line into a fact: what happened, to whom, from where.

Each program's module in `programs/` says how its lines are read: by the message table's rows alone (sshd,
doas), or by its parser first, then by its rows. Formats covered: OpenSSH (including >= 9.8's sshd-session and
sshd-auth, `[preauth]` suffixes and `error:`/`fatal:` prefixes), PAM (>= 1.4's `alice(uid=1000)` and the
older form), sudo (padded user names, `(command continued)`), su/runuser, login, systemd-logind,
shadow-utils, pam_faillock, polkit, and journald's suppression notices.
"""

from __future__ import annotations

import re

from logstack.classify import rules
from logstack.classify.fact import Fact, table_fact
from logstack.classify.programs import BY_IDENTIFIER, PROGRAMS
from logstack.classify.programs.pam import read_pam

# No program logstack reads writes a login line this long (sudo splits its own at 960 bytes); rules stop
# reading here so that no message, however built, costs more than a few milliseconds.
MAX_RULE_INPUT = 2048


# Solaris and illumos put a message id before the text: `[ID 800047 auth.info] Failed password …` (illumos-gate
# usr/src/lib/libc/port/gen/syslog.c vsyslog(): "[ID %u FACILITY_AND_PRIORITY] ", the log driver names both).
_SYSLOG_ID = re.compile(r"\[ID \d++ [a-z0-9]++\.[a-z]++\] ")


_UNREAD_KINDS = rules.UNREAD_KINDS

# Binaries that may legitimately log under each identifier (the journal's trusted _COMM).
EXPECTED_COMM: dict[str, frozenset[str]] = {ident: names for p in PROGRAMS for ident, names in p.binaries.items()}


def _by_rows(identifier: str, message: str, unread_kind: str) -> Fact:
    """A line of a program read by its message table rows alone."""
    found = rules.table_rule(identifier, message)
    return table_fact(*found, message) if found is not None else Fact(unread_kind, reason=message)


def classify(identifier: str, message: str) -> Fact:
    """The fact a line states; unknown identifiers give kind `other`."""
    program = BY_IDENTIFIER.get(identifier)
    if program is None:
        return Fact("other", reason=message)
    if message.startswith("[ID "):
        message = _SYSLOG_ID.sub("", message, count=1) if _SYSLOG_ID.match(message) else message
    if len(message) > MAX_RULE_INPUT:
        return Fact("other", reason="message longer than the rules read", own_event=True, truncated=True)
    if program.pam:
        pam = read_pam(message)
        if pam is not None:
            return pam
    fact = program.parse(message) if program.parse is not None else _by_rows(identifier, message, program.unread_kind)
    if fact.kind in _UNREAD_KINDS and program.parse is not None and program.table_fallback:
        found = rules.table_rule(identifier, message)
        if found is not None and found[0].kind not in _UNREAD_KINDS:
            return table_fact(*found, message)
    return fact


# Where the login programs' binaries live: directories only root can write to. Any user can name a copy of
# `logger` sshd-session or set a process's _COMM (prctl PR_SET_NAME); the kernel's _EXE path tells.
SYSTEM_PREFIXES = ("/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/", "/libexec/")


def is_forged(identifier: str, comm: str | None, exe: str | None) -> bool:
    """True when the trusted _EXE (else _COMM) does not match the claimed identifier (`logger -t sshd ...`)."""
    expected = EXPECTED_COMM.get(identifier)
    if expected is None:
        return False
    if comm is None and exe is None:
        # journald adds both to every local process's line; a process gone before journald read /proc
        # (a `logger` that exits at once) leaves neither: no login daemon's line looks like that
        return True
    if exe is not None:
        return not (exe.startswith(SYSTEM_PREFIXES) and ".." not in exe and exe.rsplit("/", 1)[-1] in expected)
    return comm not in expected
