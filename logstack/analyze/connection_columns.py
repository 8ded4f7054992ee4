"""The event builder's event layer over batches, in part: an SSH connection's monitor and session child (separate
PIDs) joined by the peer's address and port as `EventBuilder._close` joins them, and events released as its
sweeps release them (two gaps after their last line arrived, in order of that arrival).

Groups come from `BatchGroups` with the moment each closed. A closing event joins the event its connection key
last named (`connection_key`: machine, boot, address, port, who vouches for the first line, forged) if that one
is not released yet, began no more than the gap before this one's start, and the two hold two PIDs at most;
otherwise it becomes what the key names. Only the events that can join are looked at one by one (in the order the
builder closes them); the release moments are column operations. Not here yet, so refused: a session child that
names no port (sshd before 7.4p1: `PortlessChildren` joins it by address); not modelled: brute-force incidents
and an earlier run's state (`known`). tests/test_connection_columns.py checks the events against the builder's.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from logstack.analyze.connections import CHILD_KINDS
from logstack.analyze.event_columns import EVENT_COLUMNS, event_columns

if TYPE_CHECKING:
    import polars as pl


# a connection key's columns, as `connection_key` makes it
_CONNECTION = ("machine", "boot", "ip", "port", "auth", "forged")
# what a join reads of the event a key names (as _Partner holds it)
_NAMED = ("event", "start", "end", "pids", "last_arrival", "queued", "first_key", "known")


@dataclass
class _Partner:
    """What a join reads of an event its connection key names (the fields of _NAMED): its number, span, PIDs,
    last arrival, the line at which it was last queued for release (None: at the end of input), and the key of
    its first line (which orders releases)."""

    key: tuple[str, ...]  # its connection key
    event: int
    start: int
    end: int
    pids: set[str]
    last_arrival: int
    queued: int | None
    first_key: str
    known: bool  # an earlier run reported it: it joins only an event as known

    def row(self) -> list[object]:
        """Its _NAMED columns."""
        pids = sorted(self.pids)
        return [self.event, self.start, self.end, pids, self.last_arrival, self.queued, self.first_key, self.known]


class BatchConnections:
    """Closed groups in (`BatchGroups`' output, with the arrivals of every line fed), released events out, in the
    order the builder releases them: `event_columns`' rows (a child merged into its monitor's event is read again
    with it), their `line_order` naming the lines given out with them by `idx` (`event_json(..., by="idx")`).
    Each closed group's event is read once, as it closes; only an event a child joined is read again, as it is
    released."""

    def __init__(self, gap: int) -> None:
        self.gap = gap
        self._clock = 0
        self._clocks: list[int] = []  # the clock with each line fed, from line `_base` on
        self._base = 0
        # per connection key, the waiting event it names and what a join reads of it (_NAMED)
        self._named: pl.DataFrame | None = None
        # the events not released: `event_columns`' rows (`group`: the event), `line_order` as the lines' `idx`,
        # `queued` (the line at which each was last queued for release)
        self._waiting: pl.DataFrame | None = None
        self._held: pl.DataFrame | None = None  # their lines, with `event`
        self._grown: set[int] = set()  # events a child joined: read again from their lines when released
        self._released = 0
        # (machine, boot, address) of the session children naming no port and of the successful logins naming
        # one, closed so far (`_no_portless_join`)
        self._child_peers: set[tuple[str, str, str]] = set()
        self._login_peers: set[tuple[str, str, str]] = set()

    def held_keys(self) -> pl.DataFrame | None:
        """The keys of the lines in events not released yet (a copy of one is dropped by the builder), with `last`,
        their event's last arrival (it is released only once the clock is two gaps past that)."""
        if self._held is None or self._waiting is None:
            return None
        last = self._waiting.select(event="group", last="last_arrival")
        return self._held.select("key", "event").join(last, on="event", how="left").select("key", "last")

    def feed(
        self, closed: pl.DataFrame, groups: pl.Series, arrivals: pl.Series
    ) -> tuple[pl.DataFrame, pl.DataFrame] | None:
        """The events released by the end of a batch and their lines; None when the batch holds an event only the
        builder can join (a session child naming no port). `closed`, `groups`: what `BatchGroups.feed` gave out
        for it; `arrivals`: the arrival of every line it was fed (`fed_lines`), in order."""
        import polars as pl

        events = self._events(closed, groups)
        if events is None:
            return None
        if not arrivals.is_empty():
            clocks = arrivals.cum_max().clip(lower_bound=self._clock)
            self._clocks += clocks.to_list()
            self._clock = self._clocks[-1]
        self._join(closed, groups, events)
        waiting = self._waiting
        if waiting is None:  # nothing to release: no clock is read again (a process logging for ever)
            self._forget_clocks()
            return pl.DataFrame(), pl.DataFrame()
        release = self._release_column(waiting)
        ready = waiting.with_columns(release=release).filter(pl.col("release").is_not_null())
        return self._give_out(ready.sort("release", "last_arrival", "first_key"))

    def finish(self, rest: tuple[pl.DataFrame, pl.Series] | None) -> tuple[pl.DataFrame, pl.DataFrame] | None:
        """End of input: the groups still open close (`BatchGroups.finish`), then every event is released (None:
        refused, as `feed`)."""
        import polars as pl

        if rest is not None:
            events = self._events(*rest)
            if events is None:
                return None
            self._join(*rest, events)
        if self._waiting is None:
            return pl.DataFrame(), pl.DataFrame()
        return self._give_out(self._waiting.sort("last_arrival", "first_key").with_columns(release=None))

    def _events(self, closed: pl.DataFrame, groups: pl.Series) -> pl.DataFrame | None:
        """The closed groups' events with what a join reads, in the order the builder closes them; None if a
        session child naming no port may join a login (or a login take one)."""
        import polars as pl

        if closed.is_empty():
            return closed.select(group=groups)
        lines = closed.with_columns(group=groups)
        events = event_columns(lines)
        auth = lines["auth"].gather(events["line_order"].list.first())
        events = events.with_columns(first_auth=auth.fill_null(""))
        if not self._no_portless_join(events, lines):
            return None
        # the order the builder closes them in: by the line at which they closed, those closed by the next line
        # of their key first (as it is fed, before the sweep after it), then by last arrival and the key of the
        # line that opened the group
        order = lines.group_by("group").agg(
            pl.col("closed_at").first(), pl.col("collided").first(), opened=pl.col("key").get(pl.col("idx").arg_min())
        )
        events = _by_idx(events, lines).join(order, on="group")
        return events.sort(
            pl.col("closed_at"), ~pl.col("collided"), "last_arrival", "opened", nulls_last=True, maintain_order=True
        )

    def _no_portless_join(self, events: pl.DataFrame, lines: pl.DataFrame) -> bool:
        """Whether no session child naming no port can join a login (`PortlessChildren`): the builder joins one
        only to a successful login naming a port from its peer (`peer_key`: machine, boot, address, who vouches
        for the first line), closed before or after it; with none such in the whole run, a child is an event like
        any other. A forged event (any local user can log a line that looks like a child, or a login) joins
        nothing by address (`PortlessChildren.joined`): only a daemon's own lines can send the run to the
        line-by-line engine (sshd before 7.4p1, whose child names no port)."""
        import polars as pl

        # `is_session_child`'s lines: each a session child's kind, none `[preauth]`
        told = pl.col("kind").is_in(list(CHILD_KINDS)).all() & ~pl.col("message").str.ends_with(" [preauth]").any()
        events = events.join(lines.group_by("group").agg(child_lines=told), on="group", how="left")
        machine = pl.when(pl.col("machine_id").fill_null("") != "").then("machine_id").otherwise("host")
        # `peer_key`: a line any local user wrote (forged) never joins a daemon's, nor an unproven one a proven one
        forged = pl.col("flags").list.contains("forged")
        peer = pl.struct(machine.alias("machine"), pl.col("boot_id").fill_null(""), "source_ip", "first_auth", forged)
        ssh = pl.col("ssh") & (pl.col("source_ip").fill_null("") != "")
        ssh = ssh & ~forged
        # `is_session_child`, with an address and no port
        child = ssh & pl.col("source_port").is_null() & (pl.col("type") == "ssh_preauth") & pl.col("child_lines")
        login = ssh & pl.col("source_port").is_not_null() & (pl.col("type") == "ssh_login")
        login = login & (pl.col("outcome") == "success")
        found = events.select(child=peer.filter(child).implode(), login=peer.filter(login).implode()).row(0)
        children = {tuple(p.values()) for p in found[0]}
        logins = {tuple(p.values()) for p in found[1]}
        if children & (logins | self._login_peers) or logins & self._child_peers:
            return False
        self._child_peers |= children
        self._login_peers |= logins
        return True

    def _join(self, closed: pl.DataFrame, groups: pl.Series, events: pl.DataFrame) -> None:
        """Each closing event joins the waiting one its connection key names, or becomes what the key names."""
        import polars as pl

        if events.is_empty():
            return
        machine = pl.when(pl.col("machine_id").is_not_null()).then("machine_id").otherwise("host")
        # as `_close` asks: an address and a port that are there and not empty or 0
        joinable = pl.col("ssh") & (pl.col("source_ip").fill_null("") != "") & (pl.col("source_port").fill_null(0) != 0)
        candidates = events.filter(joinable).select(
            event="group",
            machine=machine,
            boot=pl.col("boot_id").fill_null(""),
            ip="source_ip",
            port=pl.col("source_port").cast(pl.String),
            auth="first_auth",
            forged=pl.when(pl.col("flags").list.contains("forged")).then(pl.lit("forged")).otherwise(pl.lit("")),
            start="start",
            end="end",
            pids="pids",
            last_arrival="last_arrival",
            queued="closed_at",
            first_key="first_key",
            known="known",
        )
        # one by one only those whose key names a waiting event or repeats: the rest are what their key names
        named = self._named
        looked_at = candidates.select(pl.struct(_CONNECTION).is_duplicated()).to_series()
        if named is not None:
            looked_at |= candidates.join(
                named.select(*_CONNECTION, hit=pl.lit(True)), on=_CONNECTION, how="left", maintain_order="left"
            )["hit"].fill_null(False)
        entries = candidates.filter(~looked_at).select(*_CONNECTION, *_NAMED)
        partners: dict[tuple[str, ...], _Partner] = {}
        slow = candidates.filter(looked_at)
        if named is not None and not slow.is_empty():
            looked_up = named.join(slow.select(_CONNECTION).unique(), on=_CONNECTION, how="semi")
            for *conn, event, start, end, pids, last_arrival, queued, first_key, known in looked_up.iter_rows():
                key = tuple(conn)
                partners[key] = _Partner(key, event, start, end, set(pids), last_arrival, queued, first_key, known)
        into, grown = self._join_one_by_one(slow, partners)
        if partners:  # what the keys looked at name now
            touched = _frame(entries.schema, [[*p.key, *p.row()] for p in partners.values()])
            if named is not None:
                named = named.join(touched.select(_CONNECTION), on=_CONNECTION, how="anti", maintain_order="left")
            entries = pl.concat([entries, touched], how="vertical_relaxed")
        self._named = entries if named is None else pl.concat([named, entries], how="vertical_relaxed")
        self._hold(closed, groups, events, into, grown)

    def _join_one_by_one(
        self, slow: pl.DataFrame, partners: dict[tuple[str, ...], _Partner]
    ) -> tuple[dict[int, int], list[_Partner]]:
        """In the order they close, the events whose key repeats or names a waiting event: each joins what its key
        names (`partners`, updated) or becomes it. The events merged away (into which), and those grown."""
        into: dict[int, int] = {}
        grown: dict[int, _Partner] = {}
        for *conn, event, start, end, pids, last_arrival, queued, first_key, known in slow.select(
            *_CONNECTION, *_NAMED
        ).iter_rows():
            key = tuple(conn)
            partner = partners.get(key)
            if (
                partner is not None
                and partner.known == known
                and self._unreleased(partner, queued)
                and abs(start - partner.end) <= self.gap
                and len(partner.pids.union(pids)) <= 2
            ):
                if (start, first_key) < (partner.start, partner.first_key):
                    partner.start, partner.first_key = start, first_key
                partner.end = max(partner.end, end)
                partner.pids.update(pids)
                partner.last_arrival = max(partner.last_arrival, last_arrival)
                partner.queued = queued
                into[event] = grown.setdefault(partner.event, partner).event
                continue
            partners[key] = _Partner(key, event, start, end, set(pids), last_arrival, queued, first_key, known)
        return into, list(grown.values())

    def _unreleased(self, partner: _Partner, closing: int | None) -> bool:
        """Whether the builder still holds `partner` when an event closes at line `closing` (None: at the end of
        input): it closes before the sweep of that line releases anything."""
        released = self._release_of(partner.last_arrival, partner.queued)
        return released is None or (closing is not None and released >= closing)

    def _release_of(self, last_arrival: int, queued: int | None) -> int | None:
        """The line after which the sweep releases an event that last arrived at `last_arrival`, queued at line
        `queued`: the first from there whose clock is more than two gaps past it (None: none fed yet)."""
        if queued is None:
            return None
        found = self._base + bisect.bisect_right(self._clocks, last_arrival + 2 * self.gap)
        if found >= self._base + len(self._clocks):
            return None
        return max(found, queued)

    def _release_column(self, waiting: pl.DataFrame) -> pl.Series:
        """`_release_of` for every waiting event."""
        import polars as pl

        clocks = pl.Series(self._clocks, dtype=pl.Int64)
        found = clocks.search_sorted(waiting["last_arrival"] + 2 * self.gap, side="right").cast(pl.Int64)
        return waiting.select(
            pl.when((found < len(clocks)) & pl.col("queued").is_not_null()).then(
                pl.max_horizontal(found + self._base, pl.col("queued"))
            )
        ).to_series()

    def _hold(
        self,
        closed: pl.DataFrame,
        groups: pl.Series,
        events: pl.DataFrame,
        into: dict[int, int],
        grown: list[_Partner],
    ) -> None:
        """Keep the closed events until they are released (a child's lines in its partner's event)."""
        import polars as pl

        merged = pl.DataFrame(
            {"group": list(into), "into": list(into.values())}, schema={"group": pl.Int64, "into": pl.Int64}
        )
        lines = closed.with_columns(group=groups.cast(pl.Int64))
        lines = lines.join(merged, on="group", how="left", maintain_order="left")
        lines = lines.select(pl.all().exclude("group", "into"), event=pl.coalesce("into", "group"))
        own = (
            events.filter(~pl.col("group").is_in(list(into)))
            .select(*EVENT_COLUMNS, queued="closed_at")
            .with_columns(pl.col("group").cast(pl.Int64))
        )
        self._held = lines if self._held is None else pl.concat([self._held, lines], how="vertical_relaxed")
        waiting = own if self._waiting is None else pl.concat([self._waiting, own], how="vertical_relaxed")
        if grown:
            self._grown.update(p.event for p in grown)
            # what orders its release (the rest of it is read again then)
            update = pl.DataFrame(
                {
                    "group": [p.event for p in grown],
                    "last_arrival": [p.last_arrival for p in grown],
                    "queued": [p.queued for p in grown],
                    "first_key": [p.first_key for p in grown],
                },
                schema={name: waiting.schema[name] for name in ("group", "last_arrival", "queued", "first_key")},
            )
            waiting = waiting.update(update, on="group", include_nulls=True)  # a merge at the end queues at None
        self._waiting = waiting

    def _give_out(self, ready: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The `ready` events (in release order, numbered by it; `released_at`: the line after which the builder
        releases each, None at the end of input) and their lines; the rest stay held."""
        import polars as pl

        assert self._held is not None and self._waiting is not None
        done = ready.select(event="group")
        lines = self._held.join(done, on="event", how="semi", maintain_order="left")
        self._held = self._held.join(done, on="event", how="anti", maintain_order="left")
        self._waiting = self._waiting.join(ready.select("group"), on="group", how="anti", maintain_order="left")
        events = ready.select(EVENT_COLUMNS)
        grown = [event for event in ready["group"].to_list() if event in self._grown]
        if grown:  # a child joined them: read again from all their lines
            theirs = lines.filter(pl.col("event").is_in(grown)).rename({"event": "group"})
            again = _by_idx(event_columns(theirs), theirs).with_columns(pl.col("group").cast(pl.Int64))
            # whole rows, in their place: a field the merged event lacks (None) is None, not the waiting one's
            order = events.select("group", rank=pl.int_range(pl.len()))
            events = pl.concat([events.filter(~pl.col("group").is_in(grown)), again], how="vertical_relaxed")
            events = events.join(order, on="group").sort("rank").drop("rank")
            self._grown.difference_update(grown)
        if self._named is not None:  # a key names an event only until it is released
            self._named = self._named.join(done, on="event", how="anti", maintain_order="left")
        if self._waiting.is_empty():
            self._held = self._waiting = None
        self._forget_clocks()
        first = self._released
        self._released += len(ready)
        events = events.with_columns(
            group=pl.int_range(pl.len(), dtype=pl.Int64) + first, released_at=ready["release"].cast(pl.Int64)
        )
        return events, lines.drop("event")

    def _forget_clocks(self) -> None:
        """Keep the clocks from the earliest line a waiting event was queued at (no release reads older ones)."""
        if self._waiting is None:
            keep = self._base + len(self._clocks)
        else:
            keep = self._waiting["queued"].min()
            if keep is None:
                return
        drop = cast(int, keep) - self._base
        if drop > 0:
            del self._clocks[:drop]
            self._base += drop


def _by_idx(events: pl.DataFrame, lines: pl.DataFrame) -> pl.DataFrame:
    """`events` with `line_order` naming the lines by `idx` rather than by row number in `lines` (rows mean nothing
    once lines are held with other batches')."""

    positions = events.select("group", "line_order").explode("line_order")
    positions = positions.with_columns(line_order=lines["idx"].gather(positions["line_order"]))
    return (
        events.drop("line_order")
        .join(positions.group_by("group", maintain_order=True).agg("line_order"), on="group", maintain_order="left")
        .select(events.columns)
    )


def _frame(schema: pl.Schema, rows: list[list[Any]]) -> pl.DataFrame:
    """A frame of `schema` (_CONNECTION, _NAMED) from rows. `pids` (one PID or two, as an event a connection key
    names holds: a join takes a third for a new connection) is made from two text columns, far faster than from
    lists."""
    import polars as pl

    at = list(schema).index("pids")
    columns = [list(column) for column in zip(*rows, strict=True)]
    pairs = [[*held, None, None] for held in columns[at]]
    columns[at] = [pair[0] for pair in pairs]
    second = pl.Series([pair[1] for pair in pairs], dtype=pl.String)
    frame = pl.DataFrame(dict(zip(list(schema), columns, strict=True)), schema={**schema, "pids": pl.String})
    return frame.with_columns(pids=pl.concat_list("pids", second).list.drop_nulls())
