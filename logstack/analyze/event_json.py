"""Events in columns written as JSON lines, byte for byte as `EventWriter` writes `Event.as_dict()` (orjson, then
C1 controls, DEL and bidirectional overrides as \\u escapes): one writer pass for a batch of events, not a
dictionary and a dump per event. tests/test_event_json.py checks the bytes against `EventWriter`'s."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from logstack.analyze import event as reference
from logstack.base.terminal import json_escape

if TYPE_CHECKING:
    import polars as pl

# Event.as_dict's keys, in its order, from the same lists it is made of.
FIELDS = (*reference._HEAD_FIELDS, "start", "end", *reference._SUBJECT_FIELDS)
FIELDS += ("flags", "tried_users", "authentication", "continues", "lines")
_ISO = "%Y-%m-%dT%H:%M:%S%.6fZ"  # base.clock.iso: UTC, microseconds


def event_json(events: pl.DataFrame, lines: pl.DataFrame, by: str | None = None) -> bytes:
    """JSON lines of `events` (Event's fields as columns, `start`/`end` in µs, `line_order`: row numbers of
    `lines`, which has `ts`, `ident`, `pid`, `message`, `auth`; or the values of its column `by`), one per event,
    in the frame's order."""
    import polars as pl

    numbered = events.with_row_index("event")
    members = (
        numbered.select("event", row=pl.col("line_order"))
        .explode("row")
        .join(
            lines.with_row_index("row") if by is None else lines.rename({by: "row"}),
            on="row",
            how="left",
            maintain_order="left",
        )
    )
    per_event = members.group_by("event", maintain_order=True).agg(
        lines=pl.struct(
            ts=iso_column("ts"),
            identifier=pl.col("ident"),
            pid=pl.when(pl.col("pid") != "").then(pl.col("pid")),
            message=pl.col("message"),
        ),
        authentication=pl.col("auth").filter(pl.col("auth") != "").unique().sort(),  # who vouches, if anyone
    )
    frame = numbered.join(per_event, on="event", how="left", maintain_order="left").with_columns(
        severity=severity_column(),
        start=iso_column("start"),
        end=iso_column("end"),
        lines=pl.col("lines").fill_null([]),
        authentication=pl.col("authentication").fill_null([]),
    )
    if "continues" not in frame.columns:
        frame = frame.with_columns(continues=pl.lit(None, pl.String))
    out = io.BytesIO()
    frame.select(FIELDS).write_ndjson(out)
    raw = out.getvalue()
    if raw.isascii() and b"\x7f" not in raw:
        return raw
    # C1 controls, DEL and bidi overrides as \\u escapes, in the events that hold any, as EventWriter escapes
    # each event (one such character must not make the whole batch's text go through the pattern)
    return b"\n".join(
        line if line.isascii() and b"\x7f" not in line else json_escape(line.decode()).encode()
        for line in raw.split(b"\n")
    )


def iso_column(column: str) -> pl.Expr:
    """`base.clock.iso` over a column of epoch microseconds."""
    import polars as pl

    return pl.from_epoch(pl.col(column), time_unit="us").dt.strftime(_ISO)


def severity_column() -> pl.Expr:
    """Event.severity over columns."""
    import polars as pl

    etype, flags = pl.col("type"), pl.col("flags")

    def flagged(names: frozenset[str]) -> pl.Expr:
        return flags.list.eval(pl.element().is_in(list(names))).list.any()

    alert = (
        etype.is_in(list(reference._ALERT_TYPES))
        | flagged(reference._ALERT_FLAGS)
        | ((etype == "sudo") & (pl.col("reason") == "not in sudoers")).fill_null(False)
    )
    failure = (pl.col("outcome") == "failure") | flagged(reference._FAILURE_FLAGS)
    return pl.when(alert).then(pl.lit("alert")).when(failure).then(pl.lit("failure")).otherwise(pl.lit("info"))
