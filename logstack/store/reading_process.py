"""The store's rows read into columns in a process of their own: pymysql decodes rows in Python, as the rows'
checks do, and in the analysing process they would take turns with the analysis for the interpreter lock; in a
child they run beside it. The child is told what to read on its standard input (the connection, its password
and the key ring go through that pipe, never the command line or the environment: GREPTIMEDB_PASSWORD is taken
out of the child's) and answers on its standard output with the frames `DatabaseSource.frames` gives, a page at
a time, each as an Arrow IPC stream, or with the error that ended the read: the reader's own, or a defect (where
it happened, never its message)."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import queue
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from logstack.base.errors import BadInputError, InternalError, LogstackError, RuntimeFailure, defect
from logstack.integrity.signatures import Verifier
from logstack.store.greptime import PASSWORD_VARIABLE, DatabaseConfig
from logstack.store.reader import FRAME_ROWS, FRAME_TEXT, DatabaseSource, joined

if TYPE_CHECKING:
    import polars as pl

# The child imports the logstack its parent runs (a checkout or a venv's), found after the standard library (a
# module in site-packages named like one of its modules does not take its place), and nothing from the working
# directory (-P: a `polars.py` a local user left in /tmp), which `python -c` would search first.
_ROOT = str(Path(__file__).resolve().parents[2])
_CHILD = (
    "import sys, sysconfig; std = {sysconfig.get_path('stdlib'), sysconfig.get_path('platstdlib')}; "
    "at = max([n + 1 for n, p in enumerate(sys.path) if p in std or p.endswith('lib-dynload')], default=0); "
    "sys.path.insert(at, sys.argv[1]); from logstack.store.reading_process import main; main()"
)
IN_PROCESS = 20_000  # rows a window may hold and be read in the analysing process
AHEAD = 8  # pages read ahead of the analysis (40k rows of 5000-row pages: a batch)
_HEAD = struct.Struct(">cQ")  # a record: its kind (F: a frame, E: the error that ended the read) and its length


@dataclass(frozen=True)
class Request:
    """What the child reads: `DatabaseSource(config, page_size, verifier).frames(start, end)`, a page at a time."""

    config: DatabaseConfig
    page_size: int
    verifier: Verifier | None
    start: int | None
    end: int | None


def _flags() -> list[str]:
    """The interpreter's flags that keep the environment and the user's site out, as the parent was given them."""
    if sys.flags.isolated:
        return ["-I"]
    return ["-P", *(["-E"] if sys.flags.ignore_environment else []), *(["-s"] if sys.flags.no_user_site else [])]


def store_frames(db: DatabaseSource, start: int | None, end: int | None) -> Iterator[pl.DataFrame]:
    """`db.frames(start, end)`: in a child process, unless the window holds at most IN_PROCESS rows (the timer's
    runs: a child costs about 0.26 s to start, more than reading them here) or they come as Arrow (polars
    decodes them in Rust, beside the analysis)."""
    if db.config.http is None and db.holds_more_than(start, end, IN_PROCESS):
        return frames_in_child(db, start, end)
    return db.frames(start, end)


def frames_in_child(
    db: DatabaseSource, start: int | None, end: int | None, size: int = FRAME_ROWS, text: int = FRAME_TEXT
) -> Iterator[pl.DataFrame]:
    """`db.frames(start, end, size, text)`, read by a child process (a frame a page, joined here: the child
    holds one page at a time). Its errors are the reader's (one line, exit 3); the child is stopped when the
    caller stops reading."""
    return joined(_from_child(db, Request(db.config, db.page_size, db.verifier, start, end)), size, text)


def _from_child(db: DatabaseSource, request: Request) -> Iterator[pl.DataFrame]:
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(
            [sys.executable, *_flags(), "-c", _CHILD, _ROOT, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env={name: value for name, value in os.environ.items() if name != PASSWORD_VARIABLE},
        )
        assert child.stdin is not None and child.stdout is not None
        # a thread empties the pipe as the child fills it, up to AHEAD pages: the child reads on while the
        # analysis works on what it gave (a pipe holds 64 KiB, a page of 5000 rows a few MB)
        pages: queue.Queue[pl.DataFrame | BaseException | None] = queue.Queue(AHEAD)
        drain = threading.Thread(
            target=_drain, args=(child.stdout, pages, db.config.label), name="logstack-store", daemon=True
        )
        try:
            child.stdin.write(pickle.dumps(request))
            child.stdin.close()
            drain.start()
            while (page := pages.get()) is not None:
                if isinstance(page, BaseException):
                    raise page
                yield page
            if (status := child.wait()) != 0:
                why = f"killed by signal {-status}" if status < 0 else _last_line(errors)
                raise RuntimeFailure(_failed(db.config.label, why))
        except BrokenPipeError:
            raise RuntimeFailure(_failed(db.config.label, _last_line(errors))) from None
        finally:
            if child.poll() is None:
                child.kill()
            while drain.is_alive():  # it may wait to put a page: take them until it sees the pipe's end
                with contextlib.suppress(queue.Empty):
                    pages.get(timeout=0.1)
            child.wait()
            child.stdout.close()


def _drain(stream: IO[bytes], pages: queue.Queue[pl.DataFrame | BaseException | None], label: str) -> None:
    """The child's records, as frames (or the error it sent) on `pages`; None at the end."""
    import polars as pl

    try:
        while (record := _record(stream)) is not None:
            kind, body = record
            if kind != b"F":
                pages.put(_error(kind, body.decode("utf-8", errors="replace"), label))
                return
            pages.put(pl.read_ipc_stream(io.BytesIO(body)))
    except BaseException as exc:  # raised where the pages are read
        pages.put(exc)
        return
    pages.put(None)


