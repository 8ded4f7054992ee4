"""The scaled form deployed over real sshd: the server and two more receivers, an external store behind TLS
(the GreptimeDB stand-in over HTTPS, MariaDB with TLS for its MySQL port)."""

from __future__ import annotations

import os

import pytest
import yaml
from cryptography import x509

from logstack.pki import PKI
from logstack.render.site_files import render_site
from logstack.site.inventory import load_inventory
from logstack.site.secrets import Secrets, load_secrets, secrets_path, write_secrets
from tests.conftest import invoke
from tests.fleet_site import make_fleet
from tests.greptime_stub import external_greptime
from tests.mariadb import PASSWORD
from tests.tlsutil import openssl_handshake, openssl_server

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="test hosts need root (mount namespaces, sshd)")


@pytest.fixture
def scaled(tmp_path, ssh_client_key, mariadb, vector_port):
    """server + receivers logs2, logs3 + sender web1; the store external (HTTPS stand-in, MariaDB over TLS)."""
    with external_greptime(str(mariadb.tls_cert), str(mariadb.tls_key), mariadb.port) as (http_port, requests):
        fleet = make_fleet(
            tmp_path, ssh_client_key, ["web1"], server=True, first_octet=80, receivers=("logs2", "logs3")
        )
        try:
            spec = yaml.safe_load(fleet.inventory.read_text())
            spec["server"]["store"] = {
                "type": "external",
                "http_endpoint": f"https://127.0.0.1:{http_port}",
                "mysql_host": "127.0.0.1",
                "mysql_port": mariadb.port,
                "ca_file": str(mariadb.tls_cert),
            }
            spec["server"]["listen_address"] = "127.0.0.1"
            spec["server"]["vector_port"] = vector_port
            fleet.inventory.write_text(yaml.safe_dump(spec, sort_keys=False))
            secrets = load_secrets(secrets_path(fleet.inventory.parent))
            secrets_path(fleet.inventory.parent).unlink()
            write_secrets(secrets_path(fleet.inventory.parent), Secrets({**secrets.db_passwords, "analyst": PASSWORD}))
            mariadb.create_logs("vector")
            yield fleet, requests
        finally:
            fleet.stop()


def test_two_receivers_and_an_external_store_are_set_up_each_with_its_own_certificate(scaled, runner):
    fleet, requests = scaled
    result = invoke(runner, "init-server", "-i", fleet.inventory)
    assert result.exit_code == 0, result.output
    for name in ("server", "logs2", "logs3"):
        assert f"│ {name}" in result.stdout
    # the tables made once, through the external store's API over TLS; the self-test as each user
    creates = [r[3] for r in requests if r[3] and r[3].startswith("CREATE TABLE")]
    assert len(creates) == 2 and creates[0].startswith("CREATE TABLE IF NOT EXISTS `vector`.`logs`")
    assert creates[1].startswith("CREATE TABLE IF NOT EXISTS `vector`.`logstack_seal_heads`")
    assert "a row written as vector is read as analyst; DELETE is refused (append-only)" in result.stdout
    # the server runs no GreptimeDB of its own; its analysis reads the store over TLS, and ran once
    server = fleet.hosts["server"]
    assert not server.path("/etc/greptime").exists()
    assert "logstack-analyze.service: the first scheduled run succeeded" in result.stdout
    inv = load_inventory(fleet.inventory)
    pki = PKI.for_inventory(inv)
    for name in ("logs2", "logs3"):
        host = fleet.hosts[name]
        config = yaml.safe_load(host.path("/etc/vector/vector.yaml").read_text())
        assert config["sinks"]["greptimedb"]["endpoint"] == inv.server.store.http_endpoint
        assert host.path("/etc/vector/tls/store-ca.pem").read_bytes() == mariadb_cert(inv)
        deployed = host.path("/etc/vector/tls/server.pem").read_bytes()
        assert deployed == pki.cert_path(f"receivers/{name}").read_bytes()
        cert = x509.load_pem_x509_certificate(deployed)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.DNSName) == [f"{name}.example.com"]
    # a sender enrolled now dials the three in order
    assert invoke(runner, "enroll-host", "--no-verify", "web1", "-i", fleet.inventory).exit_code == 0
    sink = yaml.safe_load(fleet.hosts["web1"].path("/etc/vector/vector.yaml").read_text())["sinks"]["central"]
    assert sink["routing"]["endpoints"] == [
        f"logs.example.com:{inv.server.vector_port}",
        f"logs2.example.com:{inv.server.vector_port}",
        f"logs3.example.com:{inv.server.vector_port}",
    ]
    assert sink["routing"]["strategy"] == "failover"
    # each receiver's certificate passes a real mutual-TLS handshake with the sender's, its own name checked
    client = (pki.cert_path("web1"), pki.key_path("web1"))
    bundle = fleet.inventory.parent / "ca-bundle.pem"
    bundle.write_bytes(pki.ca_bundle_pem())
    for name in ("logs2", "logs3"):
        receiver = (pki.cert_path(f"receivers/{name}"), pki.key_path(f"receivers/{name}"))
        ok, transcript = openssl_handshake(bundle, *receiver, *client, bundle, f"{name}.example.com")
        assert ok, transcript
    logs3 = (pki.cert_path("receivers/logs3"), pki.key_path("receivers/logs3"))
    wrong, transcript = openssl_handshake(bundle, *logs3, *client, bundle, "logs2.example.com")
    assert not wrong and "hostname mismatch" in transcript
    # again: nothing to change anywhere, the table not made twice
    again = invoke(runner, "init-server", "-i", fleet.inventory)
    assert again.exit_code == 0, again.output
    assert again.stdout.count("│ ok") == 3


