"""Printing plans and per-host results (shared by enroll-host and init-server)."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from logstack.fleet import HostResult


def print_plan(result: HostResult) -> None:
    if result.plan is None:
        return
    typer.echo(f"{result.name}: {result.plan.summary()}")
    for change in result.plan.changes:
        if change.action != "unchanged":
            typer.echo(f"  {change.describe}")
    if result.plan.owed:
        typer.echo(f"  owed by an earlier run: {', '.join(result.plan.owed)}")
    for line in result.diff:
        sys.stdout.write(line if line.endswith("\n") else line + "\n")


def print_results(results: list[HostResult]) -> None:
    table = Table(title="logstack", show_lines=False)
    for column in ("host", "result", "detail"):
        table.add_column(column)
    styles = {"ok": "green", "changed": "yellow", "failed": "red", "unreachable": "red"}
    for result in results:
        table.add_row(result.name, f"[{styles[result.status]}]{result.status}[/]", result.reason or "")
    Console(file=sys.stdout, width=160, soft_wrap=True).print(table)
