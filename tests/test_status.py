"""`logstack status` against a real sshd server, MariaDB for the heartbeat rows, and openssl s_server as
Vector's TLS port."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import socket
import time

import pytest
import yaml

from logstack.integrity.keyring import keyring_path, load_keyring
from logstack.integrity.signatures import sign_row
from logstack.pki import PKI
from logstack.site.inventory import load_inventory
from tests.conftest import invoke
from tests.fleet_site import make_fleet
from tests.mariadb import PASSWORD
from tests.tlsutil import openssl_server

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="test hosts need root (mount namespaces, sshd)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _heartbeat(host: str, age: dt.timedelta) -> dict:
    when = (dt.datetime.now(dt.UTC) - age).replace(tzinfo=None)
    return {
        "greptime_timestamp": when,
        "logstack_host": host,
        "SYSLOG_IDENTIFIER": "logstack-heartbeat",
        "message": "heartbeat",
    }


def _signed(fleet, row: dict, signer: str | None = None) -> dict:
    """The row as a sender signs it with the key deployed on it (the rendered VRL's computation, which
    test_signing proves with the real VRL engine)."""
    host = fleet.hosts[signer or row["logstack_host"]]
    key = bytes.fromhex(host.path("/etc/vector/secrets/signing_key").read_text().strip())
    # journald stamps the machine the line was written on: the id enrolment bound to the host's key
    machines = load_keyring(keyring_path(load_inventory(fleet.inventory).site_dir)).machines
    name = signer or row["logstack_host"]
    return sign_row({"_MACHINE_ID": machines[name][0], **row} if machines.get(name) else row, key)


def _prepare(fleet):
    """The analyst password MariaDB knows, a CA and a server certificate."""
    secrets_file = fleet.inventory.parent / "secrets.yaml"
    secrets = yaml.safe_load(secrets_file.read_text())
    secrets["greptimedb"]["analyst"] = PASSWORD
    secrets_file.write_text(yaml.safe_dump(secrets))
    inv = load_inventory(fleet.inventory)
    pki = PKI.for_inventory(inv)
    pki.init_ca()
    pki.issue_server(inv)
    return pki


def test_status_finds_silent_hosts_and_checks_the_server(
    tmp_path, ssh_client_key, mariadb, greptime_api, vector_metrics, runner
):
    port = _free_port()
    fleet = make_fleet(
        tmp_path, ssh_client_key, ["web1", "web2"], server=True, first_octet=50, extra={"server.vector_port": port}
    )
    stack = contextlib.ExitStack()  # the receiver's TLS port, once the certificates exist
    try:
        vector_metrics.start(fleet.inventory)
        pki = _prepare(fleet)
        assert invoke(runner, "enroll-host", "--no-verify", "--all", "-i", fleet.inventory).exit_code == 0
        bundle = tmp_path / "ca.pem"
        bundle.write_bytes(pki.ca_bundle_pem())
        server_tls = (pki.cert_path("server"), pki.key_path("server"))
        stack.enter_context(openssl_server(fleet.hosts["server"].address, port, *server_tls, bundle))
        mariadb.create_logs("vector")
        mariadb.insert(
            "vector",
            [
                _signed(fleet, _heartbeat("web1", dt.timedelta(seconds=30))),
                _signed(fleet, _heartbeat("web2", dt.timedelta(minutes=25))),
                {
                    "greptime_timestamp": (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3)).replace(tzinfo=None),
                    "logstack_host": "web1",
                    "SYSLOG_IDENTIFIER": "sshd-session",
                    "message": "Accepted publickey",
                },
            ],
        )
        args = ["status", "-i", fleet.inventory, "--db-port", str(mariadb.port)]
        before = _snapshot(fleet.inventory.parent)
        result = invoke(runner, *args, "--format", "json")
        # status only reads: its handshake certificate is minted in memory, the site is untouched
        assert _snapshot(fleet.inventory.parent) == before
        assert result.exit_code == 1, result.output
        report = json.loads(result.stdout)
        hosts = {h["name"]: h for h in report["hosts"]}
        assert hosts["web1"]["problems"] == [] and hosts["web1"]["enrolled"] is True
        assert 25 <= hosts["web1"]["heartbeat_age_seconds"] < 120 and hosts["web1"]["last_event"]
        assert hosts["web2"]["problems"][0].startswith("silent for ")
        assert report["server"]["greptimedb"] == "ok"
        assert report["server"]["vector_tls"].startswith("ok"), report["server"]
        assert report["server"]["data_dir_free_bytes"] > 0
        assert report["problems"] == [f"web2: {hosts['web2']['problems'][0]}"]
        assert greptime_api[0][:2] == ("GET", "/health")

        # a heartbeat for web2 that web1's key signed, and one no key signed, prove nothing about web2
        forged = _signed(fleet, {**_heartbeat("web2", dt.timedelta(seconds=5)), "logstack_host": "web1"})
        mariadb.insert("vector", [{**forged, "logstack_host": "web2"}, _heartbeat("web2", dt.timedelta(seconds=4))])
        still = json.loads(invoke(runner, *args, "--format", "json").stdout)
        web2 = next(h for h in still["hosts"] if h["name"] == "web2")
        assert web2["rejected_heartbeats"] == 2
        assert "2 recent heartbeats failed signature checks" in web2["problems"]
        assert any(p.startswith("silent for ") for p in web2["problems"])
        mariadb.create_logs("vector")
        mariadb.insert("vector", [_signed(fleet, _heartbeat("web1", dt.timedelta(seconds=30)))])
        mariadb.insert("vector", [_signed(fleet, _heartbeat("web2", dt.timedelta(seconds=5)))])
        healthy = invoke(runner, *args)
        assert healthy.exit_code == 0, healthy.output
        assert "GreptimeDB ok" in healthy.stdout and "PROBLEM" not in healthy.stdout
        expiring = invoke(runner, *args, "--within", "400d")
        assert expiring.exit_code == 1
        assert "PROBLEM web1: certificate expires in" in expiring.stdout
        assert "PROBLEM server: server certificate" in expiring.stdout
        # GreptimeDB refused batches: the receiver's own counters make the loss a finding
        vector_metrics.text = (
            'vector_component_discarded_events_total{component_id="greptimedb",component_kind="sink",'
            'component_type="greptimedb_logs",intentional="false"} 1500 1764560000000\n'
            'vector_component_errors_total{component_id="greptimedb",error_type="request_failed",stage="sending"} 3\n'
            'vector_buffer_size_bytes{buffer_id="greptimedb",component_id="greptimedb",stage="0"} 950\n'
            'vector_buffer_max_size_bytes{buffer_id="greptimedb",component_id="greptimedb",stage="0"} 1000\n'
        )
        lossy = invoke(runner, *args, "--format", "json")
        assert lossy.exit_code == 1
        server = json.loads(lossy.stdout)["server"]
        assert (server["sink_discarded"], server["sink_errors"], server["buffer_percent"]) == (1500, 3, 95.0)
        found = "\n".join(json.loads(lossy.stdout)["problems"])
        assert "the GreptimeDB sink discarded 1500 events since Vector started" in found
        assert "disk buffer is 95.0% full" in found
    finally:
        stack.close()
        fleet.stop()


def _snapshot(site) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(site)): (p.read_bytes() if p.is_file() else b"", p.stat().st_mode)
        for p in sorted(site.rglob("*"))
    }


def test_status_with_the_vector_port_closed(tmp_path, ssh_client_key, mariadb, greptime_api, vector_metrics, runner):
    fleet = make_fleet(
        tmp_path, ssh_client_key, ["web1"], server=True, first_octet=55, extra={"server.vector_port": _free_port()}
    )
    try:
        vector_metrics.start(fleet.inventory)
        _prepare(fleet)
        mariadb.create_logs("vector")
        result = invoke(runner, "status", "-i", fleet.inventory, "--db-port", str(mariadb.port))
        assert result.exit_code == 1
        assert "PROBLEM server: Vector TLS port failed" in result.stdout
        assert "PROBLEM web1: not enrolled" in result.stdout
        # no init-server ran here: the key ring is missing, which fails closed as a finding, not a crash
        assert "signing-keys.json: no signing key ring, so no row can be proven" in result.stdout
        # a ring that is there but unusable is a finding too, and every other check still runs
        ring = load_inventory(fleet.inventory).site_dir / "signing-keys.json"
        ring.mkdir()
        broken = invoke(runner, "status", "-i", fleet.inventory, "--db-port", str(mariadb.port))
        assert broken.exit_code == 1, broken.output
        assert "signing-keys.json: not a regular file" in broken.stdout
        assert "PROBLEM web1: not enrolled" in broken.stdout
    finally:
        fleet.stop()


def test_enroll_waits_for_heartbeats_of_the_new_configuration(tmp_path, ssh_client_key, mariadb, runner):
    fleet = make_fleet(
        tmp_path, ssh_client_key, ["web1", "web2"], server=True, first_octet=60, extra={"senders.heartbeat_interval": 5}
    )
    try:
        _prepare(fleet)
        mariadb.create_logs("vector")
        assert invoke(runner, "enroll-host", "--no-verify", "--all", "-i", fleet.inventory).exit_code == 0
        digests = {
            name: re.search(
                r'\.logstack_config = "([0-9a-f]{16})"', fleet.hosts[name].path("/etc/vector/vector.yaml").read_text()
            )[1]
            for name in ("web1", "web2")
        }
        beat = _heartbeat("web1", dt.timedelta(seconds=2))
        mariadb.insert("vector", [_signed(fleet, {**beat, "logstack_config": digests["web1"]})])
        # web2 only ever sent heartbeats of another configuration, and one of this one hours ago (it is down now);
        # a heartbeat of web2's new configuration that web1's key signed, or none, proves nothing
        new2 = {**_heartbeat("web2", dt.timedelta(seconds=2)), "logstack_config": digests["web2"]}
        mariadb.insert("vector", [_signed(fleet, {**new2, "logstack_config": "0" * 16})])
        mariadb.insert(
            "vector",
            [_signed(fleet, {**_heartbeat("web2", dt.timedelta(hours=3)), "logstack_config": digests["web2"]})],
        )
        mariadb.insert("vector", [{**_signed(fleet, {**new2, "logstack_host": "web1"}), "logstack_host": "web2"}, new2])
        args = ["enroll-host", "--all", "--verify-timeout", "1", "--db-port", str(mariadb.port), "-i", fleet.inventory]
        started = time.monotonic()
        result = invoke(runner, *args)
        assert time.monotonic() - started < 30
        assert result.exit_code == 3, result.output
        assert "delivering" in result.stdout
        assert re.search(r"web1 .* ok .* yes", result.stdout), result.stdout
        assert "web2: no heartbeat of the new configuration reached GreptimeDB within 6 s" in result.stderr
        mariadb.insert(
            "vector",
            [_signed(fleet, {**_heartbeat("web2", dt.timedelta(seconds=1)), "logstack_config": digests["web2"]})],
        )
        assert invoke(runner, *args).exit_code == 0
    finally:
        fleet.stop()


def test_sink_metrics_read_only_the_greptimedb_sinks_unintentional_losses():
    from logstack.evidence.receiver_metrics import sink_metrics

    text = (
        "# HELP vector_component_discarded_events_total x\n"
        'vector_component_discarded_events_total{component_id="greptimedb",intentional="false"} 4\n'
        'vector_component_discarded_events_total{component_id="greptimedb",intentional="true"} 100\n'
        'vector_component_discarded_events_total{component_id="senders",intentional="false"} 9\n'
        'vector_component_errors_total{component_id="greptimedb",error_type="x"} 1\n'
        'vector_component_errors_total{component_id="greptimedb",error_type="y"} 2\n'
        "garbage line {\n"
        'vector_buffer_byte_size{component_id="greptimedb"} 10\n'
        'vector_buffer_max_byte_size{component_id="greptimedb"} 40\n'
    )
    assert sink_metrics(text) == (4, 3, 25.0)
    assert sink_metrics("") == (0, 0, None)
