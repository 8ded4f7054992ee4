"""The store's rows read in a child process (`store.reading_process`): the same frames as read in process, the
reader's errors as its own, the child gone when the reading stops, nothing imported from the working directory."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from logstack.base.clock import SECOND, from_micros
from logstack.base.errors import RuntimeFailure
from logstack.integrity.keyring import KeyRing
from logstack.integrity.signatures import Unverified, Verifier, canonical
from logstack.store import reading_process
from logstack.store.greptime import DatabaseConfig
from logstack.store.reader import DatabaseSource
from logstack.store.reading_process import frames_in_child
from tests.journal import entry
from tests.mariadb import PASSWORD

_names = itertools.count()
BASE = 1_700_000_000 * SECOND


RING = KeyRing(seal_key=b"s" * 32)
KEY = RING.mint("web1", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


@pytest.fixture
def store(mariadb) -> DatabaseConfig:
    """A logs table of 300 rows (a third of them signed, some badly), three to a timestamp."""
    import hmac

    name = f"child{next(_names)}"
    mariadb.create_logs(name)
    rows = []
    for i in range(300):
        e = entry(BASE + i, "sshd", 100 + i, f"Connection closed by 192.0.2.{i % 250} port {i}", host="web1")
        row = {
            "greptime_timestamp": from_micros(BASE + (i // 3) * SECOND).replace(tzinfo=None),
            "host": e["_HOSTNAME"],
            "message": e["MESSAGE"],
            "SYSLOG_IDENTIFIER": e["SYSLOG_IDENTIFIER"],
            "_PID": e["_PID"],
            "_BOOT_ID": e["_BOOT_ID"],
            "_MACHINE_ID": e["_MACHINE_ID"],
            "__CURSOR": e["__CURSOR"],
            "__REALTIME_TIMESTAMP": e["__REALTIME_TIMESTAMP"],
        }
        if i % 3 == 0:
            row.update(logstack_host="web1", logstack_kid=KEY.kid, logstack_signed="")
            row["logstack_sig"] = hmac.new(KEY.key, canonical(row), "sha256").hexdigest() if i % 2 else "0" * 64
        rows.append(row)
    mariadb.insert(name, rows)
    return DatabaseConfig(port=mariadb.port, password=PASSWORD, database=name)


@pytest.mark.parametrize("check", ["none", "ring", "off"])
def test_the_child_gives_the_frames_the_reader_gives(store, check):
    verifier = {"none": None, "ring": Verifier(RING), "off": Unverified()}[check]
    for window in ((None, None), (BASE + 10 * SECOND, BASE + 50 * SECOND)):
        with DatabaseSource(store, page_size=40, verifier=verifier) as db:
            here = pl.concat(list(db.frames(*window, size=100)))
            there = list(frames_in_child(db, *window))
        assert there and pl.concat(there).to_dicts() == here.to_dicts()
        auth = set(here["auth"].to_list())
        assert (
            auth == {"none": {None}, "ring": {None, "unsigned", "bad_signature:web1"}, "off": {"not_verified"}}[check]
        )


def test_the_reader_s_errors_come_back_as_its_own(store):
    wrong = DatabaseConfig(port=store.port, password="not the password", database=store.database)
    with DatabaseSource(store) as db:
        db.config = wrong
        with pytest.raises(RuntimeFailure) as raised:
            list(frames_in_child(db, None, None))
    assert str(raised.value).startswith(f"database {wrong.label}: Access denied for user 'analyst'")
    assert "not the password" not in str(raised.value)
    missing = DatabaseConfig(port=store.port, password=PASSWORD, database=store.database, table="nothing")
    with DatabaseSource(store) as db:
        db.config = missing
        with pytest.raises(RuntimeFailure, match="table has no greptime_timestamp column"):
            list(frames_in_child(db, None, None))


def _children() -> set[int]:
    """This process's children's process ids."""
    found = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        found |= {int(pid) for pid in (task / "children").read_text().split()}
    return found


def test_the_child_is_stopped_when_the_reading_stops(store):
    before = _children()
    with DatabaseSource(store, page_size=10) as db:
        frames = frames_in_child(db, None, None, size=20)
        first = next(frames)
        assert first.height and _children() - before
        frames.close()
    assert _children() == before


def test_a_child_still_reading_is_stopped_at_once(store, monkeypatch):
    """A reader that stops early (a stage refused a batch) does not wait for the child to read the rest."""
    import time

    one = "import io, struct, sys, time, polars as pl; b = io.BytesIO(); "
    one += "pl.DataFrame({'message': ['m']}).write_ipc_stream(b); "
    one += "sys.stdin.read(); sys.stdout.buffer.write(struct.pack('>cQ', b'F', len(b.getvalue())) + b.getvalue()); "
    one += "sys.stdout.flush(); time.sleep(60)"
    monkeypatch.setattr(reading_process, "_CHILD", one)
    with DatabaseSource(store) as db:
        frames = frames_in_child(db, None, None, size=1)
        assert next(frames).to_dicts() == [{"message": "m"}]
        started = time.monotonic()
        frames.close()
    assert time.monotonic() - started < 10


def test_a_child_that_dies_is_an_error_naming_the_store(store, monkeypatch):
    monkeypatch.setattr(reading_process, "_CHILD", "import sys; sys.stdin.read(); sys.exit('killed by a test')")
    with DatabaseSource(store) as db, pytest.raises(RuntimeFailure) as raised:
        list(frames_in_child(db, None, None))
    assert str(raised.value) == f"database {store.label}: the reading process failed: killed by a test"


def test_the_child_imports_nothing_from_the_working_directory(store, tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    for name in ("polars.py", "pymysql.py", "logstack.py"):
        (tmp_path / name).write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit(9)\n")
    monkeypatch.chdir(tmp_path)
    with DatabaseSource(store) as db:
        assert sum(len(frame) for frame in frames_in_child(db, None, None)) == 300
    assert not marker.exists()


def test_the_password_is_not_on_the_child_s_command_line_or_environment(store, monkeypatch):
    seen: list[tuple[list[str], dict[str, str] | None]] = []
    real = subprocess.Popen

    def watched(args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        seen.append((list(args), kwargs.get("env")))  # type: ignore[arg-type]
        return real(args, **kwargs)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(subprocess, "Popen", watched)
    monkeypatch.delenv("GREPTIMEDB_PASSWORD", raising=False)
    with DatabaseSource(store) as db:
        assert sum(len(frame) for frame in frames_in_child(db, None, None)) == 300
    (args, env), *_ = seen
    assert PASSWORD not in " ".join(args) and env is None and PASSWORD not in " ".join(os.environ.values())
    assert args[:2] == [sys.executable, "-P"]
