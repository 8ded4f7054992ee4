"""`logstack trust-host NAME`: show a machine's SSH host key and pin it."""

from __future__ import annotations

from typing import Annotated

import typer

from logstack.commands.options import DEFAULT_INVENTORY, InventoryOpt, inventory
from logstack.connection.ssh import fingerprint, pin_host_key, scan_host_key
from logstack.connection.targets import host_target, known_hosts_path, server_target


def trust_host(
    name: Annotated[str, typer.Argument(help="A host name, or `server`.")],
    inventory_path: InventoryOpt = DEFAULT_INVENTORY,
) -> None:
    """Fetch the host key NAME presents, print its fingerprint and pin it in the known_hosts file."""
    inv = inventory(inventory_path)
    target = server_target(inv) if name == "server" else host_target(inv.host(name))
    if target.transport == "local":
        typer.echo(f"{name} is this machine (connection: local): it has no SSH host key to pin")
        return
    known_name, key = scan_host_key(target)
    path = known_hosts_path(inv)
    added = pin_host_key(path, known_name, key)
    typer.echo(f"{name} ({known_name}) presents {key.get_name()} {fingerprint(key)}")
    typer.echo(f"pinned in {path}" if added else f"already pinned in {path}")
