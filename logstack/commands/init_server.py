"""`logstack init-server`: GreptimeDB and the receiving Vector on the central server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from logstack.base.errors import RuntimeFailure
from logstack.commands import options
from logstack.commands.options import DEFAULT_INVENTORY, InventoryOpt, PassphraseFileOpt, inventory, passphrase
from logstack.commands.plan_output import print_plan, print_results
from logstack.provision.server import init_server as run_init_server


def init_server(
    inventory_path: InventoryOpt = DEFAULT_INVENTORY,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and diffs; change nothing.")] = False,
    accept_new: Annotated[bool, typer.Option("--accept-new", help="Pin an unknown host key (first contact).")] = False,
    no_install: Annotated[bool, typer.Option("--no-install", help="Refuse instead of installing Vector.")] = False,
    greptime_tarball: Annotated[
        Path | None, typer.Option("--greptime-tarball", help="Release tarball to upload (needs PATH.sha256sum).")
    ] = None,
    passphrase_file: PassphraseFileOpt = None,
    wheels: Annotated[
        Path | None,
        typer.Option(
            "--wheels",
            envvar="LOGSTACK_WHEELS",
            help="Dependency wheels for the server (logstack wheels -o DIR); no index is asked.",
        ),
    ] = None,
    verify_timeout: Annotated[
        float, typer.Option("--verify-timeout", min=0, help="Seconds a restarted service has to come up (0: skip).")
    ] = 30.0,
    packages: options.PackagesOpt = None,
) -> None:
    """Install and configure GreptimeDB and the receiving Vector; a second run changes nothing."""
    inv = inventory(inventory_path)
    result = run_init_server(
        inv,
        dry_run=dry_run,
        accept_new=accept_new,
        no_install=no_install,
        greptime_tarball=greptime_tarball,
        passphrase=passphrase(passphrase_file),
        verify_timeout=verify_timeout,
        wheels=wheels,
        packages=packages,
    )
    for step in [*result.steps, *result.checks]:
        typer.echo(step)
    machines = [result.deploy] if result.deploy is not None else []
    machines += result.receivers
    if dry_run:
        for machine in machines:
            print_plan(machine)
    print_results(machines)
    failed = [m.name for m in result.receivers if m.status in ("failed", "unreachable")]
    if failed:
        raise RuntimeFailure(f"{len(failed)} of {len(result.receivers)} receivers were not set up: {', '.join(failed)}")
