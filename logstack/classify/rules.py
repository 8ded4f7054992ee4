r"""The classifier's rules as data: the message table's rows compiled (messages/*.yaml, with the source
location of each format), and the patterns of the programs' own parsers, each with the fact kind it yields.

Every pattern has at most one unbounded part that can trade characters with its neighbours: names use
classes that exclude their delimiter, and runs that end at a space or at the end are possessive (`\S++`,
`\d++`: never given back), so matching costs time linear in the message. Any local user can put any
text in a login program's line (`logger -t usermod ...`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from logstack.classify.messages import Message, programs, rows_of

# Rules from the message table (messages/*.yaml): each row's format compiled. sshd's lines are read by
# them alone; another program's (or PAM module's) rows read what its parser here leaves unread. They are
# looked up by the message's first two words, then by its first word alone (formats whose second word is
# a value), then among formats that begin with a value. A bucket is one pattern, its rows as alternatives
# in order of how much fixed text they check, so `Failed password for invalid user %s` wins over `Failed
# password for %s` and one match call tries them all.

# What a parser says of a line it leaves unread; a row of such a kind adds nothing, except where it keeps
# a format that begins with a text value (pam_ldap's `%s; user=%s`) from taking a line it does not describe.
UNREAD_KINDS = frozenset(
    {"ssh_other", "sudo_other", "su_other", "login_other", "logind_other", "account_other", "polkit_other"}
    | {"privilege_other"}
    | {"pam_info", "other"}
)
_GROUP = re.compile(r"\(\?P<(\w+)>")


_ATTRIBUTES = {"ip": "source_ip", "host": "source_ip", "port": "source_port", "actor": "user", "target": "target_user"}


def _attribute(name: str, message: Message) -> str:
    """The fact attribute a value fills. `user` is the account acted on (the target) in a PAM module's line
    and where another value names who acted (`user %s added by %s`)."""
    if name == "user":
        acted_on = message.pam_type is not None or "actor" in message.fields
        return "target_user" if acted_on else "user"
    return _ATTRIBUTES.get(name, name)


# The fact attributes a row's values fill, in this order: a row maps each to its value's group, or -1.
FACT_SLOTS = ("user", "target_user", "source_ip", "source_port", "method", "tty", "command", "reason")


@dataclass(frozen=True)
class Bucket:
    """Rows sharing their first words, as one alternation in order of how much fixed text each checks."""

    pattern: re.Pattern[str]
    rows: dict[int, tuple[Message, tuple[int, ...]]]  # outer group number → row, the group of each FACT_SLOTS

    @classmethod
    def of(cls, messages: list[Message]) -> Bucket:
        messages = sorted(messages, key=lambda m: -m.weight)
        alternatives, rows, group = [], {}, 1
        for index, message in enumerate(messages):
            body = message.pattern().removeprefix("^")
            names = _GROUP.findall(body)
            body = _GROUP.sub(lambda m, i=index: f"(?P<g{i}_{m.group(1)}>", body)
            alternatives.append(f"({body})")
            attributes = [_attribute(name, message) for name in names]
            slots = tuple(group + 1 + attributes.index(slot) if slot in attributes else 0 for slot in FACT_SLOTS)
            rows[group] = (message, slots)
            group += 1 + len(names)
        # a last group that never takes part: what a row does not read is read from it, as None, in the
        # same C call as the rest
        rows = {start: (message, tuple(i or group for i in slots)) for start, (message, slots) in rows.items()}
        # DOTALL: a value may hold any character a hostile line carries (sshd escapes control characters,
        # a forged line need not), and `\Z` ends a line even before a final newline
        return cls(re.compile("^(?:" + "|".join(alternatives) + ")(?:(?!)())?", re.DOTALL), rows)

    def match(self, text: str) -> tuple[Message, tuple[str | None, ...]] | None:
        """The row that matches `text` first, and its values in FACT_SLOTS order (None: not read)."""
        found = self.pattern.match(text)
        if found is None:
            return None
        message, slots = self.rows[found.lastindex]  # type: ignore[index]
        return message, found.group(*slots)


def _buckets(program: str) -> dict[str, Bucket]:
    return buckets_of(rows_of(program))


def buckets_of(table_rows: tuple[Message, ...]) -> dict[str, Bucket]:
    """One program's rows as buckets by first words (what `match_buckets` looks up)."""
    grouped: dict[str, list[Message]] = {}
    rows = [m for m in table_rows if m.compiled]
    catch_all = any(m.format.startswith(("%s", "%.")) and m.kind not in UNREAD_KINDS for m in rows)
    for message in rows:
        if message.kind in UNREAD_KINDS and not catch_all:
            continue
        words = message.format.split(" ", 2)
        if words[0].startswith("%") and message.format[1:2] in "diu":
            key = "0"  # begins with a number
        elif words[0].startswith("%"):
            key = ""
        elif "%" in words[0] and words[0].split("%", 1)[0].isalpha():
            key = words[0].split("%", 1)[0]  # `password%s changed`: a line's first word is `password`
        elif "%" in words[0]:
            key = ""
        elif len(words) > 1 and "%" not in words[1]:
            key = f"{words[0]} {words[1]}"
        else:
            key = words[0]
        grouped.setdefault(key, []).append(message)
    return {key: Bucket.of(rows) for key, rows in grouped.items()}


