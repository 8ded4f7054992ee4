"""Exactly once, however late a copy arrives: durable, bounded analysis state (SQLite)."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logstack.analyze.grouping import EventBuilder
from logstack.analyze.run import RunOptions, run_analysis
from logstack.analyze.state import StateStore
from logstack.base.clock import DAY, HOUR, MINUTE, SECOND
from logstack.base.errors import BadInputError, RuntimeFailure
from logstack.journal.line import from_journal
from tests.journal import entry
from tests.test_sweep_cadence import _journal, _lines

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
@given(seed=st.integers(0, 2**32 - 1), events=st.integers(3, 12), runs=st.integers(3, 10), busy=st.booleans())
def test_every_line_is_reported_once_whatever_the_delays(tmp_path_factory, seed, events, runs, busy):
    """Logins whose lines arrive up to 40 minutes late, with copies up to ten days later, read by runs at random
    moments: every line reported once. `busy`: another host's lines in between, so the builder sweeps (and
    forgets) within a run, as it does every 2048 lines."""
    rng = random.Random(seed)
    store, path = Store(), tmp_path_factory.mktemp("state") / "state.sqlite"
    lines_by_key: dict[str, int] = {}
    end = T0
    if busy:
        for n in range(3000):  # one an second, over the first fifty minutes
            record = entry(T0 + n * SECOND, "cron", 20_000 + n, "(root) CMD (true)", host="db1")
            store.add(record, T0 + n * SECOND)
            lines_by_key[from_journal(record).key] = T0 + n * SECOND
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


def _sudo_events(events: list) -> list[list[tuple[int, str]]]:
    return [[(line.arrival, line.key) for line in event.lines] for event in events if event.lines[0].ident == "sudo"]


@pytest.mark.parametrize("busy", [0, 3000])
def test_a_copy_half_an_hour_late_beside_a_new_line_is_not_reported_again(tmp_path, busy):
    """A sudo line, then its copy half an hour later in the same run, beside a line of the same process written
    a second before it and delivered with the copy: the copy is not reported again, whether the run released the
    first event before the copy came (a busy journal: sweeps) or still held it (a quiet one)."""
    store, path = Store(), tmp_path / "state.sqlite"
    command = entry(T0, "sudo", 700, "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id")
    store.add(command, T0)
    for n in range(1, 40 + busy):  # another host's lines move the clock
        at = T0 + n * (40 * MINUTE // (40 + busy))
        store.add(entry(at, "cron", 9000 + n, "(root) CMD (true)", host="db1"), at)
    opened = entry(T0 - SECOND, "sudo", 700, "pam_unix(sudo:session): session opened for user root(uid=0) by alice")
    store.add(opened, T0 + 30 * MINUTE)
    store.add(command, T0 + 30 * MINUTE)
    events = _sudo_events(_run(store, path, T0 + DAY))
    assert sorted(events) == [[(T0, from_journal(command).key)], [(T0 + 30 * MINUTE, from_journal(opened).key)]]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(5, 60), cadence=st.sampled_from([1, 3, 17, 2048]))
def test_no_event_holds_a_line_twice(seed, count, cadence):
    """Generated journals (connections joined across processes, sudo, logind), lines delivered up to twenty minutes
    late and copies up to an hour later, at any sweep cadence: no event holds a line twice, and every line is in
    one."""
    rng = random.Random(seed)
    delivered = []
    for line in _lines(_journal(seed, count)):
        first = line.ts + rng.choice([0, 0, 0, MINUTE, 20 * MINUTE])
        delivered.append(dataclasses.replace(line, arrival=first))
        for _ in range(rng.choice([0, 0, 1, 2])):
            delivered.append(dataclasses.replace(line, arrival=first + rng.choice([SECOND, 13 * MINUTE, HOUR])))
    delivered.sort(key=lambda line: line.arrival)
    builder = EventBuilder(forget_every=cadence)
    events = [e for line in delivered for e in builder.feed(line)] + builder.finish()
    own = [[line.key for line in event.lines] for event in events if event.type != "brute_force"]
    assert all(len(keys) == len(set(keys)) for keys in own)
    assert {key for keys in own for key in keys} == {line.key for line in delivered}


def test_a_copy_of_a_session_childs_line_merged_into_its_login_is_dropped():
    """sshd before 7.4p1: a session child naming no port closes first and is merged into the login when that closes;
    a copy of the child's first line arrives 13 minutes later, while the login still waits to be released: dropped,
    at every sweep cadence, as a copy of a line the login holds (not reported a second time in an event of its own)."""
    address = "198.51.100.9"
    rows = [(0.0, 0.0, 100, f"Accepted password for alice from {address} port 5000 ssh2")]
    rows += [(m, m, 100, "User child is on pid 101") for m in (2.0, 4.0, 6.0, 8.0)]
    rows += [(0.2, 0.5, 101, f"Received disconnect from {address}: 11: disconnected by user")]
    rows += [(m, m, 101, "subsystem request for sftp by user alice") for m in (2.5, 4.5, 6.5)]
    records = [(entry(T0 + int(ts * MINUTE), "sshd", pid, message), arrival) for ts, arrival, pid, message in rows]
    child = records[5][0]
    records.append((child, 13.6))
    records += [
        (entry(T0 + n * 30 * SECOND, "cron", 9000 + n, "(root) CMD (true)", host="db1"), n / 2) for n in range(60)
    ]
    lines = [dataclasses.replace(from_journal(r), arrival=T0 + int(at * MINUTE)) for r, at in records]
    lines.sort(key=lambda line: line.arrival)
    for cadence in (1, 3, 2048):
        builder = EventBuilder(forget_every=cadence)
        events = [e for line in lines for e in builder.feed(line)] + builder.finish()
        ssh = [(event.pids, [line.key for line in event.lines]) for event in events if event.lines[0].ident == "sshd"]
        assert [pids for pids, _ in ssh] == [["100", "101"]], cadence
        assert ssh[0][1].count(from_journal(child).key) == 1 and builder.duplicates == 1, cadence


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
