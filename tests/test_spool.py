"""A pipe read in columns: kept as it is read, so that the line-by-line engine reads the same bytes again where
the columns refuse (`analyze/spool.py`)."""

from __future__ import annotations

import io
import os
import resource
import subprocess
import sys
import threading
from pathlib import Path

import hypothesis
from hypothesis import strategies as st

from logstack.analyze.column_run import analyze_journal, columns_writer, run_columns
from logstack.analyze.export_source import ExportSource
from logstack.analyze.output import EventWriter
from logstack.analyze.run import RunOptions
from logstack.analyze.spool import Spool
from logstack.base.exit_codes import ExitStatus
from logstack.journal.selection import Selection
from tests.test_column_run import NOW, _refused_export, reference


def _fed(fifo: Path, data: bytes, piece: int = 4096) -> threading.Thread:
    """A writer feeding `fifo` `data` a piece at a time (a pipe gives what is written so far, not a whole file)."""

    def feed() -> None:
        with fifo.open("wb") as out:
            for at in range(0, len(data), piece):
                out.write(data[at : at + piece])
                out.flush()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    return writer


def test_a_fifo_the_columns_refuse_is_read_again_from_what_was_kept(tmp_path):
    path = _refused_export(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = _fed(fifo, path.read_bytes(), piece=333)
    export = ExportSource(str(fifo), None, Selection.of(None), pinned=True)
    try:
        assert not run_columns(export.frames(None, None), RunOptions(), lambda *_: None).whole
        assert export.same_start()
        again = [line.key for line in export(None, None)]
    finally:
        export.close()
        writer.join()
    assert again == [line.key for line in ExportSource(str(path), None, Selection.of(None))(None, None)]
    assert len(again) == 7


def test_a_fifo_analysed_gives_what_the_line_by_line_engine_gives_of_the_file(tmp_path):
    path = _refused_export(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = _fed(fifo, path.read_bytes())
    raw = io.BytesIO()
    out = EventWriter(io.TextIOWrapper(raw, encoding="utf-8", write_through=True), "jsonl")
    result, export = analyze_journal(str(fifo), None, RunOptions(), NOW, (out.write, columns_writer(out)))
    writer.join()
    want = reference(ExportSource(str(path), None, Selection.of(None)), RunOptions())
    assert raw.getvalue() == want and result.reported == len(want.splitlines()) == 6
    assert export.read.size == path.stat().st_size


def _analyze(journal: str, data: bytes, limit: int | None = None) -> subprocess.CompletedProcess[bytes]:
    def limited() -> None:
        if limit is not None:  # files this process writes end there (the pipes it reads and writes do not)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "logstack", "analyze", "--journal", journal, "--format", "jsonl"],
        input=data,
        capture_output=True,
        check=False,
        preexec_fn=limited,
    )


def test_standard_input_the_columns_refuse_loses_nothing(tmp_path):
    path = _refused_export(tmp_path)
    want = reference(ExportSource(str(path), None, Selection.of(None)), RunOptions())
    for journal in ("-", "/dev/stdin"):
        got = _analyze(journal, path.read_bytes())
        assert got.returncode == 0, got.stderr
        assert got.stdout == want and len(want.splitlines()) == 6


def test_where_the_input_cannot_be_kept_only_a_second_read_is_an_error(tmp_path):
    """TMPDIR full (here: a file size limit of 2 KB): a run the columns answer reads the pipe once and is whole;
    one they refuse cannot read it again, and says so in one line."""
    path = _refused_export(tmp_path)
    want = reference(ExportSource(str(path), None, Selection.of(None)), RunOptions())
    assert len(path.read_bytes()) > 2048
    refused = _analyze("-", path.read_bytes(), limit=2048)
    assert refused.returncode == ExitStatus.RUNTIME_FAILURE
    assert refused.stderr.decode().count("\n") == 1
    assert "the input cannot be read again: standard input or a pipe is kept in TMPDIR" in refused.stderr.decode()
    assert "File too large" in refused.stderr.decode()
    assert want.startswith(refused.stdout)  # what was written before is what the whole run writes first
    fine = path.read_bytes().splitlines(keepends=True)[:5]  # the failures alone: the columns answer
    answered = _analyze("-", b"".join(fine), limit=1024)
    assert answered.returncode == 0, answered.stderr
    assert len(answered.stdout.splitlines()) == 5


@hypothesis.given(
    data=st.binary(max_size=5000),
    pieces=st.lists(st.integers(1, 700), min_size=1, max_size=30),
    first=st.integers(0, 6000),
)
@hypothesis.settings(max_examples=200, deadline=None)
def test_every_read_of_a_spool_gives_the_pipe_from_its_start(data, pieces, first):
    """However the pipe hands out its bytes and wherever the first read stops, each read gives all of them."""
    pipe = _Trickle(data, pieces)
    spool = Spool(pipe)  # type: ignore[arg-type]
    try:
        assert spool.reader().read(first) == data[:first]
        assert spool.reader().read() == data
        assert spool.kept(0, len(data) + 1) == data
        assert spool.reader().read() == data
    finally:
        spool.close()


class _Trickle:
    """A pipe giving at most the next of `pieces` bytes a read (then the rest whole)."""

    def __init__(self, data: bytes, pieces: list[int]) -> None:
        self._data, self._pieces, self._at = data, list(pieces), 0

    def read1(self, size: int) -> bytes:
        step = min(size, self._pieces.pop(0) if self._pieces else size)
        chunk = self._data[self._at : self._at + step]
        self._at += len(chunk)
        return chunk


def test_a_fifo_written_again_after_its_end_is_not_read_on(tmp_path):
    """The first read met the pipe's end: a second read gives what was kept and stops there, as one read of the
    FIFO would (another writer opening it meanwhile is another input)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = _fed(fifo, b"first\n")
    with fifo.open("rb") as pipe:
        spool = Spool(pipe)
        try:
            assert spool.reader().read() == b"first\n"
            writer.join()
            with fifo.open("wb") as late:  # our read end is open: this does not wait
                late.write(b"second\n")
            assert spool.reader().read() == b"first\n"
        finally:
            spool.close()


def _without_a_temporary_directory(data: bytes) -> subprocess.CompletedProcess[bytes]:
    """`analyze --journal -` where no directory `tempfile` looks at takes a file: /tmp and /var/tmp read-only (in
    a mount namespace of its own), TMPDIR missing, the working directory /tmp."""
    script = [
        "set -e",
        "for d in /tmp /var/tmp; do [ -d $d ] && mount --bind $d $d && mount -o remount,bind,ro $d; done",
        "cd /tmp",
        f"exec {sys.executable} -m logstack analyze --journal - --format jsonl",
    ]
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "TMPDIR": "/nonexistent", "PYTHONPATH": root, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", "\n".join(script)], input=data, capture_output=True, env=env, check=False
    )


def test_with_no_temporary_directory_only_a_second_read_is_an_error(tmp_path):
    path = _refused_export(tmp_path)
    fine = b"".join(path.read_bytes().splitlines(keepends=True)[:5])  # the failures alone: the columns answer
    answered = _without_a_temporary_directory(fine)
    assert answered.returncode == 0, answered.stderr
    assert len(answered.stdout.splitlines()) == 5
    refused = _without_a_temporary_directory(path.read_bytes())
    assert refused.returncode == ExitStatus.RUNTIME_FAILURE, refused.stderr
    message = refused.stderr.decode()
    assert message.count("\n") == 1 and "the input cannot be read again" in message
    assert "No usable temporary directory" in message


def test_standard_input_closed_is_named():
    got = subprocess.run(
        [sys.executable, "-m", "logstack", "analyze", "--journal", "-"], stdin=subprocess.DEVNULL, capture_output=True
    )
    assert got.returncode == 0  # empty, not closed
    closed = subprocess.run(
        [sys.executable, "-m", "logstack", "analyze", "--journal", "-"],
        capture_output=True,
        preexec_fn=lambda: os.close(0),  # `<&-`
    )
    assert closed.returncode == ExitStatus.BAD_INPUT
    assert closed.stderr.decode().strip() == "logstack: error: --journal -: standard input is closed"
