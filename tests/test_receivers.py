"""Several receivers and an external store: what each machine is rendered, and what the inventory refuses."""

from __future__ import annotations

import tomllib

import pytest
import yaml

from logstack.errors import InventoryError
from logstack.inventory import load_inventory
from logstack.render import render_site
from tests.alert_receivers import self_signed
from tests.conftest import EXAMPLE
from tests.reference import check_vector_config, flatten_toml, greptime_reference
from tests.scaled_site import scaled_inventory


@pytest.fixture
def scaled(tmp_path):
    cert, _ = self_signed(tmp_path)
    return scaled_inventory(tmp_path / "site", cert.read_bytes())


def _files(path) -> dict[tuple[str, str], bytes]:
    return {(f.machine, f.path): f.content for f in render_site(load_inventory(path))}


def test_senders_carry_every_receiver_in_order_with_the_strategy(scaled):
    files = _files(scaled)
    sink = yaml.safe_load(files[("hosts/web1", "/etc/vector/vector.yaml")])["sinks"]["central"]
    assert sink["routing"] == {
        "strategy": "failover",
        "endpoints": ["logs.example.com:3003", "logs2.example.com:3003", "logs3.example.com:3003"],
    }
    # one tls block for every endpoint, each verified against its own name (Vector 0.57 src/http.rs:240)
    assert sink["tls"]["verify_hostname"] is True and "server_name" not in sink["tls"]
    for (machine, path), content in files.items():
        if path == "/etc/vector/vector.yaml":
            assert check_vector_config(yaml.safe_load(content)) == [], machine


def test_each_receiver_is_a_machine_of_its_own_writing_to_the_store_over_tls(scaled, tmp_path):
    files = _files(scaled)
    machines = sorted({m for m, _ in files})
    assert machines == ["hosts/db1", "hosts/web1", "hosts/web2", "receivers/logs2", "receivers/logs3", "server"]
    for machine in ("server", "receivers/logs2", "receivers/logs3"):
        config = yaml.safe_load(files[(machine, "/etc/vector/vector.yaml")])
        sink = config["sinks"]["greptimedb"]
        assert sink["endpoint"] == "https://greptime.example.com:4000"
        assert sink["tls"] == {
            "ca_file": "/etc/vector/tls/store-ca.pem",
            "verify_certificate": True,
            "verify_hostname": True,
        }
        assert files[(machine, "/etc/vector/tls/store-ca.pem")] == (scaled.parent / "store-ca.pem").read_bytes()
        assert config["sources"]["senders"]["tls"]["crt_file"] == "/etc/vector/tls/server.pem"
    # the receivers only receive; the server also runs the timers, against the store's MySQL port over TLS
    assert {p for m, p in files if m == "receivers/logs2"} == {
        "/etc/vector/vector.yaml",
        "/etc/systemd/system/vector.service.d/10-logstack.conf",
        "/etc/vector/tls/ca.pem",
        "/etc/vector/tls/server.pem",
        "/etc/vector/tls/server.key",
        "/etc/vector/tls/store-ca.pem",
    }
    server_paths = {p for m, p in files if m == "server"}
    assert not server_paths & {
        "/etc/greptime/standalone.toml",
        "/etc/greptime/users.conf",
        "/etc/systemd/system/greptime.service",
    }
    analyze = files[("server", "/etc/systemd/system/logstack-analyze.service")].decode()
    assert "--db-host greptime.example.com --db-port 4002 --db-tls --db-tls-ca /etc/logstack/store-ca.pem" in analyze
    seal = files[("server", "/etc/systemd/system/logstack-seal.service")].decode()
    assert "--db-host greptime.example.com --db-port 4002 --db-tls" in seal
    # each receiver's certificate is its own (review render: where it will come from)
    assert b"pki/receivers/logs2.pem" in files[("receivers/logs2", "/etc/vector/tls/server.pem")]


