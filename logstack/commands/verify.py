"""`logstack verify`: recompute every sealed hour from the store; exit 1 when rows changed after sealing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from logstack.base.clock import parse_time
from logstack.base.exit_codes import ExitStatus
from logstack.base.terminal import escape
from logstack.commands.db_options import SinceOpt, UntilOpt
from logstack.commands.options import TextOrJson
from logstack.commands.store_options import (
    DataDir,
    KeysOpt,
    SealerOpt,
    SealKeyOpt,
    SiteOpt,
    StoreOptions,
    TtlOpt,
    sealer_name,
    store_options,
)
from logstack.evidence.sealing import Recording, seal_site, verify_store
from logstack.site.inventory import load_inventory
from logstack.store.reader import DatabaseSource
from logstack.store.seal_heads import StoreHeadLog


@store_options
def verify(
    store: StoreOptions,
    inventory_path: SiteOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    data_dir: DataDir = None,
    signing_keys: KeysOpt = None,
    seal_key: SealKeyOpt = None,
    ttl: TtlOpt = None,
    anchor: Annotated[
        Path | None, typer.Option("--anchor", help="A chain exported earlier: the chain must extend it.")
    ] = None,
    sealer: SealerOpt = None,
    output: TextOrJson = "text",
) -> None:
    """Name each host-hour whose rows were deleted, added or altered after it was sealed; exit 1 on any."""
    inv = load_inventory(inventory_path) if inventory_path is not None else None
    site = seal_site(inv, store.config(inv), data_dir, signing_keys, seal_key, ttl)
    with DatabaseSource(site.database) as db:
        result = verify_store(
            db,
            site.state_dir,
            site.seal_key,
            (parse_time(since) if since else None, parse_time(until, "--until") if until else None),
            site.ttl,
            anchor,
            Recording(StoreHeadLog(db), sealer_name(sealer, inv is not None)),
        )
    if output == "json":
        document = {
            "checked_hours": result.checked,
            "expired_hours": result.expired,
            "findings": [str(f) for f in result.findings],
            "notes": result.notes,
        }
        typer.echo(json.dumps(document, indent=2))
        if result.findings:
            raise typer.Exit(ExitStatus.FINDINGS)
        return
    for finding in result.findings:
        typer.echo(escape(str(finding)))
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(
        f"{result.checked} sealed hours checked, {result.expired} past retention skipped, "
        f"{sum(f.hour is not None for f in result.findings)} host-hours changed"
        + (f", {chain} faults of the chain" if (chain := sum(f.hour is None for f in result.findings)) else "")
    )
    if result.findings:
        raise typer.Exit(ExitStatus.FINDINGS)
