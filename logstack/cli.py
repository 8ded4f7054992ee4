"""The `logstack` command line: thin modules under logstack.commands over a typed core."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from logstack.errors import LogstackError


class _Group(TyperGroup):
    """Catches LogstackError once, at the edge: one line on stderr and its named exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except LogstackError as exc:
            typer.echo(f"logstack: error: {exc}", err=True)
            raise typer.Exit(int(exc.exit_status)) from None


app = typer.Typer(
    cls=_Group,
    name="logstack",
    help="Provision and run a central login-audit log stack (Vector + GreptimeDB) for Linux fleets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from logstack.commands import (
        analyze,
        ca,
        certs,
        enroll_host,
        init,
        init_server,
        render,
        report,
        status,
        trust_host,
    )

    app.command("init")(init.init)
    app.command("render")(render.render)
    app.command("init-server")(init_server.init_server)
    app.command("enroll-host")(enroll_host.enroll_host)
    app.command("trust-host")(trust_host.trust_host)
    app.command("analyze")(analyze.analyze)
    app.command("report")(report.report)
    app.command("status")(status.status)
    app.add_typer(ca.app, name="ca")
    app.add_typer(certs.app, name="certs")


_register()


def main() -> None:
    """Console-script entry point."""
    app()
