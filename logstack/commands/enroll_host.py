"""`logstack enroll-host NAME... | --all`: client certificate, sender config, restart, in parallel."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from logstack.base.exit_codes import ExitStatus
from logstack.commands import options
from logstack.commands.options import DEFAULT_INVENTORY, InventoryOpt, PassphraseFileOpt, inventory, passphrase
from logstack.commands.plan_output import print_plan, print_results
from logstack.deploy.enroll import enroll, select_hosts


def enroll_host(
    names: Annotated[list[str] | None, typer.Argument(help="Hosts to enroll.")] = None,
    all_hosts: Annotated[bool, typer.Option("--all", help="Every host of the inventory.")] = False,
    forks: Annotated[int, typer.Option("--forks", help="Hosts handled in parallel.")] = 10,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and diffs; change nothing.")] = False,
    accept_new: Annotated[bool, typer.Option("--accept-new", help="Pin unknown host keys (first contact).")] = False,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Do not wait for each host's heartbeat to reach GreptimeDB.")
    ] = False,
    verify_timeout: Annotated[
        float, typer.Option("--verify-timeout", min=0, help="Seconds a restarted Vector has to come up (0: skip).")
    ] = 30.0,
    db_port: Annotated[int, typer.Option("--db-port", help="GreptimeDB's MySQL port on the server.")] = 4002,
    packages: options.PackagesOpt = None,
    inventory_path: InventoryOpt = DEFAULT_INVENTORY,
    passphrase_file: PassphraseFileOpt = None,
) -> None:
    """Mint each host's client certificate when missing, deploy its files, restart Vector when changed,
    check that it stays up, then wait until each host's heartbeat reaches GreptimeDB."""
    inv = inventory(inventory_path)
    hosts = select_hosts(inv, names or [], all_hosts)
    with Progress(
        TextColumn("enrolling"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as progress:
        task = progress.add_task("", total=len(hosts))
        results = enroll(
            inv,
            hosts,
            forks=forks,
            dry_run=dry_run,
            accept_new=accept_new,
            passphrase=passphrase(passphrase_file),
            on_result=lambda r: progress.update(task, advance=1, description=r.name),
            verify_timeout=verify_timeout,
            # a restarted sender's first heartbeat leaves at once; an unchanged one's within an interval
            delivery_timeout=None if no_verify else verify_timeout + inv.spec.senders.heartbeat_interval,
            db_port=db_port,
            packages_dir=packages,
        )
    if dry_run:
        for result in results:
            print_plan(result)
    print_results(results)
    if any(r.status in ("failed", "unreachable") for r in results):
        raise typer.Exit(ExitStatus.RUNTIME_FAILURE)
