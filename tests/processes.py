"""Processes the suite starts: each in a process group of its own, ended as a whole, and none left behind.

Every process started during a run inherits the run's marker (an environment variable holding a fresh
token), and every process started through `spawn` leads a session of its own, which all it forks stays in
(an environment can be cleared or overwritten, a session cannot be left without setsid). At the end of the
session the plugin looks for live processes carrying the marker or in one of those sessions: any found is
a fixture that did not clean up, so the run fails naming them, and they are ended so nothing stays behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

MARKER = "LOGSTACK_TEST_RUN"
_SESSIONS: set[int] = set()  # session ids of the processes spawn started (each leads its own)


def spawn(args: list[str], **kwargs) -> subprocess.Popen:
    """Start `args` as the leader of a new process group (so stop_group ends it and all it forked)."""
    process = subprocess.Popen(args, start_new_session=True, **kwargs)
    _SESSIONS.add(process.pid)
    return process


def stop_group(process: subprocess.Popen, timeout: float = 5) -> None:
    """End a spawned process and every process of its group: TERM, then KILL after `timeout`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout)
            break
        except subprocess.TimeoutExpired:
            continue
    # the leader may be gone while members of its group live on
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def marked_processes(token: str, sessions: set[int] | frozenset[int] = frozenset()) -> list[tuple[int, str]]:
    """Live processes (pid, command line) carrying this run's marker or in one of `sessions`, except this one."""
    needle = f"{MARKER}={token}".encode()
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] == "Z":  # exited, waiting for its parent to read the status
                continue
            if int(fields[3]) not in sessions and needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError, ValueError):
            continue
        found.append((int(entry.name), cmdline))
    return found


def pytest_configure(config: pytest.Config) -> None:
    # A fresh token per session: an inner pytest run (pytester) gets its own.
    os.environ[MARKER] = uuid.uuid4().hex


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    token = os.environ.get(MARKER, "")
    leaked = marked_processes(token, _SESSIONS)
    deadline = time.monotonic() + 3
    while leaked and time.monotonic() < deadline:  # a teardown's last TERM may still be landing
        time.sleep(0.1)
        leaked = marked_processes(token, _SESSIONS)
    if not leaked:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"processes started by the test suite are still running: {len(leaked)}"]
    lines += [f"  pid {pid}: {cmd[:200]}" for pid, cmd in leaked]
    if reporter is not None:
        reporter.write_line("\n".join(lines), red=True)
    for pid, _ in leaked:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
