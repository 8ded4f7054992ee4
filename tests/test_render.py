from __future__ import annotations

import json
import stat
import tomllib
from pathlib import Path

import pytest
import yaml

from logstack.base.errors import SecretsError
from logstack.render.site_files import render_site
from logstack.site.inventory import load_inventory
from logstack.site.secrets import generate_secrets, load_secrets, secrets_path, write_secrets
from tests.conftest import EXAMPLE, invoke, mint_site
from tests.reference import check_vector_config, flatten_toml, greptime_reference

SERVER_FILES = {
    "/etc/greptime/standalone.toml",
    "/etc/greptime/users.conf",
    "/etc/systemd/system/greptime.service",
    "/etc/vector/vector.yaml",
    "/etc/systemd/system/vector.service.d/10-logstack.conf",
    "/etc/vector/tls/ca.pem",
    "/etc/vector/tls/server.pem",
    "/etc/vector/tls/server.key",
    "/etc/logstack/schema.sql",
    "/etc/logstack/analyst.password",
    "/etc/logstack/ingest.password",
    "/etc/systemd/system/logstack-analyze.service",
    "/etc/systemd/system/logstack-seal.service",
    "/etc/logstack/seal.key",
    "/etc/systemd/system/logstack-analyze.timer",
    # the example has alerts and backups
    "/etc/logstack/alerts.json",
    "/etc/logstack/alert-secrets.json",
    "/etc/logstack/admin.password",
    "/etc/systemd/system/logstack-backup.service",
    "/etc/systemd/system/logstack-backup.timer",
}
HOST_FILES = {
    "/etc/vector/vector.yaml",
    "/etc/systemd/system/vector.service.d/10-logstack.conf",
    "/etc/vector/tls/ca.pem",
    "/etc/vector/tls/client.pem",
    "/etc/vector/tls/client.key",
    "/etc/vector/secrets/signing_key",
}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_render_writes_every_machine_tree_and_manifest(tmp_path: Path, runner):
    out = tmp_path / "out"
    result = invoke(runner, "render", "-i", EXAMPLE, "-o", out)
    assert result.exit_code == 0, result.output
    tree = _tree(out)
    assert {p[len("server") :] for p in tree if p.startswith("server/")} == SERVER_FILES
    for host in ("web1", "web2", "db1"):
        prefix = f"hosts/{host}"
        assert {p[len(prefix) :] for p in tree if p.startswith(prefix + "/")} == HOST_FILES
    manifest = json.loads(tree["manifest.json"])
    entries = {(e["machine"], e["path"]): e for e in manifest["files"]}
    assert len(entries) == len(tree) - 1
    users = entries[("server", "/etc/greptime/users.conf")]
    assert users == {
        "machine": "server",
        "path": "/etc/greptime/users.conf",
        "owner": "root",
        "group": "greptime",
        "mode": "0640",
        "sha256": users["sha256"],
        "service": "greptime",
        "secret": True,
        "unit": False,
    }
    import hashlib

    for (machine, path), entry in entries.items():
        assert entry["sha256"] == hashlib.sha256(tree[f"{machine}{path}"]).hexdigest()
    assert entries[("hosts/web1", "/etc/vector/tls/client.key")]["mode"] == "0640"
    assert entries[("server", "/etc/systemd/system/greptime.service")]["unit"] is True