def test_object_storage_keys_reach_greptimedb_as_environment_never_in_its_config(tmp_path):
    inv = tmp_path / "inventory.yaml"
    text = EXAMPLE.read_text().replace(
        "    object_storage: null ",
        "    object_storage: {bucket: audit-logs, root: site1, region: eu-central-1,"
        " endpoint: 'https://s3.eu-central-1.amazonaws.com'} ",
    )
    assert text != EXAMPLE.read_text()
    inv.write_text(text)
    files = _files(inv)
    toml = tomllib.loads(files[("server", "/etc/greptime/standalone.toml")].decode())
    assert toml["storage"] == {
        "type": "S3",
        "data_home": "/var/lib/greptime",
        "bucket": "audit-logs",
        "root": "site1",
        "endpoint": "https://s3.eu-central-1.amazonaws.com",
        "region": "eu-central-1",
    }
    known = {*greptime_reference()["keys"], "grpc.server_addr"}  # as test_render says: a GrpcOptions field
    assert sorted(k for k in flatten_toml(toml) if k not in known) == []
    unit = files[("server", "/etc/systemd/system/greptime.service")].decode()
    assert "EnvironmentFile=/etc/greptime/storage.env" in unit
    assert files[("server", "/etc/greptime/storage.env")] == (
        b"GREPTIMEDB_STANDALONE__STORAGE__ACCESS_KEY_ID=<secret:secrets.yaml store.access_key_id>\n"
        b"GREPTIMEDB_STANDALONE__STORAGE__SECRET_ACCESS_KEY=<secret:secrets.yaml store.secret_access_key>\n"
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"server.store": {"type": "standalone"}}, "server.receivers: receivers on other machines need"),
        ({"server.backup": {}}, "server.backup: an external store is backed up by its own tooling"),
        ({"server.receivers": [{"name": "web1", "fqdn": "x.example.com"}]}, "'web1' is taken"),
        ({"server.receivers": [{"name": "server", "fqdn": "x.example.com"}]}, "'server' is taken"),
        ({"server.store.http_endpoint": "http://greptime.example.com:4000"}, "must be an https:// URL"),
        ({"server.store.http_endpoint": "https://greptime.example.com:4000/v1"}, "scheme, host and port only"),
        ({"server.routing": "round_robin"}, "server.routing"),
    ],
)
def test_the_inventory_refuses_what_would_not_work(tmp_path, extra, message):
    cert, _ = self_signed(tmp_path)
    path = scaled_inventory(tmp_path / "site", cert.read_bytes(), extra)
    with pytest.raises(InventoryError, match=message):
        load_inventory(path)


def test_receivers_certificates_are_renewed_and_follow_a_ca_rotation(scaled):
    from logstack.pki import PKI
    from logstack.pki.service import renew, retire_old_ca, rotate_ca
    from logstack.receivers import ensure_receiver_certificates

    inv = load_inventory(scaled)
    pki = PKI.for_inventory(inv)
    pki.init_ca()
    pki.issue_server(inv)
    assert ensure_receiver_certificates(inv, pki, None) == [
        "issued the certificate of receiver logs2",
        "issued the certificate of receiver logs3",
    ]
    assert ensure_receiver_certificates(inv, PKI.for_inventory(inv), None) == []  # names unchanged: kept
    record = PKI.for_inventory(inv).registry.current("receivers/logs3")
    assert record.sans == ["logs3.example.com", "logs3-alt.example.com"]
    renewed = {r.name for r in renew(inv, [], True, None, None)}
    assert {"server", "receivers/logs2", "receivers/logs3"} <= renewed
    new_ca = rotate_ca(inv, None)
    retire_old_ca(inv, None, force=True)
    after = PKI.for_inventory(inv).registry
    assert after.current("receivers/logs2").ca == new_ca.id and after.current("server").ca == new_ca.id


def test_a_safety_lag_for_several_frontends_reaches_the_scheduled_run(tmp_path, runner):
    inv = tmp_path / "inventory.yaml"
    inv.write_text(EXAMPLE.read_text().replace("safety_lag: 10s ", "safety_lag: 2m  "))
    files = _files(inv)
    assert b" --safety-lag 2m" in files[("server", "/etc/systemd/system/logstack-analyze.service")]
    plain = _files(EXAMPLE)
    assert b"--safety-lag" not in plain[("server", "/etc/systemd/system/logstack-analyze.service")]
    inv.write_text(EXAMPLE.read_text().replace("safety_lag: 10s ", "safety_lag: 3h  "))
    with pytest.raises(InventoryError, match="safety_lag"):
        load_inventory(inv)
