"""The event builder's line layer over columns: which lines of a batch make one group, as `EventBuilder.feed`
groups them (by machine, boot, PID, program and who vouches for the line, while they stay within the gap of
each other in journal time, the clock is not more than the gap past the group's last line, and they name no
other peer than the group's), for a batch where that needs no line-by-line state: within each group key neither
journal time nor arrival goes back, and no key repeats. tests/test_line_groups.py checks the groups against the
builder's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from logstack.analyze.copy_columns import copies_of
from logstack.analyze.event import ADDRESS_KINDS
from logstack.classify.programs import SSH_IDENTIFIERS
from logstack.journal.record import HEARTBEAT_IDENTIFIER

if TYPE_CHECKING:
    import polars as pl

# Columns `line_groups` reads: the line's, and its fact's kind, address and whether it is an event of its own.
COLUMNS = ("key", "ts", "arrival", "machine", "host", "boot", "pid", "ident", "auth", "kind", "source_ip", "own_event")
# A line's columns that are never null (`from_journal` reads a missing text as ""; a line without a time is none)
REQUIRED = ("key", "ts", "arrival", "machine", "host", "boot", "pid", "ident")


_KEY = ("g_machine", "boot", "pid", "g_family", "g_known", "g_auth", "g_own")


def _key_columns(known: bool) -> list[pl.Expr]:
    """`feed`'s group key, a column each: an event of its own is keyed by its line alone; a line an earlier run
    reported (a `known` column, with a state) never groups with a new one."""
    import polars as pl

    return [
        pl.col("known").fill_null(False).alias("g_known") if known else pl.lit(False).alias("g_known"),
        pl.when(pl.col("machine") != "").then(pl.col("machine")).otherwise(pl.col("host")).alias("g_machine"),
        pl.when(pl.col("ident").is_in(list(SSH_IDENTIFIERS)))
        .then(pl.lit("ssh"))
        .otherwise(pl.col("ident"))
        .alias("g_family"),
        pl.col("auth").fill_null("").alias("g_auth"),
        pl.when(pl.col("own_event")).then(pl.col("key")).otherwise(pl.lit("")).alias("g_own"),
    ]


def _address(lines: pl.DataFrame) -> pl.Expr:
    """The peer a line names, if its kind is one whose address the daemon wrote; for a line standing for an open
    group carried from an earlier batch (`carried`), the last peer the group named (`named`)."""
    import polars as pl

    address_kind = pl.col("kind").is_in(list(ADDRESS_KINDS)) & pl.col("source_ip").is_not_null()
    address = pl.when(address_kind).then(pl.col("source_ip"))
    return (
        pl.when(pl.col("carried")).then(pl.col("named")).otherwise(address) if "carried" in lines.columns else address
    )


def line_groups(lines: pl.DataFrame, gap: int) -> pl.Series | None:
    """The group of each line (numbered by its first line's position); None for a batch whose grouping needs the
    builder's own state: a key repeats (a copy to drop), or journal time or arrival goes back within a group key.
    A `clock` column, where the batch has one, is the latest arrival before each line (else the batch's own
    arrivals before it)."""
    found = grouped_lines(lines, gap)
    return None if found is None else found["group"]


def fed_lines(lines: pl.DataFrame) -> pl.DataFrame:
    """The lines the builder is fed (it skips heartbeats): those `BatchGroups` numbers with `idx`, whose arrivals
    `BatchConnections.feed` reads."""
    import polars as pl

    return lines.filter(pl.col("ident") != HEARTBEAT_IDENTIFIER)


def grouped_lines(lines: pl.DataFrame, gap: int) -> pl.DataFrame | None:
    """`line_groups` (`group`), and `ends`: for a line that begins a group, the group of its key before it (the
    builder closes that one as the line is fed, if nothing closed it earlier)."""
    import polars as pl

    if lines.is_empty():
        return pl.DataFrame(schema={"group": pl.UInt32, "ends": pl.UInt32})
    beats = lines["ident"].eq_missing(HEARTBEAT_IDENTIFIER)
    if beats.any():  # the builder skips them: no group, and they move no clock
        kept = (~beats).arg_true()
        found = grouped_lines(lines.filter(~beats), gap)
        if found is None:
            return None
        # numbered by their first line's position in `lines`, not among the lines kept
        return pl.DataFrame(
            {
                name: pl.Series([None] * len(lines), dtype=pl.UInt32).scatter(kept, kept.gather(found[name]))
                for name in ("group", "ends")
            }
        )
    ts, arrival, row = pl.col("ts"), pl.col("arrival"), pl.col("n")
    frame = lines.select(
        "key",
        "ts",
        "arrival",
        "boot",
        "pid",
        *_key_columns("known" in lines.columns),
        n=pl.int_range(pl.len(), dtype=pl.UInt32),
        address=_address(lines),
    )
    if not frame.select(pl.col("key").is_unique().all()).item():
        return None
    # the clock as the line arrives: the latest arrival before it (a sweep closes what it passed by the gap)
    # the builder's clock starts at 0 (a row stamped before 1970 arrives after its sweeps' start)
    before = pl.col("clock") if "clock" in lines.columns else pl.max_horizontal(arrival.cum_max().shift(1), 0)
    frame = frame.with_columns(clock=lines.select(before.alias("clock"))["clock"]).sort(*_KEY, "n")
    first = pl.int_range(pl.len()) == 0
    same = ~first & pl.all_horizontal(pl.col(name).eq_missing(pl.col(name).shift(1)) for name in _KEY)
    frame = frame.with_columns(same=same, ts_step=ts - ts.shift(1), arrival_step=arrival - arrival.shift(1))
    if not frame.select((~pl.col("same") | ((pl.col("ts_step") >= 0) & (pl.col("arrival_step") >= 0))).all()).item():
        return None
    # apart from the previous line of its key (the group's last, as arrival does not go back within a key): more
    # than the gap later in journal time, or the clock (with this line) more than the gap past it
    since = pl.max_horizontal("clock", "arrival") - arrival.shift(1)
    apart = ~pl.col("same") | (pl.col("ts_step") > gap) | (since > gap)
    frame = frame.with_columns(apart=apart).with_columns(
        span_start=pl.when("apart").then(pl.int_range(pl.len())).forward_fill(),
        named_at=pl.when(pl.col("address").is_not_null()).then(pl.int_range(pl.len())).forward_fill().shift(1),
    )
    # a daemon's line naming another peer than the group's (the last one a line of it named) starts a new one
    named = pl.col("address").gather(pl.col("named_at").fill_null(0))
    in_span = pl.col("named_at").is_not_null() & (pl.col("named_at") >= pl.col("span_start"))
    other_peer = pl.col("address").is_not_null() & in_span & (pl.col("address") != named)
    start = pl.col("apart") | other_peer
    groups = frame.select("n", "same", group=pl.when(start).then(row).forward_fill(), start=start)
    groups = groups.with_columns(ends=pl.when(pl.col("start") & pl.col("same")).then(pl.col("group").shift(1)))
    return groups.sort("n").select("group", "ends")


class BatchGroups:
    """The line layer over batches: lines in, in arrival order, a batch at a time; out, the lines of the groups
    that closed, with their groups and the moment each closed as `EventBuilder` closes it: `idx`, every line's
    position among the lines fed (heartbeats are not fed); `closed_at`, the position of the line at which the
    group closed (None: at the end of input); `collided`, whether that line was the next one of the group's key
    (closed as it is fed, before the sweep after it), not the first whose clock is more than the gap past the
    group's last arrival (closed by that sweep). No later line can join a group given out. An open group is
    grouped with the next batch by its last line alone (standing for it with the last peer it named): its other
    lines wait untouched. Memory holds the open groups and the keys of four gaps, not the input. `to_feed` leaves out
    the copies the builder drops (`copy_columns`), and refuses a batch where that depends on whether a line is
    still held, or whose lines are not as `from_journal` reads them (a REQUIRED column null). After a refusal
    nothing can be fed any more (the groups given out before it are the builder's; the rest is the builder's to
    answer)."""

    def __init__(self, gap: int) -> None:
        self.gap = gap
        self.clock = 0  # the latest arrival of the lines fed so far (the builder's starts at 0)
        self.fed = 0  # lines fed so far (the next line's `idx`)
        self._held: pl.DataFrame | None = None  # the open groups' lines, with their `group`
        self._last: pl.DataFrame | None = None  # each open group's last line, `named`, `last_arrival`
        self._keys: pl.DataFrame | None = None  # (key, fed) of the lines fed, four gaps of them
        self._next = 0  # the next group number
        self.duplicates = 0  # copies dropped so far (`EventBuilder.duplicates`)

    def to_feed(
        self, batch: pl.DataFrame, held: pl.DataFrame | None = None
    ) -> tuple[pl.DataFrame, pl.DataFrame | None] | None:
        """The lines of `batch` the builder is fed, in order: not heartbeats, nor copies it drops (`copies_of`), up
        to a line whose answer depends on what is held when it comes; and the rest of the batch from that line (None:
        none), to be fed once these are. None when the lines are not as `from_journal` reads them (a REQUIRED
        column null). `held`: the keys of lines held in events not yet released, with their events' last arrival
        (`key`, `last`: `BatchConnections.held_keys`)."""
        import polars as pl

        if batch.select(pl.any_horizontal(pl.col(name).is_null() for name in REQUIRED).any()).item():
            return None  # not lines as `from_journal` reads them: no answer here
        held_keys = [] if held is None else [held]
        if self._held is not None and self._last is not None:  # an open group's lines, by its last arrival
            last = self._last.select("group", last="last_arrival")
            held_keys.append(self._held.join(last, on="group", how="left").select("key", "last"))
        copies = copies_of(batch.select("key", "arrival", "ident"), self.clock, self.gap, self._keys, held_keys)
        rest = None if copies.cut is None else batch.slice(copies.cut)
        fed = batch if copies.cut is None else batch.slice(0, copies.cut)
        dropped = copies.dropped if copies.cut is None else copies.dropped.slice(0, copies.cut)
        self.duplicates += dropped.sum()
        return fed_lines(fed.filter(~dropped) if dropped.any() else fed), rest

    def feed(self, batch: pl.DataFrame) -> tuple[pl.DataFrame, pl.Series] | None:
        """The lines of the groups this batch closed (with `clock`, the latest arrival before each line, `idx`,
        `closed_at` and `collided`) and their groups; None when the batch cannot be grouped in columns (nothing
        changes then). `batch`: lines the builder is fed (`to_feed`: no copies among them)."""
        import polars as pl

        arrival = pl.col("arrival")
        new = batch.with_columns(
            clock=pl.max_horizontal(arrival.cum_max().shift(1), pl.lit(self.clock)),
            idx=pl.int_range(pl.len(), dtype=pl.Int64) + self.fed,
            carried=pl.lit(False),
            named=pl.lit(None, pl.String),
            group=pl.lit(None, pl.Int64),
        )
        lines = new if self._last is None else pl.concat([self._last.drop("last_arrival"), new], how="vertical_relaxed")
        found = grouped_lines(lines, self.gap)
        if found is None:
            return None
        numbered = lines.with_columns(group=self._numbered(found["group"]), ends=self._numbered(found["ends"])).filter(
            ~pl.col("carried")
        )
        # the line that begins each group's successor of its key, which closes it as it is fed
        collisions = numbered.filter(pl.col("ends").is_not_null()).select(group="ends", collision="idx")
        numbered = numbered.drop("ends")
        self._next += len(lines)
        self.fed += len(batch)
        latest = batch["arrival"].max()
        if latest is not None:
            self.clock = max(self.clock, latest)
        return self._close(numbered, collisions)

    def _numbered(self, groups: pl.Series) -> pl.Expr:
        """`grouped_lines`' group numbers as the batches number them: a group an open one's last line begins is
        that open group; any other is new (None stays None)."""
        import polars as pl

        carried = pl.col("group").gather(groups.fill_null(0))
        return pl.when(groups.is_not_null()).then(carried.fill_null(groups.cast(pl.Int64) + self._next))

    def _close(self, numbered: pl.DataFrame, collisions: pl.DataFrame) -> tuple[pl.DataFrame, pl.Series]:
        """Add the batch's lines to the open groups; give out those that closed."""
        import polars as pl

        held = numbered if self._held is None else pl.concat([self._held, numbered], how="vertical_relaxed")
        lines = numbered.with_columns(named=_address(numbered), last_arrival=pl.col("arrival"))
        if self._last is not None:
            lines = pl.concat([self._last, lines], how="vertical_relaxed")
        last = lines.group_by("group", maintain_order=True).agg(
            pl.all().exclude("named", "last_arrival").last(),
            named=pl.col("named").drop_nulls().last(),
            last_arrival=pl.col("last_arrival").max(),
        )
        closes = _closes(last.join(collisions, on="group", how="left"), numbered, self.gap)
        done = closes.filter(pl.col("closed_at").is_not_null())
        closed = held.join(done, on="group", how="inner", maintain_order="left")
        self._held = held.join(done, on="group", how="anti", maintain_order="left")
        self._last = last.join(done, on="group", how="anti", maintain_order="left").with_columns(carried=pl.lit(True))
        self._last = self._last.select(lines.columns)
        if self._held.is_empty():
            self._held = self._last = None
        # the builder forgets a line's key once the clock is four gaps past the latest arrival fed up to it (its
        # queue of keys is in the order fed: a line delivered late waits behind newer ones); a copy is looked for
        # among these only, not among every line an open group holds
        keys = numbered.select("key", fed=pl.max_horizontal("clock", "arrival"))
        if self._keys is not None:
            keys = pl.concat([self._keys, keys])
        self._keys = keys.filter(pl.col("fed") >= self.clock - 4 * self.gap)
        return closed.drop("group", "carried", "named"), closed["group"]

    def finish(self) -> tuple[pl.DataFrame, pl.Series] | None:
        """The lines still held, every group closed by the end of input (None: none held)."""
        import polars as pl

        if self._held is None:
            return None
        held, self._held, self._last = self._held, None, None
        held = held.with_columns(closed_at=pl.lit(None, pl.Int64), collided=pl.lit(False))
        return held.drop("group", "carried", "named"), held["group"]


def _closes(last: pl.DataFrame, numbered: pl.DataFrame, gap: int) -> pl.DataFrame:
    """For each group (`last`: its last line, with `idx`, `last_arrival` and `collision`, the `idx` of the line
    beginning the next group of its key), the `idx` of the line at which it closed (None: still open) and whether
    the next line of its key closed it: that line, or the sweep after the first line of the batch (`numbered`)
    whose clock (the latest arrival with it) is more than the gap past the group's last arrival, whichever comes
    first (at the same line, the next line of its key: as it is fed)."""
    import polars as pl

    clock = numbered.select(pl.max_horizontal("clock", "arrival"))[:, 0]  # with each line: never goes back
    first = numbered["idx"].min()
    if clock.is_empty() or first is None:
        expiry = pl.lit(None, pl.Int64)
    else:
        found = clock.search_sorted(last["last_arrival"] + gap, side="right").cast(pl.Int64)
        expiry = pl.when(found < len(clock)).then(pl.max_horizontal(found + first, pl.col("idx")))
    keyed = last.with_columns(expiry=expiry)
    collided = pl.col("collision").is_not_null() & (
        pl.col("expiry").is_null() | (pl.col("collision") <= pl.col("expiry"))
    )
    return keyed.select("group", closed_at=pl.min_horizontal("collision", "expiry"), collided=collided)
