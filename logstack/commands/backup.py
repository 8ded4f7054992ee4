"""`logstack backup` (on the server, by its timer) and `logstack restore` (from the operator's machine)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from logstack.base.errors import BadInputError, RuntimeFailure
from logstack.base.validation import SQL_NAME_RE, full
from logstack.commands.options import DEFAULT_INVENTORY, InventoryOpt, TextOrJson, inventory
from logstack.commands.progress import Ticker
from logstack.store.backup import prune, run_backup, storage_from_options
from logstack.store.greptime import read_password, store_http
from logstack.store.restore import restore_on_server

StoreOpt = Annotated[
    str | None, typer.Option("--store-endpoint", help="An external store's https endpoint (else --http-host:port).")
]
S3Opt = Annotated[str | None, typer.Option("--s3", help="s3://bucket/prefix: back up there, not to --directory.")]
S3KeysOpt = Annotated[
    Path | None, typer.Option("--s3-credentials", help="JSON {access_key_id, secret_access_key} (a credential).")
]


def backup(
    directory: Annotated[
        Path | None, typer.Option("--directory", help="Where backups go (the greptime user's).")
    ] = None,
    s3: S3Opt = None,
    s3_endpoint: Annotated[str | None, typer.Option("--s3-endpoint", help="Default: AWS in --s3-region.")] = None,
    s3_region: Annotated[str, typer.Option("--s3-region", help="The S3 bucket's region (SigV4).")] = "us-east-1",
    s3_credentials: S3KeysOpt = None,
    database: Annotated[str, typer.Option("--database", help="The store's database to back up.")] = "vector",
    keep_daily: Annotated[int, typer.Option("--keep-daily", min=1, help="Daily backups to keep.")] = 7,
    keep_weekly: Annotated[int, typer.Option("--keep-weekly", min=0, help="Weekly backups to keep.")] = 4,
    db_user: Annotated[str, typer.Option("--db-user", help="The store user that may COPY (admin).")] = "admin",
    db_password_file: Annotated[
        Path | None, typer.Option("--db-password-file", help="File holding its password.")
    ] = None,
    http_host: Annotated[str, typer.Option("--http-host", help="GreptimeDB's HTTP API address.")] = "127.0.0.1",
    http_port: Annotated[int, typer.Option("--http-port", help="GreptimeDB's HTTP API port.")] = 4000,
    store_endpoint: StoreOpt = None,
    store_ca: Annotated[Path | None, typer.Option("--store-ca", help="CA of --store-endpoint's certificate.")] = None,
    output: TextOrJson = "text",
) -> None:
    """Back up the store with COPY DATABASE to <directory or S3 prefix>/<UTC stamp>/, then apply retention."""
    if not full(SQL_NAME_RE, database):
        raise BadInputError(f"--database {database[:40]!r} is not a plain SQL name")
    storage = storage_from_options(directory, s3, s3_endpoint, s3_region, s3_credentials)
    # a large COPY takes its time: an hour per statement
    api = store_http(store_endpoint, store_ca, http_host, http_port, db_user, read_password(db_password_file))
    now = dt.datetime.now(dt.UTC)
    with Ticker(f"backup of {database}"):
        result = run_backup(api, database, storage, now)
    result.removed, problems = prune(storage, keep_daily, keep_weekly, now)
    removed = [storage.location(stamp) for stamp in result.removed]
    if output == "json":
        document = {"location": result.location, "rows": result.rows, "tables": result.tables, "removed": removed}
        typer.echo(json.dumps({**document, "retention_problems": problems}, indent=2))
    else:
        typer.echo(f"backed up {result.rows} rows of {len(result.tables)} tables to {result.location}")
        for location in removed:
            typer.echo(f"removed {location} (retention)")
    if problems:  # the backup is made; retention is not, and the unit shows it
        raise RuntimeFailure(f"retention: {'; '.join(problems[:5])}")


def restore(
    location: Annotated[
        str, typer.Argument(help="The backup: its directory on the server, or s3://bucket/prefix/STAMP.")
    ],
    inventory_path: InventoryOpt = DEFAULT_INVENTORY,
    accept_new: Annotated[bool, typer.Option("--accept-new", help="Pin an unknown host key.")] = False,
) -> None:
    """Load a backup into the server's fresh store (after init-server): tables as they were, then the rows."""
    result = restore_on_server(inventory(inventory_path), location, accept_new)
    created = f"created {', '.join(result.created)}; " if result.created else ""
    typer.echo(f"restored {result.rows} rows ({created}the backup holds {result.expected})")