def test_render_is_deterministic_and_check_catches_one_byte(tmp_path: Path, runner):
    a, b = tmp_path / "a", tmp_path / "b"
    assert invoke(runner, "render", "-i", EXAMPLE, "-o", a).exit_code == 0
    assert invoke(runner, "render", "-i", EXAMPLE, "-o", b).exit_code == 0
    assert _tree(a) == _tree(b)
    # re-rendering into the same directory changes nothing
    assert invoke(runner, "render", "-i", EXAMPLE, "-o", a).exit_code == 0
    assert _tree(a) == _tree(b)
    ok = invoke(runner, "render", "-i", EXAMPLE, "--check", a)
    assert ok.exit_code == 0 and "is current" in ok.stdout

    target = a / "hosts/web2/etc/vector/vector.yaml"
    data = bytearray(target.read_bytes())
    data[10] ^= 0x01
    target.write_bytes(bytes(data))
    (a / "server/etc/logstack/schema.sql").unlink()
    (a / "hosts/web1/etc/stray.conf").write_text("x")
    stale = invoke(runner, "render", "-i", EXAMPLE, "--check", a)
    assert stale.exit_code == 1
    assert stale.stdout.splitlines()[:3] == [
        "added: server/etc/logstack/schema.sql",
        "removed: hosts/web1/etc/stray.conf",
        "changed: hosts/web2/etc/vector/vector.yaml",
    ]
    # a unified diff a reviewer can read, and a hint that runs as written
    diff = stale.stdout.split("\n", 3)[3]
    assert "--- /dev/null\n+++ b/server/etc/logstack/schema.sql\n" in diff
    assert "--- a/hosts/web1/etc/stray.conf\n+++ /dev/null\n(lines not shown: removed, secret, or a key)\n" in diff
    assert "--- a/hosts/web2/etc/vector/vector.yaml\n+++ b/hosts/web2/etc/vector/vector.yaml\n@@ -1," in diff
    hint = stale.stderr.strip().rsplit("`", 2)[1]
    assert hint == f"logstack render -i {EXAMPLE} -o {a}"
    assert invoke(runner, *hint.split()[1:]).exit_code == 0
    assert invoke(runner, "render", "-i", EXAMPLE, "--check", a).exit_code == 0


def test_render_refuses_a_foreign_directory(tmp_path: Path, runner):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = invoke(runner, "render", "-i", EXAMPLE, "-o", out)
    assert result.exit_code == 2 and "not a logstack render" in result.stderr
    assert (out / "notes.txt").read_text() == "keep me"
    assert invoke(runner, "render", "-i", EXAMPLE).exit_code == 2


def test_review_render_holds_no_secret(site: Path, tmp_path: Path, runner):
    site_dir = site.parent
    write_secrets(secrets_path(site_dir), generate_secrets())
    pki = mint_site(load_inventory(site))
    out = tmp_path / "review"
    result = invoke(runner, "render", "-i", site, "-o", out)
    assert result.exit_code == 0
    secrets = load_secrets(secrets_path(site_dir))
    blobs = _tree(out)
    needles = [p.encode() for p in secrets.db_passwords.values()]
    needles += [pki.key_pem(name) for name in ("server", "web1", "web2", "db1")]
    needles.append(b"PRIVATE KEY")
    for rel, content in blobs.items():
        for needle in needles:
            assert needle not in content, f"secret in {rel}"
    for stream in (result.stdout, result.stderr):
        for needle in needles:
            assert needle.decode() not in stream
    users = (out / "server/etc/greptime/users.conf").read_text()
    assert "vector:wo=<secret:greptimedb/vector>" in users
    # certificates are public and do appear
    assert (out / "hosts/web1/etc/vector/tls/client.pem").read_bytes() == pki.cert_pem("web1")
    assert (out / "server/etc/vector/tls/ca.pem").read_bytes() == pki.ca_bundle_pem()


