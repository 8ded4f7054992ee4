"""`logstack packages`: Vector's package files for the fleet, fetched and checked on a machine that reaches
the repository (then: enroll-host / init-server --packages DIR)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from logstack.commands.options import DEFAULT_INVENTORY, InventoryOpt, inventory
from logstack.provision.vector_download import download_packages


def packages(
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory to fill (created).")],
    inventory_path: InventoryOpt = DEFAULT_INVENTORY,
) -> None:
    """Download the pinned Vector for every kind of machine the fleet's facts name, checked from the signed
    repository index down to each file, with SHA256SUMS beside them."""
    inv = inventory(inventory_path)
    files = download_packages(inv, output)
    for path in files:
        typer.echo(f"{path}")
    typer.echo(f"{len(files)} package files and SHA256SUMS in {output}")
