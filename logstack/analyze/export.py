"""Journal lines from a `journalctl -o json` export (a file or standard input), bad lines named file:line."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from logstack.base.errors import BadInputError
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
    try:
        handle = Path(source).open("rb")  # noqa: SIM115 - closed by the with below; open errors reported
    except OSError as exc:
        raise BadInputError(f"{source}: cannot read journal export: {exc.strerror}") from None
    with handle:
        yield from _parse(handle, name, since, selection)


_IDENT_KEY = b'"SYSLOG_IDENTIFIER":"'
_OBJECT_ENDS = (b"}\n", b"}", b"}\r\n")


def _parse(stream: BinaryIO, name: str, since: int | None, selection: Selection | None) -> Iterator[Line]:
    wanted = selection.identifier_bytes() if selection is not None else None
    skip = len(_IDENT_KEY)
    for number, raw in enumerate(stream, 1):
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


class ExportSource:
    """Lines of an export, as the store's reader gives them: by a window of arrival times. What falls outside
    the window is counted, so a run never leaves a line of the file unread without saying so."""

    def __init__(self, path: str, since: int | None, selection: Selection | None) -> None:
        self.path, self.since, self.selection = path, since, selection
        self.too_old = self.too_new = 0

    def __call__(self, start: int | None, end: int | None) -> Iterator[Line]:
        for line in journal_lines(self.path, self.since, self.selection):
            if start is not None and line.arrival < start:
                self.too_old += 1
            elif end is not None and line.arrival > end:
                self.too_new += 1
            else:
                yield line
