"""PAM's own lines (`pam_unix(sshd:auth): …`), read alike under every program that logs through PAM."""

from __future__ import annotations

from functools import lru_cache

from logstack.classify import rules
from logstack.classify.fact import Fact, table_fact


def read_pam(message: str) -> Fact | None:
    """The fact a PAM module's line states; None when the line is not PAM's."""
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
            fact = table_fact(*found, rest)
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
