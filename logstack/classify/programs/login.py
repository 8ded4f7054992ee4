"""login: console and serial logins, root's included."""

from __future__ import annotations

from logstack.classify import rules
from logstack.classify.fact import Fact
from logstack.classify.programs.base import Program, named_as_logged


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


PROGRAM = Program("login", named_as_logged("login"), parse=_login, pam=True, pam_services=frozenset({"login"}))
