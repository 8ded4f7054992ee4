"""`analyze` in columns: the bytes the line-by-line engine writes, in its order, whether the columns answer the
whole input or refuse a batch and the line-by-line engine gives the rest."""

from __future__ import annotations

import copy
import io
import json
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import hypothesis
import polars as pl
import pytest
from hypothesis import strategies as st
from typer.testing import CliRunner

from logstack.analyze import column_run
from logstack.analyze.column_batches import line_batches
from logstack.analyze.column_run import PIECES, analyze_in_columns, columns_serve, columns_writer, run_columns
from logstack.analyze.event import Settings
from logstack.analyze.event_json import event_json
from logstack.analyze.export_source import ExportSource
from logstack.analyze.grouping import EventBuilder
from logstack.analyze.output import EventWriter
from logstack.analyze.run import RunOptions, run_analysis
from logstack.base.clock import SECOND
from logstack.base.errors import BadInputError, RuntimeFailure
from logstack.cli import app
from logstack.journal.line import Line, from_journal
from logstack.journal.record import HEARTBEAT_IDENTIFIER as HEARTBEAT
from logstack.journal.selection import Selection
from tests.journal import entry, write
from tests.test_incident_columns import attacked_journal
from tests.test_line_groups import delayed, delivered_late
from tests.test_sweep_cadence import T0

NOW = T0 + 30 * 86400 * SECOND


def _source(lines: list[Line]) -> Callable[[int | None, int | None], Iterator[Line]]:
    """The lines as a line source gives them, fresh objects each read (a run may read its source twice)."""

    def read(start: int | None, end: int | None) -> Iterator[Line]:
        for line in lines:
            if (start is None or line.arrival >= start) and (end is None or line.arrival <= end):
                yield copy.copy(line)

    return read


def _writer(fmt: str) -> tuple[EventWriter, io.BytesIO]:
    raw = io.BytesIO()
    return EventWriter(io.TextIOWrapper(raw, encoding="utf-8", write_through=True), fmt), raw


def reference(
    source: Callable[[int | None, int | None], Iterator[Line]], options: RunOptions, fmt: str = "jsonl"
) -> bytes:
    """What the line-by-line engine writes."""
    writer, raw = _writer(fmt)
    run_analysis(source, options, writer.write, NOW)
    writer.close()
    return raw.getvalue()


def in_columns(
    source: Callable[[int | None, int | None], Iterator[Line]], options: RunOptions, batch: int, fmt: str = "jsonl"
) -> bytes:
    """What `analyze_in_columns` writes, batches of `batch` lines."""
    writer, raw = _writer(fmt)
    analyze_in_columns(source, options, NOW, writer.write, columns_writer(writer), batch)
    writer.close()
    return raw.getvalue()


def _copies(lines: list[Line], rng: random.Random, count: int) -> list[Line]:
    """`count` lines again (the same key), delivered again a few lines or many after their first copy, arriving
    with it or later (a sender's retry): the builder drops those within four gaps of the clock, or still held."""
    for _ in range(count if lines else 0):
        at = rng.randrange(len(lines))
        again = copy.copy(lines[at])
        to = min(len(lines), at + rng.choice([rng.randint(1, 5), rng.randint(1, 200)]))
        if rng.random() < 0.5:
            again.arrival = lines[to - 1].arrival + rng.choice([0, SECOND, 500 * SECOND, 900 * SECOND])
        lines.insert(to, again)
    return lines


def _portless(lines: list[Line], rng: random.Random, count: int) -> list[Line]:
    """Session children naming no port (sshd before 7.4p1), each after a login from its address."""
    for _ in range(count):
        logins = [n for n, line in enumerate(lines) if line.message.startswith("Accepted ")]
        if not logins:
            return lines
        at = rng.choice(logins)
        ip = lines[at].message.split(" from ")[1].split(" ")[0]
        made = from_journal(entry(lines[at].ts + SECOND, "sshd", 9_000 + at, f"Received disconnect from {ip}: 11: bye"))
        assert made is not None
        made.arrival = lines[at].arrival + SECOND
        lines.insert(at + 1, made)
    return lines


