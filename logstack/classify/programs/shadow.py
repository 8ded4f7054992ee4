"""shadow-utils' account tools: users and groups added, changed, removed; passwords set."""

from __future__ import annotations

from logstack.classify import rules
from logstack.classify.fact import Fact
from logstack.classify.programs.base import Program, named_as_logged


def _account(message: str) -> Fact:
    for pattern, label in rules.ACCOUNT_RULES:
        match = pattern.match(message)
        if match:
            groups = match.groupdict()
            reason = label + (f" {groups['group']}" if groups.get("group") else "")
            return Fact("account", target_user=groups["target"], user=groups.get("actor"), reason=reason)
    return Fact("account_other", reason=message)


# The tools' lines are account changes, read alike.
ACCOUNT_TOOLS: tuple[str, ...] = (
    "useradd",
    "usermod",
    "userdel",
    "groupadd",
    "groupdel",
    "groupmod",
    "gpasswd",
    "passwd",
    "chpasswd",
    "chage",
    "chfn",
    "chsh",
)
PROGRAM = Program("shadow-utils", named_as_logged(*ACCOUNT_TOOLS), parse=_account, pam=True)
