"""`logstack report`: the weekly review as one self-contained HTML file (and Markdown)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from logstack import __version__
from logstack.base.clock import HOUR, duration_micros, iso, parse_period
from logstack.base.errors import BadInputError
from logstack.base.fsutil import atomic_write
from logstack.base.terminal import escape
from logstack.commands.db_options import (
    DbHttpOpt,
    SinceOpt,
    StoreOptions,
    UntilOpt,
    VerifyOpt,
    over_http,
    store_options,
)
from logstack.evidence.report import ReportData, backup_line, render_html, render_markdown
from logstack.evidence.report_columns import build_report_in_columns, export_report
from logstack.evidence.sealing import site_last_verification
from logstack.integrity.signatures import Unverified, Verifier, site_verifier
from logstack.journal.selection import Selection
from logstack.pki.service import list_certificates
from logstack.site.inventory import load_inventory

if TYPE_CHECKING:
    from logstack.site.inventory import Inventory
    from logstack.store.greptime import DatabaseConfig
from logstack.store.backup import recorded_backup
from logstack.store.reader import DatabaseSource
from logstack.store.reading_process import store_frames


@store_options
def report(
    store: StoreOptions,
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")],
    since: SinceOpt = "7d",
    until: UntilOpt = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Also write Markdown here.")] = None,
    journal: Annotated[str | None, typer.Option("--journal", help="journalctl -o json export; - for stdin.")] = None,
    inventory: Annotated[Path | None, typer.Option("--inventory", "-i", help="Site: hosts, certificates, DB.")] = None,
    silence: Annotated[str, typer.Option("--silence", help="Heartbeat gap that counts as silence.")] = "10m",
    signing_keys: Annotated[
        Path | None, typer.Option("--signing-keys", help="Key ring to verify rows with. Default: the site's.")
    ] = None,
    verify_signatures: VerifyOpt = None,
    db_http: DbHttpOpt = None,
) -> None:
    """Coverage, logins, failures, brute force, sudo/su, account changes, forged entries, certificates."""
    now = time.time_ns() // 1000
    start, until_given = parse_period(since or "7d", until, now)
    end = until_given if until_given is not None else now
    if start is None or end <= start:  # no --until, and --since after now
        raise BadInputError("--until must be after --since")
    inv = load_inventory(inventory) if inventory else None
    certificates = list_certificates(inv) if inv else []
    common = {
        "since": start,
        "until": end,
        "site": inv.spec.site if inv else "",
        "expected_hosts": [h.name for h in inv.hosts] if inv else [],
        "silence": duration_micros(silence, "--silence"),
        "certificates": certificates,
        "last_verification": site_last_verification(inv.site_dir, now) if inv else None,
    }
    if journal is not None:
        selection = Selection.of(inv)
        data = export_report(journal, selection, **common)
        data.source = f"journal export {'stdin' if journal == '-' else journal}"
    else:
        verifier = site_verifier(inv.site_dir if inv else None, signing_keys, verify_signatures)
        data = _from_store(over_http(store.config(inv), db_http), inv, verifier, common, now)
    data.generated, data.version = now, __version__
    if data.empty_but_not_silent:
        typer.echo(
            escape(
                f"logstack: report: no line from {iso(start)[:19]} to {iso(end)[:19]} UTC, but {data.source} holds "
                f"lines from {iso(data.source_first or 0)[:19]} to {iso(data.source_last or 0)[:19]}: "
                "give --since/--until"
            ),
            err=True,
        )
    atomic_write(output, render_html(data), mode=0o644)
    typer.echo(f"wrote {output}: {data.events} events on {len(data.hosts)} hosts")
    if markdown is not None:
        atomic_write(markdown, render_markdown(data), mode=0o644)
        typer.echo(f"wrote {markdown}")


def _from_store(
    config: DatabaseConfig, inv: Inventory | None, verifier: Verifier | None, common: dict[str, Any], now: int
) -> ReportData:
    """The period's report from the store, with the span of rows the store holds."""
    start, end = common["since"], common["until"]
    with DatabaseSource(config, verifier=verifier) as db:
        if inv is not None and inv.server.backup is not None:
            common["last_backup"] = backup_line(recorded_backup(db), inv.server.backup.max_age_hours, _utc(now))
        # Rows of the period arrive a little later than they happen; a sender may buffer for hours.
        verified = verifier is not None and not isinstance(verifier, Unverified)
        window = (start, end + HOUR)
        read = (lambda: db.lines(*window)), (lambda: store_frames(db, *window))
        data = build_report_in_columns(*read, **common, verified=verified)
        data.source = f"store {config.label}"
        # the store's whole span, not only what the period read (rows by the time the store took them)
        data.source_first, data.source_last = db.oldest(), db.newest()
    outside = data.source_first is not None and (data.source_first < start or (data.source_last or 0) >= end)
    data.lines_outside = max(data.lines_outside, int(outside))
    return data


def _utc(now: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(now / 1_000_000, dt.UTC)