def _strangers(lines: list[Line], rng: random.Random, count: int) -> list[Line]:
    """Lines like a session child's naming no port, from addresses no login came from: sshd's own, or a local
    user's (`logger -t sshd`, a forged peer): no login for them to join."""
    for n in range(count if lines else 0):
        at = rng.randrange(len(lines))
        comm = rng.choice([None, "logger"])
        text = rng.choice(["Received disconnect from {}: 11: bye", "Connection closed by {}"])
        made = from_journal(entry(lines[at].ts, "sshd", 7_000 + n, text.format(f"198.51.100.{n % 200}"), comm=comm))
        assert made is not None
        made.arrival = lines[at].arrival
        lines.insert(at + 1, made)
    return lines


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
    seed=st.integers(0, 2**32 - 1),
    count=st.integers(1, 120),
    burst=st.integers(0, 40),
    late=st.integers(0, 4),
    copies=st.integers(0, 4),
    portless=st.integers(0, 1),
    strangers=st.integers(0, 3),
    batch=st.integers(1, 400),
    fmt=st.sampled_from(["jsonl", "json", "text"]),
)
def test_a_run_writes_what_the_line_by_line_engine_writes(
    seed, count, burst, late, copies, portless, strangers, batch, fmt
):
    rng = random.Random(seed)
    lines = delivered_late(delayed(attacked_journal(seed, count, burst), rng, 30), rng, late)
    lines = _strangers(_portless(_copies(lines, rng, copies), rng, portless), rng, strangers)
    options = RunOptions(settings=Settings())
    assert in_columns(_source(lines), options, batch, fmt) == reference(_source(lines), options, fmt)


