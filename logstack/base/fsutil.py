"""Atomic, permission-safe file writes (a file is visible under its name only complete and with its mode), and
one writer at a time across processes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def ensure_private_dir(path: Path, mode: int = 0o700) -> None:
    """Create `path` (and parents) and force its mode."""
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    os.chmod(path, mode)


def atomic_write(path: Path, data: bytes | str, mode: int = 0o644, durable: bool = True) -> None:
    """Write `data` to `path` via a temp file in the same directory, fsync, then rename.

    The temp file is created with `mode` already applied (O_EXCL, then fchmod against the umask),
    so a key never exists under any name with wider permissions. With `durable=False` the fsyncs are
    left to the caller (batch writers sync once before recording what they wrote).
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if not durable:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def exclusive(lock: Path, wait: bool = True, what: str = "") -> Iterator[None]:
    """Hold an exclusive lock on the file `lock` (made 0600 when missing) for the block: one writer at a
    time across processes. Without `wait`, a lock another process holds is a RuntimeFailure naming `what`."""
    from logstack.base.errors import RuntimeFailure

    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise RuntimeFailure(f"{lock}: {what or 'another run'} holds it; try again when it has finished") from None
        yield
    finally:
        os.close(fd)  # closing releases the lock
