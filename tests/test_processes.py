"""The suite's own hygiene: a process a test starts and does not end fails the run and is ended."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import marked_processes, spawn, stop_group

ROOT = Path(__file__).resolve().parents[1]

INNER_CONFTEST = 'pytest_plugins = ["tests.processes"]\n'

INNER_TEST = """
import subprocess
import pytest
from tests.processes import spawn, stop_group

@pytest.fixture
def sleeper():
    process = spawn(["sleep", "300"])
    # an environment cleared, and one overwritten by a process title: the session still tells them
    hidden = spawn(["env", "-i", "sleep", "301"])
    retitled = spawn(["perl", "-e", '$0 = "x" x 4000; sleep 302'])
    yield process
    {teardown}

def test_uses_a_process(sleeper):
    assert sleeper.poll() is None
"""


def _run_inner(pytester: pytest.Pytester, teardown: str) -> subprocess.CompletedProcess[str]:
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=INNER_TEST.format(teardown=teardown))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(pytester.path)],
        capture_output=True,
        text=True,
        cwd=pytester.path,
        env=env,
        timeout=120,
    )


def test_a_fixture_without_teardown_fails_the_run_and_its_process_is_ended(pytester):
    result = _run_inner(pytester, teardown="pass")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "processes started by the test suite are still running: 3" in result.stdout
    assert "sleep 300" in result.stdout and "sleep 301" in result.stdout and "xxxx" in result.stdout
    assert "1 passed" in result.stdout  # the test itself passed: the leak alone fails the run
    # ... and the check ended the leaked process
    pid = int(re.search(r"pid (\d+): sleep 300", result.stdout).group(1))
    assert _gone(pid)


def test_a_fixture_with_teardown_passes(pytester):
    result = _run_inner(pytester, teardown="stop_group(process); stop_group(hidden); stop_group(retitled)")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "still running" not in result.stdout


def _sleepers(token: str) -> list[int]:
    return [pid for pid, cmd in marked_processes(token) if cmd == "sleep 300"]


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def test_stop_group_ends_what_the_leader_forked():
    token = os.environ["LOGSTACK_TEST_RUN"]
    leader = spawn(["sh", "-c", "sleep 300 & sleep 300 & wait"])
    try:
        deadline = time.monotonic() + 5
        while len(_sleepers(token)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        children = _sleepers(token)
        assert len(children) == 2
    finally:
        stop_group(leader)
    assert all(_gone(pid) for pid in children)
