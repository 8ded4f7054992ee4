"""One way to open a connection, whatever the transport: the target's `transport` picks its module."""

from __future__ import annotations

from pathlib import Path

from logstack.connection.base import CONNECT_TIMEOUT, RETRIES, Connection, Target


def connect(
    target: Target,
    known_hosts: Path,
    accept_new: bool = False,
    timeout: float = CONNECT_TIMEOUT,
    retries: int = RETRIES,
) -> Connection:
    """Open a connection to `target` by its transport (SSH with strict host keys, or this machine)."""
    if target.transport == "local":
        from logstack.connection.local import LocalConnection

        return LocalConnection(target)
    from logstack.connection import ssh  # paramiko loads only for machines reached over SSH

    return ssh.open_ssh(target, known_hosts, accept_new, timeout, retries)
