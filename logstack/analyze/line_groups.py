"""The event builder's line layer over columns: which lines of a batch make one group, as `EventBuilder.feed`
groups them (by machine, boot, PID, program and who vouches for the line, while they stay within the gap of
each other in journal time and in arrival, and name no other peer than the group's), for a batch where that
needs no line-by-line state: within each group key neither journal time nor arrival goes back, no key repeats,
and no late line would join a group the builder's sweeps may have closed already. tests/test_line_groups.py
checks the groups against the builder's, at several sweep cadences."""

from __future__ import annotations

from typing import TYPE_CHECKING

from logstack.analyze.event import ADDRESS_KINDS
from logstack.classify.programs import SSH_IDENTIFIERS

if TYPE_CHECKING:
    import polars as pl

# Columns `line_groups` reads: the line's, and its fact's kind, address and whether it is an event of its own.
COLUMNS = ("key", "ts", "arrival", "machine", "host", "boot", "pid", "ident", "auth", "kind", "source_ip", "own_event")


_KEY = ("g_machine", "boot", "pid", "g_family", "g_auth", "g_own")


def _key_columns() -> list[pl.Expr]:
    """`feed`'s group key, a column each: an event of its own is keyed by its line alone."""
    import polars as pl

    return [
        pl.when(pl.col("machine") != "").then(pl.col("machine")).otherwise(pl.col("host")).alias("g_machine"),
        pl.when(pl.col("ident").is_in(list(SSH_IDENTIFIERS)))
        .then(pl.lit("ssh"))
        .otherwise(pl.col("ident"))
        .alias("g_family"),
        pl.col("auth").fill_null("").alias("g_auth"),
        pl.when(pl.col("own_event")).then(pl.col("key")).otherwise(pl.lit("")).alias("g_own"),
    ]


def line_groups(lines: pl.DataFrame, gap: int) -> pl.Series | None:
    """The group of each line (numbered by its first line's position); None for a batch whose grouping needs the
    builder's own state: a key repeats (a copy to drop), journal time or arrival goes back within a group key, or
    a late line would join a group a sweep may have closed."""
    import polars as pl

    if lines.is_empty():
        return pl.Series("group", [], dtype=pl.UInt32)
    ts, arrival, row = pl.col("ts"), pl.col("arrival"), pl.col("n")
    address_kind = pl.col("kind").is_in(list(ADDRESS_KINDS)) & pl.col("source_ip").is_not_null()
    frame = lines.select(
        "key",
        "ts",
        "arrival",
        "boot",
        "pid",
        *_key_columns(),
        n=pl.int_range(pl.len(), dtype=pl.UInt32),
        address=pl.when(address_kind).then(pl.col("source_ip")),
    )
    if not frame.select(pl.col("key").is_unique().all()).item():
        return None
    # the clock as the line arrives: the latest arrival before it (a sweep closes what it passed by the gap)
    frame = frame.with_columns(clock=arrival.cum_max().shift(1)).sort(*_KEY, "n")  # each key's lines together
    first = pl.int_range(pl.len()) == 0
    same = ~first & pl.all_horizontal(pl.col(name).eq_missing(pl.col(name).shift(1)) for name in _KEY)
    frame = frame.with_columns(same=same, ts_step=ts - ts.shift(1), arrival_step=arrival - arrival.shift(1))
    if not frame.select((~pl.col("same") | ((pl.col("ts_step") >= 0) & (pl.col("arrival_step") >= 0))).all()).item():
        return None
    # apart from the previous line of its key: more than the gap later in journal time or in arrival
    apart = ~pl.col("same") | (pl.col("ts_step") > gap) | (pl.col("arrival_step") > gap)
    frame = frame.with_columns(apart=apart).with_columns(
        span_start=pl.when("apart").then(pl.int_range(pl.len())).forward_fill(),
        named_at=pl.when(pl.col("address").is_not_null()).then(pl.int_range(pl.len())).forward_fill().shift(1),
    )
    # a daemon's line naming another peer than the group's (the last one a line of it named) starts a new one
    named = pl.col("address").gather(pl.col("named_at").fill_null(0))
    in_span = pl.col("named_at").is_not_null() & (pl.col("named_at") >= pl.col("span_start"))
    other_peer = pl.col("address").is_not_null() & in_span & (pl.col("address") != named)
    start = pl.col("apart") | other_peer
    # a line that would join a group a sweep may already have closed (it arrived late, after the clock passed
    # the group by the gap): whether it joins depends on when the builder swept, which columns cannot tell
    swept = pl.col("clock") - gap > arrival.shift(1)
    if frame.select((~start & swept).any()).item():
        return None
    groups = frame.select("n", group=pl.when(start).then(row).forward_fill())
    return groups.sort("n")["group"]
