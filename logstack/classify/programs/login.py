"""login: console and serial logins, root's included."""

from __future__ import annotations

from logstack.classify import rules
from logstack.classify.fact import Fact
from logstack.classify.programs.base import named_as_logged, pam_program


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


PROGRAM = pam_program("login", named_as_logged("login"), _login, {"login"}, "console_login")
