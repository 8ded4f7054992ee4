r"""The classifier's rules as data: each a pattern and the fact kind (or label) it yields.

Every pattern has at most one unbounded part that can trade characters with its neighbours: names use
classes that exclude their delimiter, and runs that end at a space or at the end are possessive (`\S++`,
`\d++`: never given back), so matching costs time linear in the message. Any local user can put any
text in a login program's line (`logger -t usermod ...`).
"""

from __future__ import annotations

import re

from logstack.analyze.messages import Message, literal_weight, programs, rows_of

# Rules from the message table (messages/*.yaml): each row's format compiled. sshd's lines are read by
# them alone; another program's (or PAM module's) rows read what its parser here leaves unread. They are
# looked up by the message's first two words, then by its first word alone (formats whose second word is
# a value), then among formats that begin with a value; within a bucket the most literal format is tried
# first, so `Failed password for invalid user %s` wins over `Failed password for %s`.
TableRule = tuple[re.Pattern[str], Message]
Buckets = dict[tuple[str, str | None], list[TableRule]]


def _buckets(program: str) -> Buckets:
    buckets: Buckets = {}
    for message in rows_of(program):
        if not message.compiled:
            continue
        words = message.format.split(" ", 2)
        first = words[0]
        second = words[1] if len(words) > 1 and "%" not in words[1] else None
        if "%" in first:
            first, second = "", None
        buckets.setdefault((first, second), []).append((re.compile(message.pattern()), message))
    for rules in buckets.values():
        rules.sort(key=lambda rule: -literal_weight(rule[1].format, rule[1].fields))
    return buckets


TABLE_RULES: dict[str, Buckets] = {program: _buckets(program) for program in programs()}


def table_rule(program: str, text: str) -> tuple[re.Match[str], Message] | None:
    """The first table row of `program` whose pattern matches `text`."""
    buckets = TABLE_RULES.get(program)
    if not buckets:
        return None
    words = text.split(" ", 2)
    for key in ((words[0], words[1] if len(words) > 1 else None), (words[0], None), ("", None)):
        for pattern, message in buckets.get(key, ()):
            match = pattern.match(text)
            if match is not None:
                return match, message
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

SUDO_RE = re.compile(r"^\s*+(?P<user>.+?) : (?P<rest>.*)$")
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
