"""`logstack init DIR`: scaffold a site."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from logstack.commands.options import PassphraseFileOpt, passphrase
from logstack.provision.scaffold import init_site


def init(
    directory: Annotated[Path, typer.Argument(help="Site directory to create.")],
    passphrase_file: PassphraseFileOpt = None,
) -> None:
    """Create a site: inventory.yaml from the example, secrets.yaml (0600) and the private CA."""
    result = init_site(directory, passphrase(passphrase_file))
    typer.echo(f"created {result.inventory} (edit it: server, hosts)")
    typer.echo(f"created {result.secrets} (mode 0600, database passwords)")
    typer.echo(f"created CA {result.ca.id}: {result.ca.subject} (fingerprint {result.ca.fingerprint})")
