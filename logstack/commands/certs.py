"""`logstack certs list | check | renew | revoke`."""

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
from logstack.pki import service

app = typer.Typer(help="Server and per-host client certificates.", no_args_is_help=True, add_completion=False)
WithinOpt = Annotated[str, typer.Option("--within", help="Window such as 30d, 12h, 2w.")]


@app.command("list")
def certs_list(
    inventory_path: InventoryOpt = DEFAULT_INVENTORY,
    output: TextOrJson = "text",
    history: Annotated[bool, typer.Option(help="Include superseded certificates.")] = False,
) -> None:
    """List certificates with expiry, status and issuing CA (marks hosts still on an old CA)."""
    rows = service.list_certificates(inventory(inventory_path), include_history=history)
    if output == "json":
        typer.echo(json.dumps([r.as_dict() for r in rows], indent=2))
        return
    typer.echo(f"{'NAME':<24} {'KIND':<7} {'STATUS':<10} {'CA':<6} {'NOT AFTER':<21} {'DAYS':>5}")
    for r in rows:
        flag = "  (old CA)" if r.on_old_ca and r.status == "valid" else ""
        typer.echo(f"{r.name:<24} {r.kind:<7} {r.status:<10} {r.ca:<6} {r.not_after:<21} {r.days_left:>5}{flag}")


@app.command("check")
def certs_check(
    inventory_path: InventoryOpt = DEFAULT_INVENTORY, within: WithinOpt = "30d", output: TextOrJson = "text"
) -> None:
    """Exit 1 listing every valid certificate that expires within the window."""
    window = parse_duration(within, "--within")
    expiring = service.expiring(inventory(inventory_path), window)
    if output == "json":
        fields = ("name", "kind", "serial", "not_after", "ca")
        document = {"within": within, "expiring": [{f: getattr(r, f) for f in fields} for r in expiring]}
        typer.echo(json.dumps(document, indent=2))
        if expiring:
            raise typer.Exit(ExitStatus.FINDINGS)
        return
    for rec in expiring:
        typer.echo(f"expiring: {rec.name} ({rec.kind}) serial {rec.serial} on {rec.not_after}")
    if expiring:
        raise typer.Exit(ExitStatus.FINDINGS)
    typer.echo(f"no certificate expires within {within}")


@app.command("renew")
def certs_renew(
    hosts: Annotated[list[str] | None, typer.Argument(help="Host names (or `server`).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="The server and every host.")] = False,
    within: Annotated[str | None, typer.Option("--within", help="Only those expiring within, e.g. 30d.")] = None,
    inventory_path: InventoryOpt = DEFAULT_INVENTORY,
    passphrase_file: PassphraseFileOpt = None,
) -> None:
    """Issue new certificates (new key, same names)."""
    inv = inventory(inventory_path)
    window = parse_duration(within, "--within") if within else None
    issued = service.renew(inv, hosts or [], all_, window, passphrase(passphrase_file))
    for rec in issued:
        typer.echo(f"issued {rec.name}: serial {rec.serial}, valid until {rec.not_after}")
    if not issued:
        typer.echo("nothing to renew")


@app.command("revoke")
def certs_revoke(
    host: Annotated[str, typer.Argument(help="Host whose certificate to revoke.")],
    inventory_path: InventoryOpt = DEFAULT_INVENTORY,
) -> None:
    """Mark a host's certificate revoked (enforced once its CA is rotated out)."""
    rec = service.revoke(inventory(inventory_path), host)
    typer.echo(f"revoked {host}: serial {rec.serial} (CA {rec.ca})")
    typer.echo(
        "Vector cannot check revocation: the certificate keeps working until its CA is retired. "
        "Run `logstack ca rotate`, re-enroll the other hosts, then `logstack ca retire-old`."
    )