def test_an_unreachable_receiver_fails_alone(scaled, runner):
    fleet, requests = scaled
    fleet.hosts["logs3"].stop()
    result = invoke(runner, "init-server", "-i", fleet.inventory)
    assert result.exit_code == 3
    assert "1 of 2 receivers were not set up: logs3" in result.output
    assert "│ logs3  │ unreachable" in result.stdout
    assert fleet.hosts["logs2"].path("/etc/vector/vector.yaml").exists()
    assert fleet.hosts["server"].path("/etc/vector/vector.yaml").exists()
    assert len([r for r in requests if r[3] and r[3].startswith("CREATE TABLE")]) == 2  # logs, seal heads


def test_a_store_user_without_rights_is_named(scaled, runner, mariadb):
    """Against an external store logstack checks that vector may write and analyst may read."""
    from tests.greptime_stub import FakeGreptime

    fleet, _ = scaled
    FakeGreptime.denied = {"vector"}
    try:
        result = invoke(runner, "init-server", "-i", fleet.inventory)
    finally:
        FakeGreptime.denied = set()
    assert result.exit_code == 3
    assert "the store refused the user vector a write" in result.output


def mariadb_cert(inv) -> bytes:
    return open(inv.server.store.ca_file, "rb").read()


def test_status_checks_every_receivers_port_and_the_external_stores_health(scaled, runner):
    from logstack.evidence.status import ServerStatus, _check_server, _vector_handshake

    fleet, _ = scaled
    assert invoke(runner, "init-server", "-i", fleet.inventory).exit_code == 0
    inv = load_inventory(fleet.inventory)
    pki = PKI.for_inventory(inv)
    bundle = fleet.inventory.parent / "ca-bundle.pem"
    bundle.write_bytes(pki.ca_bundle_pem())
    logs2 = fleet.hosts["logs2"]
    # logs2's Vector port: its certificate, a client certificate required; logs3's: nothing listens
    receiver = (pki.cert_path("receivers/logs2"), pki.key_path("receivers/logs2"))
    with openssl_server(logs2.address, inv.server.vector_port, *receiver, bundle):
        found = _vector_handshake(inv, pki, None)
    assert found["logs2"].startswith("ok (TLS")
    assert found["logs3"].startswith("failed:")
    from logstack.connection.registry import connect
    from logstack.connection.targets import known_hosts_path, server_target

    server = ServerStatus()
    with connect(server_target(inv), known_hosts_path(inv)) as conn:
        _check_server(conn, inv, server, PASSWORD)
    assert server.greptimedb == "ok"  # the external store's /health, over TLS
    assert server.data_dir_free_bytes is None  # no store on the server to measure


def test_an_external_store_is_backed_up_to_s3_and_a_fresh_one_restored_from_it(scaled, runner, mariadb, tmp_path):
    """The way to an external store and back: the store writes the backup to S3 itself; a fresh store is
    restored from there with `logstack restore s3://...`."""
    from tests.greptime_stub import FakeGreptime, _reset
    from tests.s3_standin import ACCESS, REGION, SECRET, fake_s3
    from tests.test_backup import _store, backup_to_s3

    fleet, _ = scaled
    with fake_s3() as endpoint:
        spec = yaml.safe_load(fleet.inventory.read_text())
        spec["server"]["backup"] = {"s3": {"bucket": "audit", "root": "site1", "region": REGION, "endpoint": endpoint}}
        fleet.inventory.write_text(yaml.safe_dump(spec, sort_keys=False))
        with secrets_path(fleet.inventory.parent).open("a") as out:
            out.write(f"backup: {{access_key_id: {ACCESS}, secret_access_key: '{SECRET}'}}\n")
        files = {
            f.path: f
            for f in render_site(
                load_inventory(fleet.inventory),
                secrets=load_secrets(secrets_path(fleet.inventory.parent)),
                include_keys=True,
                hosts=[],
            )
        }
        unit = files["/etc/systemd/system/logstack-backup.service"].content.decode()
        assert "DynamicUser=yes" in unit and "--store-endpoint https://127.0.0.1:" in unit
        assert "--store-ca /etc/logstack/store-ca.pem" in unit and "greptime.service" not in unit
        _store(FakeGreptime, 7)
        store = load_inventory(fleet.inventory).server.store
        admin = load_secrets(secrets_path(fleet.inventory.parent)).db_password("admin")
        done = backup_to_s3(
            runner,
            endpoint,
            tmp_path,
            admin,
            (ACCESS, SECRET),
            "--store-endpoint",
            store.http_endpoint,
            "--store-ca",
            store.ca_file,
        )
        assert done.exit_code == 0, done.output
        location = done.stdout.split(" to ")[1].strip()
        original = list(FakeGreptime.table_rows["`vector`.`logs`"])
        _reset()  # a fresh store
        restored = invoke(runner, "restore", location, "-i", fleet.inventory)
        assert restored.exit_code == 0, restored.output
        assert (
            restored.stdout.strip()
            == "restored 7 rows (created logs, logstack_backups, logstack_seal_heads; the backup holds 7)"
        )
        assert FakeGreptime.table_rows["`vector`.`logs`"] == original
        assert SECRET not in restored.output
        for elsewhere in ("s3://audit/other-site/20261201T020000Z", "s3://elsewhere/site1/20261201T020000Z"):
            refused = invoke(runner, "restore", elsewhere, "-i", fleet.inventory)
            assert refused.exit_code == 2 and "not a backup of this site" in refused.output
