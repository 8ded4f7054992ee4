"""Several receivers and an external store: what each machine is rendered, and what the inventory refuses."""

from __future__ import annotations

import tomllib

import pytest
import yaml

from logstack.base.errors import InventoryError
from logstack.render.site_files import render_site
from logstack.site.inventory import load_inventory
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
        ({"server.backup": {}}, "server.backup: an external store writes its backups itself"),
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
    from logstack.provision.receivers import ensure_receiver_certificates

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


def test_each_receiver_binds_its_own_listen_address(tmp_path):
    cert, _ = self_signed(tmp_path)
    path = scaled_inventory(
        tmp_path / "site",
        cert.read_bytes(),
        {
            "server.listen_address": "192.0.2.10",
            "server.receivers": [{"name": "logs2", "fqdn": "logs2.example.com", "listen_address": "192.0.2.11"}],
        },
    )
    files = _files(path)
    server = yaml.safe_load(files[("server", "/etc/vector/vector.yaml")])["sources"]["senders"]["address"]
    logs2 = yaml.safe_load(files[("receivers/logs2", "/etc/vector/vector.yaml")])["sources"]["senders"]["address"]
    assert (server, logs2) == ("192.0.2.10:3003", "192.0.2.11:3003")


@pytest.mark.parametrize(
    ("receivers", "message"),
    [
        ([{"name": "logs2", "fqdn": "logs.example.com"}], "'logs.example.com' is taken"),
        ([{"name": "logs2", "fqdn": "a.example.com"}, {"name": "logs3", "fqdn": "A.example.com"}], "is taken"),
        ([{"name": "logs2", "fqdn": "a.example.com", "address": "192.0.2.10"}], "'192.0.2.10' is taken"),
        ([{"name": "Logs2", "fqdn": "a.example.com"}, {"name": "logs2", "fqdn": "b.example.com"}], "'logs2' is taken"),
        ([{"name": "WEB1", "fqdn": "a.example.com"}], "'web1' is taken"),
    ],
)
def test_receivers_are_machines_of_their_own(tmp_path, receivers, message):
    cert, _ = self_signed(tmp_path)
    path = scaled_inventory(tmp_path / "site", cert.read_bytes(), {"server.receivers": receivers})
    with pytest.raises(InventoryError, match=message):
        load_inventory(path)


@pytest.mark.parametrize("endpoint", ["https://h.example.com:0", "https://h.example.com:", "https://..:4000"])
def test_a_store_endpoint_names_a_host_and_a_port(tmp_path, endpoint):
    cert, _ = self_signed(tmp_path)
    path = scaled_inventory(tmp_path / "site", cert.read_bytes(), {"server.store.http_endpoint": endpoint})
    with pytest.raises(InventoryError, match="http_endpoint"):
        load_inventory(path)


