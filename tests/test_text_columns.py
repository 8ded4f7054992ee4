"""Events in columns as text blocks: byte for byte what `text_block` makes of the same events, on the events the
builder makes of generated journals with hostile text in every field that shows (controls, C1 controls, DEL,
format characters, any Unicode), flags, late events, ports, PIDs, times before 1970."""

from __future__ import annotations

import dataclasses
import io

import hypothesis
import polars as pl
from hypothesis import strategies as st

from logstack.analyze.column_run import columns_writer
from logstack.analyze.event_columns import EVENT_COLUMNS
from logstack.analyze.grouping import EventBuilder
from logstack.analyze.output import EventWriter, text_block
from logstack.analyze.text_columns import text_blocks
from logstack.journal.line import from_journal
from tests.journal import entry
from tests.test_event_json import _hostile, hostile_lines
from tests.test_sweep_cadence import T0, _journal

_text = st.one_of(st.text(alphabet="abc .:-[]()0", max_size=8), _hostile)  # mostly nothing to escape
_maybe = st.one_of(st.none(), st.just(""), _text)


def _numbered(events: list) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The events' columns as `run_columns` gives them (EVENT_COLUMNS, `continues`): `line_order` names the lines
    by `idx`."""
    lines = [line for event in events for line in event.lines]
    frame = pl.DataFrame(
        {
            "idx": [7 + 3 * n for n in range(len(lines))],
            **{name: [getattr(line, name) for line in lines] for name in ("ts", "ident", "pid", "message", "auth")},
        },
        schema={"idx": pl.Int64, "ts": pl.Int64} | dict.fromkeys(("ident", "pid", "message", "auth"), pl.String),
    )
    orders, at = [], 0
    for event in events:
        orders.append([7 + 3 * n for n in range(at, at + len(event.lines))])
        at += len(event.lines)
    names = [name for name in EVENT_COLUMNS if name not in ("group", "line_order")]
    columns = {name: [getattr(event, name) for event in events] for name in names}
    strings = pl.List(pl.String)
    schema = dict.fromkeys(names, pl.String) | dict.fromkeys(
        ("start", "end", "first_arrival", "last_arrival"), pl.Int64
    )
    schema |= {"source_port": pl.Int64, "attempts": pl.Int64, "known": pl.Boolean, "ssh": pl.Boolean}
    schema |= {"pids": strings, "flags": strings, "tried_users": strings}
    columns |= {"group": list(range(len(events))), "line_order": orders, "continues": [e.continues for e in events]}
    schema |= {"group": pl.Int64, "line_order": pl.List(pl.Int64), "continues": pl.String}
    return pl.DataFrame(columns, schema=schema), frame


def _events(seed: int, count: int, hostile: list[tuple[str, str]]) -> list:
    records = [entry(ts, ident, pid, message, host=host) for ts, host, ident, pid, message in _journal(seed, count)]
    records += [entry(T0 + n, ident, 4000 + n, message, host="web1") for n, (ident, message) in enumerate(hostile)]
    lines = [line for line in map(from_journal, records) if line is not None]
    builder = EventBuilder()
    return [event for line in lines for event in builder.feed(line)] + builder.finish()


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(
    seed=st.integers(0, 2**32 - 1),
    count=st.integers(1, 50),
    hostile=hostile_lines(12),
    fields=st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "host": _text,
                "machine_id": _maybe,
                "user": _maybe,
                "target_user": _maybe,
                "source_ip": _maybe,
                "source_port": st.one_of(st.sampled_from([None, 0, 22]), st.integers(0, 65535)),
                "method": _maybe,
                "command": _maybe,
                "reason": _maybe,
                "continues": _maybe,
                "flags": st.lists(_text, max_size=3),
                "pids": st.lists(_text, max_size=3),
                "start": st.integers(-(2**40), 2**50),
                "end": st.integers(-(2**40), 2**50),
            },
        ),
        max_size=8,
    ),
)
def test_the_blocks_equal_text_block(seed, count, hostile, fields):
    events = _events(seed, count, hostile)
    for n, changed in enumerate(fields):  # any value in any field an event shows
        if n < len(events):
            events[n] = dataclasses.replace(events[n], **changed)
    got = text_blocks(*_numbered(events))
    assert [block for _, _, _, block, _ in got] == [text_block(event) for event in events]
    assert [(start, end, event_id, severity) for start, end, event_id, _, severity in got] == [
        (event.start, event.end, event.id, event.severity) for event in events
    ]


def test_text_output_of_columns_is_the_writers(tmp_path):
    """The writer's whole text output (blocks in the order events happened, the summary) is the same bytes from
    columns as from objects."""
    events = _events(7, 60, [("sudo", "bob : user NOT in sudoers ; COMMAND=/bin/sh\x1b[2J")])

    def output(columns: bool) -> str:
        stream = io.StringIO()
        writer = EventWriter(stream, "text")
        if columns:
            columns_writer(writer)(*_numbered(events))
        else:
            for event in events:
                writer.write(event)
        writer.close()
        return stream.getvalue()

    assert output(True) == output(False)
    assert "\\x1b[2J" in output(True)


def test_no_events_no_blocks():
    assert text_blocks(*_numbered([])) == []
