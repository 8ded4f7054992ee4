"""The line layer over columns: on batches in arrival order, `line_groups` puts together exactly the lines the
event builder closes as one group (before it joins a connection's processes), or refuses a batch it could not
group so; `BatchGroups` gives each group out once, whole, at the builder's moment."""

from __future__ import annotations

import itertools
import random

import hypothesis
import polars as pl
from hypothesis import strategies as st

from logstack.analyze import column_run
from logstack.analyze.event import Event, Group
from logstack.analyze.grouping import EventBuilder
from logstack.analyze.line_groups import BatchGroups, line_groups
from logstack.base.clock import SECOND
from logstack.journal.columns import line_columns
from logstack.journal.line import Line, from_journal
from logstack.journal.record import HEARTBEAT_IDENTIFIER
from tests.journal import entry
from tests.test_sweep_cadence import T0, _journal

GAP = 180 * SECOND


class _Recording(EventBuilder):
    """The builder, noting the lines of each group it closes."""

    def __init__(self, forget_every: int) -> None:
        super().__init__(forget_every=forget_every)
        self.groups: list[frozenset[str]] = []

    def _close(self, group: Group) -> None:
        self.groups.append(frozenset(line.key for line in group.lines))
        super()._close(group)


def line_frame(lines: list[Line]) -> pl.DataFrame:
    """Lines as the column stages read them, the facts read in columns however few the lines."""
    return column_run.with_facts(line_columns(lines), min_batch=0)


def _extra(rng: random.Random, count: int) -> list[dict[str, object]]:
    """Lines the generated connections lack: one PID naming several peers, lockouts and logins of their own
    between a process's lines, lines far apart in time, a line without a PID, unproven lines."""
    out = []
    for n in range(count):
        ts = T0 + rng.randint(0, 3000) * SECOND
        roll = rng.random()
        if roll < 0.3:
            ip = rng.choice(["203.0.113.1", "203.0.113.2", "2001:db8::5"])
            message = f"Connection closed by {ip} port {rng.randint(1, 9)} [preauth]"
            out.append(entry(ts, "sshd", 77, message, host="web1"))
        elif roll < 0.45:
            out.append(
                entry(
                    ts,
                    "sshd",
                    77,
                    "pam_faillock(sshd:auth): Consecutive login failures for user root account temporarily locked",
                    host="web1",
                )
            )
        elif roll < 0.6:
            out.append(entry(ts, "systemd-logind", 600, f"New session {n} of user alice.", host="web2"))
        elif roll < 0.7:
            out.append(entry(ts, HEARTBEAT_IDENTIFIER, 77, "alive", host="web1"))  # the builder skips these
        elif roll < 0.75:
            record = entry(ts, "sshd", 77, "Received disconnect from 203.0.113.1 port 4: bye", host="web1")
            del record["_PID"]
            out.append(record)
        else:
            out.append(entry(ts, "su", 300 + n % 3, "(to root) alice on pts/0", host="web2"))
    return out


# a generated journal cut into batches: its seed and connections, how many lines are delivered late, the cuts
BATCHES = {
    "seed": st.integers(0, 2**32 - 1),
    "count": st.integers(1, 150),
    "late": st.integers(0, 6),
    "cuts": st.lists(st.integers(0, 600), max_size=8),
}


def generated_lines(seed: int, count: int, extra: int) -> list[Line]:
    """An export of `count` generated connections and other programs' lines and `extra` odd ones (`_extra`), in
    journal time."""
    records = [entry(ts, ident, pid, message, host=host) for ts, host, ident, pid, message in _journal(seed, count)]
    records += _extra(random.Random(seed), extra)
    records.sort(key=lambda record: int(record["__REALTIME_TIMESTAMP"]))
    return [line for line in map(from_journal, records) if line is not None]


