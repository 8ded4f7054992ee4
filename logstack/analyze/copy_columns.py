"""Copies in columns: which lines of a batch the event builder drops as copies of a line fed already (`Copies`: the
same key, its line fed within four gaps of the clock, or still held in an open group or a waiting event).

A copy moves no clock, so whether a line is a copy depends on which lines before it were: the lines that may be
copies (their key fed before, or held) are decided one by one in order, the clock before each made of the latest
arrival of the other lines before it and of those decided kept. Whether a line is still held is known at a
batch's start, and for a while after: an open group or a waiting event is released only once the clock is more
than two gaps past its last arrival (`EventBuilder._sweep`; a merge only moves that later). A line that needs it
later than that ends the batch there (the rest is a batch of its own)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from logstack.journal.record import HEARTBEAT_IDENTIFIER

if TYPE_CHECKING:
    import polars as pl


@dataclass(frozen=True)
class Copies:
    """Of a batch's rows: which are copies the builder drops (`dropped`), and where the batch must end (`cut`: the
    row whose answer depends on what is still held when it comes; None: the whole batch is answered)."""

    dropped: pl.Series
    cut: int | None = None


def copies_of(lines: pl.DataFrame, clock: int, gap: int, fed: pl.DataFrame | None, held: list[pl.DataFrame]) -> Copies:
    """The copies among `lines` (a batch in order: `key`, `arrival`, `ident`; heartbeats are not fed, so neither
    copies nor clock). `clock`: the latest arrival before the batch; `fed`: (`key`, `fed`: the clock once its line was
    fed) of the lines fed within four gaps of it; `held`: the lines held (open groups, events not
    released) at the batch's start: `key`, and `last`, the last arrival of the group or event holding it."""
    import polars as pl

    beat = lines["ident"].eq_missing(HEARTBEAT_IDENTIFIER)
    keys = lines.select(key=pl.when(~beat).then("key"))["key"]  # heartbeats: null, never looked at
    remembered: dict[str, int] = {}
    if fed is not None:
        hits = fed.join(keys.to_frame(), on="key", how="semi").group_by("key").agg(pl.col("fed").max())
        remembered = dict(hits.iter_rows())
    holding: dict[str, int] = {}  # key → the last arrival of what holds its line
    for frame in held:
        for key, last in frame.join(keys.to_frame(), on="key", how="semi").select("key", "last").iter_rows():
            holding[key] = max(holding.get(key, last), last)
    again = keys.is_not_null() & ~keys.is_first_distinct()
    none = pl.Series(values=[False] * len(lines), dtype=pl.Boolean)
    if not remembered and not holding and not again.any():
        return Copies(none)
    looked_at = keys.is_in(list({*remembered, *holding, *keys.filter(again)}))
    # the latest arrival before each row of the rows fed and not looked at (those are decided one by one)
    others = lines["arrival"].set(looked_at | beat, None).cum_max().forward_fill().shift(1)
    fed_rows = (~beat).arg_true()
    first_fed = fed_rows[0] if len(fed_rows) else None
    rows = lines.with_row_index("row").with_columns(others=others).filter(looked_at)
    last = dict(remembered)  # key → the clock once its line was fed
    unsure = set(holding)  # keys whose line may be held: fed in this batch, or held at its start
    release = 2 * gap  # a held line stays held until the clock is more than this past its holder's last arrival
    kept_latest = clock  # the latest arrival of the batch's lines decided kept, or the clock before it
    dropped: list[int] = []
    cut: int | None = None
    for row, key, arrival, other in rows.select("row", "key", "arrival", "others").iter_rows():
        before = kept_latest if other is None else max(kept_latest, other)
        line_fed = last.get(key)
        if line_fed is not None and line_fed >= before - 4 * gap:
            dropped.append(row)
            continue
        if key in unsure:
            if key in holding and before <= holding[key] + release:
                dropped.append(row)  # held at the batch's start, and not releasable since
                continue
            if row != first_fed:
                cut = row
                break
            if key in holding:
                dropped.append(row)
                continue
        # a line of its own: a later copy is one of it (what held the key's earlier line says nothing of it)
        last[key] = max(before, arrival)
        unsure.add(key)
        holding.pop(key, None)
        kept_latest = max(kept_latest, arrival)
    return Copies(none.scatter(dropped, True) if dropped else none, cut)
