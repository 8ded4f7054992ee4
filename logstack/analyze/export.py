"""Journal lines from a `journalctl -o json` export (a file or standard input), bad lines named file:line."""

from __future__ import annotations

import hashlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from logstack.base.errors import BadInputError, RuntimeFailure
from logstack.journal.line import Line, from_journal
from logstack.journal.selection import Selection

try:  # orjson parses journal JSON several times faster than the standard library
    from orjson import JSONDecodeError as _JSONError
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson is a declared dependency
    from json import JSONDecodeError as _JSONError
    from json import loads as _loads


def journal_lines(source: str, since: int | None = None, selection: Selection | None = None) -> Iterator[Line]:
    """Lines of a journal JSON export (`-` reads standard input); bad lines are errors naming file:line.

    With a selection, only the lines senders would forward are read; the others are skipped before
    they are parsed (a whole host's journal is mostly other programs).
    """
    name = "<stdin>" if source == "-" else source
    if source == "-":
        yield from _parse(sys.stdin.buffer, name, since, selection)
        return
    with _open(source) as handle:
        yield from _parse(handle, name, since, selection)


def _open(source: str) -> BinaryIO:
    try:
        return Path(source).open("rb")
    except OSError as exc:
        raise BadInputError(f"{source}: cannot read journal export: {exc.strerror}") from None


_IDENT_KEY = b'"SYSLOG_IDENTIFIER":"'
_OBJECT_ENDS = (b"}\n", b"}", b"}\r\n")


def _parse(
    stream: BinaryIO, name: str, since: int | None, selection: Selection | None, read: Read | None = None
) -> Iterator[Line]:
    wanted = selection.identifier_bytes() if selection is not None else None
    skip = len(_IDENT_KEY)
    for number, raw in enumerate(stream, 1):
        if read is not None:
            read.add(raw)
        if wanted is not None:
            # An unescaped `"SYSLOG_IDENTIFIER":"` can only be the key itself (quotes inside JSON
            # strings are escaped); values with escapes, arrays or odd spacing take the full parse.
            at = raw.find(_IDENT_KEY)
            if at >= 0:
                end = raw.find(b'"', at + skip)
                ident = raw[at + skip : end]
                looks_whole = raw[:1] == b"{" and raw.endswith(_OBJECT_ENDS)
                if end >= 0 and ident not in wanted and b"\\" not in ident and looks_whole:
                    continue
        try:
            obj: Any = _loads(raw)
        except _JSONError:
            if not raw.strip():
                continue
            raise BadInputError(f"{name}:{number}: not a JSON object (export with `journalctl -o json`)") from None
        if obj.__class__ is not dict:
            raise BadInputError(f"{name}:{number}: not a JSON object (export with `journalctl -o json`)")
        line = from_journal(obj)
        if line is None:
            raise BadInputError(
                f"{name}:{number}: entry has no usable __REALTIME_TIMESTAMP (microseconds since 1970, before 10000)"
            )
        if since is not None and line.ts < since:
            continue
        if selection is not None and not selection.keeps(line.ident, line.message):
            continue
        yield line


CHANGED = "the export changed while it was read (it no longer begins with what was read): analyze it again"


class Read:
    """How many bytes were read from a start, and their digest; given an earlier read (`expect`), the bytes are
    checked to begin with that read's as soon as as many are read (RuntimeFailure(`changed`) if not)."""

    def __init__(self, expect: Read | None = None, changed: str = CHANGED) -> None:
        self.size = 0
        self._digest = hashlib.blake2b(digest_size=16)
        self._expect = expect if expect is not None and expect.size else None
        self._changed = changed

    def add(self, data: bytes) -> None:
        self.size += len(data)
        self._digest.update(data)
        if self._expect is not None and self.size >= self._expect.size:
            self._check()

    def end(self) -> None:
        """The end of the file: fewer bytes than expected is a change too."""
        if self._expect is not None:
            self._check()

    @property
    def past(self) -> bool:
        """Whether what was expected has been read, the same (nothing expected: True)."""
        return self._expect is None

    def digest(self) -> bytes:
        return self._digest.digest()

    def _check(self) -> None:
        expect, self._expect = self._expect, None
        if expect is not None and (self.size != expect.size or self.digest() != expect.digest()):
            raise RuntimeFailure(self._changed)


class ExportSource:
    """Lines of an export, as the store's reader gives them: by a window of arrival times. What falls outside
    the window is counted, so a run never leaves a line of the file unread without saying so.

    `pinned`: the file is opened once and every read reads that file from its start (renamed or rotated away
    meanwhile, it is still the one first read), through a buffer of its own (none holds another read's bytes),
    and what each read consumed is kept (`read`): `same_start` checks the file still begins with it, and the
    next read checks its own bytes against it as it goes (`read.past`: checked so far)."""

    def __init__(self, path: str, since: int | None, selection: Selection | None, pinned: bool = False) -> None:
        self.path, self.since, self.selection = path, since, selection
        self.too_old = self.too_new = 0
        self.read = Read()
        self._file: BinaryIO | None = None
        self._pinned = pinned and path != "-"
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

    def _lines(self) -> Iterator[Line]:
        if not self._pinned:
            yield from journal_lines(self.path, self.since, self.selection)
            return
        if self._file is None:
            self._file = _open(self.path)
        fd = self._file.fileno()
        os.lseek(fd, 0, os.SEEK_SET)
        self.read, self._expect = Read(self._expect), None
        yield from _parse(
            io.BufferedReader(io.FileIO(fd, "rb", closefd=False)),
            self.path,
            self.since,
            self.selection,
            self.read,
        )
        self.read.end()

    def close(self) -> None:
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
        if self._file is None:
            return read.size == 0
        now, offset, fd = Read(), 0, self._file.fileno()
        while offset < read.size and (chunk := os.pread(fd, min(1 << 20, read.size - offset), offset)):
            now.add(chunk)
            offset += len(chunk)
        same = now.size == read.size and now.digest() == read.digest()
        self._expect = read if same else None
        return same
