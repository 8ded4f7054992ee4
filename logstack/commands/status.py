"""`logstack status`: silent hosts, server health, certificate expiry; exit 1 on any finding."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from logstack.base.clock import parse_duration
from logstack.base.exit_codes import ExitStatus
from logstack.commands.options import (
    DEFAULT_INVENTORY,
    InventoryOpt,
    PassphraseFileOpt,
    TextOrJson,
    inventory,
    passphrase,
)
from logstack.evidence.status import check_status


def status(
    inventory_path: InventoryOpt = DEFAULT_INVENTORY,
    output: TextOrJson = "text",
    silence: Annotated[str, typer.Option("--silence", help="A host silent longer than this is a finding.")] = "10m",
    within: Annotated[str, typer.Option("--within", help="A certificate expiring within this is a finding.")] = "30d",
    db_port: Annotated[int, typer.Option("--db-port", help="GreptimeDB's MySQL port on the server.")] = 4002,
    accept_new: Annotated[bool, typer.Option("--accept-new", help="Pin an unknown server host key.")] = False,
    passphrase_file: PassphraseFileOpt = None,
) -> None:
    """Per host: last heartbeat, last event, certificate; server: GreptimeDB, Vector's TLS port, disk."""
    report = check_status(
        inventory(inventory_path),
        silence=parse_duration(silence, "--silence"),
        cert_window=parse_duration(within, "--within"),
        db_port=db_port,
        accept_new=accept_new,
        passphrase=passphrase(passphrase_file),
    )
    if output == "json":
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        s = report.server
        free = f"{s.data_dir_free_bytes / 2**30:.1f} GiB ({s.data_dir_free_percent}%)" if s.data_dir_free_bytes else "?"
        typer.echo(
            f"server: GreptimeDB {s.greptimedb}; Vector TLS {s.vector_tls}; free {free}; "
            f"certificate {s.certificate_days_left} days"
        )
        for name, state in s.receivers.items():
            typer.echo(f"receiver {name}: Vector TLS {state}")
        if s.last_backup or s.alert_backlog:
            queued = ", ".join(f"{d} {n}" for d, n in s.alert_backlog.items()) or "-"
            typer.echo(f"last backup: {s.last_backup or '-'}; alerts waiting: {queued}")
        typer.echo(f"{'HOST':<24} {'ENROLLED':<9} {'CERT DAYS':>9}  {'LAST HEARTBEAT':<28} {'LAST EVENT':<28}")
        for h in report.hosts:
            beat = f"{h.last_heartbeat} ({h.heartbeat_age_seconds}s)" if h.last_heartbeat else "-"
            typer.echo(
                f"{h.name:<24} {'yes' if h.enrolled else 'no':<9} {h.certificate_days_left or '-':>9}  "
                f"{beat:<28} {h.last_event or '-':<28}"
            )
        for problem in report.problems:
            typer.echo(f"PROBLEM {problem}")
    if report.problems:
        raise typer.Exit(ExitStatus.FINDINGS)