def test_deploy_render_carries_secrets_in_formats_greptime_accepts(site: Path):
    site_dir = site.parent
    write_secrets(secrets_path(site_dir), generate_secrets())
    inv = load_inventory(site)
    with pytest.raises(SecretsError, match=r"alerts.security-chat.url: the webhook has no url"):
        render_site(inv, secrets=load_secrets(secrets_path(site_dir)), include_keys=True)
    # the example's alert secrets, as an operator adds them to secrets.yaml
    with secrets_path(site_dir).open("a") as out:
        out.write(
            "alerts:\n  security-chat: {url: 'https://chat.example.com/hooks/T0/B0/xyz', token: t0k3n}\n"
            "  security-team: {password: 'correct horse battery staple'}\n"
        )
    secrets = load_secrets(secrets_path(site_dir))
    files = {(f.machine, f.path): f for f in render_site(inv, secrets=secrets, include_keys=True)}
    alert_secrets = json.loads(files[("server", "/etc/logstack/alert-secrets.json")].content)
    assert alert_secrets["security-team"] == {"password": "correct horse battery staple"}
    assert files[("server", "/etc/logstack/alert-secrets.json")].mode == 0o600
    assert b"xyz" not in files[("server", "/etc/logstack/alerts.json")].content
    users = files[("server", "/etc/greptime/users.conf")].content.decode()
    lines = [line for line in users.splitlines() if line and not line.startswith("#")]
    assert lines == [
        f"admin:rw={secrets.db_passwords['admin']}",
        f"vector:wo={secrets.db_passwords['vector']}",
        f"analyst:ro={secrets.db_passwords['analyst']}",
    ]
    for line in lines:
        user, _, password = line.partition("=")
        assert "=" not in password and "," not in password
        assert user.split(":")[1] in {"rw", "ro", "wo"}
    config = yaml.safe_load(files[("server", "/etc/vector/vector.yaml")].content)
    assert config["sinks"]["greptimedb"]["password"] == secrets.db_passwords["vector"]
    assert config["sinks"]["greptimedb"]["username"] == "vector"


def test_secrets_file_is_private_and_checked(site: Path, runner):
    site_dir = site.parent
    path = secrets_path(site_dir)
    write_secrets(path, generate_secrets())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    import pytest

    from logstack.base.errors import SecretsError

    with pytest.raises(SecretsError, match="too open"):
        load_secrets(path)
    path.chmod(0o600)
    path.write_text("greptimedb:\n  admin: short\n")
    with pytest.raises(SecretsError, match=r"greptimedb\.admin"):
        load_secrets(path)


def test_standalone_toml_keys_exist_in_greptimedb_reference(tmp_path: Path, runner):
    inv = load_inventory(EXAMPLE)
    files = {(f.machine, f.path): f for f in render_site(inv)}
    toml = tomllib.loads(files[("server", "/etc/greptime/standalone.toml")].content.decode())
    flat = flatten_toml(toml)
    reference = greptime_reference()
    # `grpc.server_addr` is a field of GrpcOptions (v1.1.4 src/servers/src/grpc.rs) though the standalone
    # example file does not show it
    known = set(reference["keys"]) | {"grpc.server_addr"}
    unknown = sorted(k for k in flat if k not in known)
    assert unknown == []
    # nothing the daemon ignores: [otlp] is not an option of standalone (src/standalone/src/options.rs)
    ignored = reference["not_read_by_standalone"]["tables_or_keys"]
    assert [k for k in flat if k.split(".")[0] in ignored or k in ignored] == []
    # every listener on loopback, unused protocols off, telemetry off, absolute dirs
    for key in ("http.addr", "grpc.bind_addr", "grpc.server_addr", "mysql.addr", "postgres.addr"):
        assert flat[key].startswith("127.0.0.1:"), key
    for proto in ("postgres", "opentsdb", "influxdb", "jaeger", "prom_store"):
        assert flat[f"{proto}.enable"] is False, proto
    assert flat["mysql.enable"] is True
    assert flat["enable_telemetry"] is False
    for key in ("storage.data_home", "wal.dir", "logging.dir"):
        assert flat[key].startswith("/var/lib/greptime"), key


def test_every_vector_config_matches_the_057_reference():
    inv = load_inventory(EXAMPLE)
    configs = [f for f in render_site(inv) if f.path == "/etc/vector/vector.yaml"]
    assert len(configs) == 4
    for f in configs:
        config = yaml.safe_load(f.content)
        assert check_vector_config(config) == [], f.machine


