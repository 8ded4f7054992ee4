"""systemd's `run0` (systemd-run invoked as run0, v256+): read by its message table rows.

The kernel names the process after the link (`_COMM=run0`) while `_EXE` is systemd-run (systemd v256
src/run/run.c:2353 `invoked_as(argv, "run0")`). run0 writes no line of who ran what: its own lines are
failures on its standard error when that is the journal. Its sessions are PAM's `systemd-run0` service
(run.c:963 `PAMName=systemd-run0`), logged by PID 1's executor under the command's name (not forwarded),
and polkitd's authentication lines (read as polkit events) name the invoking user. Any user can write a
line under this identifier with systemd-run's binary, so only run0's failure rows are read here.
"""

from __future__ import annotations

from logstack.classify.programs.base import Program

PROGRAM = Program(
    "run0",
    {"run0": frozenset({"run0", "systemd-run"})},
    unread_kind="privilege_other",
    # no PAM lines: any user may run systemd-run with its output in the journal under this identifier, so a
    # `pam_unix(…)` text here proves nothing; PID 1 logs run0's real sessions under the command's name
)
