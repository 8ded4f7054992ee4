"""`logstack verify`: recompute every sealed hour from the store; exit 1 when rows changed after sealing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from logstack.base.clock import parse_since
from logstack.base.exit_codes import ExitStatus
from logstack.base.terminal import escape
from logstack.commands.store_options import (
    DataDir,
    DbHost,
    DbName,
    DbPort,
    DbTls,
    DbTlsCa,
    DbUser,
    KeysOpt,
    PasswordFile,
    SealKeyOpt,
    SiteOpt,
    TableOpt,
    TtlOpt,
    open_site,
)
from logstack.evidence.sealing import verify_store
from logstack.store.reader import DatabaseSource


def verify(
    inventory_path: SiteOpt = None,
    since: Annotated[str | None, typer.Option("--since", help="Check hours from this date (UTC).")] = None,
    db_host: DbHost = None,
    db_port: DbPort = None,
    db_tls: DbTls = False,
    db_tls_ca: DbTlsCa = None,
    db_user: DbUser = None,
    db_name: DbName = None,
    table: TableOpt = None,
    db_password_file: PasswordFile = None,
    data_dir: DataDir = None,
    signing_keys: KeysOpt = None,
    seal_key: SealKeyOpt = None,
    ttl: TtlOpt = None,
    anchor: Annotated[
        Path | None, typer.Option("--anchor", help="A chain exported earlier: the chain must extend it.")
    ] = None,
) -> None:
    """Name each host-hour whose rows were deleted, added or altered after it was sealed; exit 1 on any."""
    store = (db_host, db_port, db_user, db_name, table, db_password_file, db_tls, db_tls_ca)
    site = open_site(inventory_path, store, data_dir, signing_keys, seal_key, ttl)
    with DatabaseSource(site.database) as db:
        result = verify_store(
            db, site.state_dir, site.seal_key, parse_since(since) if since else None, site.ttl, anchor
        )
    for finding in result.findings:
        typer.echo(escape(str(finding)))
    typer.echo(
        f"{result.checked} sealed hours checked, {result.expired} past retention skipped, "
        f"{len(result.findings)} host-hours changed"
    )
    if result.findings:
        raise typer.Exit(ExitStatus.FINDINGS)
