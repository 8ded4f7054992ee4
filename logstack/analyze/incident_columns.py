"""Brute-force incidents and `after_failures` over batches: the builder's `FailureWindows`, told what the builder
tells it, at the lines it would be told, from columns.

The builder tells the windows of each failed try as its line is fed, of each SSH login as it is released (with
`oldest_unreleased`, the earliest journal time of an SSH line fed and not released), and after each line's
releases whether an incident may end or what is old forgotten (`busy`, `end`, `forget`). Here the windows are
told the same: each try in the order its line is fed, the rest at the lines where anything else can change (a
release's, the first of a batch, and the first whose clock reaches what `next_due` names: a tick, an incident's
horizon or HOLD, an incident going quiet while nothing is unreleased), and, while nothing is unreleased, the
next SSH line's (its journal time may be past the clock). `busy` decides at each as at every line; between them
it cannot turn true (nothing is released, so `oldest_unreleased` only falls, or, while nothing is unreleased,
grows with the clock). `oldest_unreleased` is a range minimum kept in a heap of the SSH lines alive
from their line to their event's release (of one event's lines, only those earlier in journal time than the
event's lines fed before them). Python objects are made for the SSH logins from an address and the failed tries,
not for every line.
tests/test_incident_columns.py checks the events, incidents included, against the builder's.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from logstack.analyze.event import Event, Settings
from logstack.analyze.event_columns import EVENT_COLUMNS, key_probe
from logstack.analyze.failures import TRIED_KINDS, FailureWindows
from logstack.classify.programs import SSH_IDENTIFIERS
from logstack.journal.line import Line

if TYPE_CHECKING:
    import polars as pl

# what the windows read of a released login
_LOGIN = ("id", "outcome", "host", "machine_id", "boot_id", "pids", "start", "end", "flags", "first_arrival")
_LOGIN += ("last_arrival", "attempts", "user", "source_ip", "known")
_LINE = ("ts", "pid", "ident", "message", "key", "auth")  # what an incident shows of its failures' first lines
INF = 1 << 62


class BatchIncidents:
    """Each batch's fed lines and the events `BatchConnections` released by its end in; the events out in the
    builder's order, incidents among them, successes flagged `after_failures`."""

    def __init__(self, settings: Settings) -> None:
        import polars as pl

        self.settings = settings
        self.windows = FailureWindows(settings)
        self._fed = 0  # lines fed so far (`idx` of the next)
        self._clock = 0
        self._pending: pl.DataFrame | None = None  # `idx`, `ts` of SSH lines whose event is not released
        self._shown = 0  # lines shown by incidents so far (numbered -1, -2, …: no line fed has these)
        self._schema: pl.Schema | dict[str, pl.DataType] = {name: pl.Null for name in (*EVENT_COLUMNS, "released_at")}

    def feed(self, fed: pl.DataFrame, events: pl.DataFrame, lines: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """`fed`: the batch's lines the builder is fed (`fed_lines`, with their facts); `events`, `lines`: what
        `BatchConnections` released by its end (`released_at`). The events and their lines, incidents among them."""
        import polars as pl

        base, count = self._fed, len(fed)
        self._fed += count
        clocks = fed["arrival"].cum_max().clip(lower_bound=self._clock).to_list() if count else []
        if clocks:
            self._clock = clocks[-1]
        ssh = fed.with_row_index("idx", offset=base).filter(pl.col("ident").is_in(list(SSH_IDENTIFIERS)))
        fresh = ssh.select(pl.col("idx").cast(pl.Int64), "ts")
        held = fresh if self._pending is None else pl.concat([self._pending, fresh])
        events = self._typed(events)
        alive = _Alive(self._records(held, events, base, final=False))
        releases = [at - base for at in events["released_at"].to_list()]
        at_rows = {at: list(rows) for at, rows in itertools.groupby(range(len(releases)), key=releases.__getitem__)}
        logins, order = _Logins(events, lines), list[int | Event]()
        self._walk(clocks, _tries(fed), alive, at_rows, logins, order)
        return self._out(order, events, lines, logins)

    def finish(self, events: pl.DataFrame, lines: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """End of input: the events `BatchConnections.finish` released, then every incident."""
        events = self._typed(events)
        alive = _Alive(self._records(self._pending, events, self._fed, final=True))
        logins, order = _Logins(events, lines), list[int | Event]()
        self._release(range(len(events)), alive.least(self._clock), logins, order)
        out: list[Event] = []
        self.windows.end(self._clock, True, out, self._clock)
        return self._out([*order, *out], events, lines, logins)

    def _typed(self, events: pl.DataFrame) -> pl.DataFrame:
        """`events`, with the columns events have when there are none (an incident comes out after its failures:
        the columns are known by then)."""
        import polars as pl

        if events.is_empty():
            return pl.DataFrame(schema=self._schema)
        self._schema = events.schema
        return events

    def _walk(
        self,
        clocks: list[int],
        tries: list[tuple[int, str, int, int, tuple[str, str, str] | None]],
        alive: _Alive,
        at_rows: dict[int, list[int]],
        logins: _Logins,
        order: list[int | Event],
    ) -> None:
        """Tell the windows what the builder tells them over one batch, at the lines where `busy` may turn true
        (the first, a release's, the first whose clock reaches what the windows say is due next), each try as its
        line is fed (before what is told at its line or after)."""
        windows, n = self.windows, len(clocks)
        lines = sorted({0, *at_rows}) if n else []
        due: list[int] = []
        tried = 0
        done, position = -1, 0
        while position < len(lines) or due:
            q = lines[position] if position < len(lines) else INF
            if due and due[0] <= q:
                q = heapq.heappop(due)
            else:
                position += 1
            if q <= done:
                continue
            done = q
            alive.enter(q)
            while tried < len(tries) and tries[tried][0] <= q:
                windows.tried(*tries[tried][1:])
                tried += 1
            clock = clocks[q]
            if q in at_rows:
                self._release(at_rows[q], alive.oldest(q, clock, after=False), logins, order)
            oldest = alive.oldest(q, clock, after=True)
            if windows.busy(clock, lambda oldest=oldest: oldest):
                out: list[Event] = []
                windows.end(clock, False, out, oldest)
                windows.forget(clock, oldest)
                order += out
            after = bisect.bisect_left(clocks, windows.next_due(alive.none()), q + 1)
            if after < n:
                heapq.heappush(due, after)
            # with nothing alive, the next SSH line fed sets what is unreleased to its journal time, which may be
            # past the clock (a sender's clock ahead, arrivals before 1970): an incident may go quiet there
            if alive.none() and (entry := alive.next_entry()) is not None and entry < n:
                heapq.heappush(due, entry)
        for _, *tried_at in tries[tried:]:
            windows.tried(*tried_at)

    def _records(
        self, alive: pl.DataFrame | None, events: pl.DataFrame, base: int, final: bool
    ) -> list[tuple[int, int, int]]:
        """(line it is fed at, journal time, line its event is released at) of the SSH lines alive in the batch
        (INF: not released in it) that may be the least alive; the rest stay pending."""
        import polars as pl

        if alive is None or alive.is_empty():
            self._pending = None
            return []
        released = events.select(idx="line_order", release="released_at").explode("idx")
        released = released.with_columns(pl.col("idx").cast(pl.Int64), pl.col("release").fill_null(INF))
        alive = alive.join(released, on="idx", how="left")
        self._pending = None if final else alive.filter(pl.col("release").is_null()).select("idx", "ts")
        if self._pending is not None and self._pending.is_empty():
            self._pending = None
        # of the lines released at one line, only those earlier than every line fed before them
        alive = alive.with_columns(pl.col("release").fill_null(INF)).sort("release", "idx")
        least = pl.col("ts").cum_min().shift(1).over("release")
        kept = alive.filter(least.is_null() | (pl.col("ts") < least))
        kept = kept.select(at=(pl.col("idx") - base).clip(lower_bound=0), ts="ts", release=pl.col("release") - base)
        return list(_rows(kept.sort("at")))

    def _release(self, rows: Iterable[int], oldest: int, logins: _Logins, order: list[int | Event]) -> None:
        """Release the events of `rows`, in order: a login from an address goes to the windows first (an incident
        its failure ends comes out before it)."""
        for row in rows:
            login = logins.get(row, self.windows)
            if login is not None:
                out: list[Event] = []
                self.windows.finalise(login, out, oldest)
                order += out
            order.append(row)

    def _out(
        self, order: list[int | Event], events: pl.DataFrame, lines: pl.DataFrame, logins: _Logins
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The events in `order` (logins' flags as the windows left them), incidents as rows, and the lines."""
        import polars as pl

        made = logins.made
        flagged = [row for row, login in made.items() if "after_failures" in login.flags]
        if flagged:
            flags = pl.DataFrame(
                {"row": flagged, "flags": [made[row].flags for row in flagged]},
                schema={"row": pl.UInt32, "flags": pl.List(pl.String)},
            )
            events = events.with_row_index("row").update(flags, on="row").drop("row")
        incidents = [item for item in order if isinstance(item, Event)]
        if not incidents:
            return events, lines
        ranks, rows, shown = [], [], []
        for rank, item in enumerate(order):
            if not isinstance(item, Event):
                ranks.append(rank)
                continue
            numbers = []
            for line in item.lines:
                self._shown += 1
                numbers.append(-self._shown)
                shown.append({"idx": -self._shown, **{name: getattr(line, name) for name in _LINE}})
            row = {name: getattr(item, name) for name in EVENT_COLUMNS if name not in ("group", "line_order")}
            rows.append({**row, "group": None, "line_order": numbers, "released_at": None, "rank": rank})
        schema = {**self._schema, "rank": pl.Int64}
        everything = pl.concat(
            [events.with_columns(rank=pl.Series(ranks, dtype=pl.Int64)), pl.DataFrame(rows, schema=schema)],
            how="vertical_relaxed",
        )
        their_lines = pl.DataFrame(
            shown, schema={"idx": pl.Int64, "ts": pl.Int64, **dict.fromkeys(_LINE[1:], pl.String)}
        )
        return everything.sort("rank").drop("rank"), pl.concat([lines, their_lines], how="diagonal_relaxed")


def _tries(fed: pl.DataFrame) -> list[tuple[int, str, int, int, tuple[str, str, str] | None]]:
    """(line, address, arrival, journal time, the process of a key probe) of the failed tries, as `feed` tells
    them."""
    import polars as pl

    tried = fed.with_row_index("at").filter(pl.col("source_ip").is_not_null() & pl.col("kind").is_in(list(TRIED_KINDS)))
    machine = pl.when(pl.col("machine") != "").then(pl.col("machine")).otherwise(pl.col("host"))
    rows = tried.select("at", "source_ip", "arrival", "ts", probe=key_probe(), machine=machine, boot="boot", pid="pid")
    return [
        (at, ip, arrival, ts, (machine, boot, pid) if probe else None)
        for at, ip, arrival, ts, probe, machine, boot, pid in _rows(rows)
    ]


class _Alive:
    """The SSH lines alive (fed, their event not released) as the batch goes: a heap by journal time, lines
    released before the line looked at dropped on the way."""

    def __init__(self, records: list[tuple[int, int, int]]) -> None:
        self._records = records  # (line it enters at, journal time, line its event is released at), by entry
        self._entered = 0
        self._heap: list[tuple[int, int]] = []

    def enter(self, q: int) -> None:
        """The lines fed by line `q` are alive."""
        records, heap = self._records, self._heap
        while self._entered < len(records) and records[self._entered][0] <= q:
            heapq.heappush(heap, records[self._entered][1:])
            self._entered += 1

    def oldest(self, q: int, clock: int, after: bool) -> int:
        """The least journal time alive at line `q` (before its releases, or `after` them), the clock if none."""
        heap = self._heap
        while heap and (heap[0][1] < q or (after and heap[0][1] == q)):
            heapq.heappop(heap)
        return heap[0][0] if heap else clock

    def next_entry(self) -> int | None:
        """The line at which the next line not yet alive becomes alive (None: none in the batch)."""
        return self._records[self._entered][0] if self._entered < len(self._records) else None

    def none(self) -> bool:
        """Whether nothing was alive at the last line looked at."""
        return not self._heap

    def least(self, clock: int) -> int:
        """At the end of input: the least journal time of every line still alive, the clock if none."""
        self.enter(INF)
        return self.oldest(-1, clock, after=False)


class _Logins:
    """The SSH logins from an address among a batch's released events (by row), made `Event`s as the windows read
    them (a success from an address they know nothing of changes nothing: none is made); `made`: those made."""

    def __init__(self, events: pl.DataFrame, lines: pl.DataFrame) -> None:
        import polars as pl

        self.made: dict[int, Event] = {}
        self._rows: dict[int, tuple[Any, ...]] = {}
        self._firsts: dict[int, tuple[Any, ...]] = {}
        if events.is_empty():
            return
        logins = events.with_row_index("row").filter(
            (pl.col("type") == "ssh_login") & (pl.col("source_ip").fill_null("") != "")
        )
        self._rows = {row: values for row, *values in _rows(logins.select("row", *_LOGIN))}
        # a failure's first line is what its incident shows
        failures = logins.filter(pl.col("outcome") == "failure").select("row", idx=pl.col("line_order").list.first())
        firsts = failures.join(lines.select("idx", *_LINE), on="idx", how="left", maintain_order="left")
        self._firsts = {row: values for row, _, *values in _rows(firsts)}

    def get(self, row: int, windows: FailureWindows) -> Event | None:
        """The login of `row` if the windows read it (None: not a login from an address, or nothing to read)."""
        values = self._rows.get(row)
        if values is None:
            return None
        login = dict(zip(_LOGIN, values, strict=True))
        address = login["source_ip"]  # not empty: `source_key` of it is not either
        if login["outcome"] == "success" and not windows.knows(address):
            return None
        first = self._firsts.get(row)
        shown = []
        if first is not None:
            ts, pid, ident, message, key, auth = first
            shown.append(Line(ts, 0, "", "", "", pid, ident, message, None, None, None, key, auth))
        event = self.made[row] = Event(type="ssh_login", lines=shown, **login)
        return event


def _rows(frame: pl.DataFrame) -> zip[tuple[Any, ...]]:
    """A frame's rows as tuples (from its columns as lists: faster than `iter_rows`)."""
    return zip(*(column.to_list() for column in frame.get_columns()), strict=True)
