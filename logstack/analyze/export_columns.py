"""An export read in columns: polars parses chunks of whole lines (in Rust, without the interpreter lock) into the
columns of `Line`, where it reads a line as `journal_lines` does; every other line is read by `journal_lines`' own
code (`export.export_line`), so both readers give the same lines, skip the same lines and fail at the same lines.

polars and orjson read the same JSON alike but for: values that are not strings (polars writes them as text:
`[1, 2]`, `true`; `from_journal` reads a byte array as its bytes, a list as its first value), a key given twice
(polars takes the first value, orjson the last; a key spelled with escapes is one key twice too), a lone
surrogate escape (polars reads it, orjson refuses the line) and blank lines (polars skips them). A chunk where
none of these can be is read by polars alone; the lines where one may be, and those `from_journal` would not read
by its common path (a field missing or empty, an odd timestamp), are read line by line.
tests/test_export_columns.py checks both readers on generated lines."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, BinaryIO

from logstack.analyze.export import Read, export_line
from logstack.base.errors import BadInputError
from logstack.journal.columns import LINE_FIELDS, line_columns
from logstack.journal.line import MAX_TIMESTAMP, Line
from logstack.journal.record import HEARTBEAT_IDENTIFIER
from logstack.journal.selection import Selection

if TYPE_CHECKING:
    import polars as pl

# journal field → Line attribute, as `from_journal`'s common path reads them
FIELDS = {
    "__REALTIME_TIMESTAMP": "ts",
    "MESSAGE": "message",
    "_HOSTNAME": "host",
    "_MACHINE_ID": "machine",
    "_PID": "pid",
    "_BOOT_ID": "boot",
    "SYSLOG_IDENTIFIER": "ident",
    "__CURSOR": "cursor",
    "_COMM": "comm",
    "_EXE": "exe",
    "_AUDIT_LOGINUID": "loginuid",
    "logstack_host": "logstack_host",  # a store's row: `from_journal` reads it another way
}
_NONEMPTY = ("host", "machine", "pid", "boot", "ident", "cursor")
# Quotes inside JSON strings are escaped, so outside strings a `"` next to a `:` can only be a key's: a `:` with
# whitespace before it or anything but a string after it (a number, array, object, null, whitespace) matches.
# So may a quoted `\" :` inside a string: such a line is only read line by line.
_NOT_COMPACT = r'"[ \t\r]+:|":[^"]'
# A surrogate escape (polars reads a lone one, orjson refuses it), or an escaped printable ASCII character: a key
# so spelled (`"\\u005fPID"`) is read by polars as the key but not counted below. journalctl escapes only
# control characters.
_ESCAPE = r"\\u(?:[dD][89a-fA-F]|00[2-7])"
_ODD = f"{_NOT_COMPACT}|{_ESCAPE}"
# Where every value is a string (no nesting), each match is a top-level key read below, once a key
_KEYS = '"(?:' + "|".join(re.escape(name) for name in FIELDS) + ')":"'
CHUNK = 16 << 20  # bytes of whole lines a chunk
PIECE = 64 << 10  # bytes of whole lines a text the patterns above are run over


def export_frames(
    stream: BinaryIO, name: str, since: int | None, selection: Selection | None, read: Read, size: int = CHUNK
) -> Iterator[pl.DataFrame]:
    """The lines of an export (LINE_FIELDS, in order) as `journal_lines` reads them, a chunk of about `size`
    bytes of whole lines at a time; `read` is given the bytes as they are read."""
    number = 1
    while chunk := stream.read(size):
        if not chunk.endswith(b"\n"):
            chunk += stream.readline()
        count = chunk.count(b"\n") + (not chunk.endswith(b"\n"))
        try:
            frame = chunk_frame(chunk, count, number, name, since, selection)
        except _BadLine as bad:
            # read, as line by line, up to the bad line and no further: a second read that stops at it has read
            # all the first one did (the events released before it are then out, as line by line)
            read.add_lines(chunk[: _line_end(chunk, bad.row)])
            raise bad.error from None
        read.add_lines(chunk)
        number += count
        if not frame.is_empty():
            yield frame


class _BadLine(Exception):
    """A bad line (`error`) at `row` of a chunk."""

    def __init__(self, row: int, error: BadInputError) -> None:
        super().__init__(str(error))
        self.row, self.error = row, error


def _line_end(chunk: bytes, row: int) -> int:
    """Where line `row` of `chunk` ends (after its newline)."""
    end = -1
    for _ in range(row + 1):
        end = chunk.find(b"\n", end + 1)
        if end < 0:
            return len(chunk)
    return end + 1


def chunk_frame(
    chunk: bytes, count: int, number: int, name: str, since: int | None, selection: Selection | None
) -> pl.DataFrame:
    """The lines of `chunk` (`count` whole lines, the first numbered `number`) that are read, in order."""
    import polars as pl

    read = _parsed(chunk, count)
    if read is None:
        return line_columns(*_by_line(chunk.split(b"\n"), range(count), number, name, since, selection)).drop("row")
    native = read.select(_common()).to_series() & _fits(chunk, read, count)
    fast = read.filter(native).select(*_as_line())
    if selection is not None:
        fast = fast.filter(_keeps(selection))
    if since is not None:
        fast = fast.filter(pl.col("ts") >= since)
    if native.all():
        return fast.drop("row")
    rows = (~native).arg_true().to_list()
    rest = line_columns(*_by_line(chunk.split(b"\n"), rows, number, name, since, selection))
    return pl.concat([fast, rest], how="vertical").sort("row").drop("row")


def _parsed(chunk: bytes, count: int) -> pl.DataFrame | None:
    """FIELDS of each line as polars reads them, with the line's `row`; None where polars refuses a line or skips
    one (blank)."""
    import polars as pl

    try:
        read = pl.read_ndjson(io.BytesIO(chunk), schema=dict.fromkeys(FIELDS, pl.String))
    except pl.exceptions.PolarsError:
        return None
    if read.height != count:
        return None
    return read.rename(FIELDS).with_row_index("row")


def _common() -> pl.Expr:
    """Lines `from_journal` reads by its common path: every field it needs, not empty, a timestamp of digits."""
    import polars as pl

    ts = pl.col("ts")
    present = [pl.col(name).is_not_null() & (pl.col(name) != "") for name in _NONEMPTY]
    return pl.all_horizontal(
        ts.str.contains(r"^[0-9]{1,18}$").fill_null(False),
        ts.cast(pl.Int64, strict=False).fill_null(MAX_TIMESTAMP + 1) <= MAX_TIMESTAMP,
        pl.col("message").is_not_null(),
        pl.col("logstack_host").is_null(),
        *present,
    )


def _fits(chunk: bytes, read: pl.DataFrame, count: int) -> pl.Series:
    """Lines polars reads as orjson does: only string values, each key of FIELDS at most once (none spelled with
    escapes), no surrogate escape. Asked of the whole chunk first (a line's keys are at least those polars read):
    where that holds for the chunk, it holds for each line."""
    import polars as pl

    text = _pieces(chunk, PIECE)
    present = read.select(pl.sum_horizontal(pl.col(name).is_not_null() for name in FIELDS.values()).alias("n"))
    if text.null_count() == 0:
        odd = text.str.contains(_ODD).any()
        if not odd and text.str.count_matches(_KEYS).sum() == present["n"].sum():
            return pl.Series(values=[True] * count, dtype=pl.Boolean)
    lines = pl.Series(chunk.split(b"\n")[:count], dtype=pl.Binary).cast(pl.String, strict=False)
    per_line = pl.DataFrame({"text": lines, "n": present["n"]})
    return per_line.select(
        (~pl.col("text").str.contains(_ODD) & (pl.col("text").str.count_matches(_KEYS) == pl.col("n"))).fill_null(False)
    ).to_series()


def _pieces(chunk: bytes, size: int) -> pl.Series:
    """`chunk` as texts of whole lines of about `size` bytes (null where one is not UTF-8): a pattern run over one
    text of megabytes costs polars several times its size in memory."""
    import polars as pl

    pieces, start = [], 0
    while start < len(chunk):
        end = chunk.find(b"\n", start + size)
        end = len(chunk) if end < 0 else end + 1
        pieces.append(chunk[start:end])
        start = end
    return pl.Series(pieces, dtype=pl.Binary).cast(pl.String, strict=False)


def _keeps(selection: Selection) -> pl.Expr:
    """`selection.keeps` as an expression."""
    import polars as pl

    ident, message = pl.col("ident"), pl.col("message")
    kept = ident.is_in([*selection.listed, HEARTBEAT_IDENTIFIER])
    for clause in selection.clauses():
        if clause.prefix is not None:
            kept = kept | (ident.is_in(list(clause.identifiers)) & message.str.starts_with(clause.prefix))
    return kept


def _as_line() -> list[pl.Expr]:
    """The columns of LINE_FIELDS from what polars read, as `from_journal`'s common path makes them."""
    import polars as pl

    ts = pl.col("ts").cast(pl.Int64)
    made = {
        "ts": ts,
        "arrival": ts,
        "key": pl.col("machine") + "|" + pl.col("cursor"),
        "auth": pl.lit(None, pl.String),
    }
    return [pl.col("row"), *(made[name].alias(name) if name in made else pl.col(name) for name in LINE_FIELDS)]


def _by_line(
    raws: list[bytes], rows: Iterable[int], number: int, name: str, since: int | None, selection: Selection | None
) -> tuple[list[Line], list[int]]:
    """The lines of `rows` (of a chunk split at newlines) that `journal_lines` reads, and their rows."""
    wanted = selection.identifier_bytes() if selection is not None else None
    last = len(raws) - 1
    lines, kept = [], []
    for row in rows:
        raw = raws[row] if row == last else raws[row] + b"\n"  # as a file's lines are read: with their newline
        try:
            line = export_line(raw, number + row, name, wanted, since, selection)
        except BadInputError as exc:
            raise _BadLine(row, exc) from None
        if line is not None:
            lines.append(line)
            kept.append(row)
    return lines, kept
