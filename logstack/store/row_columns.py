"""The logs table's rows in columns: a page of rows (tuples, as the MySQL protocol gives them, or an Arrow
answer's columns) as the columns of `Line` (`journal.columns`), the lines `journal.line.from_row` makes of them,
each signature checked as the store reader checks it. Rows of the common kind (every value read text or null, a
journal timestamp of digits, a cursor, an ingest time without a zone or none) are read in columns; every other
row by `from_row` itself. tests/test_row_columns.py checks both on generated rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from logstack.integrity.signatures import Verifier
from logstack.journal.columns import LINE_FIELDS, line_columns, line_schema
from logstack.journal.line import MAX_TIMESTAMP, Line, from_row

if TYPE_CHECKING:
    import polars as pl

# the values `from_row` reads (`journal.line._from_journal_any`: a row never has MESSAGE or _HOSTNAME)
_TEXT = ("__REALTIME_TIMESTAMP", "message", "logstack_host", "host", "_MACHINE_ID", "_PID", "SYSLOG_PID")
_TEXT += ("_BOOT_ID", "SYSLOG_IDENTIFIER", "__CURSOR", "_COMM", "_EXE", "_AUDIT_LOGINUID")
STAMP = "greptime_timestamp"


def page_frame(columns: Sequence[str], rows: Sequence[tuple[Any, ...]], verifier: Verifier | None) -> pl.DataFrame:
    """The lines of `rows` (of `columns`), in order, as a `row` column (the row's place in `rows`) and
    LINE_FIELDS; rows that make no line are left out."""
    import polars as pl

    count = len(rows)
    place = {name: i for i, name in enumerate(columns)}
    values = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    odd = bytearray(count)  # 1: the row is read by `from_row`
    text = {name: _text(values[place[name]] if name in place else None, count, odd) for name in _TEXT}
    stamps = _stamps(values[place[STAMP]] if STAMP in place else None, count, odd)
    frame = pl.DataFrame({**text, STAMP: stamps}).with_row_index("row")
    return _lines(frame, pl.Series(odd, dtype=pl.UInt8) != 0, columns, lambda: rows, verifier)


def arrow_frame(table: pl.DataFrame, verifier: Verifier | None) -> pl.DataFrame:
    """`page_frame` of rows that came as columns (an Arrow answer): a text value is one of a String column, an
    ingest time one of a Datetime column; a row holding a value of any other type is read by `from_row`, as the
    same row read over MySQL would be."""
    import polars as pl

    count = len(table)
    odd = pl.repeat(False, count, eager=True)
    text = {}
    for name in _TEXT:
        column = table.get_column(name, default=None)
        if column is not None and column.dtype != pl.String:
            odd |= column.is_not_null()
            column = None
        text[name] = column if column is not None else pl.Series(values=[None] * count, dtype=pl.String)
    stamp = table.get_column(STAMP, default=None)
    if stamp is not None and isinstance(stamp.dtype, pl.Datetime):  # with a zone too: µs since the epoch either way
        stamps = stamp.cast(pl.Datetime("us")).cast(pl.Int64)
    else:
        stamps = pl.Series(values=[None] * count, dtype=pl.Int64)
    frame = pl.DataFrame({**text, STAMP: stamps}).with_row_index("row")
    return _lines(frame, odd, table.columns, table.rows, verifier)


def _lines(
    frame: pl.DataFrame,
    odd: pl.Series,
    columns: Sequence[str],
    rows: Callable[[], Sequence[tuple[Any, ...]]],
    verifier: Verifier | None,
) -> pl.DataFrame:
    """The lines of a page's values (`frame`): common rows read in columns, `odd` ones (and any not common) by
    `from_row` from `rows()` (asked for only when some are)."""
    import polars as pl

    digits = pl.col("__REALTIME_TIMESTAMP").str.contains(r"^[0-9]{1,18}$").fill_null(False)
    ts = pl.col("__REALTIME_TIMESTAMP").cast(pl.Int64, strict=False)
    cursor = pl.col("__CURSOR")
    common = digits & (ts <= MAX_TIMESTAMP).fill_null(False) & (cursor.fill_null("") != "") & ~pl.lit(odd)
    frame = frame.with_columns(common=common)
    plain = frame.filter("common").select("row", *_line_columns())
    others = frame.filter(~pl.col("common"))["row"].to_list()
    if not others and verifier is None:
        return plain
    values = rows()
    if others:
        lines, kept = _by_row(columns, values, others)
        plain = pl.concat([plain, line_columns(lines, kept)]).sort("row")
    return plain if verifier is None else _verified(plain, columns, values, verifier)


def _text(values: Sequence[Any] | None, count: int, odd: bytearray) -> pl.Series:
    """A column of text values (None: the table has no such column); a row holding anything else is odd."""
    import polars as pl

    if values is None:
        return pl.Series(values=[None] * count, dtype=pl.String)
    try:
        return pl.Series(values=values, dtype=pl.String, strict=True)
    except TypeError:
        kept = []
        for row, value in enumerate(values):
            if value is None or isinstance(value, str):
                kept.append(value)
            else:
                odd[row] = 1
                kept.append(None)
        return pl.Series(values=kept, dtype=pl.String)


def _stamps(values: Sequence[Any] | None, count: int, odd: bytearray) -> pl.Series:
    """The ingest times as µs (null: not a time, and the line's arrival is its journal time); a time with a
    zone is odd (`to_micros` reads it by its offset)."""
    import polars as pl

    kept: list[dt.datetime | None] = []
    for row, value in enumerate(values if values is not None else [None] * count):
        if value.__class__ is dt.datetime and value.tzinfo is None:
            kept.append(value)
        else:
            if isinstance(value, dt.datetime):
                odd[row] = 1
            kept.append(None)
    return pl.Series(values=kept, dtype=pl.Datetime("us")).cast(pl.Int64)


def _line_columns() -> list[pl.Expr]:
    """LINE_FIELDS of a common row, as `_from_journal_any` reads it (a value or, empty or null, the next)."""
    import polars as pl

    def first(*names: str) -> pl.Expr:
        picked = pl.col(names[-1]).fill_null("")
        for name in reversed(names[:-1]):
            picked = pl.when(pl.col(name).fill_null("") != "").then(pl.col(name)).otherwise(picked)
        return picked

    ts = pl.col("__REALTIME_TIMESTAMP").cast(pl.Int64)
    host, machine = first("logstack_host", "host"), pl.col("_MACHINE_ID").fill_null("")
    made = {
        "ts": ts,
        "arrival": pl.col(STAMP).fill_null(ts),
        "host": host,
        "machine": machine,
        "boot": pl.col("_BOOT_ID").fill_null(""),
        "pid": first("_PID", "SYSLOG_PID"),
        "ident": pl.col("SYSLOG_IDENTIFIER").fill_null(""),
        "message": pl.col("message").fill_null(""),
        "comm": pl.col("_COMM"),
        "exe": pl.col("_EXE"),
        "loginuid": pl.col("_AUDIT_LOGINUID"),
        "key": pl.concat_str(first("_MACHINE_ID", "logstack_host", "host"), pl.lit("|"), pl.col("__CURSOR")),
        "auth": pl.lit(None, dtype=pl.String),
    }
    schema = line_schema()
    return [made[name].cast(schema[name]).alias(name) for name in LINE_FIELDS]


def _row(columns: Sequence[str], values: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(columns, values, strict=True))


def _by_row(columns: Sequence[str], rows: Sequence[tuple[Any, ...]], which: list[int]) -> tuple[list[Line], list[int]]:
    """The lines `from_row` makes of rows `which`, and their places."""
    lines, kept = [], []
    for place in which:
        line = from_row(_row(columns, rows[place]))
        if line is not None:
            lines.append(line)
            kept.append(place)
    return lines, kept


def _verified(
    frame: pl.DataFrame, columns: Sequence[str], rows: Sequence[tuple[Any, ...]], verifier: Verifier
) -> pl.DataFrame:
    """Each line's row checked: an unproven one says why (`auth`), and who vouches for it is part of its key (an
    unproven line never stands for, suppresses or joins a proven one with the same machine, cursor, boot and
    PID), as the store reader does line by line."""
    import polars as pl

    auth = [verifier.check(_row(columns, rows[place])).said for place in frame["row"].to_list()]
    said = pl.Series("auth", auth, dtype=pl.String)
    return frame.with_columns(
        key=pl.when(said.is_not_null()).then(pl.concat_str("key", pl.lit("|"), said)).otherwise("key"), auth=said
    )
