"""`logstack analyze` against a real MySQL-protocol server (MariaDB standing in for GreptimeDB)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logstack.analyze.run import RunOptions, run_analysis
from logstack.base.clock import SECOND, from_micros
from logstack.journal.line import from_journal, text
from logstack.store.greptime import DatabaseConfig
from logstack.store.reader import DatabaseSource
from tests.conftest import ROOT, invoke
from tests.journal import entry
from tests.mariadb import PASSWORD

SAMPLE = ROOT / "examples/journal-sample.json"
_db_names = itertools.count()


def to_row(e: dict, arrival_us: int) -> dict:
    ts = int(e["__REALTIME_TIMESTAMP"])
    return {
        "greptime_timestamp": from_micros(arrival_us).replace(tzinfo=None),
        "host": e["_HOSTNAME"],
        "message": text(e["MESSAGE"]),
        "SYSLOG_IDENTIFIER": e["SYSLOG_IDENTIFIER"],
        "_PID": e["_PID"],
        "_COMM": e.get("_COMM"),
        "_EXE": e.get("_EXE"),
        "_BOOT_ID": e["_BOOT_ID"],
        "_MACHINE_ID": e["_MACHINE_ID"],
        "_AUDIT_LOGINUID": e.get("_AUDIT_LOGINUID"),
        "__CURSOR": e["__CURSOR"],
        "__REALTIME_TIMESTAMP": str(ts),
        "timestamp": from_micros(ts).isoformat().replace("+00:00", "Z"),
        "source_type": "journald",
    }


def sample_entries() -> list[dict]:
    return [json.loads(x) for x in SAMPLE.read_text().splitlines()]


@pytest.fixture
def db(mariadb):
    name = f"vector{next(_db_names)}"
    mariadb.create_logs(name)
    return mariadb, name


def _cli(runner, mariadb, name, *args, password=PASSWORD):
    from logstack.cli import app

    return runner.invoke(
        app,
        ["analyze", "--db-port", str(mariadb.port), "--db-user", "analyst", "--db-name", name, *[str(a) for a in args]],
        env={"GREPTIMEDB_PASSWORD": password},
    )


@pytest.mark.parametrize("in_process", [20_000, 0])
def test_database_source_gives_the_same_events_as_the_export(db, runner, monkeypatch, in_process):
    """Read in the analysing process (a window of few rows) or by the child process (any more): the same
    events as the export's (and, `tests/engines.py`, as the line-by-line engine's)."""
    import subprocess

    from logstack.store import reading_process

    mariadb, name = db
    entries = sample_entries()
    mariadb.insert(name, [to_row(e, int(e["__REALTIME_TIMESTAMP"]) + 2 * SECOND) for e in entries])
    monkeypatch.setattr(reading_process, "IN_PROCESS", in_process)
    spawned: list[object] = []
    real = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: spawned.append(a) or real(*a, **k))
    from_db = _cli(runner, mariadb, name, "--format", "json")
    assert from_db.exit_code == 0, from_db.output
    assert len(spawned) == (in_process == 0)
    from_file = invoke(runner, "analyze", "--journal", SAMPLE, "--format", "json")
    strip = lambda evs: sorted((e["id"], e["type"], e["outcome"], e["user"], len(e["lines"])) for e in evs)  # noqa: E731
    assert strip(json.loads(from_db.stdout)) == strip(json.loads(from_file.stdout))


def test_since_last_run_reports_once_then_only_new(db, runner, tmp_path: Path):
    mariadb, name = db
    entries = sample_entries()
    mariadb.insert(name, [to_row(e, int(e["__REALTIME_TIMESTAMP"]) + SECOND) for e in entries])
    first = _cli(runner, mariadb, name, "--since-last-run", "--data-dir", tmp_path, "--format", "jsonl")
    assert first.exit_code == 0 and len(first.stdout.splitlines()) == 22
    again = _cli(runner, mariadb, name, "--since-last-run", "--data-dir", tmp_path, "--format", "jsonl")
    assert again.exit_code == 0 and again.stdout == ""
    # at-least-once delivery: the whole sample again, plus one new event arriving late
    now = dt.datetime.now(dt.UTC)
    recent = int((now - dt.timedelta(minutes=5)).timestamp() * 1e6)
    late = entry(recent - 3600 * SECOND, "sudo", 777, "dave : TTY=pts/9 ; PWD=/ ; USER=root ; COMMAND=/bin/id")
    mariadb.insert(name, [to_row(e, recent) for e in entries] + [to_row(late, recent)])
    third = _cli(runner, mariadb, name, "--since-last-run", "--data-dir", tmp_path, "--format", "jsonl")
    events = [json.loads(x) for x in third.stdout.splitlines()]
    assert [(e["type"], e["user"]) for e in events] == [("sudo", "dave")]


def test_database_errors_exit_3_and_leave_state_untouched(db, runner, tmp_path: Path):
    mariadb, name = db
    mariadb.insert(name, [to_row(e, int(e["__REALTIME_TIMESTAMP"])) for e in sample_entries()])
    assert _cli(runner, mariadb, name, "--since-last-run", "--data-dir", tmp_path).exit_code == 0
    (state,) = tmp_path.glob("analyze-*.sqlite")
    before = _dump(state)
    wrong = _cli(runner, mariadb, name, "--since-last-run", "--data-dir", tmp_path, password="wrong")
    assert wrong.exit_code == 3 and "Access denied" in wrong.stderr and wrong.stderr.count("\n") == 1
    assert "wrong" not in wrong.stderr.replace("wrong password", "")
    missing = _cli(runner, mariadb, name, "--table", "nope", "--since-last-run", "--data-dir", tmp_path)
    assert missing.exit_code == 3 and "greptime_timestamp" in missing.stderr
    assert _dump(state) == before
    down = _cli(runner, mariadb, name, "--db-port", "1", "--since-last-run", "--data-dir", tmp_path)
    assert down.exit_code == 3 and "Can't connect" in down.stderr
    assert _dump(state) == before


def _dump(path: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(path) as db:
        return list(db.iterdump())


def test_a_window_s_rows_are_counted_past_a_number_by_one_row(db):
    mariadb, name = db
    base = 1_700_000_000 * SECOND
    entries = [entry(base + i, "sshd", 100 + i, f"Connection closed by 192.0.2.{i} port {i}") for i in range(30)]
    mariadb.insert(name, [to_row(e, base + (i // 3) * SECOND) for i, e in enumerate(entries)])
    config = DatabaseConfig(port=mariadb.port, password=PASSWORD, database=name)
    with DatabaseSource(config) as source:
        assert source.holds_more_than(None, None, 29) and not source.holds_more_than(None, None, 30)
        assert source.holds_more_than(base + SECOND, base + 2 * SECOND, 5)  # rows 3..8: six
        assert not source.holds_more_than(base + SECOND, base + 2 * SECOND, 6)
        assert not source.holds_more_than(base + 10 * SECOND, None, 0)  # none after the last


def test_keyset_pages_read_every_row_once_even_with_equal_timestamps(db):
    mariadb, name = db
    base = 1_700_000_000 * SECOND
    entries = [entry(base + i, "sshd", 100 + i, f"Connection closed by 192.0.2.{i % 250} port {i}") for i in range(57)]
    arrivals = [base + (i // 20) * SECOND for i in range(57)]  # runs of 20 rows share one timestamp
    mariadb.insert(name, [to_row(e, a) for e, a in zip(entries, arrivals, strict=True)])
    config = DatabaseConfig(port=mariadb.port, password=PASSWORD, database=name)
    with DatabaseSource(config, page_size=7) as source:
        keys = [line.key for line in source.lines(None, None)]
    assert sorted(keys) == sorted(from_journal(e).key for e in entries)
    with DatabaseSource(config, page_size=7) as source:
        window = list(source.lines(base + SECOND, base + SECOND))
    assert len(window) == 20


@pytest.mark.parametrize("page", [2, 3, 7, 20, 5000])
def test_the_store_s_rows_in_columns_are_the_lines_read_line_by_line(db, page):
    """`DatabaseSource.frames` against `lines`: the same lines through keyset pages of one timestamp, a row
    stored twice, rows a verifier finds unsigned (their keys carry it), rows that make no line, a window."""
    from logstack.integrity.keyring import KeyRing
    from logstack.integrity.signatures import Verifier
    from logstack.journal.columns import line_columns

    mariadb, name = db
    base = 1_700_000_000 * SECOND
    entries = [entry(base + i, "sshd", 100 + i, f"Connection closed by 192.0.2.{i % 250} port {i}") for i in range(57)]
    rows = [to_row(e, base + (i // 20) * SECOND) for i, e in enumerate(entries)]
    later = {**rows[19], "greptime_timestamp": from_micros(base + 2 * SECOND).replace(tzinfo=None)}  # a late copy
    odd = [{**rows[3], "__REALTIME_TIMESTAMP": "x", "timestamp": None}, {**rows[4], "__CURSOR": None}]
    rows += [rows[19], later, *odd]
    # alone at 100 s: a copy stored a second after its row, the next page's first row past the boundary
    alone = [to_row(entries[i], base + (100 + i) * SECOND) for i in range(3)]
    rows += [*alone, {**alone[1], "greptime_timestamp": from_micros(base + 102 * SECOND).replace(tzinfo=None)}]
    mariadb.insert(name, rows)
    config = DatabaseConfig(port=mariadb.port, password=PASSWORD, database=name)
    for verifier in (None, Verifier(KeyRing(seal_key=b"s" * 32))):
        for window in (
            (None, None),
            (base + SECOND, base + SECOND),
            (base + SECOND, None),
            (base + 100 * SECOND, None),
        ):
            with DatabaseSource(config, page_size=page, verifier=verifier) as source:
                lines = list(source.lines(*window))
                frames = list(source.frames(*window, size=25))
                by_text = list(source.frames(*window, size=10**6, text=400))  # 57 or 58 characters a line
            text = [frame["message"].str.len_chars().sum() for frame in by_text]
            assert pl.concat(by_text).equals(pl.concat(frames)) and all(n >= 400 for n in text[:-1])
            assert len(by_text) >= 2 or window != (None, None) or page > 7
            assert lines and all(len(frame) >= 25 for frame in frames[:-1]) and frames[-1].height
            assert len(frames) == 1 + (len(lines) > 25 + 2 * page) or len(frames) > 1
            assert pl.concat(frames).to_dicts() == line_columns(lines).to_dicts()
            assert all(line.auth == ("unsigned" if verifier else None) for line in lines)


# -- exactly once under random interleavings -----------------------------------------------------


def _event_batch(rng: random.Random, n: int, journal_ts: int) -> list[dict]:
    """One event's lines (distinct PID per event, so the expected grouping is unambiguous)."""
    pid = 20000 + n
    ip = f"198.51.100.{n % 200 + 1}"
    kind = rng.choice(["fail", "ok", "sudo"])
    if kind == "fail":
        msgs = [
            f"Invalid user u{n} from {ip} port {n + 1000}",
            f"Failed password for invalid user u{n} from {ip} port {n + 1000} ssh2",
        ]
        ident = "sshd-session"
    elif kind == "ok":
        msgs = [
            f"Accepted publickey for user{n} from {ip} port {n + 1000} ssh2",
            f"pam_unix(sshd:session): session opened for user user{n}(uid=1000) by (uid=0)",
        ]
        ident = "sshd-session"
    else:
        msgs = [f"alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/echo {n}"]
        ident = "sudo"
    host = rng.choice(["web1", "web2"])
    return [
        entry(journal_ts + i * 1000, ident, pid, m, host=host, machine=host.ljust(32, "0")) for i, m in enumerate(msgs)
    ]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(4, 14))
