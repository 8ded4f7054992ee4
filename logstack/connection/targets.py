"""The site's machines as targets: where and how to reach each (SSH settings or this machine), the known_hosts file."""

from __future__ import annotations

import os
from pathlib import Path

from logstack.connection.base import Target
from logstack.site.inventory import Host, Inventory, ReceiverSpec, ServerSpec


def known_hosts_path(inventory: Inventory) -> Path:
    """The inventory's known_hosts file (relative to the site), else ~/.ssh/known_hosts."""
    if inventory.spec.known_hosts:
        path = Path(inventory.spec.known_hosts).expanduser()
        return path if path.is_absolute() else inventory.site_dir / path
    return Path(os.path.expanduser("~/.ssh/known_hosts"))


def host_target(host: Host) -> Target:
    return Target(
        name=host.name,
        address=host.address,
        port=host.ssh.port,
        user=host.ssh.user,
        key=host.ssh.key,
        proxy_jump=host.ssh.proxy_jump,
        sudo=host.sudo,
        transport=host.connection,
    )


def server_target(inventory: Inventory) -> Target:
    return receiver_target(inventory.server, "server")


def receiver_target(spec: ServerSpec | ReceiverSpec, name: str | None = None) -> Target:
    """A receiving machine over SSH: its own ssh settings; its fqdn when no address is given."""
    return Target(
        name=name or getattr(spec, "name", "server"),
        address=spec.address or spec.fqdn,
        port=spec.ssh.port,
        user=spec.ssh.user,
        key=spec.ssh.key,
        proxy_jump=spec.ssh.proxy_jump,
        sudo=spec.sudo,
    )
