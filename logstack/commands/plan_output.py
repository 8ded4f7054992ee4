"""Printing plans and per-host results (shared by enroll-host and init-server)."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from logstack.base.terminal import escape
from logstack.deploy.result import HostResult


def print_plan(result: HostResult) -> None:
    # Owners, diffs and errors come from the target: shown escaped, never as terminal controls.
    if result.plan is None:
        return
    typer.echo(f"{result.name}: {result.plan.summary()}")
    for change in [*result.plan.dir_fixes, *result.plan.changes]:
        if change.action != "unchanged":
            typer.echo(f"  {escape(change.describe)}")
    for warning in result.warnings:
        typer.echo(f"  warning: {escape(warning)}")
    if result.plan.owed:
        typer.echo(f"  owed by an earlier run: {escape(', '.join(result.plan.owed))}")
    for line in result.diff:
        sys.stdout.write(escape(line.rstrip("\n")) + "\n")


def print_results(results: list[HostResult]) -> None:
    table = Table(title="logstack", show_lines=False)
    delivery = any(r.delivering for r in results)
    for column in ("host", "result", "delivering", "detail") if delivery else ("host", "result", "detail"):
        table.add_column(column)
    styles = {"ok": "green", "changed": "yellow", "failed": "red", "unreachable": "red"}
    failed = [r for r in results if r.status in ("failed", "unreachable")]
    for result in results:
        detail = "see below" if result in failed else escape(result.reason or "")
        cells = [result.name, f"[{styles[result.status]}]{result.status}[/]", detail]
        if delivery:
            cells.insert(2, result.delivering or "-")
        table.add_row(*cells)
    Console(file=sys.stdout, width=120).print(table)
    for result in results:
        for warning in result.warnings:
            typer.echo(f"warning: {result.name}: {escape(warning)}")
    # Whole lines, so fingerprints and instructions can be read and copied.
    for result in failed:
        typer.echo(f"logstack: {result.status}: {escape(result.reason)}", err=True)