def test_random_interleavings_report_every_event_exactly_once(mariadb, tmp_path_factory, seed, steps):
    rng = random.Random(seed)
    name = f"prop{next(_db_names)}"
    mariadb.create_logs(name)
    state_dir = tmp_path_factory.mktemp("state")
    options = RunOptions(state_path=state_dir / "state.sqlite")
    clock = 1_750_000_000 * SECOND
    all_entries: dict[str, list[dict]] = {}
    reported: list[tuple[str, int]] = []
    config = DatabaseConfig(port=mariadb.port, password=PASSWORD, database=name)
    counter = itertools.count()

    def run(now: int) -> None:
        with DatabaseSource(config, page_size=5) as source:
            run_analysis(source.lines, options, lambda ev: reported.append((ev.id, len(ev.lines))), now)

    for _ in range(steps):
        clock += rng.choice([rng.randint(1, 60), rng.randint(1, 400)]) * SECOND
        action = rng.random()
        if action < 0.6:
            rows = []
            for _ in range(rng.randint(1, 4)):
                n = next(counter)
                # journal time may lie far behind ingest: a sender that buffered through an outage
                batch = _event_batch(rng, n, clock - rng.randint(0, 7200) * SECOND)
                all_entries[str(n)] = batch
                # visibility lag below the safety lag
                arrival = clock - rng.randint(0, 5) * SECOND
                # sometimes the tail of an event arrives later than its head (but within the settle time)
                tail = 30 * SECOND if len(batch) > 1 and rng.random() < 0.4 else 0
                rows += [to_row(e, arrival + (tail if i == len(batch) - 1 else 0)) for i, e in enumerate(batch)]
            if all_entries and rng.random() < 0.3:  # at-least-once: an earlier batch delivered again
                again = all_entries[rng.choice(list(all_entries))]
                rows += [to_row(e, clock) for e in again]
            rng.shuffle(rows)
            mariadb.insert(name, rows)
        else:
            run(clock)
    run(clock + 3600 * SECOND)  # everything has settled

    expected = {}
    for batch in all_entries.values():
        lines = [from_journal(e) for e in batch]
        from logstack.analyze.grouping import build_events

        (event,) = [ev for ev in build_events(lines) if ev.type != "brute_force"]
        expected[event.id] = len(event.lines)
    ids = [i for i, _ in reported]
    got = {i: n for i, n in reported if i in expected}
    assert len(ids) == len(set(ids)), "an event was reported twice"
    assert got == expected, "an event was missed or reported incomplete"


