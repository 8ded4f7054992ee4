"""`logstack facts [NAME...]`: what each machine runs (distribution, systemd, Vector, architecture, journal)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from logstack.base.exit_codes import ExitStatus
from logstack.base.terminal import escape
from logstack.commands.options import DEFAULT_INVENTORY, InventoryOpt, TextOrJson, inventory
from logstack.deploy.machine_facts import machine_facts


def facts(
    names: Annotated[list[str] | None, typer.Argument(help="Machines (host names or `server`); none: all.")] = None,
    output: TextOrJson = "text",
    cached: Annotated[bool, typer.Option("--cached", help="Show the site's cache; connect to nothing.")] = False,
    accept_new: Annotated[bool, typer.Option("--accept-new", help="Pin unknown host keys (first contact).")] = False,
    inventory_path: InventoryOpt = DEFAULT_INVENTORY,
) -> None:
    """Read each machine's facts over SSH and cache them in the site (render uses the cache)."""
    rows = machine_facts(inventory(inventory_path), names or [], cached=cached, accept_new=accept_new)
    if output == "json":
        typer.echo(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        typer.echo(f"{'MACHINE':<20} {'OS':<16} {'SYSTEMD':>7} {'VECTOR':<9} {'ARCH':<8} {'JOURNAL':<10}")
        for row in rows:
            f = row.facts
            if f is None:
                typer.echo(f"{row.name:<20} (no facts: {escape(row.error or 'not read yet')})")
                continue
            os_name = f"{f.os_id or '?'} {f.os_version or ''}".strip()
            typer.echo(
                f"{row.name:<20} {os_name:<16} {f.systemd or '?':>7} {f.vector or '-':<9} "
                f"{f.arch or '?':<8} {f.journal or '?':<10}"
            )
            for warning in f.warnings():
                typer.echo(f"  warning: {warning}")
    for row in rows:
        if row.error:
            typer.echo(f"logstack: {row.name}: {escape(row.error)}", err=True)
    if any(r.error for r in rows):
        raise typer.Exit(ExitStatus.RUNTIME_FAILURE)
