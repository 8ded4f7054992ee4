"""su and runuser: a switch of user, or a failed one."""

from __future__ import annotations

from logstack.classify import rules
from logstack.classify.fact import Fact
from logstack.classify.programs.base import named_as_logged, pam_program


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


PROGRAM = pam_program("su", named_as_logged("su", "runuser"), _su, {"su", "su-l", "runuser", "runuser-l"}, "su")
