"""Journal lines in columns: the columns of `Line` (an export read by polars, the store's rows), as analysis in
columns reads them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from logstack.journal.line import Line

if TYPE_CHECKING:
    import polars as pl

LINE_FIELDS = ("ts", "arrival", "host", "machine", "boot", "pid", "ident", "message", "comm", "exe", "loginuid")
LINE_FIELDS += ("key", "auth")


def line_schema() -> dict[str, pl.DataType]:
    """LINE_FIELDS' types: the times integers (µs), the rest text."""
    import polars as pl

    return {name: pl.Int64() if name in ("ts", "arrival") else pl.String() for name in LINE_FIELDS}


def line_columns(lines: Sequence[Line], rows: Sequence[int] | None = None) -> pl.DataFrame:
    """Lines as columns (LINE_FIELDS); with their `rows`, a `row` column first."""
    import polars as pl

    frame = pl.DataFrame({name: [getattr(line, name) for line in lines] for name in LINE_FIELDS}, schema=line_schema())
    return frame if rows is None else frame.insert_column(0, pl.Series("row", rows, dtype=pl.UInt32))