def delayed(lines: list[Line], rng: random.Random, quiet: int) -> list[Line]:
    """Rows as the store gives them: ingested behind by a delay that grows by minutes after `quiet` lines on
    average (a sender that could not deliver), so lines close in journal time may arrive apart (in place)."""
    delay = 0
    for line in lines:
        delay += rng.choice([0] * quiet + [200 * SECOND])
        line.arrival = line.ts + delay
    return lines


def delivered_late(lines: list[Line], rng: random.Random, late: int) -> list[Line]:
    """`late` lines fed after lines that arrived later than they did (in place)."""
    for _ in range(late if len(lines) > 1 else 0):
        at = rng.randrange(len(lines) - 1)
        lines.insert(rng.randrange(at + 1, len(lines)), lines.pop(at))
    return lines


@hypothesis.settings(max_examples=80, deadline=None)
@hypothesis.given(
    seed=st.integers(0, 2**32 - 1), count=st.integers(1, 150), extra=st.integers(0, 60), late=st.integers(0, 8)
)
def test_the_groups_are_the_builders(seed, count, extra, late):
    lines = generated_lines(seed, count, extra)
    rng = random.Random(seed)
    # rows as the store gives them: ingested after they were written, behind by a delay that now and then
    # grows by minutes (a sender that could not deliver), so lines close in journal time may arrive apart
    delay = 0
    for line in lines:
        line.auth = rng.choice([None, None, None, "unsigned"])
        line.key = f"{line.key}|{line.auth}" if line.auth else line.key
        delay += rng.choice([0] * 30 + [200 * SECOND])
        line.arrival = line.ts + delay
    delivered_late(lines, rng, late)
    groups = line_groups(line_frame(lines), GAP)
    hypothesis.assume(groups is not None)
    got: dict[int, set[str]] = {}
    for line, group in zip(lines, groups.to_list(), strict=True):
        if line.ident == HEARTBEAT_IDENTIFIER:
            assert group is None
        else:
            got.setdefault(group, set()).add(line.key)
    for cadence in (1, 3, 2048):
        builder = _Recording(cadence)
        for line in lines:
            builder.feed(line)
        builder.finish()
        assert sorted(map(sorted, got.values())) == sorted(map(sorted, builder.groups)), cadence


def _lines(*specs: tuple[int, int, int, str]) -> pl.DataFrame:
    return line_frame([from_journal(entry(T0 + ts * SECOND, "sshd", pid, message)) for ts, pid, _, message in specs])


