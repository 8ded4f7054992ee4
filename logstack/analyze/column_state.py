"""Exactly once across runs, for a run in columns: which lines an earlier run reported (`known`, a column of
each batch, asked of the state as the batch comes), and, for the events a batch releases, what
`run.run_lines` decides of each in turn: skipped (every line known, or its id reported), the reported event
it continues, flagged `late`, recorded in the state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from logstack.analyze.event_columns import lines_of
from logstack.analyze.state import StateStore, event_groups, line_key, reported_id

if TYPE_CHECKING:
    import polars as pl

# what the state reads of an event, and of its lines
_EVENT = ("id", "type", "source_ip", "pids", "start", "end", "flags")
_FIRST = ["machine", "host", "boot", "pid", "ident", "auth"]  # of its first line
_MEMBERS = ("hashed", "ts", "oldest", *_FIRST)
# lines in a batch from which the state's keys are read whole and searched (about 12 bytes a key held, 0.7 s a
# million read), not asked of SQLite a few hundred at a time
LOAD_AT = 20_000


class ColumnLedger:
    """The state of a run in columns: asked for each batch's `known` column, told each batch's released events.

    Which lines were reported is asked, for a large batch, of sorted columns of their hashed keys (a binary search
    a line): those the state held, read once, and those this run recorded, a sorted chunk a batch (merged now and
    then); a small batch asks the database, a few hundred keys a query."""

    def __init__(self, state: StateStore, now: int, gap: int, horizon: int) -> None:
        self.state, self.now, self.gap = state, now, gap
        self.horizon = now - horizon  # an event with a line older than this is late
        self._before: pl.Series | None = None  # the state's keys, read at the first batch of LOAD_AT lines
        self._recorded: list[pl.Series] = []  # this run's, each sorted

    def known(self, lines: pl.DataFrame) -> pl.DataFrame:
        """`lines` with `known`: whether an earlier run, or this one so far, reported the line (its key), and
        `hashed`, its key as the state keeps it."""
        import polars as pl

        keys = [line_key(key) for key in lines["key"].to_list()]
        hashed = pl.Series(keys, dtype=pl.Binary)
        if self._before is None and len(keys) < LOAD_AT:
            # a small batch (the store's rows of a few minutes) asks the state: reading every key it holds (14 days
            # of them) would cost more than the batch
            return lines.with_columns(known=pl.Series(self.state.seen_hashed(keys), dtype=pl.Boolean), hashed=hashed)
        if self._before is None:
            parts = [pl.Series(part, dtype=pl.Binary) for part in self.state.line_keys()]
            self._before = pl.concat(parts) if parts else pl.Series(dtype=pl.Binary)
        known = _among(hashed, self._before)
        for chunk in self._recorded:
            known |= _among(hashed, chunk)
        return lines.with_columns(known=known, hashed=hashed)

    def _recorded_now(self, keys: list[bytes]) -> None:
        import polars as pl

        if keys:
            self._recorded.append(pl.Series(keys, dtype=pl.Binary).sort())
        if len(self._recorded) > 8:  # a few binary searches a line, not one a batch
            self._recorded = [pl.concat(self._recorded).sort()]

    def new(self, events: pl.DataFrame, lines: pl.DataFrame) -> pl.DataFrame:
        """The events to report (in order), each with `continues` and `late` as `run_lines` gives them, and each
        recorded in the state as reported; the rest (known, or reported before) dropped."""
        import polars as pl

        if not events.is_empty():  # every line reported by an earlier run: skipped
            events = events.filter(~pl.col("known"))
        if events.is_empty():
            return events.with_columns(continues=pl.lit(None, pl.String))
        # an incident's lines are its failures' first lines, which show no machine or boot: none of its lines
        # may be a machine's (a batch that released incidents alone)
        missing = [pl.lit(None, pl.String).alias(name) for name in _FIRST if name not in lines.columns]
        missing += [pl.lit(None, pl.Binary).alias("hashed")] if "hashed" not in lines.columns else []
        members = (
            lines_of(events, lines.with_columns(missing), ["hashed", "ts", *_FIRST])
            .group_by("event", maintain_order=True)
            .agg("hashed", "ts", pl.col(_FIRST).first(), oldest=pl.col("ts").min())
        )
        kept: list[int] = []
        recorded: list[bytes] = []
        continues: list[str | None] = []
        flags: list[list[str]] = []
        state = self.state
        # reported before this batch; or in it, as it goes (`record` of an id seen twice in a batch)
        reported = state.reported_ids(events["id"].to_list())
        rows = zip(
            *(events[name].to_list() for name in _EVENT), *(members[name].to_list() for name in _MEMBERS), strict=True
        )
        for row, (eid, etype, ip, pids, start, end, flag, keys, times, oldest, *first) in enumerate(rows):
            if (reported_key := reported_id(eid)) in reported:
                continue
            reported.add(reported_key)
            machine, host, boot, pid, ident, auth = first
            where = (machine or host or "", boot or "", pid or "", ident or "", auth)
            groups = event_groups(etype, ip, pids, *where)
            continued = state.continued(groups, start, end, self.gap)
            if continued is not None or oldest < self.horizon:
                flag = sorted({*flag, "late"})
            own = etype != "brute_force"  # an incident's lines are its failures', recorded with them
            if own:
                recorded.extend(keys)
            state.record_hashed(eid, groups, start, end, list(zip(keys, times, strict=True)) if own else [], self.now)
            kept.append(row)
            continues.append(continued)
            flags.append(flag)
        self._recorded_now(recorded)
        return events[kept].with_columns(
            continues=pl.Series(continues, dtype=pl.String), flags=pl.Series(flags, dtype=pl.List(pl.String))
        )


def _among(keys: pl.Series, sorted_keys: pl.Series) -> pl.Series:
    """Whether each of `keys` is one of `sorted_keys` (sorted): a binary search each."""
    if sorted_keys.is_empty():
        return keys.is_null() & False
    at = sorted_keys.search_sorted(keys).clip(0, len(sorted_keys) - 1)
    return (sorted_keys.gather(at) == keys).fill_null(False)
