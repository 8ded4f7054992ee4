"""`logstack site-backup` / `site-restore`: the site directory as one encrypted archive, and back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from logstack.commands.options import DEFAULT_INVENTORY, InventoryOpt, inventory
from logstack.site.archive import backup_site, restore_site
from logstack.site.secrets import read_passphrase

PassphraseOpt = Annotated[
    Path | None,
    typer.Option("--passphrase-file", help="File holding the archive passphrase (else $LOGSTACK_BACKUP_PASSPHRASE)."),
]


def site_backup(
    output: Annotated[Path, typer.Option("--output", "-o", help="Archive to write (mode 0600).")],
    inventory_path: InventoryOpt = DEFAULT_INVENTORY,
    passphrase_file: PassphraseOpt = None,
) -> None:
    """Write the site directory (secrets, PKI with the CA key, signing keys, state) as an encrypted archive."""
    site = inventory(inventory_path).site_dir
    passphrase = read_passphrase(os.environ.get("LOGSTACK_BACKUP_PASSPHRASE"), passphrase_file)
    result = backup_site(site, output, passphrase)
    typer.echo(f"wrote {output}: {result.files} files of {site}, {result.size} bytes, encrypted")


def site_restore(
    archive: Annotated[Path, typer.Argument(help="An archive site-backup wrote.")],
    to: Annotated[Path, typer.Option("--to", help="New (or empty) directory to restore the site into.")],
    passphrase_file: PassphraseOpt = None,
) -> None:
    """Restore a site directory from an encrypted archive."""
    passphrase = read_passphrase(os.environ.get("LOGSTACK_BACKUP_PASSPHRASE"), passphrase_file)
    result = restore_site(archive, to, passphrase)
    typer.echo(f"restored {result.files} files into {to}")
