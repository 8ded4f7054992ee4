"""OpenSSH's sshd (and sshd-session, sshd-auth since 9.8): read by the message table's rows alone."""

from __future__ import annotations

import re

from logstack.classify import rules
from logstack.classify.fact import Fact, table_fact
from logstack.classify.messages import Message
from logstack.classify.programs.base import Program

_SSH_BUCKETS = rules.TABLE_RULES["sshd"]
# `ADDR port N: `: a disconnect line names sshd's peer once; a client-chosen name or text may add more
ADDRESS_COLON = re.compile(r" [0-9A-Fa-f:.]++(?:%\S+)? port \d++: ")
# `… from ADDR port N ssh1: ruser NAME` (before 7.4p1): the user and the remote user are both a client's text,
# so the line is read only when it names one `from ADDR port N`
AUTH_FROM = re.compile(r" from [0-9A-Fa-f:.]++(?:%\S+)? port \d++")


def _ssh(message: str) -> Fact:
    text, preauth = _strip_ssh(message)
    found = rules.match_buckets(_SSH_BUCKETS, text)
    if found is None:
        return Fact("ssh_other", reason=text)
    return row_fact(*found, text, preauth)


def row_fact(row: Message, values: tuple[str | None, ...], text: str, preauth: bool) -> Fact:
    """The fact of a line of sshd's that `row` matched with `values` (the line without `[preauth]`)."""
    if (
        (row.short_auth_log and " ssh2: " in text)
        or (row.one_address and len(ADDRESS_COLON.findall(text)) != 1)
        or (row.method == "rhosts-rsa" and len(AUTH_FROM.findall(text)) != 1)
    ):
        # the line may be a longer shape whose client-chosen tail (a GSSAPI name, a certificate ID) ends
        # like this one: which `from ADDR port N` is sshd's is not known, so no address or name is read
        fact = table_fact(row, (None,) * len(values), text, preauth)
        fact.ambiguous = True
        return fact
    return table_fact(row, values, text, preauth)


def _strip_ssh(message: str) -> tuple[str, bool]:
    """The message as the table holds it, and whether the monitor marked it `[preauth]`."""
    preauth = message.endswith(" [preauth]")
    if preauth:
        message = message[: -len(" [preauth]")]
    if message.startswith(("error: ", "fatal: ", "Critical: ")):
        message = message.split(" ", 1)[1]
    return message, preauth


# OpenSSH >= 9.8 logs as sshd-session (and sshd-auth); the seed procedure's list missed both. Each may
# also run under an older name on hosts that kept a wrapper.
PROGRAM = Program(
    "openssh",
    {
        "sshd": frozenset({"sshd", "sshd-session", "sshd-auth"}),
        "sshd-session": frozenset({"sshd-session", "sshd"}),
        "sshd-auth": frozenset({"sshd-auth", "sshd"}),
    },
    parse=_ssh,
    pam=True,
    table_fallback=False,  # its rows are already all it reads
)
