"""`logstack render`: write every file for review, or check a review tree is current."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from logstack.base.errors import BadInputError
from logstack.base.exit_codes import ExitStatus
from logstack.base.terminal import escape
from logstack.commands.options import DEFAULT_INVENTORY, InventoryOpt, inventory
from logstack.render.rendered import check_tree, tree_diff_text, write_tree
from logstack.render.site_files import render_site


def render(
    inventory_path: InventoryOpt = DEFAULT_INVENTORY,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Directory to write the review tree to.")] = None,
    check: Annotated[
        Path | None, typer.Option("--check", help="Exit 1 listing differences when this review tree is stale.")
    ] = None,
) -> None:
    """Render every file of the server and each host (review mode: no secrets, no network)."""
    if (out is None) == (check is None):
        raise BadInputError("give exactly one of --out DIR or --check DIR")
    inv = inventory(inventory_path)
    files = render_site(inv)
    if out is not None:
        count = write_tree(files, out)
        typer.echo(f"rendered {count} files for 1 server and {len(inv.hosts)} hosts into {out}")
        return
    assert check is not None
    diff = check_tree(files, check)
    if diff.clean:
        typer.echo(f"{check} is current")
        return
    for label, paths in (("added", diff.added), ("removed", diff.removed), ("changed", diff.changed)):
        for path in paths:
            typer.echo(f"{label}: {escape(path)}")
    for line in tree_diff_text(files, diff).split("\n")[:-1]:
        typer.echo(escape(line))  # a review file may hold anything an inventory says: never raw to the terminal
    again = shlex.join(["logstack", "render", "-i", str(inventory_path), "-o", str(check)])
    typer.echo(escape(f"{check} is stale: re-run `{again}`"), err=True)
    raise typer.Exit(ExitStatus.FINDINGS)
