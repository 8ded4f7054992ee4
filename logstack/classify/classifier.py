"""Turn one journal line into a fact: what happened, to whom, from where.

sshd's lines are read by the message table's rows alone (rules.table_rule); the other programs' by their
parsers here first, then by their rows. Formats covered: OpenSSH (including >= 9.8's sshd-session and
sshd-auth, `[preauth]` suffixes and `error:`/`fatal:` prefixes), PAM (>= 1.4's `alice(uid=1000)` and the
older form), sudo (padded user names, `(command continued)`), su/runuser, login, systemd-logind,
shadow-utils, pam_faillock, polkit, and journald's suppression notices.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from logstack.classify import rules
from logstack.classify.kinds import Subject
from logstack.classify.messages import Message
from logstack.journal import identifiers

SSH_IDENTIFIERS = frozenset({"sshd", "sshd-session", "sshd-auth"})
ACCOUNT_IDENTIFIERS = frozenset(identifiers.ACCOUNT_IDENTIFIERS)
HEARTBEAT_IDENTIFIER = "logstack-heartbeat"


@dataclass(slots=True)
class Fact(Subject):
    """What one line says. `kind` drives the event type; the rest fills event fields."""

    kind: str
    tty: str | None = None
    cwd: str | None = None
    invalid_user: bool = False
    own_event: bool = False  # lines of long-lived daemons are events of their own
    service: str | None = None  # the PAM service of a pam_* line
    truncated: bool = False  # longer than any rule reads: reported as it is, flagged
    ambiguous: bool = False  # fields whose values may hold their own delimiters: read, but flagged


# No program logstack reads writes a login line this long (sudo splits its own at 960 bytes); rules stop
# reading here so that no message, however built, costs more than a few milliseconds.
MAX_RULE_INPUT = 2048


# Some syslog daemons leave the sender's message id in the text: `[ID 800047 auth.info] Failed password …`.
_SYSLOG_ID = re.compile(r"\[ID \d++ [a-z0-9]++\.[a-z]++\] ")


def _strip_ssh(message: str) -> tuple[str, bool]:
    """The message as the table holds it, and whether the monitor marked it `[preauth]`."""
    preauth = message.endswith(" [preauth]")
    if preauth:
        message = message[: -len(" [preauth]")]
    if message.startswith(("error: ", "fatal: ", "Critical: ")):
        message = message.split(" ", 1)[1]
    return message, preauth


def _pam(message: str) -> Fact | None:
    if not message.startswith("pam_"):
        if message.startswith("PAM ") and rules.AUTH_FAILURE.match(message[4:]):
            # pam_unix's closing `N more authentication failures;` is logged after the module is gone:
            # pam_vsyslog then prefixes _PAM_SYSTEM_LOG_PREFIX, "PAM" (Linux-PAM v1.7.2 libpam/pam_syslog.c)
            return _pam_line("pam_unix", "", "auth", message[4:])
        return None
    match = rules.PAM_RE.match(message)
    if match is None:
        return None
    module, service, kind, rest = match.group("module", "service", "type", "rest")
    fact = _pam_line(module, service, kind, rest)
    if fact.kind == "pam_info":
        found = _pam_table_rule(module, rest)
        if found is not None and found[0].kind != "pam_info":
            fact = _table_fact(*found, rest)
            fact.service = service
    return fact


# Most PAM lines a parser leaves unread repeat word for word (`check pass; user unknown`).
_pam_table_rule = lru_cache(maxsize=4096)(rules.table_rule)


def _pam_line(module: str, service: str, kind: str, rest: str) -> Fact:
    if module == "pam_faillock":
        lock = rules.FAILLOCK.match(rest)
        if lock:
            return Fact("lockout", user=lock["user"], reason=f"{service}: account temporarily locked", own_event=True)
        return Fact("pam_info", reason=rest)
    if kind == "session":
        opened = rules.SESSION_OPENED.match(rest)
        if opened:
            by = opened["by"] or None
            return Fact(
                "session_open",
                user=by if by else None,
                target_user=opened["user"],
                service=service,
            )
        closed = rules.SESSION_CLOSED.match(rest)
        if closed:
            return Fact("session_close", target_user=closed["user"], service=service)
    if kind == "auth":
        failure = rules.AUTH_FAILURE.match(rest)
        if failure:
            kv = dict(rules.KV.findall(failure["kv"]))
            return Fact(
                "auth_failure",
                user=kv.get("ruser") or kv.get("logname") or None,
                target_user=kv.get("user") or None,
                source_ip=kv.get("rhost") or None,
                tty=kv.get("tty") or None,
                service=service,
            )
    if kind == "chauthtok":
        changed = rules.PASSWORD_CHANGED.match(rest)
        if changed:
            return Fact("account", target_user=changed["user"], reason="password changed", own_event=True)
    return Fact("pam_info", reason=rest, service=service)


_SSH_BUCKETS = rules.TABLE_RULES["sshd"]
# `ADDR port N: `: a disconnect line names sshd's peer once; a client-chosen name or text may add more
_ADDRESS_COLON = re.compile(r" [0-9A-Fa-f:.]++(?:%\S+)? port \d++: ")


def _ssh(message: str) -> Fact:
    text, preauth = _strip_ssh(message)
    found = rules.match_buckets(_SSH_BUCKETS, text)
    if found is None:
        return Fact("ssh_other", reason=text)
    if (found[0].short_auth_log and " ssh2: " in text) or (
        found[0].one_address and len(_ADDRESS_COLON.findall(text)) != 1
    ):
        # the line may be a longer shape whose client-chosen tail (a GSSAPI name, a certificate ID) ends
        # like this one: which `from ADDR port N` is sshd's is not known, so no address or name is read
        fact = _table_fact(found[0], (None,) * len(found[1]), text, preauth)
        fact.ambiguous = True
        return fact
    return _table_fact(*found, text, preauth)


def _table_fact(row: Message, values: tuple[str | None, ...], text: str, preauth: bool = False) -> Fact:
    """The fact a message table row states, with the values its pattern read (in rules.FACT_SLOTS order)."""
    kind = row.kind_preauth if preauth and row.kind_preauth else row.kind
    user, target, address, port, method, tty, command, reason = values
    reason = row.reason or reason
    if kind == "ssh_abandon":  # the client gave up or was cut off before it authenticated
        reason = "disconnected before authenticating" + (f": {reason}" if reason else "")
    fact = Fact(
        kind,
        user=user,
        source_ip=address,
        source_port=int(port) if port and len(port) <= 5 and int(port) <= 65535 else None,
        method=method or row.method,
        reason=reason or (text if kind in _WHOLE_TEXT_KINDS else None),
        invalid_user=row.invalid_user or kind == "ssh_invalid",
    )
    if target is not None or tty is not None or command is not None:  # not on sshd's lines: set apart
        fact.target_user, fact.tty, fact.command = target, tty, command
    if kind in _OWN_EVENT_KINDS:
        fact.own_event = True
    return fact


# Kinds a table row gives that are events of their own (as the parsers make them).
_OWN_EVENT_KINDS = frozenset({"lockout", "account", "logind", "log_gap"})
_UNREAD_KINDS = rules.UNREAD_KINDS


# Kinds whose whole message is the reason an event shows (no rule names a shorter one).
_WHOLE_TEXT_KINDS = frozenset({"ssh_preauth"})


def _sudo(message: str) -> Fact:
    if message.startswith("(command continued)"):
        return Fact("sudo_continued", command=message[len("(command continued)") :].strip())
    # `%8s : …`: a user name never holds ` : ` (a partition, not a pattern: linear whatever the line holds)
    user, sep, rest = message.partition(" : ")
    if sep and rest.startswith("(command continued)"):  # sudo >= 1.9: `alice : (command continued) …`
        return Fact("sudo_continued", command=rest[len("(command continued)") :].strip())
    if not sep or ("TTY=" not in rest and "COMMAND=" not in rest):
        return Fact("sudo_other", reason=message)
    fields: dict[str, str] = {}
    reason = None
    for part in rest.split(" ; "):
        key, sep, value = part.partition("=")
        if sep and key.isupper():
            if key == "COMMAND":  # the command may itself contain ' ; '
                fields[key] = rest.split("COMMAND=", 1)[1]
                break
            fields[key] = value
        elif reason is None:
            reason = part.strip()
    # sudo escapes no ` ; ` in the directory (PWD) or the command: a second USER= or COMMAND= means the line
    # cannot say which is sudo's own; the event shows what it read, flagged
    ambiguous = rest.count(" ; USER=") + rest.startswith("USER=") > 1 or rest.count("COMMAND=") > 1
    failure = None
    if reason:
        for needle, label in rules.SUDO_FAILURES:
            if needle in reason:
                failure = label
                break
        failure = failure or reason
    return Fact(
        "sudo_fail" if failure else "sudo_cmd",
        user=user.strip(),
        target_user=fields.get("USER"),
        tty=fields.get("TTY"),
        cwd=fields.get("PWD"),
        command=fields.get("COMMAND"),
        reason=failure,
        ambiguous=ambiguous,
    )


def _su(message: str) -> Fact:
    fail = rules.SU_FAIL.match(message) or rules.SU_LEGACY.match(message)
    if fail:
        return Fact("su_fail", user=fail["user"], target_user=fail["target"], tty=fail.groupdict().get("tty"))
    ok = rules.SU_OK.match(message)
    if ok:
        return Fact("su_ok", user=ok["user"], target_user=ok["target"], tty=ok["tty"])
    if message.startswith("pam_authenticate: "):
        return Fact("su_fail", reason=message[len("pam_authenticate: ") :])
    return Fact("su_other", reason=message)


def _login(message: str) -> Fact:
    root = rules.LOGIN_ROOT.match(message)
    if root:
        return Fact("console_ok", target_user="root", tty=root["tty"], source_ip=root["ip"])
    ok = rules.LOGIN_OK.match(message)
    if ok:
        return Fact("console_ok", target_user=ok["user"], tty=ok["tty"], source_ip=ok["ip"])
    fail = rules.LOGIN_FAIL.match(message)
    if fail:
        return Fact("console_fail", target_user=fail["user"], tty=fail["tty"], source_ip=fail["ip"])
    return Fact("login_other", reason=message)


def _logind(message: str) -> Fact:
    new = rules.LOGIND_NEW.match(message)
    if new:
        return Fact(
            "logind",
            target_user=new["user"],
            reason="session started",
            own_event=True,
        )
    end = rules.LOGIND_END.match(message)
    if end:
        return Fact("logind", reason="session ended", own_event=True)
    return Fact("logind_other", reason=message, own_event=True)


def _account(message: str) -> Fact:
    for pattern, label in rules.ACCOUNT_RULES:
        match = pattern.match(message)
        if match:
            groups = match.groupdict()
            reason = label + (f" {groups['group']}" if groups.get("group") else "")
            return Fact("account", target_user=groups["target"], user=groups.get("actor"), reason=reason)
    return Fact("account_other", reason=message)


def _pkexec(message: str) -> Fact:
    ok = rules.PKEXEC_OK.match(message)
    if ok:
        return Fact(
            "polkit_ok", user=ok["user"], target_user=ok["target"], tty=ok["tty"], cwd=ok["cwd"], command=ok["command"]
        )
    fail = rules.PKEXEC_FAIL.match(message)
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
    match = rules.POLKITD.match(message)
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
    match = rules.SUPPRESSED.match(message)
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
    if message.startswith("[ID "):
        message = _SYSLOG_ID.sub("", message, count=1) if _SYSLOG_ID.match(message) else message
    if len(message) > MAX_RULE_INPUT:
        return Fact("other", reason="message longer than the rules read", own_event=True, truncated=True)
    if handler in _PAM_AWARE:
        pam = _pam(message)
        if pam is not None:
            return pam
    fact = handler(message)
    if fact.kind in _UNREAD_KINDS and handler is not _ssh:
        found = rules.table_rule(identifier, message)
        if found is not None and found[0].kind not in _UNREAD_KINDS:
            return _table_fact(*found, message)
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
