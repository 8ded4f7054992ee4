"""A way to reach a machine, as every stage uses it: run a command as root, read files, open a port forward.

Transports are one module each (`ssh`, `local`) behind `Connection`; `registry.connect` picks one by the
target's `transport`. Callers never touch a transport's own client.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from logstack.base.errors import RuntimeFailure
from logstack.site.field_types import Transport

MAX_OUTPUT = 64 * 1024 * 1024  # what logstack reads of one remote command's output
CONNECT_TIMEOUT = 10.0
RETRIES = 2  # extra attempts after a refused or timed-out TCP connection


class HostKeyError(RuntimeFailure):
    """The target's host key is unknown or has changed."""


class UnreachableError(RuntimeFailure):
    """No session could be opened (TCP refused, timed out, no SSH banner)."""


class SudoError(RuntimeFailure):
    """sudo -n could not run a command without a password."""


@dataclass(frozen=True)
class Target:
    """Where and how to reach one machine."""

    name: str
    address: str
    port: int | None = None
    user: str | None = None
    key: str | None = None
    proxy_jump: str | None = None
    sudo: bool = False
    transport: Transport = "ssh"


class FileStat(Protocol):
    """What a file's status tells (os.stat_result and SFTP attributes alike)."""

    st_mode: int | None
    st_uid: int | None
    st_gid: int | None
    st_size: int | None


class RemoteHandle(Protocol):
    """An open file on the machine."""

    def read(self, size: int = ...) -> bytes: ...
    def stat(self) -> FileStat: ...
    def __enter__(self) -> RemoteHandle: ...
    def __exit__(self, *exc: object) -> Any: ...


class FileReader(Protocol):
    """Reads files on the machine without starting a process there (SFTP, or this machine's own files)."""

    def open(self, path: str) -> RemoteHandle: ...
    def stat(self, path: str) -> FileStat: ...


class Connection(abc.ABC):
    """An open connection to one machine; `run` executes as root (through `sudo -n` when needed)."""

    target: Target

    @property
    @abc.abstractmethod
    def needs_sudo(self) -> bool:
        """Whether commands go through `sudo -n` (the connection is not root's)."""

    @abc.abstractmethod
    def run(
        self, command: str, stdin: bytes | None = None, check: bool = True, timeout: float = 120.0
    ) -> tuple[int, bytes, bytes]:
        """Run a shell command as root; returns (exit status, stdout, stderr)."""

    @abc.abstractmethod
    def open_forward(self, host: str, port: int, timeout: float = 10.0) -> Any:
        """A socket-like channel to host:port as seen from the machine."""

    @contextmanager
    def file_reader(self) -> Iterator[FileReader | None]:
        """A reader of the machine's files as root, or None when this connection has none (then run a command)."""
        yield None

    def close(self) -> None:  # noqa: B027 - a transport without a session has nothing to close
        """Close the connection."""

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sudo_command(self, command: str) -> str:
        """`command` as root: through `sudo -n` when the connection is not root's and sudo is allowed."""
        import shlex

        if not self.needs_sudo:
            return command
        if not self.target.sudo:
            raise RuntimeFailure(
                f"{self.target.name}: user {self.username} is not root and sudo is off "
                "in the inventory (set sudo: true)"
            )
        return "sudo -n sh -c " + shlex.quote(command)

    @property
    def username(self) -> str:
        """The account the connection runs as."""
        return self.target.user or "root"

    def checked(self, command: str, status: int, err: bytes, check: bool) -> None:
        """Turn a command's failure into one error naming the machine (sudo asking for a password said so)."""
        if self.needs_sudo and status == 1 and b"a password is required" in err:
            raise SudoError(
                f"{self.target.name}: sudo asks for a password; allow {self.username} NOPASSWD "
                "for logstack's commands or connect as root"
            )
        if check and status != 0:
            message = err.decode(errors="replace").strip().splitlines()
            raise RuntimeFailure(
                f"{self.target.name}: remote command failed ({status}): "
                f"{message[-1] if message else command.split()[0]}"
            )