def _error(kind: bytes, message: str, label: str) -> LogstackError:
    """The error a record of `kind` stands for: the reader's own (B: bad input, E: the store), or a defect."""
    if kind == b"B":
        return BadInputError(message)
    if kind == b"E":
        return RuntimeFailure(message)
    return InternalError(_failed(label, f"internal error: {message}; please report it"))


def _failed(label: str, why: str) -> str:
    return f"database {label}: the reading process failed: {why}"


def _record(stream: IO[bytes]) -> tuple[bytes, bytes] | None:
    """The next record, or None at the end (a record cut short is the end too: the exit status tells)."""
    head = stream.read(_HEAD.size)
    if len(head) < _HEAD.size:
        return None
    kind, length = _HEAD.unpack(head)
    body = stream.read(length)
    return (kind, body) if len(body) == length else None


def _last_line(errors: IO[bytes]) -> str:
    errors.seek(0)
    lines = errors.read()[-4096:].decode("utf-8", errors="replace").strip().splitlines()
    return lines[-1] if lines else "no message"


def serve(source: IO[bytes], out: IO[bytes]) -> None:
    """The child: the request on `source`, the frames (or the error) on `out`."""
    request: Request = pickle.loads(source.read())  # our own parent's, over a pipe only the two of them hold
    try:
        with DatabaseSource(request.config, request.page_size, request.verifier) as db:
            for frame in db.frames(request.start, request.end, size=1):  # a page at a time
                body = io.BytesIO()
                frame.write_ipc_stream(body)
                out.write(_HEAD.pack(b"F", body.getbuffer().nbytes))
                out.write(body.getbuffer())
    except (RuntimeFailure, BadInputError) as exc:
        _send(out, b"B" if isinstance(exc, BadInputError) else b"E", str(exc))
    except Exception as exc:  # a defect: reported as the command line reports one
        _send(out, b"X", defect(exc))
    out.flush()


def _send(out: IO[bytes], kind: bytes, message: str) -> None:
    body = message.encode("utf-8", errors="replace")
    out.write(_HEAD.pack(kind, len(body)) + body)


def main() -> None:
    """The child's entry (`_CHILD`; its second argument the parent's process id)."""
    _end_with_parent(int(sys.argv[2]))
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer)
    except BrokenPipeError:  # the parent stopped reading: nothing is owed to anyone
        os._exit(0)


def _end_with_parent(parent: int) -> None:
    """Killed when the parent ends (Linux's PR_SET_PDEATHSIG): a parent killed while the child waits on a slow
    query leaves no reader holding a connection to the store for the read timeout's five minutes."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent ended before the call above
        os._exit(0)