def _analyze_at(offset: str | None, mariadb, name: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """`analyze --since-last-run` in a process whose clock libfaketime moves by `offset` (the store's is real)."""
    command = [sys.executable, "-m", "logstack", "analyze", "--db-port", str(mariadb.port), "--db-user", "analyst"]
    command += ["--db-name", name, "--since-last-run", "--data-dir", str(data_dir), "--format", "jsonl"]
    if offset is not None:
        command = ["faketime", "-f", offset, *command]
    env = {**os.environ, "GREPTIMEDB_PASSWORD": PASSWORD}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False)


def test_the_resume_point_goes_by_the_store_s_clock_and_a_skew_is_refused(db, tmp_path: Path):
    """A clock 15 minutes off either way used to lose lines for good, exit 0; now it is refused, the skew named."""
    mariadb, name = db
    mariadb.insert(name, [to_row(e, int(e["__REALTIME_TIMESTAMP"]) + SECOND) for e in sample_entries()])
    for offset, side in (("+15m", r"(899|900|901) s ahead of"), ("-15m", r"(899|900|901) s behind")):
        refused = _analyze_at(offset, mariadb, name, tmp_path)
        assert refused.returncode == 3, refused.stderr
        # the store's clock is read to the second (MariaDB's CURRENT_TIMESTAMP)
        assert re.search(side, refused.stderr) and "store's" in refused.stderr and "Traceback" not in refused.stderr
        assert refused.stdout == "" and not list(tmp_path.rglob("*.sqlite*"))  # no resume point written
    first = _analyze_at(None, mariadb, name, tmp_path)
    assert first.returncode == 0 and len(first.stdout.splitlines()) == 22, first.stderr
    # within the window the run goes by the store's clock: a line the store took 20 s ago is not settled yet
    # (the default settle is 2 minutes) though this machine's clock, 5 minutes ahead, would call it settled
    now = dt.datetime.now(dt.UTC)
    settled = int((now - dt.timedelta(minutes=4)).timestamp() * 1e6)
    fresh = int((now - dt.timedelta(seconds=20)).timestamp() * 1e6)
    later = [
        entry(settled - n * SECOND, "sudo", 900 + n, f"u{n} : TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/bin/id")
        for n in range(7)
    ]
    waiting = entry(fresh, "sudo", 999, "late : TTY=pts/2 ; PWD=/ ; USER=root ; COMMAND=/bin/id")
    mariadb.insert(name, [to_row(e, settled) for e in later] + [to_row(waiting, fresh)])
    ahead = _analyze_at("+5m", mariadb, name, tmp_path)
    assert ahead.returncode == 0, ahead.stderr
    users = sorted(json.loads(x)["user"] for x in ahead.stdout.splitlines())
    assert users == sorted(f"u{n}" for n in range(7)), users


def test_the_store_s_time_is_read_as_utc_whatever_the_server_s_time_zone(db):
    """Times come back in the session's zone with no offset: the session is set to UTC on connecting."""
    import time

    mariadb, name = db
    with mariadb.admin() as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL time_zone = '+08:00'")
    try:
        with DatabaseSource(DatabaseConfig(port=mariadb.port, password=PASSWORD, database=name)) as source:
            skew = source.store_now() - time.time_ns() // 1000
    finally:
        with mariadb.admin() as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL time_zone = '+00:00'")
    assert abs(skew) < 5 * SECOND, skew