def test_what_it_cannot_group_is_refused():
    fine = _lines((0, 1, 0, "a"), (5, 1, 0, "b"), (7, 2, 0, "c"))
    assert line_groups(fine, GAP) is not None
    assert line_groups(fine.with_columns(arrival=pl.Series([3, 2, 4])), GAP) is None  # arrival goes back
    assert line_groups(fine.with_columns(key=pl.Series(["k", "k", "j"])), GAP) is None  # a copy
    two_keys = _lines((5, 1, 0, "a"), (0, 2, 0, "b")).with_columns(arrival=pl.Series([1, 2]))
    assert line_groups(two_keys, GAP) is not None
    time_back = _lines((5, 1, 0, "a"), (0, 1, 0, "b")).with_columns(arrival=pl.Series([1, 2]))
    assert line_groups(time_back, GAP) is None  # journal time goes back within one key


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(**BATCHES)
def test_batches_give_the_builders_groups(seed, count, late, cuts):
    """The same lines cut into batches anywhere: every group given out once, whole, and the builder's."""
    lines = delivered_late(generated_lines(seed, count, count // 3), random.Random(seed), late)
    frame = line_frame(lines)
    bounds = sorted({0, len(lines), *(cut for cut in cuts if cut < len(lines))})
    batches = BatchGroups(GAP)
    got: list[set[str]] = []
    for start, end in itertools.pairwise(bounds):
        out = _fed(batches, frame.slice(start, end - start))
        hypothesis.assume(out is not None)
        got += _groups_of(*out)
    rest = batches.finish()
    if rest is not None:
        got += _groups_of(*rest)
    for cadence in (1, 3, 2048):
        builder = _Recording(cadence)
        for line in lines:
            builder.feed(line)
        builder.finish()
        assert sorted(map(sorted, got)) == sorted(map(sorted, builder.groups)), cadence


def _fed(batches: BatchGroups, batch: pl.DataFrame) -> tuple[pl.DataFrame, pl.Series] | None:
    """What `batches` gives out for `batch`, its copies left out as the analysis leaves them, a batch ended early
    fed on (None: refused)."""
    lines, groups = [], []
    rest: pl.DataFrame | None = batch
    while rest is not None:
        split = batches.to_feed(rest)
        if split is None:
            return None
        fed, rest = split
        closed = batches.feed(fed)
        if closed is None:
            return None
        lines.append(closed[0])
        groups.append(closed[1])
    return pl.concat(lines, how="vertical_relaxed"), pl.concat(groups)


def _groups_of(lines: pl.DataFrame, groups: pl.Series) -> list[set[str]]:
    found: dict[int, set[str]] = {}
    for key, group in zip(lines["key"].to_list(), groups.to_list(), strict=True):
        found.setdefault(group, set()).add(key)
    return list(found.values())


def test_rows_stamped_before_1970_are_grouped_by_the_builders_clock():
    """The builder's clock starts at 0: rows ingested (by their store timestamp) before 1970 are more than the gap
    behind it, so no two of them join; so in columns, one batch or one at a time."""
    lines = [
        from_journal(entry(T0 + n * SECOND, "sshd", 77, f"Connection closed by 203.0.113.1 port {n} [preauth]"))
        for n in range(2)
    ]
    lines += [from_journal(entry(T0 + 5 * SECOND, "sshd", 77, "pam_unix(sshd:auth): check pass; user unknown"))]
    for n, line in enumerate(lines):
        line.arrival = (n - 1000) * SECOND
    builder = _Recording(2048)
    for line in lines:
        builder.feed(line)
    builder.finish()
    want = sorted(map(sorted, builder.groups))
    assert len(want) == 3
    groups = line_groups(line_frame(lines), GAP)
    assert groups is not None and sorted(map(sorted, _groups_of(line_frame(lines), groups))) == want
    batches = BatchGroups(GAP)
    given = [_fed(batches, line_frame([line])) for line in lines] + [batches.finish()]
    assert sorted(sorted(keys) for part in given if part for keys in _groups_of(*part)) == want


def test_a_copy_within_four_gaps_of_the_clock_its_line_was_fed_at_is_dropped():
    """The builder forgets keys in the order lines came: a line delivered late waits behind newer ones, so a
    copy of it arriving four gaps after its own arrival (not after the newer line's) is still dropped."""

    def line(ts: int, pid: int, message: str) -> Line:
        found = from_journal(entry(T0 + ts * SECOND, "sshd", pid, message))
        assert found is not None
        return found

    x = line(1000, 1, "Connection closed by 203.0.113.1 port 1 [preauth]")
    y = line(900, 2, "Connection closed by 203.0.113.2 port 2 [preauth]")  # late, within the gap
    z = line(1670, 3, "Connection closed by 203.0.113.3 port 3 [preauth]")
    copy = Line(**{name: getattr(y, name) for name in Line.__slots__})
    copy.arrival = T0 + 1680 * SECOND
    batches = BatchGroups(GAP)
    assert batches.feed(line_frame([x, y, z])) is not None
    split = batches.to_feed(line_frame([copy]))
    assert split is not None and split[0].is_empty() and split[1] is None and batches.duplicates == 1
    for cadence in (1, 2048):  # what the builder does with it: drops it
        builder = _Recording(cadence)
        for fed in (x, y, z, copy):
            builder.feed(fed)
        builder.finish()
        assert builder.duplicates == 1


def test_an_open_group_is_grouped_again_by_its_last_line_alone(monkeypatch):
    """One process logging a line a second for hours keeps its group open: each batch is grouped with one line
    standing for each open group, not with all their lines again (that made each batch cost more and more)."""
    import logstack.analyze.line_groups as module

    sizes: list[int] = []
    grouped = module.grouped_lines

    def measured(lines: pl.DataFrame, gap: int) -> pl.DataFrame | None:
        sizes.append(len(lines))
        return grouped(lines, gap)

    monkeypatch.setattr(module, "grouped_lines", measured)
    records = [entry(T0 + n * SECOND, "sshd", 42, f"debug1: tick {n}") for n in range(3000)]
    frame = line_frame([line for line in map(from_journal, records) if line is not None])
    batches = BatchGroups(GAP)
    for start in range(0, len(frame), 100):
        closed = _fed(batches, frame.slice(start, 100))
        assert closed is not None and closed[0].is_empty()  # nothing closes: the process never goes quiet
    assert max(sizes) <= 100 + 1
    rest = batches.finish()
    assert rest is not None and len(rest[0]) == 3000 and rest[1].n_unique() == 1


class _Moments(EventBuilder):  # by its internals: when and how it closes a group is nothing it reports
    """The builder, noting for each group it closes the line at which it closed (None: at the end of input) and
    whether the next line of its key closed it (as that line was fed) rather than a sweep."""

    def __init__(self) -> None:
        super().__init__()
        self.closes: dict[frozenset[str], tuple[int | None, bool]] = {}
        self._sweeping = self._final = False

    def _sweep(self, final: bool) -> list[Event]:
        self._sweeping, self._final = True, final
        try:
            return super()._sweep(final)
        finally:
            self._sweeping = False

    def _close(self, group: Group) -> None:
        at = None if self._final else self._lines - 1
        self.closes[frozenset(line.key for line in group.lines)] = (at, not self._sweeping)
        super()._close(group)


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(**BATCHES)
def test_groups_close_at_the_builders_moment(seed, count, late, cuts):
    """Each group given out with the line at which the builder closed it, and how: the events joined across
    processes and their release depend on it."""
    lines = generated_lines(seed, count, count // 3)
    rng = random.Random(seed)
    delayed(lines, rng, 20)  # closes by the clock, not by journal time
    delivered_late(lines, rng, late)  # one that opens a group may close it at once
    frame = line_frame(lines)
    bounds = sorted({0, len(lines), *(cut for cut in cuts if cut < len(lines))})
    batches = BatchGroups(GAP)
    got: dict[frozenset[str], tuple[int | None, bool]] = {}
    given = [_fed(batches, frame.slice(start, end - start)) for start, end in itertools.pairwise(bounds)]
    hypothesis.assume(all(part is not None for part in given))
    for part in [*given, batches.finish()]:
        assert part is not None
        closed, groups = part
        for keys, moment in zip(_groups_of(closed, groups), _moments(closed, groups), strict=True):
            got[frozenset(keys)] = moment
    builder = _Moments()
    for line in lines:
        builder.feed(line)
    builder.finish()
    assert got == builder.closes


def _moments(lines: pl.DataFrame, groups: pl.Series) -> list[tuple[int | None, bool]]:
    found: dict[int, tuple[int | None, bool]] = {}
    for group, at, collided in zip(groups, lines["closed_at"], lines["collided"], strict=True):
        found.setdefault(group, (at, collided))
    return list(found.values())


def test_a_batch_not_as_from_journal_reads_it_is_refused_and_no_line_is_lost():
    """A null identifier (a reader that did not read a missing text as "", as `from_journal` does) is neither a
    heartbeat to skip nor a line to drop: the batch is refused; `line_groups` groups it as a line."""
    lines = [
        from_journal(entry(T0 + n * SECOND, "sshd", 77, f"Connection closed by 203.0.113.1 port {n} [preauth]"))
        for n in range(3)
    ]
    frame = line_frame([line for line in lines if line is not None])
    nulled = frame.with_columns(ident=pl.when(pl.int_range(pl.len()) == 1).then(None).otherwise(pl.col("ident")))
    assert BatchGroups(GAP).to_feed(nulled) is None
    groups = line_groups(nulled, GAP)
    assert groups is not None and groups.null_count() == 0
