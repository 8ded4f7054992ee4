"""A pipe read in columns: its bytes kept, as they are read, in a file without a name, so that the line-by-line
engine can read the input again from its start where the columns refuse (a pipe reads once)."""

from __future__ import annotations

import io
import os
import tempfile
from typing import BinaryIO

from logstack.base.errors import RuntimeFailure

_KEEP = "standard input or a pipe is kept in TMPDIR while it is read"


def _failed(exc: OSError, directory: str | None = None) -> str:
    """Why the pipe could not be kept (asking `tempfile` where again could fail the same way: no usable one)."""
    where = exc.filename or directory
    return f"{_KEEP}: {exc.strerror or exc}" + (f" ({where})" if where else "")


class Spool:
    """A pipe's bytes kept in an unnamed file of TMPDIR (Linux's O_TMPFILE: no other process finds it by a path,
    it is gone when closed; as large as what was read). Each `reader` reads what is kept, then the pipe, keeping
    that too. Readers take turns: a new one begins once the last is done with. Where keeping fails (TMPDIR
    full), the pipe is still read once; only a second read is then an error."""

    def __init__(self, pipe: BinaryIO) -> None:
        self._pipe = pipe
        self.size = 0  # bytes read from the pipe, kept unless `lost`
        self._ended = False  # the pipe's end was read: a FIFO opened again by another writer is not read on
        self.lost: str | None = None
        self._directory: str | None = None
        try:
            self._file: BinaryIO | None = tempfile.TemporaryFile(prefix="logstack-")  # noqa: SIM115 (closed by `close`)
            self._directory = tempfile.gettempdir()  # the one just used
        except OSError as exc:
            self._file, self.lost = None, _failed(exc)

    def reader(self) -> BinaryIO:
        """The input from its start: what is kept, then the rest of the pipe."""
        self.check_kept()
        return io.BufferedReader(_Reader(self))

    def check_kept(self) -> None:
        """RuntimeFailure where bytes read were not kept (the input cannot be read again)."""
        if self.lost is not None and self.size:
            raise RuntimeFailure(f"the input cannot be read again: {self.lost}")

    def kept(self, offset: int, size: int) -> bytes:
        """Bytes kept, from `offset`."""
        if self._file is None:
            return b""
        return os.pread(self._file.fileno(), size, offset)

    def pull(self, size: int) -> bytes:
        """At most `size` bytes more of the pipe (none at its end), kept."""
        if self._ended:
            return b""
        read1 = getattr(self._pipe, "read1", None)
        data = read1(size) if read1 is not None else self._pipe.read(size)
        self._ended = not data
        if data and self._file is not None and self.lost is None:
            try:
                written = 0
                while written < len(data):  # a write may keep part (a file size limit reached): the rest fails
                    written += os.pwrite(self._file.fileno(), data[written:], self.size + written)
            except OSError as exc:
                self.lost = _failed(exc, self._directory)
                self._file.close()
                self._file = None
        self.size += len(data)
        return data

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _Reader(io.RawIOBase):
    """One read of a spooled pipe from its start."""

    def __init__(self, spool: Spool) -> None:
        self._spool, self._at = spool, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        spool, want = self._spool, len(buffer)
        data = spool.kept(self._at, want) if self._at < spool.size else spool.pull(want)
        buffer[: len(data)] = data
        self._at += len(data)
        return len(data)