class _Rules(dict[str, dict[str, Bucket]]):
    """A program's buckets, compiled the first time one of its lines is read (start-up stays short)."""

    def __missing__(self, program: str) -> dict[str, Bucket]:
        if program not in _PROGRAMS:
            return {}  # not kept: any local user can log under as many names as they like
        buckets = _buckets(program)
        self[program] = buckets
        return buckets


_PROGRAMS = frozenset(programs())
TABLE_RULES: dict[str, dict[str, Bucket]] = _Rules()


def table_rule(program: str, text: str) -> tuple[Message, tuple[str | None, ...]] | None:
    """The first row of `program` whose pattern matches `text`, and its values in FACT_SLOTS order."""
    buckets = TABLE_RULES[program]
    return match_buckets(buckets, text) if buckets else None


def match_buckets(buckets: dict[str, Bucket], text: str) -> tuple[Message, tuple[str | None, ...]] | None:
    """The first row of these buckets that matches `text`: by its first two words, its first, then a value."""
    first = text.find(" ")
    second = text.find(" ", first + 1) if first >= 0 else -1
    bucket = buckets.get(text[:second] if second >= 0 else text)
    if bucket is not None and (found := bucket.match(text)) is not None:
        return found
    # a line beginning with a digit may be a number's format or a text value's (a name like `0day`)
    for key in (text[:first] if first >= 0 else text, *(("0", "") if text[:1].isdigit() else ("",))):
        bucket = buckets.get(key)
        if bucket is not None and (found := bucket.match(text)) is not None:
            return found
    return None


# pam_unix / pam_faillock lines, any service: pam_unix(sshd:auth): ...
PAM_RE = re.compile(r"^(?P<module>pam_\w+)\((?P<service>[\w-]+):(?P<type>\w+)\): (?P<rest>.*)$")
SESSION_OPENED = re.compile(
    r"^session opened for user (?P<user>[^\s(]+)(?:\(uid=\d++\))? by (?P<by>[^\s(]*)(?:\(uid=(?P<byuid>\d++)\))?$"
)
SESSION_CLOSED = re.compile(r"^session closed for user (?P<user>[^\s(]+)(?:\(uid=\d++\))?$")
# pam_unix support.c: the first failure, and on closing the handle `N more authentication failure(s);`
AUTH_FAILURE = re.compile(r"^(?:\d++ more )?authentication failures?+;(?P<kv>.*)$")
FAILLOCK = re.compile(r"^Consecutive login failures for user (?P<user>.+?) account temporarily locked")
PASSWORD_CHANGED = re.compile(r"^password changed for (?P<user>.+)$")
KV = re.compile(r"(?<!\w)(\w++)=(\S*+)")

SUDO_FAILURES = (
    ("incorrect password attempt", "incorrect password"),
    ("user NOT in sudoers", "not in sudoers"),
    ("user NOT authorized on host", "not allowed on host"),
    ("command not allowed", "command not allowed"),
    ("a password is required", "password required"),
)

