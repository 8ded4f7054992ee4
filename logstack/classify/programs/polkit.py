"""polkit: pkexec's commands and polkitd's authorisations."""

from __future__ import annotations

from logstack.classify import rules
from logstack.classify.fact import Fact
from logstack.classify.programs.base import Program, named_as_logged


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


PKEXEC = Program("pkexec", named_as_logged("pkexec"), parse=_pkexec, pam=True)
POLKITD = Program("polkitd", named_as_logged("polkitd"), parse=_polkitd)
