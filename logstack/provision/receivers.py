"""The receiving machines beyond the server: their certificates, and each one set up on its own."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from logstack.base.errors import RuntimeFailure
from logstack.base.shell import shell_command
from logstack.connection.base import Connection
from logstack.deploy.packages import install_vector, package_for, plan_vector
from logstack.pki import PKI
from logstack.site.host_facts import gather
from logstack.site.inventory import Inventory, ReceiverSpec
from logstack.site.topology import probe_address, receiver_key

if TYPE_CHECKING:
    from logstack.deploy.result import HostResult


def ensure_vector(
    conn: Connection, name: str, inventory: Inventory, no_install: bool, packages: Path | None = None
) -> str | None:
    """Vector at the site's pinned version on a receiving machine, from its signed repository (the key
    checked against the pinned fingerprints); what was done, or None. With --no-install, a missing or older
    Vector is an error that says what to install."""
    facts = gather(conn)
    step = plan_vector(name, facts, inventory.spec.vector)
    if step is None:
        if facts.vector is None:
            raise RuntimeFailure(VECTOR_MISSING.format(name=name))
        return None
    if no_install:
        raise RuntimeFailure(
            f"{name}: Vector {inventory.spec.vector.version} is needed ({step.describe()}); run without "
            "--no-install, or install it yourself from its signed repository (apt.vector.dev / yum.vector.dev)"
        )
    package = package_for(packages, step.manager, step.wanted, facts.arch) if packages else None
    install_vector(conn, step, inventory.spec.vector, inventory.spec.service_manager, package)
    return step.describe(done=True)


VECTOR_MISSING = (
    "Vector is not installed on {name}: install it from its signed repository (apt.vector.dev / yum.vector.dev), "
    "or set vector.manage_packages: true"
)


def ensure_receiver_certificates(inventory: Inventory, pki: PKI, passphrase: bytes | None) -> list[str]:
    """Issue each receiver's certificate when it is missing or its names no longer match the inventory."""
    steps = []
    for spec in inventory.server.receivers:
        if not pki.holds_current(receiver_key(spec.name), spec):
            pki.issue_receiver(spec, passphrase)
            steps.append(f"issued the certificate of receiver {spec.name}")
    return steps


def receiver_hooks(
    inventory: Inventory, spec: ReceiverSpec, dry_run: bool, no_install: bool, packages: Path | None = None
) -> tuple[Any, Any]:
    """What deployment does on a receiver before its files (Vector present) and after (its port listens)."""

    def install(conn: Connection) -> None:
        if inventory.server.manage_packages:
            ensure_vector(conn, spec.name, inventory, no_install, packages)
        elif conn.run("command -v vector", check=False)[0] != 0:
            raise RuntimeFailure(VECTOR_MISSING.format(name=spec.name))
        conn.run(shell_command('install -d -m 0755 -- "$1"', "/etc/logstack"))

    def listening(conn: Connection, deployed: HostResult) -> None:
        if not dry_run:
            conn.open_forward(probe_address(spec.listen_address), inventory.server.vector_port).close()

    return install, listening