SU_OK = re.compile(r"^(?:\+ )?\(to (?P<target>[^\s)]+)\) (?P<user>\S++) on (?P<tty>\S++)$")
SU_FAIL = re.compile(r"^(?:FAILED SU|- ) ?\(to (?P<target>[^\s)]+)\) (?P<user>\S++) on (?P<tty>\S++)$")
SU_LEGACY = re.compile(r"^FAILED su for (?P<target>\S++) by (?P<user>.+)$")

LOGIN_ROOT = re.compile(r"^ROOT LOGIN\s+ON '?(?P<tty>[^\s']+)'?(?: FROM '?(?P<ip>[^\s']+)'?)?", re.I)
LOGIN_OK = re.compile(r"^LOGIN ON '?(?P<tty>[^\s']+)'? BY '?(?P<user>.+?)'?(?: FROM '?(?P<ip>[^\s']+)'?)?$", re.I)
LOGIN_FAIL = re.compile(
    r"^FAILED LOGIN \(?\d++\)? (?:ON|FROM) '?(?P<tty>[^\s']+)'? (?:FROM '?(?P<ip>[^\s']+)'? )?FOR '?(?P<user>.+?)'?,",
    re.I,
)

LOGIND_NEW = re.compile(r"^New session (?P<session>\S++) of user (?P<user>.+?)\.$")
LOGIND_END = re.compile(r"^(?:Removed session|Session) (?P<session>\S+?)(?: logged out)?\.")

ACCOUNT_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^new user: name=(?P<target>[^,]+),"), "user created"),
    (re.compile(r"^new group: name=(?P<target>[^,]+),"), "group created"),
    (re.compile(r"^group added to \S++: name=(?P<target>[^,]+)"), "group created"),
    (re.compile(r"^delete user '(?P<target>.+)'$"), "user deleted"),
    (re.compile(r"^removed group '(?P<target>.+?)' owned by"), "group deleted"),
    (re.compile(r"^group '(?P<target>.+?)' removed"), "group deleted"),
    (re.compile(r"^change user '(?P<target>.+?)' password$"), "password changed"),
    (re.compile(r"^changed password expiry for (?P<target>.+)$"), "expiry changed"),
    (re.compile(r"^add '(?P<target>[^']+)' to (?:shadow )?group '(?P<group>[^']+)'$"), "added to group"),
    (re.compile(r"^delete '(?P<target>[^']+)' from (?:shadow )?group '(?P<group>[^']+)'$"), "removed from group"),
    (re.compile(r"^user (?P<target>.+?) added by (?P<actor>\S++) to group (?P<group>\S++)$"), "added to group"),
    (re.compile(r"^user (?P<target>.+?) removed by (?P<actor>\S++) from group (?P<group>\S++)$"), "removed from group"),
    (re.compile(r"^change user '(?P<target>[^']+)' (?P<what>\S++) from "), "user changed"),
    (re.compile(r"^lock user '(?P<target>.+?)' password$"), "password locked"),
    (re.compile(r"^unlock user '(?P<target>.+?)' password$"), "password unlocked"),
]

PKEXEC_OK = re.compile(
    r"^(?P<user>[^\s:]+): Executing command \[USER=(?P<target>[^\]]*)\] \[TTY=(?P<tty>[^\]]*)\] "
    r"\[CWD=(?P<cwd>[^\]]*)\] \[COMMAND=(?P<command>.*)\]$"
)
PKEXEC_FAIL = re.compile(
    r"^(?P<user>[^\s:]+): (?P<reason>Error executing command as another user: [^\[]*?)"
    r"(?: \[USER=(?P<target>[^\]]*)\])?(?: \[TTY=(?P<tty>[^\]]*)\])?"
    r"(?: \[CWD=(?P<cwd>[^\]]*)\])?(?: \[COMMAND=(?P<command>.*)\])?$"
)
POLKITD = re.compile(
    r"^Operator of (?P<subject>\S++) (?P<outcome>successfully authenticated|FAILED to authenticate)"
    r"(?: as (?P<as>\S++))? to gain (?:[\w-]+ )?authorization for action (?P<action>\S++)"
    r".*?\(owned by unix-user:(?P<user>[^()\s]+)\)"
)
SUPPRESSED = re.compile(r"^Suppressed (?P<count>\d++) messages from (?P<unit>\S++)")
