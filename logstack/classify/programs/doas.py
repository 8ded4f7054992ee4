"""OpenDoas (`doas`): a command run as another user, or refused; read by its message table rows.

It calls no openlog(): `setprogname("doas")` names its lines (OpenDoas v6.8.1 doas.c:263), and its PAM
service is `doas` (pam.c:47).
"""

from __future__ import annotations

import re

from logstack.classify import rules
from logstack.classify.fact import Fact, table_fact
from logstack.classify.programs.base import named_as_logged, pam_program

# `%s ran command %s as %s from %s`: the command and the working directory are the user's own text, so a
# second ` as NAME from` anywhere (`cd "/tmp/a as nobody from"`) means the line cannot say which is doas's
_AS_FROM = re.compile(r" as \S++ from")


def _doas(message: str) -> Fact:
    found = rules.table_rule("doas", message)
    if found is None:
        return Fact("privilege_other", reason=message)
    fact = table_fact(*found, message)
    if fact.kind == "privilege_cmd" and len(_AS_FROM.findall(message)) > 1:
        fact.ambiguous = True
    return fact


# its rows are all it reads: no second look at what they leave unread
PROGRAM = pam_program("doas", named_as_logged("doas"), _doas, {"doas"}, "privilege", table_fallback=False)
