"""`logstack analyze`: security events from GreptimeDB or a journal export, each reported once."""

from __future__ import annotations

import dataclasses
import functools
import gc
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from logstack.alerts.delivery import Collector, deliver, load_config
from logstack.alerts.event_batches import collecting
from logstack.analyze.column_run import (
    EventSink,
    analyze_in_columns,
    analyze_journal,
    columns_writer,
    counted_frames,
    counted_lines,
)
from logstack.analyze.export_source import ExportSource
from logstack.analyze.grouping import Event, Settings
from logstack.analyze.output import EventWriter
from logstack.analyze.run import RunOptions, RunResult, resume_clock
from logstack.base.clock import DAY, duration_micros, parse_period
from logstack.base.errors import BadInputError, RuntimeFailure
from logstack.base.exit_codes import ExitStatus
from logstack.base.paths import DATA_ROOT, source_id, state_file
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
from logstack.commands.progress import Progress
from logstack.integrity.signatures import site_verifier
from logstack.journal.selection import Selection
from logstack.store.greptime import store_address
from logstack.store.reader import DatabaseSource
from logstack.store.reading_process import store_frames

if TYPE_CHECKING:
    from logstack.site.inventory import Inventory

FormatOpt = Annotated[Literal["text", "json", "jsonl"], typer.Option("--format", help="Output format.")]
FailOnOpt = Annotated[
    Literal["never", "info", "failure", "alert"],
    typer.Option("--fail-on", help="Exit 1 when an event of this severity or worse is reported."),
]
BruteCountOpt = Annotated[
    int, typer.Option("--brute-force-count", min=2, help="Failed tries from one source that make an incident.")
]
BruteWindowOpt = Annotated[str, typer.Option("--brute-force-window", help="Within this long (an incident's tries).")]
HorizonOpt = Annotated[
    str, typer.Option("--dedupe-horizon", help="Journal age up to which a repeated line is recognised.")
]
StateIdOpt = Annotated[
    str | None, typer.Option("--state-id", help="Name the --since-last-run state (a store reached anew).")
]
SafetyLagOpt = Annotated[
    str, typer.Option("--safety-lag", help="Rows younger than this may not be visible yet (store clocks differ).")
]
AlertsOpt = Annotated[Path | None, typer.Option("--alerts", help="Deliver events to these destinations (alerts.json).")]
AlertSecretsOpt = Annotated[Path | None, typer.Option("--alert-secrets", help="Their secrets (JSON).")]


@store_options
def analyze(
    store: StoreOptions,
    journal: Annotated[str | None, typer.Option("--journal", help="journalctl -o json export; - for stdin.")] = None,
    inventory: Annotated[Path | None, typer.Option("--inventory", "-i", help="Take defaults from this site.")] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="State directory for --since-last-run.")] = None,
    since_last_run: Annotated[bool, typer.Option("--since-last-run", help="Report only what is new.")] = False,
    output: FormatOpt = "text",
    fail_on: FailOnOpt = "never",
    settle: Annotated[str, typer.Option("--settle", help="Quiet time before an event is final.")] = "2m",
    brute_force_count: BruteCountOpt = 8,
    brute_force_window: BruteWindowOpt = "120s",
    dedupe_horizon: HorizonOpt = "14d",
    safety_lag: SafetyLagOpt = "10s",
    state_id: StateIdOpt = None,
    signing_keys: Annotated[
        Path | None,
        typer.Option("--signing-keys", help="Key ring to verify rows with. Default: the inventory's site's."),
    ] = None,
    verify_signatures: VerifyOpt = None,
    alerts: AlertsOpt = None,
    alert_secrets: AlertSecretsOpt = None,
    db_http: DbHttpOpt = None,
) -> None:
    """Group journal lines into security events and report each one once."""
    inv = _load_inventory(inventory)
    source = (journal, *store_address(inv, store.host, store.port), store.name, store.table, state_id)  # the state's
    options = _run_options(inv, (since, until), data_dir, source, since_last_run, settle, dedupe_horizon)
    options = _tuned(options, brute_force_count, brute_force_window, safety_lag)
    collector = _alert_collector(alerts, alert_secrets, options)
    writer = EventWriter(sys.stdout, output)
    report = writer.write if collector is None else _both(writer, collector)
    _tune_gc()
    now = time.time_ns() // 1000

    def flush() -> None:  # the state commits only once everything reported is out
        writer.close()
        sys.stdout.flush()

    queue = collector.queue if collector is not None else None
    # events go out written from columns (JSON lines, text blocks), those alerts take made dictionaries from them
    in_columns = columns_writer(writer) if collector is None else collecting(columns_writer(writer), collector)
    if journal is not None:
        result = _from_export(journal, inv, options, now, (report, in_columns), flush, queue)
    else:
        verifier = site_verifier(inv.site_dir if inv else None, signing_keys, verify_signatures)
        with DatabaseSource(over_http(store.config(inv), db_http), verifier=verifier) as db:
            result = _from_store(db, options, now, (report, in_columns), flush, queue)
    if options.state_path is None:
        flush()
    else:
        deliver_alerts(options.state_path, collector)
    if result.fails(fail_on):
        raise typer.Exit(ExitStatus.FINDINGS)


