"""Remote shell commands whose values can never become shell syntax."""

from __future__ import annotations

import shlex


def shell_command(script: str, *args: str) -> str:
    """`sh -c SCRIPT` with `args` as $1, $2, ...: values never become shell syntax, whatever they hold."""
    return " ".join(["sh", "-c", shlex.quote(script), "logstack", *(shlex.quote(a) for a in args)])