def test_the_store_ca_file_is_certificates_and_nothing_else(tmp_path):
    import os

    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    from logstack.base.errors import BadInputError

    cert, _ = self_signed(tmp_path)
    path = scaled_inventory(tmp_path / "site", cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    (path.parent / "store-ca.pem").write_bytes(cert.read_bytes() + key)  # a key pasted in by mistake
    files = _files(path)
    assert files[("receivers/logs2", "/etc/vector/tls/store-ca.pem")] == cert.read_bytes()
    assert all(b"PRIVATE KEY" not in content for content in files.values())
    os.mkfifo(tmp_path / "fifo.pem")
    for ca_file, message in (
        (str(tmp_path / "fifo.pem"), "not a regular file"),
        ("/dev/zero", "not a regular file"),
        ("~no-such-user-here/ca.pem", "cannot expand ~"),
        (str(tmp_path / "missing.pem"), "cannot read"),
    ):
        odd = scaled_inventory(tmp_path / "odd", cert.read_bytes(), {"server.store.ca_file": ca_file})
        with pytest.raises(BadInputError, match=message):
            _files(odd)
    (tmp_path / "huge.pem").write_bytes(b"x" * (2 << 20))
    odd = scaled_inventory(tmp_path / "odd", cert.read_bytes(), {"server.store.ca_file": str(tmp_path / "huge.pem")})
    with pytest.raises(BadInputError, match="larger than 1 MiB"):
        _files(odd)


def test_units_of_a_server_without_a_store_of_its_own_want_no_greptimedb(scaled):
    files = _files(scaled)
    for unit in ("logstack-analyze.service", "logstack-seal.service"):
        text = files[("server", f"/etc/systemd/system/{unit}")].decode()
        assert "greptime.service" not in text, unit


def test_restore_is_for_the_standalone_store(scaled, runner):
    from tests.conftest import invoke

    result = invoke(runner, "restore", "/var/backups/logstack/20261201T020000Z", "-i", scaled)
    assert (
        result.exit_code == 2
        and "an external store cannot read the server's disk: restore it from a backup on S3" in result.output
    )


def test_status_names_a_receiver_whose_certificate_expires():
    import datetime as dt

    from logstack.evidence.status import ServerStatus, _server_problems

    server = ServerStatus(greptimedb="ok", vector_tls="ok (TLSv1.3)", certificate_days_left=300)
    server.receivers = {"logs2": "ok (TLSv1.3)", "logs3": "failed: connection refused"}
    server.receiver_certificates = {"logs2": 12, "logs3": 300}
    problems = _server_problems(server, load_inventory(EXAMPLE), dt.timedelta(days=30))
    assert problems == [
        "receiver logs3: Vector TLS port failed: connection refused",
        "receiver logs2: certificate: 12 days left",
    ]


def test_an_analysis_moved_to_an_external_store_keeps_its_state(scaled, tmp_path):
    """The analysis state is named for the store it read; moved to an external store, the server's analysis
    goes on with the state it had (what was reported stays reported, alert queues included)."""
    import re

    from logstack.base.paths import source_id

    unit = _files(scaled)[("server", "/etc/systemd/system/logstack-analyze.service")].decode()
    state = re.search(r"--state-id ([0-9a-f]{12})", unit).group(1)
    assert state == source_id(None, "127.0.0.1", 4002, "vector", "logs")  # the standalone store's name
    standalone = _files(EXAMPLE)[("server", "/etc/systemd/system/logstack-analyze.service")].decode()
    assert "--state-id" not in standalone


def test_a_state_id_names_the_analysis_state(tmp_path, runner):
    from tests.conftest import ROOT, invoke

    sample = ROOT / "examples" / "journal-sample.json"
    args = ["analyze", "--journal", sample, "--since-last-run", "--data-dir", tmp_path, "--format", "jsonl"]
    assert invoke(runner, *args, "--state-id", "0123456789ab").exit_code == 0
    assert [p.name for p in tmp_path.glob("analyze-*.sqlite")] == ["analyze-0123456789ab.sqlite"]
    bad = invoke(runner, *args, "--state-id", "../../etc")
    assert bad.exit_code == 2 and "is not 12 hex digits" in bad.output


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("    object_storage: null ", "    object_storage: {bucket: audit-logs} "),
            r"store\.access_key_id: needed for object storage",
        ),
        (("    s3: null ", "    s3: {bucket: audit-logs} "), r"backup\.access_key_id: needed for backup\.s3"),
    ],
)
def test_an_s3_key_pair_missing_from_secrets_is_named(tmp_path, edit, message):
    from logstack.base.errors import SecretsError
    from logstack.site.secrets import generate_secrets, load_secrets, secrets_path, write_secrets

    inv = tmp_path / "inventory.yaml"
    text = EXAMPLE.read_text().replace(*edit)
    assert text != EXAMPLE.read_text()
    inv.write_text(text)
    write_secrets(secrets_path(tmp_path), generate_secrets())
    with secrets_path(tmp_path).open("a") as out:  # the example's alert destinations have theirs
        out.write("alerts:\n  security-chat: {url: 'https://chat.example.com/x'}\n  security-team: {password: pw}\n")
    with pytest.raises(SecretsError, match=message):
        render_site(load_inventory(inv), secrets=load_secrets(secrets_path(tmp_path)), include_keys=True)
