"""The machine logstack runs on, reached without a network: commands through `sh`, files through the OS.

For a site whose server (or a host) is the operator's own machine, and for tests and chroot-like setups.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from logstack.base.errors import RuntimeFailure
from logstack.connection.base import MAX_OUTPUT, Connection, FileStat, Target


class _Handle:
    """A local file opened for reading, with `stat()` as SFTP handles have it."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle

    def read(self, size: int = -1) -> bytes:
        return self._handle.read(size)

    def stat(self) -> FileStat:
        return os.fstat(self._handle.fileno())  # type: ignore[return-value]

    def __enter__(self) -> _Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


class _Files:
    """This machine's files, read as SFTP reads them (a FIFO does not block: callers keep regular files only)."""

    def open(self, path: str) -> _Handle:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        return _Handle(os.fdopen(fd, "rb"))

    def stat(self, path: str) -> FileStat:
        return os.stat(path)  # type: ignore[return-value]


class LocalConnection(Connection):
    """This machine, as root (through `sudo -n` when logstack runs as another user)."""

    def __init__(self, target: Target) -> None:
        self.target = target

    @property
    def needs_sudo(self) -> bool:
        return os.geteuid() != 0

    @property
    def username(self) -> str:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name

    def run(
        self, command: str, stdin: bytes | None = None, check: bool = True, timeout: float = 120.0
    ) -> tuple[int, bytes, bytes]:
        """Run a shell command as root; returns (exit status, stdout, stderr)."""
        command = self.sudo_command(command)
        try:
            done = subprocess.run(
                ["sh", "-c", command], input=stdin or b"", capture_output=True, timeout=timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeFailure(f"{self.target.name}: local command failed: {exc}") from None
        if len(done.stdout) > MAX_OUTPUT or len(done.stderr) > MAX_OUTPUT:
            raise RuntimeFailure(f"{self.target.name}: a command printed more than {MAX_OUTPUT} bytes")
        self.checked(command, done.returncode, done.stderr, check)
        return done.returncode, done.stdout, done.stderr

    def open_forward(self, host: str, port: int, timeout: float = 10.0) -> Any:
        """A TCP connection to host:port from this machine (what a forward would reach)."""
        try:
            return socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise RuntimeFailure(f"{self.target.name}: cannot reach {host}:{port}: {exc}") from None

    @contextmanager
    def file_reader(self) -> Iterator[_Files | None]:
        """This machine's files, read directly when logstack runs as root."""
        yield None if self.needs_sudo else _Files()
