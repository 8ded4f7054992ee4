"""Journal lines from a `journalctl -o json` export (a file or standard input), bad lines named file:line."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from logstack.base.errors import BadInputError, RuntimeFailure
from logstack.journal.line import Line, from_journal
from logstack.journal.selection import Selection

if TYPE_CHECKING:
    pass

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
        yield from parse_export(stdin_bytes(), name, since, selection)
        return
    with open_export(source) as handle:
        yield from parse_export(handle, name, since, selection)


def stdin_bytes() -> BinaryIO:
    """Standard input's bytes (`--journal -`); closed (`<&-`), an error naming it."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise BadInputError("--journal -: standard input is closed")
    return stream


def open_export(source: str) -> BinaryIO:
    try:
        return Path(source).open("rb")
    except OSError as exc:
        raise BadInputError(f"{source}: cannot read journal export: {exc.strerror}") from None


_IDENT_KEY = b'"SYSLOG_IDENTIFIER":"'
_OBJECT_ENDS = (b"}\n", b"}", b"}\r\n")


def parse_export(
    stream: BinaryIO, name: str, since: int | None, selection: Selection | None, read: Read | None = None
) -> Iterator[Line]:
    wanted = selection.identifier_bytes() if selection is not None else None
    for number, raw in enumerate(stream, 1):
        if read is not None:
            read.add(raw)
        line = export_line(raw, number, name, wanted, since, selection)
        if line is not None:
            yield line


def export_line(
    raw: bytes,
    number: int,
    name: str,
    wanted: frozenset[bytes] | None,
    since: int | None,
    selection: Selection | None,
) -> Line | None:
    """One line of an export (with its newline, if it has one) as read, or None where it is skipped: blank, before
    `since`, or not one `selection` keeps (`wanted`: its identifiers as bytes); a bad line is an error naming it
    `name`:`number`."""
    if wanted is not None:
        # An unescaped `"SYSLOG_IDENTIFIER":"` can only be the key itself (quotes inside JSON
        # strings are escaped); values with escapes, arrays or odd spacing take the full parse.
        at = raw.find(_IDENT_KEY)
        if at >= 0:
            skip = len(_IDENT_KEY)
            end = raw.find(b'"', at + skip)
            ident = raw[at + skip : end]
            looks_whole = raw[:1] == b"{" and raw.endswith(_OBJECT_ENDS)
            if end >= 0 and ident not in wanted and b"\\" not in ident and looks_whole:
                return None
    try:
        obj: Any = _loads(raw)
    except _JSONError:
        if not raw.strip():
            return None
        raise BadInputError(f"{name}:{number}: not a JSON object (export with `journalctl -o json`)") from None
    if obj.__class__ is not dict:
        raise BadInputError(f"{name}:{number}: not a JSON object (export with `journalctl -o json`)")
    line = from_journal(obj)
    if line is None:
        raise BadInputError(
            f"{name}:{number}: entry has no usable __REALTIME_TIMESTAMP (microseconds since 1970, before 10000)"
        )
    if since is not None and line.ts < since:
        return None
    if selection is not None and not selection.keeps(line.ident, line.message):
        return None
    return line


CHANGED = "the export changed while it was read (it no longer begins with what was read): analyze it again"


class Read:
    """How many bytes were read from a start, and their digest; given an earlier read (`expect`), the bytes are
    checked to begin with that read's as soon as as many are read (RuntimeFailure(`changed`) if not)."""

    def __init__(self, expect: Read | None = None, changed: str = CHANGED) -> None:
        self.size = 0
        self._digest = hashlib.sha256()  # with SHA extensions (x86 since 2017, ARMv8) the fastest digest here
        self._expect = expect if expect is not None and expect.size else None
        self._changed = changed

    def add(self, data: bytes) -> None:
        self.size += len(data)
        self._digest.update(data)
        if self._expect is not None and self.size >= self._expect.size:
            self._check()

    def add_lines(self, data: bytes) -> None:
        """Whole lines at once, checked as `add` would check them a line at a time: a read that does not end where
        a line of these ends is not the same."""
        expect = self._expect
        cut = expect.size - self.size if expect is not None else 0
        if 0 < cut < len(data):
            self.add(data[:cut])  # checked here
            if data[cut - 1 : cut] != b"\n":  # that read ended inside one of these lines (it grew since)
                raise RuntimeFailure(self._changed)
            data = data[cut:]
        self.add(data)

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
