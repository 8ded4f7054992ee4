"""The one way logstack reads a file from the site, the state directory, an option or an archive.

Regular files only, opened without blocking (a FIFO would hang the read) and without following a final
link unless the caller allows it, checked with fstat on the very descriptor read, and never more than a
size cap per kind of file (`/dev/zero` linked into a site must not fill memory).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from logstack.base.errors import BadInputError, LogstackError

KiB = 1024
MiB = 1024 * KiB


def read_file(
    path: Path,
    what: str,
    limit: int,
    *,
    follow_links: bool = False,
    error: type[LogstackError] = BadInputError,
) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; any other kind or size is an `error` naming
    the path and `what` it was read as. A missing file raises FileNotFoundError for callers that allow one."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | (0 if follow_links else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise error(f"{path}: {what}: a symbolic link, not a file") from None
        raise error(f"{path}: {what}: cannot read: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise error(f"{path}: {what}: not a regular file")
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > limit:
            raise error(f"{path}: {what}: larger than {_size(limit)}")
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise error(f"{path}: {what}: cannot read: {exc.strerror}") from None
    if len(data) > limit:  # grew while read
        raise error(f"{path}: {what}: larger than {_size(limit)}")
    return data


def _size(limit: int) -> str:
    return f"{limit // MiB} MiB" if limit >= MiB else f"{limit // KiB} KiB"
