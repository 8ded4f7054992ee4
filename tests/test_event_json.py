"""Events in columns written as JSON lines: byte for byte what EventWriter writes for the same events, on the
events the builder makes of generated journals with hostile text in their lines (control characters, C1 controls,
DEL, bidirectional overrides, quotes, backslashes, any Unicode)."""

from __future__ import annotations

import io

import hypothesis
import polars as pl
from hypothesis import strategies as st

from logstack.analyze.event_json import event_json
from logstack.analyze.grouping import EventBuilder
from logstack.analyze.output import EventWriter
from logstack.journal.line import from_journal
from tests.journal import entry
from tests.test_sweep_cadence import T0, _journal

_EVENT_COLUMNS = ("id", "type", "outcome", "host", "machine_id", "boot_id", "pids", "start", "end", "user")
_EVENT_COLUMNS += ("target_user", "source_ip", "source_port", "method", "command", "reason", "flags", "tried_users")
_hostile = st.text(
    alphabet=st.one_of(
        st.sampled_from('"\\\x00\x1b\x7f\x85\x9f\xa0\u2028\u202e\u2066\u200f\ufeff\U000e0041\U0001d173\U000110bd'),
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
    ),
    max_size=30,
)


def hostile_lines(most: int) -> st.SearchStrategy[list[tuple[str, str]]]:
    """(program, message) of up to `most` lines of hostile text under the programs the events are made of."""
    return st.lists(st.tuples(st.sampled_from(["sshd-session", "sudo", "su", "kernel"]), _hostile), max_size=most)


def _writer_bytes(events: list) -> bytes:
    class Sink(io.BytesIO):
        def close(self) -> None:  # keep the bytes readable after the writer closes
            pass

    raw = Sink()
    stream = io.TextIOWrapper(raw, encoding="utf-8")
    writer = EventWriter(stream, "jsonl")
    for event in events:
        writer.write(event)
    writer.close()
    return raw.getvalue()


def _columns(events: list) -> bytes:
    return event_json(*_inputs(events))


def _inputs(events: list) -> tuple[pl.DataFrame, pl.DataFrame]:
    lines = [line for event in events for line in event.lines]
    frame = pl.DataFrame(
        {name: [getattr(line, name) for line in lines] for name in ("ts", "ident", "pid", "message", "auth")},
        schema={"ts": pl.Int64, "ident": pl.String, "pid": pl.String, "message": pl.String, "auth": pl.String},
    )
    orders, at = [], 0
    for event in events:
        orders.append(list(range(at, at + len(event.lines))))
        at += len(event.lines)
    columns = {name: [getattr(event, name) for event in events] for name in _EVENT_COLUMNS}
    schema = {name: pl.String for name in _EVENT_COLUMNS} | {"start": pl.Int64, "end": pl.Int64}
    schema |= {"source_port": pl.Int64, "pids": pl.List(pl.String), "flags": pl.List(pl.String)}
    schema |= {"tried_users": pl.List(pl.String), "line_order": pl.List(pl.UInt32), "continues": pl.String}
    columns |= {"line_order": orders, "continues": [event.continues for event in events]}
    return pl.DataFrame(columns, schema=schema), frame


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(
    seed=st.integers(0, 2**32 - 1),
    count=st.integers(1, 60),
    hostile=hostile_lines(20),
    auths=st.lists(
        st.sampled_from([None, "", "unsigned", "bad_signature", "forged_host:web9"]), min_size=1, max_size=4
    ),
)
def test_the_bytes_equal_the_event_writers(seed, count, hostile, auths):
    records = [entry(ts, ident, pid, message, host=host) for ts, host, ident, pid, message in _journal(seed, count)]
    records += [entry(T0 + n, ident, 4000 + n, message, host="web1") for n, (ident, message) in enumerate(hostile)]
    records += [entry(T0 + 7, "sudo", 4100, _REFUSED, host="web2"), entry(T0 + 8, "sshd-session", "", "no PID")]
    for record in records[-1:]:
        del record["_PID"]  # a line without a PID: `"pid": null`
    lines = [line for line in map(from_journal, records) if line is not None]
    for n, line in enumerate(lines):  # who vouches for a line: several in one event, listed sorted
        line.auth = auths[n % len(auths)]
    builder = EventBuilder()
    events = [event for line in lines for event in builder.feed(line)] + builder.finish()
    events[1::4] = [_continued(event) for event in events[1::4]]
    assert _columns(events) == _writer_bytes(events)


_REFUSED = "bob : user NOT in sudoers ; TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/bin/sh"


def _continued(event):
    event.continues = "0123456789abcdef0123"
    return event


def test_no_events_write_nothing():
    assert _columns([]) == b"" == _writer_bytes([])


def test_one_character_to_escape_costs_its_event_not_the_batch():
    """A C1 control or a non-ASCII name in one line: that event is escaped, not the whole batch's text (which
    cost five times the writer's time for 60k events)."""
    import time

    records = [
        entry(T0 + n, "sshd-session", 100 + n, f"Connection closed by 203.0.113.{n % 250} port {n}")
        for n in range(6000)
    ]
    plain = [line for line in map(from_journal, records) if line is not None]
    builder = EventBuilder()
    events = [event for line in plain for event in builder.feed(line)] + builder.finish()

    def cost() -> float:
        inputs, best = _inputs(events), float("inf")
        for _ in range(3):
            start = time.perf_counter()
            event_json(*inputs)
            best = min(best, time.perf_counter() - start)
        return best

    ascii_only = cost()
    events[0].lines[0].message += " \x85é"
    assert _columns(events) == _writer_bytes(events)
    assert cost() < 2 * ascii_only + 0.05
