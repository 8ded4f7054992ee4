"""Options of the commands that read the store with the site's keys (`seal`, `verify`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from logstack.commands.db_options import StoreOptions, store_options

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="State directory (default: the site's state/).")]
KeysOpt = Annotated[Path | None, typer.Option("--signing-keys", help="Key ring (default: the site's).")]
SiteOpt = Annotated[
    Path | None,
    typer.Option("--inventory", "-i", help="The site (else --seal-key and --data-dir).", envvar="LOGSTACK_INVENTORY"),
]
SealKeyOpt = Annotated[Path | None, typer.Option("--seal-key", help="The server's seal key file (no inventory).")]
TtlOpt = Annotated[str | None, typer.Option("--ttl", help="The store's retention (default: the inventory's).")]


__all__ = ["DataDir", "KeysOpt", "SealKeyOpt", "SiteOpt", "StoreOptions", "TtlOpt", "store_options"]
