"""`logstack ca init | rotate | retire-old`."""

from __future__ import annotations

from typing import Annotated

import typer

from logstack.commands.options import (
    DEFAULT_INVENTORY,
    InventoryOpt,
    PassphraseFileOpt,
    inventory,
    passphrase,
)
from logstack.pki import service

app = typer.Typer(help="The site's private certificate authority.", no_args_is_help=True, add_completion=False)


@app.command("init")
def ca_init(inventory_path: InventoryOpt = DEFAULT_INVENTORY, passphrase_file: PassphraseFileOpt = None) -> None:
    """Create the CA (ECDSA P-256 by default) in pki/ beside the inventory."""
    inv = inventory(inventory_path)
    record = service.init_ca(inv, passphrase(passphrase_file))
    typer.echo(f"created CA {record.id}: {record.subject}, valid until {record.not_after}")
    typer.echo(f"fingerprint {record.fingerprint}")


@app.command("rotate")
def ca_rotate(inventory_path: InventoryOpt = DEFAULT_INVENTORY, passphrase_file: PassphraseFileOpt = None) -> None:
    """Start a CA rotation: a new CA issues from now on; the receiver trusts old and new."""
    inv = inventory(inventory_path)
    record = service.rotate_ca(inv, passphrase(passphrase_file))
    typer.echo(f"created CA {record.id}; the receiver trusts the old and the new CA until `logstack ca retire-old`")
    typer.echo("next: `logstack init-server`, then `logstack enroll-host --all` to move hosts to the new CA")


@app.command("retire-old")
def ca_retire_old(
    inventory_path: InventoryOpt = DEFAULT_INVENTORY,
    passphrase_file: PassphraseFileOpt = None,
    force: Annotated[bool, typer.Option(help="Retire even while hosts still hold old-CA certificates.")] = False,
) -> None:
    """End a rotation: drop the old CA from the receiver's bundle, so its certificates stop working."""
    inv = inventory(inventory_path)
    retired = service.retire_old_ca(inv, passphrase(passphrase_file), force)
    typer.echo(f"retired CA {retired}; re-issued the server certificate from the new CA")
    typer.echo("next: `logstack init-server` to deploy the new bundle (old-CA certificates are then refused)")
