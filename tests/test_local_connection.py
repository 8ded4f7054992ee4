"""The `local` way to reach a machine: this machine, through the same interface as SSH. Its commands run
for real here, its file reader reads real files, and `logstack facts` on a host marked `connection: local`
reads this machine's facts with no SSH at all."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import threading
from pathlib import Path

import pytest
import yaml

from logstack.base.errors import RuntimeFailure
from logstack.connection.base import Target
from logstack.connection.local import LocalConnection
from logstack.connection.registry import connect
from logstack.deploy.apply import inspect
from logstack.render.rendered import RenderedFile
from tests.conftest import EXAMPLE, invoke

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="runs commands as root without sudo")
LOCAL = Target("here", "localhost", transport="local")


def _file(path: Path, content: bytes) -> RenderedFile:
    return RenderedFile("hosts/here", str(path), content, "root", "root", 0o640, None, False)


def test_the_registry_opens_a_local_connection_without_ssh(tmp_path):
    conn = connect(LOCAL, tmp_path / "no-known-hosts")
    assert isinstance(conn, LocalConnection)
    assert not (tmp_path / "no-known-hosts").exists()


@root_only
def test_commands_run_here_with_their_status_output_and_errors():
    with connect(LOCAL, Path("/nonexistent")) as conn:
        status, out, err = conn.run("printf '%s' \"$1\"; echo oops >&2; exit 3", check=False)
        assert (status, out, err) == (3, b"", b"oops\n")  # no $1: the script is run as it is
        assert conn.run("cat", stdin=b"in")[1] == b"in"
        with pytest.raises(RuntimeFailure, match=r"here: remote command failed \(5\): broken"):
            conn.run("echo broken >&2; exit 5")


@root_only
def test_inspect_reads_files_here_as_it_does_over_sftp(tmp_path):
    same = tmp_path / "same.conf"
    same.write_bytes(b"kept\n")
    same.chmod(0o640)
    other = tmp_path / "other.conf"
    other.write_bytes(b"longer than the rendered one\n")
    fifo = tmp_path / "fifo.conf"
    os.mkfifo(fifo)  # a FIFO where a file belongs must not hang inspection
    files = [
        _file(same, b"kept\n"),
        _file(other, b"new\n"),
        _file(fifo, b"x\n"),
        _file(tmp_path / "missing.conf", b"y\n"),
    ]
    done: dict[str, object] = {}
    worker = threading.Thread(target=lambda: done.setdefault("state", inspect(LocalConnection(LOCAL), files)))
    worker.start()
    worker.join(10)
    assert "state" in done, "inspection hung on a FIFO"
    state = done["state"]
    assert state.files[str(same)].sha256 == hashlib.sha256(b"kept\n").hexdigest()
    assert state.files[str(same)].mode == 0o640 and state.files[str(same)].owner == "root"
    assert state.files[str(other)].sha256 == f"size:{other.stat().st_size}"
    assert str(fifo) not in state.files and str(tmp_path / "missing.conf") not in state.files
    assert state.dirs[str(tmp_path)].owner == "root"


@root_only
def test_facts_of_a_host_marked_local_are_this_machines(tmp_path, runner):
    site = tmp_path / "site"
    site.mkdir()
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["hosts"] = [{"name": "here", "address": "127.0.0.1", "connection": "local"}]
    doc["groups"] = {}
    (site / "inventory.yaml").write_text(yaml.safe_dump(doc))
    result = invoke(runner, "facts", "here", "-i", site / "inventory.yaml", "--format", "json")
    assert result.exit_code == 0, result.output
    (found,) = json.loads(result.output)
    assert found["error"] is None
    assert found["facts"]["arch"] == platform.machine()
    os_release = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    assert found["facts"]["os_id"] == os_release["ID"].strip('"')
    assert (site / "state" / "facts" / "here.json").exists()  # cached like any machine's


def test_the_inventory_takes_only_known_ways_to_reach_a_host(tmp_path, runner):
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["hosts"][0]["connection"] = "telnet"
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = invoke(runner, "render", "-i", path, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert "hosts" in result.output and "connection" in result.output and "telnet" in result.output


def _inventory(tmp_path, hosts):
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["hosts"], doc["groups"] = hosts, {}
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_only_one_host_is_this_machine_and_it_takes_no_ssh_settings(tmp_path, runner):
    two = _inventory(
        tmp_path,
        [
            {"name": "a", "address": "127.0.0.1", "connection": "local"},
            {"name": "b", "address": "127.0.0.2", "connection": "local"},
        ],
    )
    result = invoke(runner, "render", "-i", two, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "hosts[1].connection" in result.output and "one host" in result.output
    ssh = _inventory(
        tmp_path, [{"name": "a", "address": "db7.example.com", "connection": "local", "ssh": {"port": 2222}}]
    )
    result = invoke(runner, "render", "-i", ssh, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "no ssh settings" in result.output


def test_trust_host_of_this_machine_pins_nothing(tmp_path, runner):
    path = _inventory(tmp_path, [{"name": "a", "address": "127.0.0.1", "connection": "local"}])
    result = invoke(runner, "trust-host", "a", "-i", path)
    assert result.exit_code == 0 and "this machine" in result.output
    assert not (tmp_path / "known_hosts").exists()


@pytest.mark.parametrize("manager", ["./evil", "bin/systemctl", "../systemctl"])
def test_a_service_manager_is_a_command_name_or_an_absolute_path(tmp_path, runner, manager):
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["service_manager"] = manager
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = invoke(runner, "render", "-i", path, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "service_manager" in result.output


@root_only
def test_a_command_cannot_make_logstack_hold_its_output_without_bound(monkeypatch):
    from logstack.connection import local

    monkeypatch.setattr(local, "MAX_OUTPUT", 1000)
    with pytest.raises(RuntimeFailure, match="printed more than 1000 bytes"):
        LocalConnection(LOCAL).run("head -c 50000000 /dev/zero", check=False)


@root_only
def test_a_directory_or_fifo_at_a_managed_or_pending_path_is_skipped(tmp_path, monkeypatch):
    from logstack.deploy import apply

    (tmp_path / "dir.conf").mkdir()
    pending = tmp_path / "pending"
    os.mkfifo(pending)
    monkeypatch.setattr(apply, "PENDING", str(pending))
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        state = inspect(LocalConnection(LOCAL), [_file(tmp_path / "dir.conf", b"x")])
        assert state.files == {} and state.owed == []
    assert len(os.listdir("/proc/self/fd")) <= before + 2  # no descriptor left open
