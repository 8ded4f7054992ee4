"""The `logstack` command line: thin modules under logstack.commands over a typed core."""

from __future__ import annotations

import difflib
import importlib
import itertools
import json
import os
import signal
import sys
from typing import Any

import typer
import typer.main

# Typer vendors Click: its commands raise this error (not `click`'s).
from typer._click.exceptions import NoArgsIsHelpError, UsageError
from typer.core import TyperArgument, TyperGroup, TyperOption

from logstack.base.errors import InventoryError, LogstackError, defect
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
_CONTEXT = {"help_option_names": ["-h", "--help"]}


def _metavar(param: Any) -> str:
    """The metavar Click itself shows for a type (TEXT, INTEGER, FLOAT, PATH, [a|b])."""
    kind = param.type_descriptor
    if kind.is_choice:
        return "[" + "|".join(str(getattr(c, "value", c)) for c in kind.choices) + "]"
    if kind.is_path:
        return "PATH"
    return {int: "INTEGER", float: "FLOAT"}.get(kind.annotation, "TEXT")


def _standard_help(command: Any) -> Any:
    """Help as Click users know it: `-h`, TEXT/INTEGER/PATH metavars, none on flags, choices in brackets."""
    command.context_settings = {**_CONTEXT, **(command.context_settings or {})}
    for param in command.params:
        if isinstance(param, TyperOption):
            _option_metavar(param)
        elif isinstance(param, TyperArgument) and param.metavar is None:
            param.metavar = (param.name or "value").upper()
            kind = _metavar(param) if not param.type_descriptor.is_list else "TEXT"
            param.display_type_rich = lambda ctx, kind=kind: kind  # Typer's own column says `<list[str]>`
    command.get_help_option = _flag_help(command.get_help_option)
    for sub in getattr(command, "commands", {}).values():
        _standard_help(sub)
    return command


def _option_metavar(param: TyperOption) -> None:
    """An option's metavar as Click shows it; none on a flag."""
    if param.metavar is None:
        param.metavar = "" if param.is_flag else _metavar(param)


def _flag_help(made: Any) -> Any:
    """`-h/--help` is a flag: no metavar, as on every other flag."""

    def get_help_option(ctx: Any) -> Any:
        option = made(ctx)
        if option is not None and option.metavar is None:
            option.metavar = ""
        return option

    return get_help_option


class _Group(TyperGroup):
    """Loads commands on demand; catches LogstackError once, at the edge: one line on stderr and its exit code."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(_COMMANDS)

    def get_help_option(self, ctx: Any) -> Any:
        return _flag_help(super().get_help_option)(ctx)

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:  # the root's own options (--version, completion) as the commands' are
            if isinstance(param, TyperOption):
                _option_metavar(param)
        return params

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in _COMMANDS:
            return None
        if cmd_name not in _LOADED:
            module_name, attribute = _COMMANDS[cmd_name]
            target = getattr(importlib.import_module(f"logstack.commands.{module_name}"), attribute)
            if not isinstance(target, typer.Typer):
                single = typer.Typer(pretty_exceptions_enable=False, add_completion=False, context_settings=_CONTEXT)
                single.command(cmd_name)(target)
                target = single
            command = _standard_help(typer.main.get_command(target))
            command.name = cmd_name
            _LOADED[cmd_name] = command
        return _LOADED[cmd_name]

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        given = list(args)  # the parser consumes the list
        try:
            return super().parse_args(ctx, args)
        except NoArgsIsHelpError:
            raise  # `logstack` alone: the help, as Click shows it
        except UsageError as exc:  # `logstack --bogus`: the same one line as any other usage error
            _fail(_usage_message(exc), ExitStatus.BAD_INPUT, _wants_json(given))
            raise  # not reached: _fail exits

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in _COMMANDS:
            close = difflib.get_close_matches(name, list(_COMMANDS), n=1, cutoff=0.6)
            hint = f" (did you mean `{close[0]}`?)" if close else " (`logstack -h` lists them)"
            raise UsageError(f"no such command {name!r}{hint}", ctx)
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        wants_json = _wants_json([*getattr(ctx, "protected_args", []), *ctx.args])
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _quiet_pipe()
        except UsageError as exc:  # one error style for every mistake on the command line: one line, exit 2
            _fail(_usage_message(exc), ExitStatus.BAD_INPUT, wants_json)
        except LogstackError as exc:
            # messages may carry what a remote machine or database said: shown escaped
            # an inventory's problems come one per line; any other message is one line (what a remote machine
            # or database said may hold a newline: shown escaped, it cannot pass for a line of logstack's)
            lines = str(exc).split("\n") if isinstance(exc, InventoryError) else [str(exc)]
            _fail("\n".join(escape(line) for line in lines), exc.exit_status, wants_json)
        except Exception as exc:
            # the command line's own exits and usage errors (typer's, built on its own click) go through
            if os.environ.get("LOGSTACK_DEBUG") or type(exc).__module__.split(".")[0] in ("typer", "click"):
                raise
            # a defect, not an input: its own exit code (a traceback would exit 1, which means findings);
            # where it happened, never its message (it may quote a secret the code was handling)
            typer.echo(f"logstack: internal error: {defect(exc)}; please report it", err=True)
            raise typer.Exit(int(ExitStatus.INTERNAL)) from None


app = typer.Typer(
    cls=_Group,
    name="logstack",
    help="Provision and run a central login-audit log stack (Vector + GreptimeDB) for Linux fleets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings=_CONTEXT,
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


def _usage_message(exc: UsageError) -> str:
    """A usage error as one line, led by the command's path below `logstack` (`analyze: No such option …`)."""
    names, at = [], exc.ctx
    while at is not None and at.parent is not None:
        names.append(at.info_name or "")
        at = at.parent
    where = " ".join(reversed(names)) + ": " if names else ""
    return f"{where}{escape(exc.format_message())}"


def _wants_json(args: list[str]) -> bool:
    """Whether the command line asks for `--format json` (its failure is then a JSON document too)."""
    return "--format=json" in args or any(a == "--format" and b == "json" for a, b in itertools.pairwise(args))


def _fail(message: str, status: int, as_json: bool) -> None:
    """One line on stderr and the exit code; with --format json also one document on stdout for programs."""
    if as_json:
        typer.echo(json.dumps({"error": message, "exit": int(status)}))
    for line in message.split("\n"):  # several problems: one line each (the inventory's up to 20)
        typer.echo(f"logstack: error: {line}", err=True)
    raise typer.Exit(int(status))


def _quiet_pipe() -> None:
    """The reader of standard output went away (`| head`): end quietly, as coreutils do (128 + SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # what is still buffered goes nowhere, without a second error
    raise SystemExit(128 + signal.SIGPIPE)


def main() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="logstack")  # as installed, also under `python -m logstack` (completion is keyed by it)
    except BrokenPipeError:
        _quiet_pipe()
