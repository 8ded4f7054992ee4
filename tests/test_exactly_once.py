"""Exactly once, however late a copy arrives: durable, bounded analysis state (SQLite)."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logstack.analyze.run import RunOptions, run_analysis
from logstack.analyze.state import StateStore
from logstack.base.clock import DAY, MINUTE, SECOND
from logstack.base.errors import BadInputError, RuntimeFailure
from logstack.journal.line import from_journal
from tests.journal import entry

T0 = 1_780_000_000 * SECOND


class Store:
    """The logs table as a run sees it: rows by ingest time, visible once ingested."""

    def __init__(self) -> None:
        self.rows: list = []

    def add(self, record: dict, arrival: int) -> None:
        line = from_journal(record)
        assert line is not None
        self.rows.append(dataclasses.replace(line, arrival=arrival))

    def source(self, now: int):
        def lines(start, end):
            visible = sorted((r for r in self.rows if r.arrival <= now), key=lambda r: (r.arrival, r.key))
            return [r for r in visible if (start is None or r.arrival >= start) and (end is None or r.arrival <= end)]

        return lines


def _run(store: Store, path, now: int, horizon: int = 14 * DAY) -> list:
    reported: list = []
    run_analysis(store.source(now), RunOptions(state_path=path, horizon=horizon), reported.append, now)
    return reported


def _login(ts: int, pid: int, user: str = "alice") -> list[dict]:
    return [
        entry(ts, "sshd-session", pid, f"Failed password for {user} from 203.0.113.9 port {pid} ssh2"),
        entry(
            ts + SECOND,
            "sshd-session",
            pid,
            f"Connection closed by authenticating user {user} 203.0.113.9 port {pid} [preauth]",
        ),
    ]


def test_a_copy_days_later_is_recognised_and_a_late_line_continues_its_event(tmp_path):
    store, path = Store(), tmp_path / "state.sqlite"
    first = _login(T0, 501)
    store.add(first[0], T0)
    (event,) = _run(store, path, T0 + 10 * MINUTE)
    assert [ln.message for ln in event.lines] == [first[0]["MESSAGE"]]
    # nine days later: the same line again (same cursor), with its closing line that sat in a buffer
    store.add(first[0], T0 + 9 * DAY)
    store.add(first[1], T0 + 9 * DAY)
    (late,) = _run(store, path, T0 + 9 * DAY + 10 * MINUTE)
    assert [ln.message for ln in late.lines] == [first[1]["MESSAGE"]]
    assert late.continues == event.id and "late" in late.flags and late.id != event.id
    assert _run(store, path, T0 + 10 * DAY) == []


def test_beyond_the_horizon_a_line_is_reported_flagged_late(tmp_path):
    store, path = Store(), tmp_path / "state.sqlite"
    first = _login(T0, 502)
    store.add(first[0], T0)
    assert len(_run(store, path, T0 + 10 * MINUTE)) == 1
    store.add(first[0], T0 + 20 * DAY)  # the state forgot it: reported again, never silently dropped
    (again,) = _run(store, path, T0 + 20 * DAY + 10 * MINUTE)
    assert "late" in again.flags


def test_a_crash_before_commit_repeats_that_runs_events_and_loses_none(tmp_path, monkeypatch):
    store, path = Store(), tmp_path / "state.sqlite"
    for i in range(3):
        for record in _login(T0 + i * MINUTE, 600 + i):
            store.add(record, T0 + i * MINUTE)
    first = _run(store, path, T0 + 10 * MINUTE)
    assert len(first) == 3
    for record in _login(T0 + 20 * MINUTE, 700):
        store.add(record, T0 + 20 * MINUTE)

    def die(*args, **kwargs):
        raise KeyboardInterrupt  # killed after the output was flushed, before the commit

    monkeypatch.setattr(StateStore, "commit", die)
    seen: list = []
    with pytest.raises(KeyboardInterrupt):
        run_analysis(store.source(T0 + 30 * MINUTE), RunOptions(state_path=path), seen.append, T0 + 30 * MINUTE)
    monkeypatch.undo()
    repeated = _run(store, path, T0 + 31 * MINUTE)
    assert [e.id for e in repeated] == [e.id for e in seen]  # that run's events again, nothing lost
    assert {e.id for e in first}.isdisjoint(e.id for e in repeated)


def test_two_runs_on_one_state_cannot_both_proceed(tmp_path):
    path = tmp_path / "state.sqlite"
    holder = StateStore(path)
    try:
        with pytest.raises(RuntimeFailure, match="another analysis run is using this state"):
            StateStore(path)
    finally:
        holder.close()
    StateStore(path).close()  # free again


def test_the_json_state_of_earlier_versions_is_taken_over(tmp_path):
    store, path = Store(), tmp_path / "state.sqlite"
    record = _login(T0, 801)[0]
    store.add(record, T0)
    key = from_journal(record).key
    path.with_suffix(".json").write_text(
        json.dumps({"version": 1, "resume_from": T0 - MINUTE, "reported_lines": [key], "reported_ids": {}})
    )
    assert _run(store, path, T0 + 10 * MINUTE) == []  # already reported by the old state


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), events=st.integers(3, 12), runs=st.integers(3, 10))
def test_every_line_is_reported_once_whatever_the_delays(tmp_path_factory, seed, events, runs):
    rng = random.Random(seed)
    store, path = Store(), tmp_path_factory.mktemp("state") / "state.sqlite"
    lines_by_key: dict[str, int] = {}
    end = T0
    for n in range(events):
        ts = T0 + n * 10 * MINUTE
        for record in _login(ts, 1000 + n, f"u{n}"):
            first = ts + rng.randint(0, 40) * MINUTE  # a sender outage delays a line
            store.add(record, first)
            lines_by_key[from_journal(record).key] = first
            for _ in range(rng.randint(0, 2)):  # redelivered copies, 1 minute to 10 days later
                again = first + rng.choice([MINUTE, 9 * MINUTE, 37 * MINUTE, DAY, 10 * DAY])
                store.add(record, again)
                end = max(end, again)
            end = max(end, first)
    moments = [*sorted(rng.randint(T0, end + DAY) for _ in range(runs)), end + 2 * DAY]
    reported: dict[str, int] = {}
    ids: list[str] = []
    for now in moments:
        for event in _run(store, path, now):
            ids.append(event.id)
            if event.continues:
                assert event.continues in ids and "late" in event.flags
            for line in event.lines:
                reported[line.key] = reported.get(line.key, 0) + 1
    assert len(ids) == len(set(ids)), "an event was reported twice"
    assert reported == dict.fromkeys(lines_by_key, 1), "a line was lost or reported twice"


def _failures(ts: int, count: int, ip: str = "198.51.100.7") -> list[dict]:
    return [
        entry(ts + i * 10 * SECOND, "sshd-session", 900 + i, f"Failed password for root from {ip} port {2000 + i} ssh2")
        for i in range(count)
    ]


def test_a_brute_force_incident_is_reported_once_across_runs(tmp_path):
    store, path = Store(), tmp_path / "state.sqlite"
    failures = _failures(T0, 9)
    for record in failures:  # nine failures within 100 s, each ingested at once
        store.add(record, int(record["__REALTIME_TIMESTAMP"]))
    incidents = []
    for minute in range(5, 40, 5):  # a timer every five minutes re-reads an overlap of ten
        incidents += [e for e in _run(store, path, T0 + minute * MINUTE) if e.type == "brute_force"]
    assert len(incidents) == 1
    # copies of most failures, days later, make no new incident either
    for record in failures[1:]:
        store.add(record, T0 + 3 * DAY)
    assert [e for e in _run(store, path, T0 + 3 * DAY + 10 * MINUTE) if e.type == "brute_force"] == []


def test_an_old_backlog_is_reported_once_and_its_copies_recognised(tmp_path):
    store, path = Store(), tmp_path / "state.sqlite"
    old = T0 - 30 * DAY  # a host offline for a month sends its history
    records = [r for n in range(20) for r in _login(old + n * 17 * SECOND, 3000 + n, f"h{n}")]
    for i, record in enumerate(records):
        store.add(record, T0 + i * 17 * SECOND)
    counts: dict[str, int] = {}
    for minute in range(5, 60, 5):
        for event in _run(store, path, T0 + minute * MINUTE):
            assert "late" in event.flags  # older than the horizon when it first arrived
            if event.type == "brute_force":  # an incident lists its failures' first lines again
                continue
            for line in event.lines:
                counts[line.key] = counts.get(line.key, 0) + 1
    assert counts == {from_journal(r).key: 1 for r in records}
    store.add(records[0], T0 + 2 * DAY)  # copies two days later: still recognised
    store.add(records[1], T0 + 2 * DAY)
    assert _run(store, path, T0 + 2 * DAY + 10 * MINUTE) == []


def test_an_event_that_never_settles_does_not_pin_the_resume_point(tmp_path):
    store, path = Store(), tmp_path / "state.sqlite"
    # one PID that logs every two minutes for hours (an sshd listener under a steady stream of scans)
    for n in range(120):
        ts = T0 + n * 2 * MINUTE
        store.add(entry(ts, "sshd", 77, f"Connection closed by 192.0.2.{n % 200} port {1000 + n} [preauth]"), ts)
    reported = []
    for hour in range(1, 5):
        reported += _run(store, path, T0 + hour * 60 * MINUTE)
    assert reported, "an event that keeps growing was never reported"
    keys = [line.key for event in reported for line in event.lines]
    assert len(keys) == len(set(keys))
    state = StateStore(path)
    try:
        assert state.resume_from is not None and state.resume_from > T0 + 2 * 60 * MINUTE
    finally:
        state.close()


def test_a_clock_behind_the_state_is_refused(tmp_path):
    store, path = Store(), tmp_path / "state.sqlite"
    _run(store, path, T0 + DAY)
    with pytest.raises(RuntimeFailure, match="clock is behind"):
        _run(store, path, T0)


def test_a_clock_stepped_back_further_than_a_run_re_reads_is_refused_a_smaller_step_is_not(tmp_path):
    """A 15-minute step back (less than the hour once tolerated) would skip the rows stamped in the gap."""
    store, path = Store(), tmp_path / "state.sqlite"
    _run(store, path, T0 + DAY)
    with pytest.raises(RuntimeFailure, match="clock is behind"):
        _run(store, path, T0 + DAY - 15 * MINUTE)
    _run(store, path, T0 + DAY - 5 * MINUTE)  # within the 10-minute re-read: nothing can be skipped


@pytest.mark.parametrize(
    "legacy",
    ['{"resume_from": Infinity}', '{"resume_from": 1e23}', '{"reported_lines": "abc"}',
     '{"reported_lines": ["\\ud800"]}', "[" * 100_000 + "]" * 100_000, '{"reported_ids": {"a": 1e30}}'],
)  # fmt: skip
def test_a_hostile_json_state_is_a_one_line_error(tmp_path, legacy):
    path = tmp_path / "state.sqlite"
    path.with_suffix(".json").write_text(legacy)
    with pytest.raises(BadInputError, match="unreadable analysis state"):
        _run(Store(), path, T0)


def test_a_linked_state_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "state.sqlite").symlink_to(tmp_path / "elsewhere" / "state.sqlite")
    with pytest.raises(BadInputError, match="is a link"):
        _run(Store(), tmp_path / "state.sqlite", T0)