@hypothesis.settings(max_examples=30, deadline=None)
@hypothesis.given(
    seed=st.integers(0, 2**32 - 1), count=st.integers(5, 80), until=st.integers(0, 100), batch=st.integers(1, 200)
)
def test_until_holds_back_what_the_line_by_line_engine_holds_back(seed, count, until, batch):
    """With --until an event still growing there is not reported (a later run would report it whole)."""
    lines = delayed(attacked_journal(seed, count, 20), random.Random(seed), 30)
    bounds = sorted(line.arrival for line in lines)
    options = RunOptions(until=bounds[min(len(bounds) - 1, until * len(bounds) // 100)])
    assert in_columns(_source(lines), options, batch) == reference(_source(lines), options)


def test_a_refused_batch_leaves_the_rest_to_the_line_by_line_engine():
    """A session child naming no port in a later batch: the events the columns wrote before it stay, the line-by-line
    engine gives the rest, none twice."""
    lines = delayed(attacked_journal(3, 120, 30), random.Random(3), 30)
    lines = lines[:-20] + _portless(lines[-20:], random.Random(1), 1)
    options = RunOptions()
    written: list[bytes] = []
    run = run_columns(
        line_batches(_source(lines)(None, None), 50),
        options,
        lambda *out: written.append(event_json(*out, by="idx")),
    )
    assert not run.whole and run.given.size  # refused, after events were written
    assert in_columns(_source(lines), options, 50) == reference(_source(lines), options)
    assert in_columns(_source(lines), options, 50).startswith(b"".join(written))


def test_batches_given_whole_are_cut_by_their_messages_text_as_line_batches_cuts(monkeypatch):
    """A frame of long lines (the store's rows: any local user can log lines of 48 KB) is cut where `line_batches`
    cuts the same lines: at most BATCH_TEXT characters of messages a batch, or one line."""
    from logstack.analyze import column_run
    from logstack.journal.columns import line_columns

    rng = random.Random(4)
    lines = delayed(attacked_journal(3, 60, 20), rng, 30)
    for line in lines:
        line.message += "x" * max(0, rng.choice([0, 250, 500, 1000, 1001, 2500]) - len(line.message))
    seen: list[list[str]] = []
    real = column_run.with_facts
    monkeypatch.setattr(column_run, "with_facts", lambda part: seen.append(part["key"].to_list()) or real(part))
    options, written = RunOptions(), io.BytesIO()
    give = lambda *out: written.write(event_json(*out, by="idx"))  # noqa: E731
    run = run_columns([line_columns(lines)], options, give, text=1000)
    cuts = [frame["key"].to_list() for frame in line_batches(lines, text=1000)]
    assert run.whole and len(cuts) > 10 and seen == cuts
    assert written.getvalue() == reference(_source(lines), options)


def test_a_line_like_a_session_child_with_no_login_to_join_stays_in_the_columns():
    """A port-less child's line from an address no login came from (any local user can log one under sshd's
    name): nothing for it to join, so the columns answer the run; one after a login from its address is still
    the line-by-line engine's."""
    lines = delayed(attacked_journal(3, 120, 30), random.Random(3), 30)
    lines = _strangers(lines, random.Random(2), 6)
    options = RunOptions()
    assert run_columns(line_batches(_source(lines)(None, None), 50), options, lambda *_: None).whole
    assert in_columns(_source(lines), options, 50) == reference(_source(lines), options)
    joinable = _portless(list(lines), random.Random(1), 1)
    assert not run_columns(line_batches(_source(joinable)(None, None), 50), options, lambda *_: None).whole
    assert in_columns(_source(joinable), options, 50) == reference(_source(joinable), options)


@pytest.mark.parametrize("forged_login", [False, True])
def test_a_forged_line_like_a_session_child_joins_nothing(forged_login):
    """A local user's `logger -t sshd 'Received disconnect from ADDR: 11: x'` after a login from ADDR, real or
    forged by the same user: a forged event joins nothing by address alone (`PortlessChildren.joined`), so the
    columns answer the run, both lines events of their own."""
    login = entry(T0 + 100 * SECOND, "sshd", 9, "Accepted password for x from 198.51.100.9 port 5 ssh2")
    if forged_login:
        login["_COMM"], login["_EXE"] = "logger", "/usr/bin/logger"
    child = entry(T0 + 101 * SECOND, "sshd", 10, "Received disconnect from 198.51.100.9: 11: x")
    child["_COMM"], child["_EXE"] = "logger", "/usr/bin/logger"
    lines = delayed(attacked_journal(3, 60, 10), random.Random(3), 30)
    lines += [line for line in map(from_journal, (login, child)) if line is not None]
    lines.sort(key=lambda line: line.arrival)
    options = RunOptions()
    assert run_columns(line_batches(_source(lines)(None, None), 50), options, lambda *_: None).whole
    got = in_columns(_source(lines), options, 50)
    assert got == reference(_source(lines), options)
    events = [json.loads(raw) for raw in got.splitlines()]
    said = "Received disconnect from 198.51.100.9: 11: x"
    child_event = [e for e in events if any(line["message"] == said for line in e["lines"])]
    assert len(child_event) == 1 and len(child_event[0]["lines"]) == 1 and "forged" in child_event[0]["flags"]


@pytest.mark.parametrize("hours", [0, 10])
def test_an_address_timed_out_before_authentication_then_logging_in_stays_in_the_columns(hours):
    """sshd 9.8's listener names an address and no port when a connection times out before authenticating (any
    scanner's): not a session child (`is_session_child`), so a login from that address, soon or hours later,
    leaves the run in columns (it was sent to the line-by-line engine)."""
    timeout = entry(T0, "sshd", 600, "Timeout before authentication for connection from 192.0.2.44, pid = 4242")
    login = "Accepted publickey for you from 192.0.2.44 port 40000 ssh2: ED25519 SHA256:x"
    accepted = entry(T0 + (30 + hours * 3600) * SECOND, "sshd-session", 700, login)
    lines = delayed(attacked_journal(5, 40, 10), random.Random(5), 30)
    lines += [line for line in map(from_journal, (timeout, accepted)) if line is not None]
    lines.sort(key=lambda line: line.arrival)
    options = RunOptions()
    assert run_columns(line_batches(_source(lines)(None, None), 50), options, lambda *_: None).whole
    assert in_columns(_source(lines), options, 50) == reference(_source(lines), options)


def _line(seconds: int, pid: int, message: str) -> Line:
    found = from_journal(entry(T0 + seconds * SECOND, "sshd", pid, message))
    assert found is not None
    return found


def _again(line: Line, arrival: int) -> Line:
    """The same journal entry delivered again, arriving at `arrival`."""
    again = copy.copy(line)
    again.arrival = arrival
    return again


def _retried(lines: list[Line], rng: random.Random, count: int, ticking: str) -> list[Line]:
    """`count` lines delivered again as a sender's retry delivers them (arriving with the first copy or up to a
    gap later), each while the clock is within four gaps of its first copy's arrival, or, for the lines of a
    process logging a line a minute (messages starting `ticking`), before its last line (its group still holds
    them): the builder drops them all (a heartbeat is no line it is fed: none is copied)."""
    gap, made = Settings().gap, set[int]()
    for _ in range(count if lines else 0):
        ticks = [n for n, line in enumerate(lines) if line.message.startswith(ticking) and id(line) not in made]
        if len(ticks) > 1 and rng.random() < 0.5:
            at = rng.choice(ticks[:-1])
            to = rng.randrange(at + 1, ticks[-1] + 1)
        else:
            at = rng.choice([n for n, line in enumerate(lines) if id(line) not in made and line.ident != HEARTBEAT])
            # the clock once its first copy was fed: the latest arrival of the lines fed up to it (copies are not)
            fed = max(line.arrival for line in lines[: at + 1] if id(line) not in made)
            to = at + 1
            while to < len(lines) and rng.random() < 0.9:
                if id(lines[to]) not in made and lines[to].arrival > fed + 3 * gap:
                    break
                to += 1
        again = _again(lines[at], max(lines[at].arrival, lines[to - 1].arrival + rng.randint(0, gap)))
        made.add(id(again))
        lines.insert(to, again)
    return lines


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(
    seed=st.integers(0, 2**32 - 1),
    count=st.integers(1, 80),
    copies=st.integers(1, 12),
    ticks=st.integers(0, 40),
    batch=st.integers(5, 300),
)
def test_a_senders_retries_never_send_a_run_to_the_line_by_line_engine(seed, count, copies, ticks, batch):
    """Lines delivered again (near their first copy, or, of a process logging a line a minute, while its group is
    open: known to be held only when the copy comes): the columns drop the copies the builder drops (as many),
    write its bytes, and do not refuse."""
    rng = random.Random(seed)
    lines = delayed(attacked_journal(seed, count, 10), rng, 30)
    after = max(line.arrival for line in lines) // SECOND - T0 // SECOND + 1  # the clock: nothing closes them
    lines += [_line(after + 60 * n, 42, f"debug1: tick {n}") for n in range(ticks)]
    lines = _retried(lines, rng, copies, "debug1: tick")
    builder = EventBuilder()
    for line in _source(lines)(None, None):
        builder.feed(line)
    builder.finish()
    run = run_columns(line_batches(_source(lines)(None, None), batch), RunOptions(), lambda *_: None)
    assert run.whole and run.result.duplicates == builder.duplicates == copies
    assert in_columns(_source(lines), RunOptions(), batch) == reference(_source(lines), RunOptions())


@pytest.mark.parametrize("later", [0, 1, 600])
def test_a_copy_delivered_again_within_four_gaps_is_dropped_in_the_columns(later):
    """A sender's retry: lines delivered again, arriving with the first copy or minutes later, in the same batch
    or a later one. The builder drops them; so do the columns, and the run stays in columns."""
    lines = delayed(attacked_journal(5, 60, 0), random.Random(5), 30)
    for at in (len(lines) - 4, 7, 3):
        lines.insert(at + 3, _again(lines[at], lines[at + 2].arrival + later * SECOND))
    options = RunOptions()
    for batch in (10, 1000):
        run = run_columns(line_batches(_source(lines)(None, None), batch), options, lambda *_: None)
        assert run.whole and run.result.duplicates == 3
        assert in_columns(_source(lines), options, batch) == reference(_source(lines), options)


@pytest.mark.parametrize("batch", [1, 7, 10, 1000])
def test_a_copy_whose_line_may_still_be_held_ends_its_batch_there(batch):
    """A process logging a line a minute keeps its group open; its first line delivered again after four gaps: the
    builder drops it (the group still holds it). Whether it does is known only when the copy comes: the batch ends
    before it, the copy begins the next one, and the run stays in columns."""
    lines = [_line(60 * n, 42, f"debug1: tick {n}") for n in range(30)]
    lines.insert(25, _again(lines[0], lines[24].arrival + SECOND))
    lines += [_line(60 * n, 43, f"debug1: tock {n}") for n in range(40, 60)]  # the group closed: its lines released
    lines.append(_again(lines[3], lines[-1].arrival + SECOND))  # so a line of its own
    options = RunOptions()
    run = run_columns(line_batches(_source(lines)(None, None), batch), options, lambda *_: None)
    assert run.whole and run.result.duplicates == 1
    assert in_columns(_source(lines), options, batch) == reference(_source(lines), options)


@pytest.mark.parametrize("resent", [9, 30])
@pytest.mark.parametrize("batch", [100, 1000])
def test_a_forwarder_resending_half_an_hour_of_a_busy_process_stays_in_the_columns(resent, batch):
    """A forwarder restarting from a stale cursor delivers a daemon's last lines again twenty minutes on, while
    the process still logs a line a minute: its group holds them, and cannot be released until the clock is two
    gaps past its last line, so each copy is known to be held without ending the batch."""
    lines = [_line(60 * n, 42, f"debug1: tick {n}") for n in range(60)]
    lines[21:21] = [_again(line, lines[20].arrival + SECOND) for line in lines[:resent]]
    options = RunOptions()
    run = run_columns(line_batches(_source(lines)(None, None), batch), options, lambda *_: None)
    assert run.whole and run.result.duplicates == resent
    assert in_columns(_source(lines), options, batch) == reference(_source(lines), options)


def test_a_copy_past_two_gaps_of_its_holders_last_line_is_not_taken_for_held():
    """A process's lines end; a batch later its first line comes again just past two gaps after its last: the
    builder has released the event (a sweep does once the clock passes that), so the copy is a line of its own.
    Held at the batch's start is no answer then: the batch ends before the copy, which is read as new."""
    gap = Settings().gap // SECOND
    ticks = [_line(60 * n, 42, f"debug1: tick {n}") for n in range(31)]
    last = 60 * 30
    others = [_line(last + 60 * n, 7, f"Connection closed by 203.0.113.9 port {n} [preauth]") for n in range(1, 8)]
    late = _again(ticks[0], T0 + (last + 2 * gap + 30) * SECOND)
    lines = [*ticks, *others, late, _line(last + 2 * gap + 40, 8, "Connection closed by 203.0.113.8 port 1 [preauth]")]
    options = RunOptions()
    run = run_columns(line_batches(_source(lines)(None, None), len(ticks)), options, lambda *_: None)
    assert run.whole and run.result.duplicates == 0
    got = in_columns(_source(lines), options, len(ticks))
    assert got == reference(_source(lines), options) and got.count(b'"message":"debug1: tick 0"') == 2


@pytest.mark.parametrize("copies", [PIECES - 1, PIECES, 3 * PIECES])
def test_a_batch_ends_early_a_bounded_number_of_times(copies):
    """Lines of a process held for long delivered again a quarter of an hour later or more, many in one batch, each
    more than two gaps after the one before (a hostile sender can deliver its rows again and again): whether each
    is still held is known only when it comes, so each ends the batch, a pass of the stages each; past PIECES
    pieces the line-by-line engine answers instead, at its bounded cost. The same bytes either way."""
    lines = [_line(60 * n, 42, f"debug1: tick {n}") for n in range(240)]
    for n in reversed(range(copies)):  # from the last: the places of those before stay
        lines.insert(15 + 8 * n + 1, _again(lines[n], lines[15 + 8 * n].arrival))
    options = RunOptions()
    run = run_columns(line_batches(_source(lines)(None, None), 1000), options, lambda *_: None)
    assert run.whole == (copies < PIECES)
    assert in_columns(_source(lines), options, 1000) == reference(_source(lines), options)


def test_a_copy_of_a_line_released_long_ago_is_a_new_line_in_the_columns_too():
    """Delivered again after more than four gaps, its event released: the builder reads it as a line of its own
    (reported again without a state); the columns do so too, without refusing."""
    first = _line(0, 7, "Failed password for root from 203.0.113.5 port 1 ssh2")
    lines = [
        first,
        *(_line(60 * n, 100 + n, f"Connection closed by 203.0.113.{n} port 2 [preauth]") for n in range(1, 30)),
    ]
    lines.append(_again(first, lines[-1].arrival + SECOND))
    options = RunOptions()
    for batch in (1, 7, 1000):
        run = run_columns(line_batches(_source(lines)(None, None), batch), options, lambda *_: None)
        assert run.whole and run.result.duplicates == 0
        got = in_columns(_source(lines), options, batch)
        assert got == reference(_source(lines), options) and got.count(b"from 203.0.113.5 port 1 ssh2") == 2


def test_a_source_that_reads_otherwise_the_second_time_is_an_error():
    """The line-by-line engine gives the rest only if it reads what the columns read: an export rewritten while a
    run reads it is named, not reported from two different files."""
    lines = delayed(attacked_journal(3, 120, 30), random.Random(3), 30)
    lines = _portless(lines, random.Random(1), 1)
    reads = iter([lines, lines[40:]])

    def source(start: int | None, end: int | None) -> Iterator[Line]:
        return iter(next(reads))

    writer, _ = _writer("jsonl")
    with pytest.raises(RuntimeFailure, match="gives other events than the first reading"):
        analyze_in_columns(source, RunOptions(), NOW, writer.write, columns_writer(writer), 30)


def _export(tmp_path: Path) -> Path:
    rng = random.Random(11)
    lines = attacked_journal(11, 150, 40)
    entries = []
    for line in lines:
        record = entry(line.ts, line.ident, line.pid, line.message, host=line.host)
        entries.append(record)
        if rng.random() < 0.02:
            entries.append(dict(record))  # a copy: both engines drop it
    return write(tmp_path / "export.json", entries)


@pytest.mark.parametrize("fmt", ["jsonl", "json", "text"])
def test_analyze_journal_writes_what_the_line_by_line_engine_writes(tmp_path, fmt):
    path = _export(tmp_path)
    got = CliRunner().invoke(app, ["analyze", "--journal", str(path), "--format", fmt, "--fail-on", "failure"])
    want = reference(ExportSource(str(path), None, Selection.of(None)), RunOptions(), fmt)
    assert got.exit_code == 1, got.output  # failed logins are reported
    assert got.stdout_bytes == want
    assert len(want.splitlines()) > 20


def test_an_error_reading_a_later_batch_is_the_runs_error():
    """Batches are read ahead in a thread: what goes wrong there (a bad line of the export) stops the run with
    its own error, after the events of the batches before it."""
    lines = delayed(attacked_journal(4, 100, 20), random.Random(4), 30)

    def source(start: int | None, end: int | None) -> Iterator[Line]:
        yield from lines[:150]
        raise BadInputError("export.json:151: not a JSON object")

    writer, raw = _writer("jsonl")
    with pytest.raises(BadInputError, match=r"export\.json:151"):
        analyze_in_columns(source, RunOptions(), NOW, writer.write, columns_writer(writer), 50)
    assert raw.getvalue() and reference(_source(lines), RunOptions()).startswith(raw.getvalue())


@hypothesis.settings(max_examples=20, deadline=None)
@hypothesis.given(seed=st.integers(0, 2**32 - 1), count=st.integers(1, 80), text=st.integers(1, 3000))
def test_batches_bounded_by_their_text_give_the_same_events(seed, count, text):
    """A batch ends at `text` characters of messages too (a local user's 14 KB lines do not make a batch of
    gigabytes): cut there, the run gives what the line-by-line engine gives."""
    lines = _copies(delayed(attacked_journal(seed, count, 20), random.Random(seed), 30), random.Random(seed), 1)
    sizes: list[int] = []
    writer, raw = _writer("jsonl")

    facts = column_run.with_facts

    def measured(part: pl.DataFrame) -> pl.DataFrame:  # each batch's lines are given their facts once
        sizes.append(part["message"].str.len_chars().sum())
        return facts(part)

    give = lambda *out: writer.write_json_lines(event_json(*out, by="idx"))  # noqa: E731
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(column_run, "with_facts", measured)
        run = run_columns(line_batches(_source(lines)(None, None), 10_000, text), RunOptions(), give)
    if run.whole:
        assert raw.getvalue() == reference(_source(lines), RunOptions())
    longest = max(len(line.message) for line in lines)
    assert sizes and all(size <= max(text, longest) for size in sizes)
    if text < sum(len(line.message) for line in lines):
        assert len(sizes) > 1 or not run.whole


def _refused_export(tmp_path: Path, user: str = "root") -> Path:
    """Failed logins, then a login and a port-less session child from its address (sshd before 7.4p1): the
    builder may join them, so the columns refuse the batch."""
    entries = [
        entry(T0 + n * 1000 * SECOND, "sshd", 100 + n, f"Failed password for {user} from 203.0.113.5 port {n} ssh2")
        for n in range(1, 6)
    ]
    login = "Accepted password for x from 198.51.100.9 port 5 ssh2"
    entries.append(entry(T0 + 8999 * SECOND, "sshd", 9, login))
    entries.append(entry(T0 + 9000 * SECOND, "sshd", 10, "Received disconnect from 198.51.100.9: 11: x"))
    path = write(tmp_path / "export.json", entries)
    export = ExportSource(str(path), None, Selection.of(None), pinned=True)
    assert not run_columns(
        export.frames(None, None), RunOptions(), lambda *_: None
    ).whole  # what the tests reading it rely on
    return path


def _while_read(
    export: ExportSource, change: Callable[[], None], on_read: int = 1
) -> Callable[[int | None, int | None], Iterator[Line]]:
    """The export's lines, `change` done once after the first line of read number `on_read`."""
    reads: list[bool] = []

    def read(start: int | None, end: int | None) -> Iterator[Line]:
        reads.append(True)
        for n, line in enumerate(export(start, end)):
            yield line
            if n == 0 and len(reads) == on_read:
                change()

    return read


def _pinned_run(path: Path, change: Callable[[], None], on_read: int = 1, out: io.BytesIO | None = None) -> bytes:
    export = ExportSource(str(path), None, Selection.of(None), pinned=True)
    writer, raw = _writer("jsonl")
    try:
        source = _while_read(export, change, on_read)
        analyze_in_columns(source, RunOptions(), NOW, writer.write, columns_writer(writer), 2, export)
    finally:
        export.close()
        if out is not None:
            out.write(raw.getvalue())
    return raw.getvalue()


def test_an_export_rotated_away_while_it_is_read_is_read_to_its_end(tmp_path):
    """Renamed (log rotation) or removed after the first line: the second read reads the file first opened."""
    for change in (lambda path: path.rename(path.with_suffix(".1")), Path.unlink):
        path = _refused_export(tmp_path)
        want = reference(ExportSource(str(path), None, Selection.of(None)), RunOptions())
        assert _pinned_run(path, lambda path=path, change=change: change(path)) == want
        assert len(want.splitlines()) == 6


def test_an_export_growing_or_touched_while_it_is_read_is_answered(tmp_path):
    """Appended to (`journalctl -o json -f > FILE`) or touched: what was read is still its beginning; the answer is
    the line-by-line engine's over the file as the second read finds it."""
    path = _refused_export(tmp_path)
    more = entry(T0 + 9500 * SECOND, "sshd", 300, "Failed password for bob from 203.0.113.6 port 9 ssh2")

    def append() -> None:
        with path.open("a") as out:
            out.write(json.dumps(more) + "\n")

    got = _pinned_run(path, append)
    assert got == reference(ExportSource(str(path), None, Selection.of(None)), RunOptions())
    assert len(got.splitlines()) == 7
    path = _refused_export(tmp_path)
    assert _pinned_run(path, lambda: os.utime(path)) == reference(
        ExportSource(str(path), None, Selection.of(None)), RunOptions()
    )


def test_an_export_rewritten_while_it_is_read_is_an_error(tmp_path):
    """Rewritten in place with other content (even the same cursors): not a mix of two files' events."""
    path = _refused_export(tmp_path)
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    other = "".join(json.dumps({**e, "MESSAGE": e["MESSAGE"].replace("root", "mallory")}) + "\n" for e in entries)
    with pytest.raises(RuntimeFailure, match="changed while it was read"):
        _pinned_run(path, lambda: path.write_text(other))


def test_a_regular_file_or_a_pipe_is_read_in_columns(tmp_path):
    """A pipe (`-`, `/dev/stdin`, `<(…)`, a FIFO) reads once: it is kept as it is read (`spool`), so the
    line-by-line engine can read it again; a terminal, or a path that cannot be read, is read line by line (which
    names what is wrong)."""
    path = write(tmp_path / "export.json", [entry(T0, "sshd", 1, "Connection closed by 203.0.113.1 port 1")])
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert columns_serve(str(path))
    assert columns_serve(str(fifo))
    assert not columns_serve(str(tmp_path / "missing.json"))
    primary, secondary = os.openpty()
    try:
        assert not columns_serve(os.ttyname(secondary))
    finally:
        os.close(primary)
        os.close(secondary)


@pytest.mark.parametrize("after", [0, 3])
def test_a_bad_line_stops_the_run_after_what_the_line_by_line_engine_wrote_before_it(tmp_path, after):
    """Lines after the bad one (read with it, in its chunk) change nothing: what the first read read is what a
    second read, stopping at the bad line, reads too, so the events before it are out."""
    entries = [
        entry(T0 + n * 1000 * SECOND, "sshd", 100 + n, f"Failed password for root from 203.0.113.5 port {n} ssh2")
        for n in range(1, 6)
    ]
    path = write(tmp_path / "bad.json", entries)
    with path.open("a") as out:
        out.write('{"this is": not json\n' + "{}\n" * after)
    want, raw = _writer("jsonl")
    with pytest.raises(BadInputError):
        run_analysis(ExportSource(str(path), None, Selection.of(None)), RunOptions(), want.write, NOW)
    got = CliRunner().invoke(app, ["analyze", "--journal", str(path), "--format", "jsonl"])
    assert got.exit_code == 2 and "bad.json:6: not a JSON object" in got.stderr
    assert got.stdout_bytes == raw.getvalue() and len(raw.getvalue().splitlines()) == 4


def _rewritten_in_place(path: Path) -> Callable[[], None]:
    """The same length, other users: read from a buffer, the old bytes would pass for the new."""
    other = path.read_text().replace("root", "toor")

    def rewrite() -> None:
        with path.open("r+") as out:
            out.write(other)

    return rewrite


@pytest.mark.parametrize("on_read", [1, 2])
def test_an_export_rewritten_in_place_at_the_same_length_is_an_error_before_its_events_are_out(tmp_path, on_read):
    """Rewritten while the columns read it (the check reads the file, not the first read's buffer) or while the
    line-by-line engine reads it again, within what the columns read (its bytes are checked as they come, and
    no event of the new content is written): an error."""
    entries = [
        entry(T0 + n * 1000 * SECOND, "sshd", 100 + n, f"Failed password for root from 203.0.113.5 port {n} ssh2")
        for n in range(1, 400)
    ]
    entries.insert(
        300, entry(T0 + 299_499 * SECOND, "sshd", 9, "Accepted password for x from 198.51.100.9 port 5 ssh2")
    )
    entries.insert(301, entry(T0 + 299_500 * SECOND, "sshd", 10, "Received disconnect from 198.51.100.9: 11: x"))
    path = write(tmp_path / "export.json", entries)  # 300 lines: beyond any read buffer
    export = ExportSource(str(path), None, Selection.of(None), pinned=True)
    writer, raw = _writer("jsonl")
    with pytest.raises(RuntimeFailure, match="changed while it was read"):
        source = _while_read(export, _rewritten_in_place(path), on_read)
        analyze_in_columns(source, RunOptions(), NOW, writer.write, columns_writer(writer), 200, export)
    export.close()
    if on_read == 2:  # (the columns' own read races the rewrite as one line-by-line read would)
        assert b"toor" not in raw.getvalue()


def test_a_session_child_closing_before_its_login_is_joined_whatever_the_batches():
    """The child's event closes first (its monitor logs on): the login takes it as it closes, a batch or more
    later; the columns must not have given the child out alone."""
    t = T0 + 3600 * SECOND
    lines = [
        entry(t, "sshd", 100, "Accepted password for alice from 203.0.113.9 port 50000 ssh2"),
        entry(t + 1 * SECOND, "sshd", 101, "Received disconnect from 203.0.113.9: 11: disconnected by user"),
        entry(
            t + 30 * SECOND,
            "sshd",
            100,
            "pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)",
        ),
        entry(t + 50 * SECOND, "sshd", 100, "pam_unix(sshd:session): session closed for user alice"),
        # the clock past the child's last line by the gap, not yet past the login's: the child closes here
        entry(t + 200 * SECOND, "sshd", 400, "Connection closed by 198.51.100.1 port 2222 [preauth]"),
        entry(t + 900 * SECOND, "sshd", 300, "Accepted password for bob from 203.0.113.7 port 50001 ssh2"),
    ]
    made = [line for line in map(from_journal, lines) if line is not None]
    options = RunOptions()
    want = reference(_source(made), options)
    assert len(want.splitlines()) == 3  # the child is in alice's login
    for batch in range(1, len(made) + 1):
        assert in_columns(_source(made), options, batch) == want, batch
