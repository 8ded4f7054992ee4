"""An export as the store's reader gives lines: by a window of arrival times, line by line or in columns, from a
file pinned for every read of a run."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

from logstack.analyze.export import Read, journal_lines, open_export, parse_export, stdin_bytes
from logstack.analyze.export_columns import export_frames
from logstack.analyze.spool import Spool
from logstack.journal.line import Line
from logstack.journal.selection import Selection

if TYPE_CHECKING:
    import polars as pl


class ExportSource:
    """Lines of an export, as the store's reader gives them: by a window of arrival times. What falls outside
    the window is counted, so a run never leaves a line of the file unread without saying so.

    `pinned`: the file is opened once and every read reads that file from its start (renamed or rotated away
    meanwhile, it is still the one first read), through a buffer of its own (none holds another read's bytes),
    and what each read consumed is kept (`read`): `same_start` checks the file still begins with it, and the
    next read checks its own bytes against it as it goes (`read.past`: checked so far). A pinned pipe (standard
    input, `-`, or a FIFO) is read once, its bytes kept as they are read (`spool.Spool`): the reads after the
    first read those, then the rest of the pipe."""

    def __init__(self, path: str, since: int | None, selection: Selection | None, pinned: bool = False) -> None:
        self.path, self.since, self.selection = path, since, selection
        self.too_old = self.too_new = 0
        self.read = Read()
        self.name = "<stdin>" if path == "-" else path
        self._file: BinaryIO | None = None
        self._spool: Spool | None = None
        self._pinned = pinned
        self._expect: Read | None = None

    def __call__(self, start: int | None, end: int | None) -> Iterator[Line]:
        self.too_old = self.too_new = 0  # of this read (a second one reads the same lines again)
        for line in self._lines():
            if start is not None and line.arrival < start:
                self.too_old += 1
            elif end is not None and line.arrival > end:
                self.too_new += 1
            else:
                yield line

    def frames(self, start: int | None, end: int | None) -> Iterator[pl.DataFrame]:
        """The lines of a read in columns, as `__call__` gives them, a chunk of the file at a time (`export_columns`:
        polars reads the lines it reads as `journal_lines` does). A pinned file's only: it is read from its start."""
        import polars as pl

        if not self._pinned:
            raise ValueError("only a pinned export is read in columns")
        self.too_old = self.too_new = 0
        old = pl.col("arrival") < start if start is not None else pl.lit(False)
        new = ~old & (pl.col("arrival") > end) if end is not None else pl.lit(False)  # as `__call__`: old first
        for frame in export_frames(self._from_start(), self.name, self.since, self.selection, self.read):
            too_old, too_new = frame.select(old=old.sum(), new=new.sum()).row(0)
            self.too_old += too_old
            self.too_new += too_new
            inside = frame.filter(~old & ~new) if too_old or too_new else frame
            if not inside.is_empty():
                yield inside
        self.read.end()

    def _lines(self) -> Iterator[Line]:
        if not self._pinned:
            yield from journal_lines(self.path, self.since, self.selection)
            return
        yield from parse_export(self._from_start(), self.name, self.since, self.selection, self.read)
        self.read.end()

    def _from_start(self) -> BinaryIO:
        """The pinned file from its start, for a read whose bytes go to a new `read`, checked against the last."""
        if self._file is None and self._spool is None:
            if self.path == "-":
                self._spool = Spool(stdin_bytes())
            else:
                self._file = open_export(self.path)
                if not stat.S_ISREG(os.fstat(self._file.fileno()).st_mode):
                    self._spool = Spool(self._file)
        self.read, self._expect = Read(self._expect), None
        if self._spool is not None:
            return self._spool.reader()
        assert self._file is not None
        fd = self._file.fileno()
        os.lseek(fd, 0, os.SEEK_SET)
        return io.BufferedReader(io.FileIO(fd, "rb", closefd=False))

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def checked(self) -> bool:
        """Whether the read going on has read past what the one before it consumed, checked the same."""
        return self.read.past

    def same_start(self) -> bool:
        """Whether the pinned file still begins with the bytes the last read consumed (read from the file, not a
        buffer); if so, the next read checks its bytes against them again as it reads them."""
        read = self.read
        if self._file is None and self._spool is None:
            return read.size == 0
        if self._spool is not None:
            self._spool.check_kept()
        now, offset = Read(), 0
        while offset < read.size and (chunk := self._bytes_at(offset, min(1 << 20, read.size - offset))):
            now.add(chunk)
            offset += len(chunk)
        same = now.size == read.size and now.digest() == read.digest()
        self._expect = read if same else None
        return same

    def _bytes_at(self, offset: int, size: int) -> bytes:
        """Bytes of the input from `offset`, as the file (or what was kept of the pipe) holds them now."""
        if self._spool is not None:
            return self._spool.kept(offset, size)
        assert self._file is not None
        return os.pread(self._file.fileno(), size, offset)
