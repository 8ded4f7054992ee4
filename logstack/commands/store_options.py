"""Options of the commands that read the store with the site's keys (`seal`, `verify`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from logstack.commands.options import DEFAULT_INVENTORY, InventoryOpt, inventory
from logstack.greptime import database_config
from logstack.seal import SealSite, seal_site

DbHost = Annotated[str, typer.Option("--db-host", help="GreptimeDB's MySQL endpoint.")]
DbPort = Annotated[int, typer.Option("--db-port")]
DbUser = Annotated[str | None, typer.Option("--db-user", help="Default: analyst.")]
PasswordFile = Annotated[Path | None, typer.Option("--db-password-file")]
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="State directory (default: the site's state/).")]
KeysOpt = Annotated[Path | None, typer.Option("--signing-keys", help="Key ring (default: the site's).")]


def open_site(
    inventory_path: Path,
    db_host: str,
    db_port: int,
    db_user: str | None,
    password_file: Path | None,
    data_dir: Path | None,
    signing_keys: Path | None,
) -> SealSite:
    """The seal settings the options name."""
    inv = inventory(inventory_path)
    database = database_config(inv, db_host, db_port, db_user, None, None, password_file)
    return seal_site(inv, database, data_dir, signing_keys)


__all__ = ["DEFAULT_INVENTORY", "DataDir", "DbHost", "DbPort", "DbUser", "InventoryOpt", "KeysOpt", "PasswordFile"]
