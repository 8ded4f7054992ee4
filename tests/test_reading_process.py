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
        try:
            found |= {int(pid) for pid in (task / "children").read_text().split()}
        except FileNotFoundError:  # a thread that ended since it was listed (the reader's drain thread)
            continue
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
    seen: list[tuple[list[str], dict[str, str]]] = []
    real = subprocess.Popen

    def watched(args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        seen.append((list(args), kwargs["env"]))  # type: ignore[arg-type]
        return real(args, **kwargs)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(subprocess, "Popen", watched)
    monkeypatch.setenv("GREPTIMEDB_PASSWORD", PASSWORD)  # the parent's, as an operator may set it
    with DatabaseSource(store) as db:
        assert sum(len(frame) for frame in frames_in_child(db, None, None)) == 300
    (args, env), *_ = seen
    assert PASSWORD not in " ".join(args) and "GREPTIMEDB_PASSWORD" not in env and PASSWORD not in env.values()
    assert args[:2] == [sys.executable, "-P"] and env["PATH"] == os.environ["PATH"]


def test_the_child_keeps_the_environment_out_when_the_parent_does(store, tmp_path):
    """A parent run with -E (a distribution's shebang, a unit) ignores PYTHONPATH: so does its child, and a
    `pymysql.py` on that path sees no password."""
    evil = tmp_path / "evil"
    evil.mkdir()
    marker = tmp_path / "imported"
    (evil / "pymysql.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit(9)\n")
    code = (
        "import sys; from logstack.store.greptime import DatabaseConfig; from logstack.store.reader import "
        "DatabaseSource; from logstack.store.reading_process import frames_in_child; "
        f"db = DatabaseSource(DatabaseConfig(port={store.port}, password={PASSWORD!r}, database={store.database!r}));"
        " db.__enter__(); print(sum(len(f) for f in frames_in_child(db, None, None)))"
    )
    root = Path(reading_process.__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(evil)}
    done = subprocess.run([sys.executable, "-E", "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert (done.returncode, done.stdout.strip()) == (0, "300"), done.stderr
    assert not marker.exists()


def test_the_child_finds_the_standard_library_before_logstack_s_directory(store, tmp_path, monkeypatch):
    """Where logstack is installed, its directory is site-packages: a module there named like one of the
    standard library's does not take its place in the child."""
    (tmp_path / "logstack").symlink_to(Path(reading_process.__file__).resolve().parents[1])
    (tmp_path / "queue.py").write_text("raise ImportError('not the standard library')\n")
    monkeypatch.setattr(reading_process, "_ROOT", str(tmp_path))
    with DatabaseSource(store) as db:
        assert sum(len(frame) for frame in frames_in_child(db, None, None)) == 300


def test_a_defect_in_the_child_is_an_internal_error_naming_where_not_what(store, monkeypatch):
    from logstack.base.errors import InternalError
    from logstack.base.exit_codes import ExitStatus

    broken = reading_process._CHILD.replace(
        "from logstack.store.reading_process import main;",
        "import logstack.store.row_columns as r; r.page_frame = lambda *a: {}['secret 42']; "
        "from logstack.store.reading_process import main;",
    )
    monkeypatch.setattr(reading_process, "_CHILD", broken)
    with DatabaseSource(store) as db, pytest.raises(InternalError) as raised:
        list(frames_in_child(db, None, None))
    message = str(raised.value)
    assert message.startswith(f"database {store.label}: the reading process failed: internal error: KeyError at ")
    assert "secret 42" not in message and raised.value.exit_status == ExitStatus.INTERNAL


def test_a_child_killed_by_a_signal_says_so(store, monkeypatch):
    monkeypatch.setattr(reading_process, "_CHILD", "import os, signal, sys; sys.stdin.read(); os.kill(os.getpid(), 9)")
    with DatabaseSource(store) as db, pytest.raises(RuntimeFailure) as raised:
        list(frames_in_child(db, None, None))
    assert str(raised.value) == f"database {store.label}: the reading process failed: killed by signal 9"


def test_a_connection_the_server_closed_while_idle_reads_again(store):
    """While the child reads, the parent's own connection waits; the server may close it (wait_timeout) before a
    refused batch has the rows read again on it."""
    import time

    with DatabaseSource(store) as db:
        db.execute("SET SESSION wait_timeout = 1", ())
        time.sleep(2.5)
        assert len(list(db.lines(None, None))) == 300
        assert db.query("SELECT @@session.time_zone AS zone", ()) == [{"zone": "+00:00"}]


def test_the_child_ends_with_its_parent(tmp_path):
    """A parent killed while the child waits (a slow query) leaves no reader behind."""
    import time

    pid_file = tmp_path / "child"
    waits = (
        "from logstack.store.reading_process import _end_with_parent; _end_with_parent(int(sys.argv[2])); "
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    )
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, types\n"
        "from logstack.store import reading_process as rp\n"
        "from logstack.store.greptime import DatabaseConfig\n"
        f"rp._CHILD = rp._CHILD.replace('from logstack.store.reading_process import main; main()', {waits!r})\n"
        "db = types.SimpleNamespace(config=DatabaseConfig(password='x'), page_size=1, verifier=None)\n"
        "next(rp.frames_in_child(db, None, None))\n"
    )
    root = Path(reading_process.__file__).resolve().parents[2]
    process = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "PYTHONPATH": str(root)})
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    child = int(pid_file.read_text())
    process.kill()
    process.wait()
    deadline = time.monotonic() + 10
    while _state(child) != "Z":
        assert time.monotonic() < deadline, "the child outlived its parent"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "Z"
