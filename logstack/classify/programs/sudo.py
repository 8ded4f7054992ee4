"""sudo: the command a user ran as another, or why it was refused."""

from __future__ import annotations

from logstack.classify import rules
from logstack.classify.fact import Fact
from logstack.classify.programs.base import pam_program


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


PROGRAM = pam_program("sudo", {"sudo": frozenset({"sudo", "sudoedit"})}, _sudo, {"sudo", "sudo-i"}, "sudo")
