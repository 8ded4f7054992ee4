"""What a hostile or broken target, store or local user can send back: never a traceback, a write through a
link, a false success or a terminal control sequence."""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from logstack.base.errors import BadInputError, RuntimeFailure
from logstack.cli import app
from logstack.deploy.apply import _id_names, _stat_lines
from logstack.deploy.plan import apply_script, make_plan
from logstack.evidence.receiver_metrics import sink_metrics
from logstack.pki import PKI
from logstack.render.rendered import RenderedFile
from logstack.site.host_facts import load_facts
from logstack.site.inventory import load_inventory
from logstack.store.greptime import ttl_seconds
from tests.conftest import EXAMPLE, invoke
from tests.fleet_site import make_fleet

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="test hosts need root (mount namespaces, sshd)")


def test_restart_follows_enable_line_by_line():
    f = RenderedFile("hosts/a", "/etc/vector/vector.yaml", b"x", "root", "vector", 0o640, "vector", False)
    script = apply_script(make_plan("a", [f], {}))
    # under `set -e` a failing `enable` in `enable && restart` would skip the restart and still succeed
    assert "systemctl enable vector\nsystemctl restart vector" in script and "&& systemctl restart" not in script
    assert "rm -f -- /etc/vector/vector.yaml.logstack-prev; if [ -f /etc/vector/vector.yaml ] && [ ! -L" in script


def test_unreadable_answers_are_passed_over():
    assert _stat_lines("GARBAGE\n644 root root /etc/x\n9x9 a b /y\n") == [(0o644, "root", "root", "/etc/x")]

    class Handle:
        def __init__(self, text: bytes) -> None:
            self.text = text

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            return self.text

    class SFTP:
        def open(self, path):
            return Handle(b"evil:x:\xc2\xb2:0::/:/bin/sh\nroot:x:0:0::/root:/bin/sh\n")

    assert _id_names(SFTP(), "/etc/passwd") == {0: "root"}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "cache",
    [
        '{"systemd": 1e400}',
        '{"systemd": Infinity}',
        "[" * 100_000 + "]" * 100_000,
        '{"os_id": "x\\nsystemd=systemd 258"}',
        '{"systemd": true}',
        '{"arch": "x86_64\\u001b[2J"}',
    ],
)
def test_a_hostile_facts_cache_is_a_one_line_error(tmp_path, cache):
    path = tmp_path / "state" / "facts" / "web1.json"
    path.parent.mkdir(parents=True)
    path.write_text(cache)
    with pytest.raises(BadInputError, match="facts cache"):
        load_facts(tmp_path, "web1")


@pytest.mark.parametrize("name", ["server", "logstack-init-server", "logstack-monitor"])
def test_names_logstack_uses_itself_are_not_host_names(runner, tmp_path, name):
    text = EXAMPLE.read_text().replace("  - name: web2\n", f"  - name: {name}\n", 1)
    inv = tmp_path / "inventory.yaml"
    inv.write_text(text)
    result = runner.invoke(app, ["render", "-i", str(inv), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and f"'{name}' is reserved" in result.stderr


def test_a_store_answer_cannot_crash_the_retention_check():
    assert ttl_seconds("2months 29days 2h 52m 48s") == 90 * 86400
    with pytest.raises(RuntimeFailure):
        ttl_seconds("9" * 400 + "s")
    with pytest.raises(RuntimeFailure):
        ttl_seconds("3 fortnights")


def test_hostile_metrics_neither_crash_nor_stall_nor_hide_loss():
    started = time.perf_counter()
    text = (
        "m{"
        + "a" * 40_000
        + "} 1\n"  # quadratic for a naive label scan
        + ("m{" + "a" * 4000 + "} 1\n") * 500
        + 'vector_component_discarded_events_total{component_id="greptimedb",intentional="false"} nan\n'
        + 'vector_component_discarded_events_total{component_id="greptimedb",intentional="false"} 1e999\n'
        + 'vector_component_discarded_events_total{component_id="greptimedb",intentional="false"} -500\n'
        + 'vector_component_discarded_events_total{component_id="greptimedb",intentional="false"} 500\n'
    )
    assert sink_metrics(text) == (500, 0, None)
    assert time.perf_counter() - started < 2


def test_errors_never_reach_the_terminal_as_control_sequences(runner, tmp_path):
    inv = tmp_path / "ev\x1b]0;owned\x07il.yaml"
    result = runner.invoke(app, ["render", "-i", str(inv), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr and "\\x1b]0;owned\\x07" in result.stderr


@pytest.fixture
def host(tmp_path, ssh_client_key):
    site = make_fleet(tmp_path, ssh_client_key, ["web1"], first_octet=120)
    PKI.for_inventory(load_inventory(site.inventory)).init_ca()
    yield site
    site.stop()


@root_only
def test_a_remote_command_cannot_make_logstack_read_for_ever(host, monkeypatch):
    from logstack.connection import ssh
    from logstack.connection.registry import connect
    from logstack.connection.targets import host_target, known_hosts_path

    monkeypatch.setattr(ssh, "MAX_OUTPUT", 1000)
    inv = load_inventory(host.inventory)
    with (
        connect(host_target(inv.host("web1")), known_hosts_path(inv)) as conn,
        pytest.raises(RuntimeFailure, match="printed more than 1000 bytes"),
    ):
        conn.run("head -c 5000 /dev/zero", check=False)


@root_only
def test_links_planted_while_a_directory_was_someone_elses_are_never_written_through(host, runner):
    assert invoke(runner, "enroll-host", "--no-verify", "web1", "-i", host.inventory).exit_code == 0
    # /etc/vector/tls was left to another account, which planted links where the next run keeps copies
    setup = host.ssh(
        "web1",
        "install -d -o nobody /var/lib/loot && chown nobody /etc/vector/tls && "
        "su -s /bin/sh nobody -c 'touch /var/lib/loot/k && "
        "ln -s /var/lib/loot/k /etc/vector/tls/client.key.logstack-prev && "
        "ln -s /etc/passwd /etc/vector/tls/client.pem.logstack-prev'",
    )
    assert setup.returncode == 0, setup.stderr
    passwd = host.ssh("web1", "cat /etc/passwd").stdout
    host.inventory.write_text(host.inventory.read_text().replace("cmdb_id: 1000", "cmdb_id: 1999"))
    assert invoke(runner, "certs", "renew", "web1", "-i", host.inventory).exit_code == 0
    assert host.ssh("web1", "touch /var/lib/vector/stand-in-crash").returncode == 0  # the run rolls back too
    result = invoke(runner, "enroll-host", "--no-verify", "web1", "-i", host.inventory)
    assert result.exit_code == 3 and "did not stay up" in result.stderr
    assert host.ssh("web1", "cat /var/lib/loot/k").stdout == ""  # no key copied through the link
    assert host.ssh("web1", "cat /etc/passwd").stdout == passwd  # no file overwritten through a link
    for name in ("client.key", "client.pem"):
        kind = host.ssh("web1", f"stat -c %F /etc/vector/tls/{name}").stdout.strip()
        assert kind == "regular file", (name, kind)  # rollback put back files, not links
    assert re.match(r"^755 root", host.ssh("web1", "stat -c '%a %U' /etc/vector/tls").stdout)
    assert json.loads(invoke(runner, "facts", "--cached", "--format", "json", "web1", "-i", host.inventory).stdout)
