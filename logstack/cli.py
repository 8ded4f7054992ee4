"""The `logstack` command line: thin modules under logstack.commands over a typed core."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup

from logstack.base.errors import LogstackError
from logstack.base.exit_codes import ExitStatus
from logstack.base.terminal import escape

# Command name → (module under logstack.commands, attribute). Modules load only when their command
# runs, so `logstack analyze` does not pay for SSH and certificate libraries at every start.
_COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("init", "init"),
    "render": ("render", "render"),
    "init-server": ("init_server", "init_server"),
    "enroll-host": ("enroll_host", "enroll_host"),
    "trust-host": ("trust_host", "trust_host"),
    "facts": ("facts", "facts"),
    "analyze": ("analyze", "analyze"),
    "report": ("report", "report"),
    "status": ("status", "status"),
    "seal": ("seal", "seal"),
    "verify": ("verify", "verify"),
    "site-backup": ("site_backup", "site_backup"),
    "site-restore": ("site_backup", "site_restore"),
    "wheels": ("wheels", "wheels"),
    "packages": ("packages", "packages"),
    "alerts": ("alerts", "app"),
    "backup": ("backup", "backup"),
    "restore": ("backup", "restore"),
    "ca": ("ca", "app"),
    "certs": ("certs", "app"),
}
_LOADED: dict[str, Any] = {}


class _Group(TyperGroup):
    """Loads commands on demand; catches LogstackError once, at the edge: one line on stderr and its exit code."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in _COMMANDS:
            return None
        if cmd_name not in _LOADED:
            module_name, attribute = _COMMANDS[cmd_name]
            target = getattr(importlib.import_module(f"logstack.commands.{module_name}"), attribute)
            if not isinstance(target, typer.Typer):
                single = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
                single.command(cmd_name)(target)
                target = single
            command = typer.main.get_command(target)
            command.name = cmd_name
            _LOADED[cmd_name] = command
        return _LOADED[cmd_name]

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _quiet_pipe()
        except LogstackError as exc:
            # messages may carry what a remote machine or database said: shown escaped
            typer.echo(f"logstack: error: {escape(str(exc))}", err=True)
            raise typer.Exit(int(exc.exit_status)) from None
        except Exception as exc:
            # the command line's own exits and usage errors (typer's, built on its own click) go through
            if os.environ.get("LOGSTACK_DEBUG") or type(exc).__module__.split(".")[0] in ("typer", "click"):
                raise
            # a defect, not an input: its own exit code (a traceback would exit 1, which means findings);
            # where it happened, never its message (it may quote a secret the code was handling)
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            where = f"{Path(frame.filename).name}:{frame.lineno}"
            typer.echo(f"logstack: internal error: {type(exc).__name__} at {where}; please report it", err=True)
            raise typer.Exit(int(ExitStatus.INTERNAL)) from None


app = typer.Typer(
    cls=_Group,
    name="logstack",
    help="Provision and run a central login-audit log stack (Vector + GreptimeDB) for Linux fleets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _show_version(value: bool) -> None:
    if value:
        from logstack import __version__

        typer.echo(f"logstack {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    pass


def _quiet_pipe() -> None:
    """The reader of standard output went away (`| head`): end quietly, as coreutils do (128 + SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # what is still buffered goes nowhere, without a second error
    raise SystemExit(128 + signal.SIGPIPE)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BrokenPipeError:
        _quiet_pipe()
