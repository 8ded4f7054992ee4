"""Alerts from a run in columns: what each destination's queue holds is what `Collector.add` holds when every
event is made an object and a dictionary (`Event.as_dict`), byte for byte and in order, on the events the builder
makes of generated journals with hostile text; and the CLI's runs with alerts write the same output and queue the
same alerts in columns as line by line."""

from __future__ import annotations

import json
from pathlib import Path

import hypothesis
from hypothesis import strategies as st

from logstack.alerts.delivery import Collector
from logstack.alerts.event_batches import collecting
from logstack.analyze.export_source import ExportSource
from logstack.analyze.run import RunOptions, run_analysis
from logstack.journal.selection import Selection
from logstack.site.alerts import DESTINATIONS, AlertConfig
from tests.conftest import invoke
from tests.test_event_json import hostile_lines
from tests.test_text_columns import _events, _numbered

SAMPLE = Path(__file__).parent.parent / "examples" / "journal-sample.json"
_DESTINATIONS = [
    {"name": "all", "type": "exec", "command": ["/bin/true"], "min_severity": "info"},
    {"name": "failures", "type": "exec", "command": ["/bin/true"], "min_severity": "failure"},
    {"name": "logins", "type": "exec", "command": ["/bin/true"], "min_severity": "alert", "event_types": ["ssh_login"]},
]


def _collector(names: list[str]) -> Collector:
    chosen = [d for d in _DESTINATIONS if d["name"] in names]
    return Collector(AlertConfig("s1", tuple(DESTINATIONS.validate_python(chosen))))


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(
    seed=st.integers(0, 2**32 - 1),
    count=st.integers(1, 50),
    hostile=hostile_lines(12),
    names=st.lists(st.sampled_from([d["name"] for d in _DESTINATIONS]), unique=True),
    cut=st.integers(0, 60),
)
def test_the_queues_hold_what_objects_would_give_them(seed, count, hostile, names, cut):
    events = _events(seed, count, hostile)
    by_objects, in_columns = _collector(names), _collector(names)
    for event in events:
        by_objects.add(event.as_dict())
    written: list[int] = []
    give = collecting(lambda batch, lines: written.append(len(batch)), in_columns)
    for part in (events[:cut], events[cut:]):  # two batches, the queues kept across them
        give(*_numbered(part))
    assert in_columns.entries == by_objects.entries
    assert written == [len(events[:cut]), len(events[cut:])]  # the output is given every event first


def test_the_cli_with_alerts_delivers_what_the_line_by_line_engine_would(tmp_path, runner):
    """`analyze --alerts` over an export, in columns: each destination (a real program, here `cat`) receives the
    alerts the line-by-line engine's events make (`alert_body` of `Event.as_dict`), in its order."""
    got = tmp_path / "got"
    got.mkdir()
    destinations = [{**d, "command": ["/bin/sh", "-c", f"cat >> {got}/{d['name']}"]} for d in _DESTINATIONS]
    alerts = tmp_path / "alerts.json"
    alerts.write_text(json.dumps({"site": "s1", "destinations": destinations}))
    args = ["analyze", "--journal", SAMPLE, "--since-last-run", "--data-dir", tmp_path / "state"]
    result = invoke(runner, *args, "--format", "jsonl", "--alerts", alerts, "--dedupe-horizon", "3650d")
    assert result.exit_code in (0, 1), result.output
    assert len(result.stdout.splitlines()) == 22
    want = _collector([d["name"] for d in _DESTINATIONS])
    run_analysis(ExportSource(str(SAMPLE), None, Selection.of(None)), RunOptions(), lambda e: want.add(e.as_dict()), 0)
    for name, entries in want.entries.items():
        received = [json.loads(line) for line in (got / name).read_text().splitlines()] if entries else []
        assert [{k: v for k, v in r.items() if k != "batch_id"} for r in received] == [
            json.loads(body) for _, body in entries
        ]
    assert len(want.entries["all"]) == 22 and 0 < len(want.entries["failures"]) < 22
