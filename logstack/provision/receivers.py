"""The receiving machines beyond the server: their certificates, and each one set up on its own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from logstack.base.errors import RuntimeFailure
from logstack.base.shell import shell_command
from logstack.connection.base import Connection
from logstack.pki import PKI
from logstack.site.inventory import Inventory, ReceiverSpec
from logstack.site.topology import probe_address, receiver_key

if TYPE_CHECKING:
    from logstack.deploy.result import HostResult

VECTOR_APT = (
    "install -d -m 0755 /usr/share/keyrings && "
    "curl -fsSL https://keys.datadoghq.com/DATADOG_APT_KEY_CURRENT.public | "
    "gpg --dearmor --yes -o /usr/share/keyrings/datadog-archive-keyring.gpg && "
    "echo 'deb [signed-by=/usr/share/keyrings/datadog-archive-keyring.gpg] https://apt.vector.dev/ stable vector-0' "
    "> /etc/apt/sources.list.d/vector.list && apt-get update -qq && "
    "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq vector"
)
VECTOR_INSTRUCTIONS = (
    "Vector is not installed on the server. Install it from its signed apt repository, then run init-server "
    "again: curl -fsSL https://keys.datadoghq.com/DATADOG_APT_KEY_CURRENT.public | gpg --dearmor -o "
    "/usr/share/keyrings/datadog-archive-keyring.gpg; echo 'deb [signed-by=/usr/share/keyrings/"
    "datadog-archive-keyring.gpg] https://apt.vector.dev/ stable vector-0' > /etc/apt/sources.list.d/vector.list; "
    "apt-get update && apt-get install vector"
)


def ensure_vector(conn: Connection, no_install: bool) -> bool:
    status, _, _ = conn.run("command -v vector", check=False)
    if status == 0:
        return False
    if no_install:
        raise RuntimeFailure(f"server: {VECTOR_INSTRUCTIONS}")
    conn.run(VECTOR_APT, timeout=900)
    return True


VECTOR_MISSING = (
    "Vector is not installed on receiver {name}: install it from its signed apt repository (apt.vector.dev), "
    "or set server.manage_packages: true"
)


def ensure_receiver_certificates(inventory: Inventory, pki: PKI, passphrase: bytes | None) -> list[str]:
    """Issue each receiver's certificate when it is missing or its names no longer match the inventory."""
    steps = []
    for spec in inventory.server.receivers:
        if not pki.holds_current(receiver_key(spec.name), spec):
            pki.issue_receiver(spec, passphrase)
            steps.append(f"issued the certificate of receiver {spec.name}")
    return steps


def receiver_hooks(inventory: Inventory, spec: ReceiverSpec, dry_run: bool, no_install: bool) -> tuple[Any, Any]:
    """What deployment does on a receiver before its files (Vector present) and after (its port listens)."""

    def install(conn: Connection) -> None:
        if inventory.server.manage_packages:
            ensure_vector(conn, no_install)
        elif conn.run("command -v vector", check=False)[0] != 0:
            raise RuntimeFailure(VECTOR_MISSING.format(name=spec.name))
        conn.run(shell_command('install -d -m 0755 -- "$1"', "/etc/logstack"))

    def listening(conn: Connection, deployed: HostResult) -> None:
        if not dry_run:
            conn.open_forward(probe_address(spec.listen_address), inventory.server.vector_port).close()

    return install, listening
