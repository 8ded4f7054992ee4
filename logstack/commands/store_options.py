"""Options of the commands that read the store with the site's keys (`seal`, `verify`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from logstack.commands.db_options import DbHost, DbPort, DbTls, DbTlsCa
from logstack.evidence.sealing import SealSite, seal_site
from logstack.site.inventory import load_inventory
from logstack.store.greptime import database_config

DbUser = Annotated[str | None, typer.Option("--db-user", help="Default: analyst.")]
DbName = Annotated[str | None, typer.Option("--db-name", help="Default: the inventory's.")]
TableOpt = Annotated[str | None, typer.Option("--table", help="Default: the inventory's.")]
PasswordFile = Annotated[Path | None, typer.Option("--db-password-file")]
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="State directory (default: the site's state/).")]
KeysOpt = Annotated[Path | None, typer.Option("--signing-keys", help="Key ring (default: the site's).")]
SiteOpt = Annotated[
    Path | None,
    typer.Option("--inventory", "-i", help="The site (else --seal-key and --data-dir).", envvar="LOGSTACK_INVENTORY"),
]
SealKeyOpt = Annotated[Path | None, typer.Option("--seal-key", help="The server's seal key file (no inventory).")]
TtlOpt = Annotated[str | None, typer.Option("--ttl", help="The store's retention (default: the inventory's).")]


# Where the store is, as the options give it: host, port, user, database, table, password file, TLS, TLS CA.
Store = tuple[str | None, int | None, str | None, str | None, str | None, Path | None, bool, Path | None]


def open_site(
    inventory_path: Path | None,
    store: Store,
    data_dir: Path | None,
    signing_keys: Path | None,
    seal_key: Path | None = None,
    ttl: str | None = None,
) -> SealSite:
    """The seal settings the options name."""
    inv = load_inventory(inventory_path) if inventory_path is not None else None
    return seal_site(inv, database_config(inv, *store), data_dir, signing_keys, seal_key, ttl)


__all__ = [
    "DataDir",
    "DbHost",
    "DbName",
    "DbPort",
    "DbTls",
    "DbTlsCa",
    "DbUser",
    "KeysOpt",
    "PasswordFile",
    "SealKeyOpt",
    "SiteOpt",
    "TableOpt",
    "TtlOpt",
]
