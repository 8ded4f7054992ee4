"""Events in columns as text blocks, byte for byte what `output.text_block` makes of each event: one pass over a
batch of events, not an object and a format per event. An event with any character `escape` changes (a control,
a format character) anywhere it shows is made an object and written by `text_block` itself.
tests/test_text_columns.py checks the blocks against `text_block`'s."""

from __future__ import annotations

from typing import TYPE_CHECKING

from logstack.analyze.event_columns import event_objects, lines_of
from logstack.analyze.event_json import iso_column, severity_column
from logstack.analyze.output import RULE, text_block
from logstack.base.terminal import UNSAFE

if TYPE_CHECKING:
    import polars as pl

# `escape`'s characters, as the regex crate reads a class: each outside printable ASCII as \x{…}
_UNSAFE = "".join(c if " " <= c <= "~" else f"\\x{{{ord(c):x}}}" for c in UNSAFE.pattern)
# what shows of an event, besides its lines' messages: `escape` leaves all of it as it is, or the event is an object
_SHOWN = ("type", "outcome", "continues", "host", "machine_id", "user", "target_user", "source_ip", "method")
_SHOWN += ("command", "reason")


def text_blocks(events: pl.DataFrame, lines: pl.DataFrame) -> list[tuple[int, int, str, str, str]]:
    """(start, end, id, block, severity) of each event of a batch (`run_columns` gives them: `line_order` names
    `lines` by `idx`), in the frame's order."""
    import polars as pl

    if events.is_empty():
        return []
    messages = lines_of(events, lines, ["message"]).group_by("event", maintain_order=True).agg("message")
    frame = events.with_row_index("event").join(messages, on="event", how="left", maintain_order="left")
    if "continues" not in frame.columns:
        frame = frame.with_columns(continues=pl.lit(None, pl.String))
    shown = [pl.col(name).cast(pl.String) for name in _SHOWN]
    shown += [pl.col(name).list.join(" ") for name in ("flags", "pids", "message")]
    unsafe = pl.concat_str(shown, separator=" ", ignore_nulls=True).str.contains(_UNSAFE)
    made = frame.select("start", "end", "id", block=_block(), severity=severity_column(), unsafe=unsafe)
    rows = list(made.drop("unsafe").iter_rows())
    odd = made["unsafe"].arg_true().to_list()
    for n, event in zip(odd, event_objects(events[odd], lines) if odd else [], strict=True):
        start, end, event_id, _, severity = rows[n]
        rows[n] = (start, end, event_id, text_block(event), severity)
    return rows


def _block() -> pl.Expr:
    """`text_block`'s text, for events `escape` leaves as they are."""
    import polars as pl

    def given(name: str) -> pl.Expr:  # as Python reads it: neither None nor empty (nor 0)
        column = pl.col(name)
        return column.is_not_null() & (column.cast(pl.String) != "0" if name == "source_port" else column != "")

    def line(label: str, text: pl.Expr, when: pl.Expr | None = None) -> pl.Expr:
        row = pl.concat_str(pl.lit(label), text, pl.lit("\n"))
        return row if when is None else pl.when(when).then(row).otherwise(pl.lit(""))

    flagged = pl.concat_str(pl.lit(" ["), pl.col("flags").list.join(", "), pl.lit("]"))
    flags = pl.when(pl.col("flags").list.len() > 0).then(flagged)
    late = pl.when(given("continues")).then(pl.concat_str(pl.lit(" late: continues event "), pl.col("continues")))
    head = pl.concat_str(
        pl.col("type"), pl.lit(" ("), pl.col("outcome"), pl.lit(")"), flags.fill_null(""), late.fill_null("")
    )
    machine = pl.when(given("machine_id")).then(pl.concat_str(pl.lit(" ("), pl.col("machine_id"), pl.lit(")")))
    start, end = iso_column("start"), iso_column("end")
    when = pl.when(pl.col("start") == pl.col("end")).then(start).otherwise(pl.concat_str(start, pl.lit(" .. "), end))
    port = pl.when(given("source_port")).then(pl.concat_str(pl.lit(" port "), pl.col("source_port").cast(pl.String)))
    parts = [
        pl.when(given("user")).then(pl.concat_str(pl.lit("user "), pl.col("user"))),
        pl.when(given("target_user")).then(pl.concat_str(pl.lit("as "), pl.col("target_user"))),
        pl.when(given("source_ip")).then(pl.concat_str(pl.lit("from "), pl.col("source_ip"), port.fill_null(""))),
        pl.when(given("method")).then(pl.concat_str(pl.lit("by "), pl.col("method"))),
    ]
    who = pl.concat_str(parts, separator=" ", ignore_nulls=True)
    messages = pl.col("message").fill_null([])
    first = messages.list.first().fill_null("")
    others = messages.list.slice(1).list.eval(pl.concat_str(pl.lit("        "), pl.element())).list.join("\n")
    said = pl.when(messages.list.len() == 0).then(pl.lit(""))
    said = said.when(messages.list.len() == 1).then(pl.concat_str(pl.lit("   MSG: "), first, pl.lit("\n")))
    said = said.otherwise(pl.concat_str(pl.lit("   MSG: "), first, pl.lit("\n"), others, pl.lit("\n")))
    return pl.concat_str(
        line("  TYPE: ", head),
        line("  HOST: ", pl.concat_str(pl.col("host"), machine.fill_null(""))),
        line("  DATE: ", when),
        line("   WHO: ", who, who != ""),
        line("   CMD: ", pl.col("command"), given("command")),
        line("  NOTE: ", pl.col("reason"), given("reason")),
        line("   PID: ", pl.col("pids").list.join(", "), pl.col("pids").list.len() > 0),
        said,
        pl.lit(RULE + "\n"),
    )
