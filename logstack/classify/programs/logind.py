"""systemd-logind: sessions started and ended."""

from __future__ import annotations

from logstack.classify import rules
from logstack.classify.fact import Fact
from logstack.classify.programs.base import Program, named_as_logged


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


PROGRAM = Program("systemd-logind", named_as_logged("systemd-logind"), parse=_logind)
