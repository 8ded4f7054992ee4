"""`logstack seal`: digest each settled hour of the store into the site's signed hash chain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from logstack.base.clock import duration_micros
from logstack.commands.progress import Progress
from logstack.commands.store_options import (
    DataDir,
    KeysOpt,
    SealerOpt,
    SealKeyOpt,
    SiteOpt,
    StoreOptions,
    sealer_name,
    store_options,
)
from logstack.evidence.sealing import Recording, ingest_password, seal_site, seal_store
from logstack.integrity.seal_chain import SEALS, export_chain
from logstack.site.inventory import load_inventory
from logstack.store.reader import DatabaseSource
from logstack.store.seal_heads import StoreHeadLog


@store_options
def seal(
    store: StoreOptions,
    inventory_path: SiteOpt = None,
    delay: Annotated[str, typer.Option("--delay", help="An hour is sealed this long after it ends.")] = "15m",
    export: Annotated[Path | None, typer.Option("--export", help="Also write the whole chain here.")] = None,
    data_dir: DataDir = None,
    signing_keys: KeysOpt = None,
    seal_key: SealKeyOpt = None,
    start_anew: Annotated[
        bool, typer.Option("--start-anew", help="Start a new chain although one existed (it was lost).")
    ] = False,
    accept_chain: Annotated[
        bool, typer.Option("--accept-chain", help="Go on from a restored chain shorter than the recorded one.")
    ] = False,
    sealer: SealerOpt = None,
    ingest_user: Annotated[
        str, typer.Option("--ingest-user", help="The store's write-only user that records the chain's end.")
    ] = "vector",
    ingest_password_file: Annotated[
        Path | None,
        typer.Option(
            "--ingest-password-file",
            help="Its password (default with -i: the site's secrets.yaml). Without one the end is not recorded.",
        ),
    ] = None,
) -> None:
    """Seal every hour of ingest time that has settled (per host: row count and digest)."""
    inv = load_inventory(inventory_path) if inventory_path is not None else None
    site = seal_site(inv, store.config(inv), data_dir, signing_keys, seal_key)
    password = ingest_password(inv, ingest_user, ingest_password_file)
    with DatabaseSource(site.database) as db:
        progress = Progress("seal")
        result = seal_store(
            _HoursShown(db, progress),
            site.state_dir,
            site.seal_key,
            duration_micros(delay, "--delay"),
            start_anew,
            site.ttl,
            accept_chain,
            Recording(StoreHeadLog(db, ingest_user, password), sealer_name(sealer, inv is not None)),
        )
    progress.done()
    typer.echo(f"sealed {len(result.sealed)} hours into {site.state_dir / SEALS}")
    if password is None:
        typer.echo("the chain's end is not recorded in the store (no --ingest-password-file)", err=True)
    if export is not None:
        count = export_chain(site.state_dir / SEALS, site.seal_key, export)
        typer.echo(f"exported {count} seals to {export}")


class _HoursShown:
    """The store as sealing reads it, each hour read counted on the progress line (a backlog takes a while)."""

    def __init__(self, db: DatabaseSource, progress: Progress) -> None:
        self.db, self.progress, self.hours = db, progress, 0

    def rows(self, start: int, end: int) -> Iterator[dict[str, Any]]:
        self.hours += 1
        self.progress.update(self.hours, "hours read")
        return self.db.rows(start, end)

    def oldest(self) -> int | None:
        return self.db.oldest()

    def store_now(self) -> int:
        return self.db.store_now()
