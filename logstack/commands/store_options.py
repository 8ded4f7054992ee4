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
SealerOpt = Annotated[
    str | None,
    typer.Option("--sealer", help="Whose chain this is, in the store's records (default: site with -i, else server)."),
]


def sealer_name(value: str | None, with_site: bool) -> str:
    """The sealer's name: given, else `site` for an operator's `-i` run and `server` for the server's unit."""
    from logstack.base.errors import BadInputError
    from logstack.integrity.store_head import SEALER_RE

    name = value if value is not None else "site" if with_site else "server"
    if not SEALER_RE.fullmatch(name):
        raise BadInputError(f"--sealer: {name[:40]!r} is not a name like server or site ([a-z0-9][a-z0-9_.:-]*)")
    return name


__all__ = [
    "DataDir",
    "KeysOpt",
    "SealKeyOpt",
    "SealerOpt",
    "SiteOpt",
    "StoreOptions",
    "TtlOpt",
    "sealer_name",
    "store_options",
]
