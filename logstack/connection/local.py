"""The machine logstack runs on, reached without a network: commands through `sh`, files through the OS.

For a site whose server (or a host) is the operator's own machine, and for tests and chroot-like setups.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import threading
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


class _NotAFile:
    """A directory, FIFO or device where a file was looked for: its status, and nothing to read."""

    def __init__(self, info: os.stat_result) -> None:
        self._info = info

    def read(self, size: int = -1) -> bytes:
        return b""

    def stat(self) -> FileStat:
        return self._info  # type: ignore[return-value]

    def __enter__(self) -> _NotAFile:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _Files:
    """This machine's files, read as SFTP reads them; a FIFO or device is never read (it could block or
    never end): callers see its status and keep regular files only."""

    def open(self, path: str) -> _Handle | _NotAFile:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            return _NotAFile(info)
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
            status, out, err = _bounded_run(command, stdin or b"", timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeFailure(f"{self.target.name}: local command failed: {exc}") from None
        if len(out) > MAX_OUTPUT or len(err) > MAX_OUTPUT:
            raise RuntimeFailure(f"{self.target.name}: a command printed more than {MAX_OUTPUT} bytes")
        self.checked(command, status, err, check)
        return status, out, err

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


def _bounded_run(command: str, stdin: bytes, timeout: float) -> tuple[int, bytes, bytes]:
    """Run `sh -c command`, reading at most MAX_OUTPUT + 1 bytes of each stream (as SSH's channel read does)."""
    proc = subprocess.Popen(
        ["sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    streams: dict[str, bytes] = {}

    def drain(name: str, pipe: Any) -> None:
        streams[name] = pipe.read(MAX_OUTPUT + 1)
        pipe.close()  # a command still writing gets SIGPIPE, not an unbounded buffer

    readers = [
        threading.Thread(target=drain, args=(n, p), daemon=True)
        for n, p in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for reader in readers:
        reader.start()
    try:
        proc.stdin.write(stdin)  # type: ignore[union-attr]
    except BrokenPipeError:
        pass
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
    try:
        status = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    for reader in readers:
        reader.join()
    return status, streams.get("out", b""), streams.get("err", b"")
