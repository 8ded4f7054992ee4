"""Options shared by several commands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import typer

from logstack.pki import read_passphrase
from logstack.site.inventory import Inventory, load_inventory

InventoryOpt = Annotated[
    Path,
    typer.Option("--inventory", "-i", help="Inventory file; site state lives beside it.", envvar="LOGSTACK_INVENTORY"),
]
PassphraseFileOpt = Annotated[
    Path | None,
    typer.Option("--passphrase-file", help="File holding the CA key passphrase (else $LOGSTACK_CA_PASSPHRASE)."),
]
DEFAULT_INVENTORY = Path("inventory.yaml")


def inventory(path: Path) -> Inventory:
    return load_inventory(path)


def passphrase(passphrase_file: Path | None) -> bytes | None:
    return read_passphrase(os.environ.get("LOGSTACK_CA_PASSPHRASE"), passphrase_file)


PackagesOpt = Annotated[
    Path | None,
    typer.Option("--packages", help="Vector package files from `logstack packages` (no repository needed)."),
]

# What a reporting command prints: lines for people, or one JSON document for programs.
TextOrJson = Annotated[Literal["text", "json"], typer.Option("--format", help="Output format.")]