def test_reference_checker_rejects_what_vector_would():
    inv = load_inventory(EXAMPLE)
    host = next(f for f in render_site(inv) if f.machine == "hosts/web1" and f.path == "/etc/vector/vector.yaml")
    config = yaml.safe_load(host.content)
    config["sinks"]["central"]["tls"]["verify_hostnames"] = True
    config["sinks"]["central"]["address"] = "x:1"
    config["sinks"]["central"]["compression"] = "brotli"
    del config["transforms"]["login_events"]["condition"]
    config["sources"]["journal"]["emit_cursor"] = "yes"
    errors = check_vector_config(config)
    assert "sinks.central.tls.verify_hostnames: unknown option" in errors
    assert any(e.startswith("sinks.central.address: deprecated") for e in errors)
    assert any(e.startswith("sinks.central.compression: 'brotli'") for e in errors)
    assert "transforms.login_events.condition: required option missing" in errors
    assert "sources.journal.emit_cursor: expected bool, got str" in errors


def test_sender_and_receiver_security_settings():
    inv = load_inventory(EXAMPLE)
    files = {(f.machine, f.path): f for f in render_site(inv)}
    receiver = yaml.safe_load(files[("server", "/etc/vector/vector.yaml")].content)
    tls = receiver["sources"]["senders"]["tls"]
    assert tls["enabled"] is True and tls["verify_certificate"] is True
    assert receiver["sources"]["senders"]["address"] == "0.0.0.0:3003"
    sink = receiver["sinks"]["greptimedb"]
    assert sink["endpoint"] == "http://127.0.0.1:4000"
    assert sink["acknowledgements"] == {"enabled": True}
    assert sink["buffer"]["type"] == "disk"
    sender = yaml.safe_load(files[("hosts/web1", "/etc/vector/vector.yaml")].content)
    assert sender["sources"]["journal"]["emit_cursor"] is True
    out = sender["sinks"]["central"]
    assert out["routing"]["endpoints"] == ["logs.example.com:3003"]
    assert out["tls"]["verify_certificate"] is True and out["tls"]["verify_hostname"] is True
    assert out["acknowledgements"] == {"enabled": True} and out["buffer"]["type"] == "disk"
    assert out["compression"] == "gzip"
    schema = files[("server", "/etc/logstack/schema.sql")].content.decode()
    assert "CREATE DATABASE IF NOT EXISTS `vector` WITH (ttl = '1year');" in schema
    assert "`greptime_timestamp` TIMESTAMP(9) NOT NULL" in schema
    assert "TIME INDEX (`greptime_timestamp`)" in schema
    assert "append_mode = 'true'" in schema
    for column in ("SYSLOG_IDENTIFIER", "__CURSOR", "_PID", "logstack_host", "cmdb_id", "rack"):
        assert f"`{column}` STRING NULL," in schema


def test_check_never_shows_a_secret_from_the_review_tree(tmp_path: Path, runner):
    """A review tree may hold what a render never wrote (a renamed host's key, a stray key file): --check names
    such files, never prints their lines; and a line separator inside a file cannot forge a diff line."""
    tree = tmp_path / "tree"
    assert invoke(runner, "render", "-i", EXAMPLE, "-o", tree).exit_code == 0
    (tree / "hosts/web1/etc/vector/secrets/signing_key").write_text("Ed25519-SIGNING-SECRET\n")
    (tree / "hosts/web1/etc/vector/tls/client.key.bak").write_text(
        "-----BEGIN PRIVATE KEY-----\nREALKEY\n-----END PRIVATE KEY-----\n"
    )
    renamed = tmp_path / "inventory.yaml"
    renamed.write_text(EXAMPLE.read_text().replace("name: web1", "name: web9"))
    sensitive = tree / "hosts/web2/etc/vector/vector.yaml"
    sensitive.write_text(sensitive.read_text() + "tail\u2028+forged line\x0c\n")
    stale = invoke(runner, "render", "-i", renamed, "--check", tree)
    assert stale.exit_code == 1
    for secret in ("Ed25519-SIGNING-SECRET", "REALKEY"):
        assert secret not in stale.output
    assert "\u2028" not in stale.output and "\x0c" not in stale.output
    assert "-tail\\u2028+forged line\\x0c" in stale.stdout  # one line, its separators shown escaped
