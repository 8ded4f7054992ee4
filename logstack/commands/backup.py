"""`logstack backup` (on the server, by its timer) and `logstack restore` (from the operator's machine)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from logstack.backup import check_location, prune, restore_on_server, run_backup
from logstack.commands.options import DEFAULT_INVENTORY, InventoryOpt, inventory
from logstack.errors import BadInputError, RuntimeFailure
from logstack.greptime import LoopbackGreptimeHTTP, read_password
from logstack.validation import SQL_NAME_RE, full


def backup(
    directory: Annotated[Path, typer.Option("--directory", help="Where backups go (the greptime user's).")],
    database: Annotated[str, typer.Option("--database")] = "vector",
    keep_daily: Annotated[int, typer.Option("--keep-daily", min=1)] = 7,
    keep_weekly: Annotated[int, typer.Option("--keep-weekly", min=0)] = 4,
    db_user: Annotated[str, typer.Option("--db-user")] = "admin",
    db_password_file: Annotated[Path | None, typer.Option("--db-password-file")] = None,
    http_host: Annotated[str, typer.Option("--http-host")] = "127.0.0.1",
    http_port: Annotated[int, typer.Option("--http-port")] = 4000,
) -> None:
    """Back up the store with COPY DATABASE into DIRECTORY/<UTC stamp>/, then apply retention."""
    if not full(SQL_NAME_RE, database):
        raise BadInputError(f"--database {database[:40]!r} is not a plain SQL name")
    location = Path(check_location(str(directory)))
    # a large COPY takes its time: an hour per statement
    api = LoopbackGreptimeHTTP(http_host, http_port, db_user, read_password(db_password_file), timeout=3600)
    now = dt.datetime.now(dt.UTC)
    result = run_backup(api, database, location, now)
    result.removed, problems = prune(location, keep_daily, keep_weekly, now)
    typer.echo(f"backed up {result.rows} rows of {len(result.tables)} tables to {result.location}")
    for stamp in result.removed:
        typer.echo(f"removed {location / stamp} (retention)")
    if problems:  # the backup is made; retention is not, and the unit shows it
        raise RuntimeFailure(f"retention: {'; '.join(problems[:5])}")


def restore(
    location: Annotated[str, typer.Argument(help="The backup's directory on the server.")],
    inventory_path: InventoryOpt = DEFAULT_INVENTORY,
    accept_new: Annotated[bool, typer.Option("--accept-new", help="Pin an unknown host key.")] = False,
) -> None:
    """Load a backup into the server's fresh store (after init-server): tables as they were, then the rows."""
    result = restore_on_server(inventory(inventory_path), location, accept_new)
    created = f"created {', '.join(result.created)}; " if result.created else ""
    typer.echo(f"restored {result.rows} rows ({created}the backup holds {result.expected})")
