"""Turn one journal line into a fact: what happened, to whom, from where.

Formats covered: OpenSSH (including >= 9.8's sshd-session / sshd-auth, `[preauth]` suffixes and
`error:`/`fatal:` prefixes), PAM (>= 1.4's `alice(uid=1000)` and the older form), sudo (padded user
names, `(command continued)`), su/runuser, login, systemd-logind, shadow-utils, pam_faillock, polkit,
and journald's suppression notices.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

SSH_IDENTIFIERS = frozenset({"sshd", "sshd-session", "sshd-auth"})
ACCOUNT_IDENTIFIERS = frozenset(
    {"useradd", "usermod", "userdel", "groupadd", "groupdel", "groupmod", "gpasswd", "passwd", "chpasswd", "chage"}
)
HEARTBEAT_IDENTIFIER = "logstack-heartbeat"


@dataclass(slots=True)
class Fact:
    """What one line says. `kind` drives the event type; the rest fills event fields."""

    kind: str
    user: str | None = None
    target_user: str | None = None
    source_ip: str | None = None
    source_port: int | None = None
    method: str | None = None
    command: str | None = None
    tty: str | None = None
    cwd: str | None = None
    reason: str | None = None
    invalid_user: bool = False
    own_event: bool = False  # lines of long-lived daemons are events of their own
    service: str | None = None  # the PAM service of a pam_* line
    truncated: bool = False  # longer than any rule reads: reported as it is, flagged


# No program logstack reads writes a login line this long (sudo splits its own at 960 bytes); rules stop
# reading here so that no message, however built, costs more than a few milliseconds.
MAX_RULE_INPUT = 2048


_ADDR = r"(?P<ip>[0-9A-Fa-f:.]+(?:%\w+)?)"
_PORT = r"port (?P<port>\d+)"

_SSH_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"^Accepted (?P<method>\S+) for (?P<user>.+?) from {_ADDR} {_PORT}"), "ssh_accept"),
    (re.compile(rf"^Failed (?P<method>\S+) for (?P<inv>invalid user )?(?P<user>.*?) from {_ADDR} {_PORT}"), "ssh_fail"),
    (re.compile(rf"^Invalid user (?P<user>.*?) from {_ADDR} {_PORT}"), "ssh_invalid"),
    (
        re.compile(
            rf"^maximum authentication attempts exceeded for (?P<inv>invalid user )?(?P<user>.*?) from {_ADDR} {_PORT}"
        ),
        "ssh_fail",
    ),
    (re.compile(r"^PAM: Authentication failure for (?P<inv>illegal user )?(?P<user>.*?) from (?P<ip>\S+)"), "ssh_fail"),
    (
        re.compile(
            r"^Disconnecting (?P<inv>invalid user )?(?:authenticating user )?(?P<user>.*?) "
            rf"{_ADDR} {_PORT}: Too many authentication failures"
        ),
        "ssh_fail",
    ),
    (
        re.compile(
            rf"^Connection (?:closed|reset) by (?P<inv>invalid |authenticating )user (?P<user>.*?) {_ADDR} {_PORT}"
        ),
        "ssh_disconnect",
    ),
    (
        re.compile(rf"^Disconnected from (?P<inv>invalid |authenticating )user (?P<user>.*?) {_ADDR} {_PORT}"),
        "ssh_disconnect",
    ),
    (re.compile(rf"^Disconnected from user (?P<user>.*?) {_ADDR} {_PORT}"), "ssh_disconnect"),
    (re.compile(rf"^Received disconnect from {_ADDR} {_PORT}:\d+: (?P<reason>.*)"), "ssh_disconnect"),
    (re.compile(rf"^Connection (?:closed|reset) by {_ADDR} {_PORT}"), "ssh_preauth"),
    (re.compile(rf"^Disconnected from {_ADDR} {_PORT}"), "ssh_preauth"),
    (re.compile(rf"^Timeout before authentication for {_ADDR} {_PORT}"), "ssh_preauth"),
    (re.compile(rf"^Unable to negotiate with {_ADDR} {_PORT}: (?P<reason>.*)"), "ssh_preauth"),
    (re.compile(rf"^banner exchange: Connection from {_ADDR} {_PORT}: (?P<reason>.*)"), "ssh_preauth"),
    (re.compile(r"^kex_exchange_identification: (?P<reason>.*)"), "ssh_preauth"),
    (re.compile(rf"^ssh_dispatch_run_fatal: Connection from {_ADDR} {_PORT}: (?P<reason>.*)"), "ssh_preauth"),
    (re.compile(r"^kex_protocol_error: (?P<reason>.*)"), "ssh_preauth"),
    (re.compile(r"^Bad protocol version identification (?P<reason>.*)"), "ssh_preauth"),
    (re.compile(rf"^Did not receive identification string from {_ADDR}(?: {_PORT})?"), "ssh_preauth"),
    (re.compile(rf"^Connection from {_ADDR} {_PORT} on \S+ port \d+"), "ssh_connect"),
    (re.compile(rf"^Postponed (?P<method>\S+) for (?P<user>.+?) from {_ADDR} {_PORT}"), "ssh_info"),
    (re.compile(rf"^Starting session: (?P<reason>.*?) for (?P<user>\S+) from {_ADDR} {_PORT}"), "ssh_info"),
]

# Rules by the message's first word: one dict lookup instead of trying every pattern.
_SSH_BY_WORD: dict[str, list[tuple[re.Pattern[str], str]]] = {}
for _pattern, _kind in _SSH_RULES:
    _SSH_BY_WORD.setdefault(_pattern.pattern[1:].split(" ", 1)[0], []).append((_pattern, _kind))

# pam_unix / pam_faillock lines, any service: pam_unix(sshd:auth): ...
_PAM_RE = re.compile(r"^(?P<module>pam_\w+)\((?P<service>[\w-]+):(?P<type>\w+)\): (?P<rest>.*)$")
_SESSION_OPENED = re.compile(
    r"^session opened for user (?P<user>[^\s(]+)(?:\(uid=\d+\))? by (?P<by>[^\s(]*)(?:\(uid=(?P<byuid>\d+)\))?$"
)
_SESSION_CLOSED = re.compile(r"^session closed for user (?P<user>[^\s(]+)(?:\(uid=\d+\))?$")
_AUTH_FAILURE = re.compile(r"^authentication failure;(?P<kv>.*)$")
_FAILLOCK = re.compile(r"^Consecutive login failures for user (?P<user>.+?) account temporarily locked")
_PASSWORD_CHANGED = re.compile(r"^password changed for (?P<user>.+)$")
_KV = re.compile(r"(\w+)=(\S*)")

_SUDO_RE = re.compile(r"^\s*(?P<user>.+?) : (?P<rest>.*)$")
_SUDO_FAILURES = (
    ("incorrect password attempt", "incorrect password"),
    ("user NOT in sudoers", "not in sudoers"),
    ("user NOT authorized on host", "not allowed on host"),
    ("command not allowed", "command not allowed"),
    ("a password is required", "password required"),
)

_SU_OK = re.compile(r"^(?:\+ )?\(to (?P<target>[^\s)]+)\) (?P<user>\S+) on (?P<tty>\S+)$")
_SU_FAIL = re.compile(r"^(?:FAILED SU|- ) ?\(to (?P<target>[^\s)]+)\) (?P<user>\S+) on (?P<tty>\S+)$")
_SU_LEGACY = re.compile(r"^FAILED su for (?P<target>\S+) by (?P<user>.+)$")

_LOGIN_ROOT = re.compile(r"^ROOT LOGIN\s+ON '?(?P<tty>[^\s']+)'?(?: FROM '?(?P<ip>[^\s']+)'?)?", re.I)
_LOGIN_OK = re.compile(r"^LOGIN ON '?(?P<tty>[^\s']+)'? BY '?(?P<user>.+?)'?(?: FROM '?(?P<ip>[^\s']+)'?)?$", re.I)
_LOGIN_FAIL = re.compile(
    r"^FAILED LOGIN \(?\d+\)? (?:ON|FROM) '?(?P<tty>[^\s']+)'? (?:FROM '?(?P<ip>[^\s']+)'? )?FOR '?(?P<user>.+?)'?,",
    re.I,
)

_LOGIND_NEW = re.compile(r"^New session (?P<session>\S+) of user (?P<user>.+?)\.$")
_LOGIND_END = re.compile(r"^(?:Removed session|Session) (?P<session>\S+?)(?: logged out)?\.")

_ACCOUNT_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^new user: name=(?P<target>[^,]+),"), "user created"),
    (re.compile(r"^new group: name=(?P<target>[^,]+),"), "group created"),
    (re.compile(r"^group added to \S+: name=(?P<target>[^,]+)"), "group created"),
    (re.compile(r"^delete user '(?P<target>.+)'$"), "user deleted"),
    (re.compile(r"^removed group '(?P<target>.+?)' owned by"), "group deleted"),
    (re.compile(r"^group '(?P<target>.+?)' removed"), "group deleted"),
    (re.compile(r"^change user '(?P<target>.+?)' password$"), "password changed"),
    (re.compile(r"^changed password expiry for (?P<target>.+)$"), "expiry changed"),
    (re.compile(r"^add '(?P<target>[^']+)' to (?:shadow )?group '(?P<group>[^']+)'$"), "added to group"),
    (re.compile(r"^delete '(?P<target>[^']+)' from (?:shadow )?group '(?P<group>[^']+)'$"), "removed from group"),
    (re.compile(r"^user (?P<target>.+?) added by (?P<actor>\S+) to group (?P<group>\S+)$"), "added to group"),
    (re.compile(r"^user (?P<target>.+?) removed by (?P<actor>\S+) from group (?P<group>\S+)$"), "removed from group"),
    (re.compile(r"^change user '(?P<target>[^']+)' (?P<what>\S+) from "), "user changed"),
    (re.compile(r"^lock user '(?P<target>.+?)' password$"), "password locked"),
    (re.compile(r"^unlock user '(?P<target>.+?)' password$"), "password unlocked"),
]

_PKEXEC_OK = re.compile(
    r"^(?P<user>[^\s:]+): Executing command \[USER=(?P<target>[^\]]*)\] \[TTY=(?P<tty>[^\]]*)\] "
    r"\[CWD=(?P<cwd>[^\]]*)\] \[COMMAND=(?P<command>.*)\]$"
)
_PKEXEC_FAIL = re.compile(
    r"^(?P<user>[^\s:]+): (?P<reason>Error executing command as another user: [^\[]*?)"
    r"(?: \[USER=(?P<target>[^\]]*)\])?(?: \[TTY=(?P<tty>[^\]]*)\])?"
    r"(?: \[CWD=(?P<cwd>[^\]]*)\])?(?: \[COMMAND=(?P<command>.*)\])?$"
)
_POLKITD = re.compile(
    r"^Operator of (?P<subject>\S+) (?P<outcome>successfully authenticated|FAILED to authenticate)"
    r"(?: as (?P<as>\S+))? to gain (?:\w+ )?authorization for action (?P<action>\S+)"
    r".*?\(owned by unix-user:(?P<user>[^()\s]+)\)"
)
_SUPPRESSED = re.compile(r"^Suppressed (?P<count>\d+) messages from (?P<unit>\S+)")


def _strip_ssh(message: str) -> str:
    if message.endswith(" [preauth]"):
        message = message[: -len(" [preauth]")]
    if message.startswith(("error: ", "fatal: ", "Critical: ")):
        message = message.split(" ", 1)[1]
    return message


def _pam(message: str) -> Fact | None:
    if not message.startswith("pam_"):
        return None
    match = _PAM_RE.match(message)
    if match is None:
        return None
    module, service, kind, rest = match.group("module", "service", "type", "rest")
    if module == "pam_faillock":
        lock = _FAILLOCK.match(rest)
        if lock:
            return Fact("lockout", user=lock["user"], reason=f"{service}: account temporarily locked", own_event=True)
        return Fact("pam_info", reason=rest)
    if kind == "session":
        opened = _SESSION_OPENED.match(rest)
        if opened:
            by = opened["by"] or None
            return Fact(
                "session_open",
                user=by if by else None,
                target_user=opened["user"],
                service=service,
            )
        closed = _SESSION_CLOSED.match(rest)
        if closed:
            return Fact("session_close", target_user=closed["user"], service=service)
    if kind == "auth":
        failure = _AUTH_FAILURE.match(rest)
        if failure:
            kv = dict(_KV.findall(failure["kv"]))
            return Fact(
                "auth_failure",
                user=kv.get("ruser") or kv.get("logname") or None,
                target_user=kv.get("user") or None,
                source_ip=kv.get("rhost") or None,
                tty=kv.get("tty") or None,
                service=service,
            )
    if kind == "chauthtok":
        changed = _PASSWORD_CHANGED.match(rest)
        if changed:
            return Fact("account", target_user=changed["user"], reason="password changed", own_event=True)
    return Fact("pam_info", reason=rest, service=service)


def _ssh(message: str) -> Fact:
    text = _strip_ssh(message)
    space = text.find(" ")
    for pattern, kind in _SSH_BY_WORD.get(text[:space] if space >= 0 else text, ()):
        match = pattern.match(text)
        if match is None:
            continue
        groups = match.groupdict()
        inv = groups.get("inv")
        port = groups.get("port")
        return Fact(
            kind,
            groups.get("user"),
            None,
            groups.get("ip"),
            int(port) if port and len(port) <= 5 and int(port) <= 65535 else None,
            groups.get("method"),
            reason=groups.get("reason") or (text if kind == "ssh_preauth" else None),
            invalid_user=kind == "ssh_invalid" or (inv is not None and inv.startswith(("invalid", "illegal"))),
        )
    return Fact("ssh_other", reason=text)


def _sudo(message: str) -> Fact:
    if message.startswith("(command continued)"):
        return Fact("sudo_continued", command=message[len("(command continued)") :].strip())
    match = _SUDO_RE.match(message)
    if match is None or ("TTY=" not in match["rest"] and "COMMAND=" not in match["rest"]):
        return Fact("sudo_other", reason=message)
    fields: dict[str, str] = {}
    reason = None
    for part in match["rest"].split(" ; "):
        key, sep, value = part.partition("=")
        if sep and key.isupper():
            if key == "COMMAND":  # the command may itself contain ' ; '
                fields[key] = match["rest"].split("COMMAND=", 1)[1]
                break
            fields[key] = value
        elif reason is None:
            reason = part.strip()
    failure = None
    if reason:
        for needle, label in _SUDO_FAILURES:
            if needle in reason:
                failure = label
                break
        failure = failure or reason
    return Fact(
        "sudo_fail" if failure else "sudo_cmd",
        user=match["user"].strip(),
        target_user=fields.get("USER"),
        tty=fields.get("TTY"),
        cwd=fields.get("PWD"),
        command=fields.get("COMMAND"),
        reason=failure,
    )


def _su(message: str) -> Fact:
    fail = _SU_FAIL.match(message) or _SU_LEGACY.match(message)
    if fail:
        return Fact("su_fail", user=fail["user"], target_user=fail["target"], tty=fail.groupdict().get("tty"))
    ok = _SU_OK.match(message)
    if ok:
        return Fact("su_ok", user=ok["user"], target_user=ok["target"], tty=ok["tty"])
    if message.startswith("pam_authenticate: "):
        return Fact("su_fail", reason=message[len("pam_authenticate: ") :])
    return Fact("su_other", reason=message)


def _login(message: str) -> Fact:
    root = _LOGIN_ROOT.match(message)
    if root:
        return Fact("console_ok", target_user="root", tty=root["tty"], source_ip=root["ip"])
    ok = _LOGIN_OK.match(message)
    if ok:
        return Fact("console_ok", target_user=ok["user"], tty=ok["tty"], source_ip=ok["ip"])
    fail = _LOGIN_FAIL.match(message)
    if fail:
        return Fact("console_fail", target_user=fail["user"], tty=fail["tty"], source_ip=fail["ip"])
    return Fact("login_other", reason=message)


def _logind(message: str) -> Fact:
    new = _LOGIND_NEW.match(message)
    if new:
        return Fact(
            "logind",
            target_user=new["user"],
            reason="session started",
            own_event=True,
        )
    end = _LOGIND_END.match(message)
    if end:
        return Fact("logind", reason="session ended", own_event=True)
    return Fact("logind_other", reason=message, own_event=True)


def _account(message: str) -> Fact:
    for pattern, label in _ACCOUNT_RULES:
        match = pattern.match(message)
        if match:
            groups = match.groupdict()
            reason = label + (f" {groups['group']}" if groups.get("group") else "")
            return Fact("account", target_user=groups["target"], user=groups.get("actor"), reason=reason)
    return Fact("account_other", reason=message)


def _pkexec(message: str) -> Fact:
    ok = _PKEXEC_OK.match(message)
    if ok:
        return Fact(
            "polkit_ok", user=ok["user"], target_user=ok["target"], tty=ok["tty"], cwd=ok["cwd"], command=ok["command"]
        )
    fail = _PKEXEC_FAIL.match(message)
    if fail:
        return Fact(
            "polkit_fail",
            user=fail["user"],
            target_user=fail["target"],
            tty=fail["tty"],
            cwd=fail["cwd"],
            command=fail["command"],
            reason=fail["reason"],
        )
    return Fact("polkit_other", reason=message)


def _polkitd(message: str) -> Fact:
    match = _POLKITD.match(message)
    if match:
        ok = match["outcome"].startswith("successfully")
        target = (match["as"] or "").removeprefix("unix-user:") or None
        return Fact(
            "polkit_ok" if ok else "polkit_fail",
            user=match["user"],
            target_user=target,
            command=match["action"],
            own_event=True,
        )
    return Fact("polkit_other", reason=message, own_event=True)


def _journald(message: str) -> Fact:
    match = _SUPPRESSED.match(message)
    if match:
        return Fact("log_gap", reason=message, own_event=True)
    return Fact("journald_other", reason=message, own_event=True)


_DISPATCH: dict[str, Callable[[str], Fact]] = {
    **dict.fromkeys(SSH_IDENTIFIERS, _ssh),
    "sudo": _sudo,
    "su": _su,
    "runuser": _su,
    "login": _login,
    "systemd-logind": _logind,
    **dict.fromkeys(ACCOUNT_IDENTIFIERS, _account),
    "pkexec": _pkexec,
    "polkitd": _polkitd,
    "systemd-journald": _journald,
}

# Programs that log through PAM too: their pam_*(service:type) lines are read the same way for all.
_PAM_AWARE = frozenset({_ssh, _sudo, _su, _login, _account, _pkexec})

# Binaries that may legitimately log under each identifier (the journal's trusted _COMM).
EXPECTED_COMM: dict[str, frozenset[str]] = {
    "sshd": frozenset({"sshd", "sshd-session", "sshd-auth"}),
    "sshd-session": frozenset({"sshd-session", "sshd"}),
    "sshd-auth": frozenset({"sshd-auth", "sshd"}),
    "sudo": frozenset({"sudo", "sudoedit"}),
    "su": frozenset({"su"}),
    "runuser": frozenset({"runuser"}),
    "login": frozenset({"login"}),
    "systemd-logind": frozenset({"systemd-logind"}),
    "pkexec": frozenset({"pkexec"}),
    "polkitd": frozenset({"polkitd"}),
    "systemd-journald": frozenset({"systemd-journal", "systemd-journald"}),
    **{ident: frozenset({ident}) for ident in ACCOUNT_IDENTIFIERS},
}


def classify(identifier: str, message: str) -> Fact:
    """The fact a line states; unknown identifiers give kind `other`."""
    handler = _DISPATCH.get(identifier)
    if handler is None:
        return Fact("other", reason=message)
    if len(message) > MAX_RULE_INPUT:
        return Fact("other", reason="message longer than the rules read", own_event=True, truncated=True)
    if handler in _PAM_AWARE:
        pam = _pam(message)
        if pam is not None:
            return pam
    return handler(message)


def is_forged(identifier: str, comm: str | None, exe: str | None) -> bool:
    """True when the trusted _COMM/_EXE do not match the claimed identifier (`logger -t sshd ...`)."""
    expected = EXPECTED_COMM.get(identifier)
    if expected is None or (comm is None and exe is None):
        return False
    if comm is not None and comm in expected:
        return False
    return not (exe is not None and exe.rsplit("/", 1)[-1] in expected)