def _tuned(options: RunOptions, count: int, window: str, lag: str) -> RunOptions:
    settings = Settings(brute_force_count=count, brute_force_window=duration_micros(window, "--brute-force-window"))
    return dataclasses.replace(options, settings=settings, safety_lag=duration_micros(lag, "--safety-lag"))


def _tune_gc() -> None:
    # A run allocates millions of short-lived, acyclic objects; frequent cyclic GC passes over the
    # growing young generations cost more than the analysis itself.
    gc.set_threshold(200_000, 50, 50)


def _load_inventory(path: Path | None) -> Inventory | None:
    if path is None:
        return None
    from logstack.site.inventory import load_inventory  # pydantic: loaded only when an inventory is read

    return load_inventory(path)


def deliver_alerts(state_path: Path, collector: Collector | None) -> None:
    """Deliver every queue; a destination that failed keeps its events and fails the run (exit 3), so the
    unit shows it and the next run tries again."""
    if collector is None:
        return
    result = deliver(state_path, collector.config)
    for dest, lost in result.dropped.items():
        typer.echo(
            f"logstack: alerts: {dest}: queue full, {lost} events dropped (the least severe first; they are in "
            "this output)",
            err=True,
        )
    for dest, count in result.forgotten.items():
        if count:
            typer.echo(f"logstack: alerts: {dest} is no longer configured: {count} queued events dropped", err=True)
    if result.failures:
        failed = "; ".join(
            f"{dest}: {error} ({result.queued.get(dest, 0)} events kept for the next run)"
            for dest, error in result.failures.items()
        )
        raise RuntimeFailure(f"alerts: {failed}")


def _alert_collector(alerts: Path | None, secrets: Path | None, options: RunOptions) -> Collector | None:
    if alerts is None:
        if secrets is not None:
            raise BadInputError("--alert-secrets needs --alerts")
        return None
    if options.state_path is None:
        raise BadInputError("--alerts needs --since-last-run: its queues live in the analysis state")
    return Collector(load_config(alerts, secrets))


def _both(writer: EventWriter, collector: Collector) -> Callable[[Event], None]:
    def report(event: Event) -> None:
        writer.write(event)
        collector.add(event.as_dict())

    return report


def _run_options(
    inv: Inventory | None,
    period: tuple[str | None, str | None],
    data_dir: Path | None,
    source: tuple[str | None, str, int, str | None, str | None, str | None],
    since_last_run: bool,
    settle: str,
    dedupe_horizon: str,
) -> RunOptions:
    since, until = parse_period(*period)
    if until is not None and since_last_run:
        raise BadInputError("--until and --since-last-run do not go together (a run reads up to now)")
    return RunOptions(
        since=since,
        until=until,
        state_path=_state_path(inv, data_dir, source) if since_last_run else None,
        settle=duration_micros(settle, "--settle"),
        horizon=duration_micros(dedupe_horizon, "--dedupe-horizon"),
    )


def _from_export(
    journal: str,
    inv: Inventory | None,
    options: RunOptions,
    now: int,
    output: tuple[Callable[[Event], None], EventSink | None],
    flush: Callable[[], None],
    queue: Callable[[sqlite3.Connection], None] | None,
) -> RunResult:
    progress = Progress(f"analyze {journal}")
    try:
        result, lines = analyze_journal(journal, Selection.of(inv), options, now, output, flush, queue, progress.update)
    finally:  # also when the run fails: the error's line starts on a clean line
        progress.done()
    if options.state_path is not None:
        _warn_unread(journal, lines, options)
    return result


def _from_store(
    db: DatabaseSource,
    options: RunOptions,
    now: int,
    output: tuple[Callable[[Event], None], EventSink | None],
    flush: Callable[[], None],
    queue: Callable[[sqlite3.Connection], None] | None,
) -> RunResult:
    if options.state_path is not None:  # one clock: the one the rows are stamped with
        now = resume_clock(db.store_now(), options.overlap)
    progress = Progress("analyze")
    try:  # read in columns (`frames`), line by line where the columns refuse
        read = functools.partial(store_frames, db)
        rows, frames = counted_lines(db.lines, progress.update), counted_frames(read, progress.update)
        return analyze_in_columns(rows, options, now, *output, flush=flush, before_commit=queue, frames=frames)
    finally:  # also when the run fails: the error's line starts on a clean line
        progress.done()


def _warn_unread(path: str, lines: ExportSource, options: RunOptions) -> None:
    name = "stdin" if path == "-" else escape(path)
    if lines.too_old:
        typer.echo(
            f"logstack: {name}: {lines.too_old} lines are older than the {options.horizon // DAY}-day horizon of "
            "--since-last-run and were not read (earlier runs may have reported them; analyze the file without "
            "--since-last-run, or give a longer --dedupe-horizon)",
            err=True,
        )
    if lines.too_new:
        typer.echo(
            f"logstack: {name}: {lines.too_new} lines are dated after this machine's clock less --safety-lag and "
            "were not read (a clock ahead on the host?); a later run with the file reads them",
            err=True,
        )


def _state_path(
    inv: Inventory | None,
    data_dir: Path | None,
    source: tuple[str | None, str, int, str | None, str | None, str | None],
) -> Path:
    journal, host, port, db, table, state_id = source
    base = data_dir or (inv.site_dir / "state" if inv else DATA_ROOT)
    # a state id given is one carried over from another endpoint of the same store (a move)
    return state_file(base, state_id if state_id is not None else source_id(journal, host, port, db, table))
