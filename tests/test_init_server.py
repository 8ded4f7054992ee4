"""init-server against a real sshd server host; GreptimeDB's HTTP API is a local recording server."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from logstack.provision.store_schema import schema_statements
from logstack.render.site_files import render_site
from logstack.site.inventory import load_inventory
from logstack.site.secrets import Secrets, load_secrets, secrets_path, write_secrets
from tests.conftest import invoke
from tests.fleet_site import make_fleet
from tests.mariadb import PASSWORD

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="test hosts need root (mount namespaces, sshd)")


@pytest.fixture
def site(tmp_path, ssh_client_key, vector_port, mysql_4002):
    fleet = make_fleet(
        tmp_path,
        ssh_client_key,
        ["web1"],
        server=True,
        first_octet=40,
        extra={"server.vector_port": vector_port, "server.listen_address": "127.0.0.1"},
    )
    # the scheduled analysis init-server runs once reads the MariaDB stand-in as analyst
    secrets = load_secrets(secrets_path(fleet.inventory.parent))
    secrets_path(fleet.inventory.parent).unlink()
    write_secrets(secrets_path(fleet.inventory.parent), Secrets({**secrets.db_passwords, "analyst": PASSWORD}))
    mysql_4002.create_logs("vector")
    yield fleet
    fleet.stop()


def test_init_server_deploys_creates_schema_and_is_idempotent(site, greptime_api, runner):
    result = invoke(runner, "init-server", "-i", site.inventory)
    assert result.exit_code == 0, result.output
    inv = load_inventory(site.inventory)
    secrets = load_secrets(secrets_path(site.inventory.parent))
    server = site.hosts["server"]
    files = render_site(inv, secrets=secrets, include_keys=True, hosts=[], server=True)
    for f in files:
        assert server.path(f.path).read_bytes() == f.content, f.path
        assert server.path(f.path).stat().st_mode & 0o7777 == f.mode
    # the greptime user exists on the server (made there, or there already as on a machine with the package)
    assert site.ssh("server", "id -u greptime").returncode == 0
    assert server.path("/var/lib/greptime/wal").is_dir()
    calls = server.systemctl_calls
    assert calls[0] == "daemon-reload"
    assert set(calls[1:]) == {
        "enable greptime",
        "restart greptime",
        "enable vector",
        "restart vector",
        "enable logstack-analyze.timer",
        "restart logstack-analyze.timer",
        "start logstack-analyze.service",
    }
    assert calls[-1] == "start logstack-analyze.service"  # once the units are in place
    # logstack itself: the operator's code in a venv named by its digest, the command the units run linked
    venvs = [p.name for p in server.path("/opt/logstack").iterdir() if p.name.startswith("venv-")]
    assert len(venvs) == 1 and venvs[0].startswith("venv-0.1.0-")
    assert os.readlink(server.path("/usr/local/bin/logstack")) == "/opt/logstack/current/bin/logstack"
    assert os.readlink(server.path("/opt/logstack/current")) == venvs[0]
    assert f"installed logstack {venvs[0].removeprefix('venv-')} for the server (installed: none)" in result.stdout
    # its first run went through the unit's ExecStart: it read the store and kept its state
    assert "logstack-analyze.service: the first scheduled run succeeded" in result.stdout
    assert list(server.path("/var/lib/logstack").glob("analyze-*.sqlite"))
    auth = "Basic " + base64.b64encode(f"admin:{secrets.db_password('admin')}".encode()).decode()
    schema = next(f for f in files if f.path == "/etc/logstack/schema.sql").content.decode()
    statements = schema_statements(schema)
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS `vector` WITH (ttl = '90d')"
    assert statements[1].startswith("CREATE TABLE IF NOT EXISTS `vector`.`logs` (")
    assert greptime_api[0] == ("GET", "/health", auth, None)
    sent = [(r[2], r[3]) for r in greptime_api[1:]]
    schemata = "SELECT options FROM information_schema.schemata WHERE schema_name = 'vector'"
    assert sent[: len(statements) + 1] == [(auth, schemata)] + [(auth, s) for s in statements]
    # the self-test: written as vector, read as analyst, DELETE refused for admin; then the analysis unit's
    # first run read the rows as analyst, in Arrow (its --db-http)
    test_users = [base64.b64decode(a.split()[1]).decode().split(":")[0] for a, _ in sent[len(statements) + 1 :]]
    assert test_users == ["vector", "analyst", "admin", "analyst"]
    assert sent[-2][1].startswith("DELETE FROM `vector`.`logs`")
    assert greptime_api[-1][1] == "/v1/sql?db=vector&format=arrow"
    assert sent[-1][1].startswith("SELECT `greptime_timestamp`, ") and " FROM `logs` WHERE " in sent[-1][1]
    assert "a row written as vector is read as analyst; DELETE is refused (append-only)" in result.stdout
    # no secret in what the operator sees
    for password in secrets.db_passwords.values():
        assert password not in result.output
    assert "PRIVATE KEY" not in result.output

    greptime_api.clear()
    again = invoke(runner, "init-server", "-i", site.inventory)
    assert again.exit_code == 0, again.output
    assert server.systemctl_calls == calls
    assert "│ server │ ok" in again.stdout
    assert "installed logstack" not in again.stdout and "first scheduled run" not in again.stdout  # same code
    assert [r[3] for r in greptime_api if r[0] == "POST"][1 : len(statements) + 1] == statements
    assert "retention" not in again.stdout


def test_a_changed_retention_reaches_the_existing_database(site, greptime_api, runner):
    from tests.greptime_stub import FakeGreptime

    assert invoke(runner, "init-server", "-i", site.inventory).exit_code == 0
    assert FakeGreptime.databases["vector"] == "2months 29days 2h 52m 48s"  # 90d, as GreptimeDB shows it
    site.inventory.write_text(
        site.inventory.read_text().replace("  manage_packages: false\n", "  manage_packages: false\n  ttl: 1year\n")
    )
    dry = invoke(runner, "init-server", "--dry-run", "-i", site.inventory)
    assert "would change the retention of database vector: 2months 29days 2h 52m 48s -> 1year" in dry.stdout
    assert not [r for r in greptime_api if r[3] and r[3].startswith("ALTER")]
    changed = invoke(runner, "init-server", "-i", site.inventory)
    assert changed.exit_code == 0, changed.output
    assert "changed the retention of database vector: 2months 29days 2h 52m 48s -> 1year" in changed.stdout
    assert [r[3] for r in greptime_api if r[3] and r[3].startswith("ALTER")] == [
        "ALTER DATABASE `vector` SET 'ttl'='1year'"
    ]
    assert FakeGreptime.databases["vector"] == "1year"
    again = invoke(runner, "init-server", "-i", site.inventory)
    assert "retention" not in again.stdout


def test_a_table_that_accepts_delete_is_a_failure(site, greptime_api, runner):
    from tests.greptime_stub import FakeGreptime

    FakeGreptime.tables.add("`vector`.`logs`")  # made earlier, without append mode
    result = invoke(runner, "init-server", "-i", site.inventory)
    assert result.exit_code == 3, result.output
    assert "table vector.logs accepts DELETE: it is not append-only" in result.stderr


def test_dry_run_shows_plan_without_secrets(site, greptime_api, runner):
    dry = invoke(runner, "init-server", "--dry-run", "-i", site.inventory)
    assert dry.exit_code == 0, dry.output
    assert "create  /etc/greptime/standalone.toml" in dry.stdout
    assert "/etc/greptime/users.conf" in dry.stdout
    secrets = load_secrets(secrets_path(site.inventory.parent))
    for password in secrets.db_passwords.values():
        assert password not in dry.output
    assert not site.hosts["server"].path("/etc/greptime").exists()
    assert [r[3].split()[0] for r in greptime_api if r[0] == "POST"] in ([], ["SELECT"])  # it only looks


def test_no_install_refuses_with_instructions(site, runner):
    assert site.ssh("server", "rm /usr/bin/vector").returncode == 0  # a server without Vector
    site.inventory.write_text(site.inventory.read_text().replace("manage_packages: false", "manage_packages: true"))
    tarball, _ = _greptime_release(site.inventory.parent)
    refused = invoke(runner, "init-server", "--no-install", "--greptime-tarball", tarball, "-i", site.inventory)
    assert refused.exit_code == 3
    assert "Vector 0.57.0 is needed (install vector 0.57.0 (installed: none))" in refused.stderr
    assert "install it yourself from its signed repository" in refused.stderr
    server = site.hosts["server"]
    assert not server.path("/etc/vector/vector.yaml").exists()
    # the pinned GreptimeDB went in, verified against its checksum
    assert server.path("/usr/local/bin/greptime").read_bytes().startswith(b"#!/bin/sh")


def _greptime_release(where: Path, corrupt: bool = False) -> tuple[Path, Path]:
    asset = "greptime-linux-amd64-v1.1.4"
    script = b"#!/bin/sh\necho 'greptime v1.1.4'\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(f"{asset}/greptime")
        info.size = len(script)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(script))
    data = buf.getvalue()
    tarball = where / f"{asset}.tar.gz"
    tarball.write_bytes(data)
    digest = hashlib.sha256(data if not corrupt else data + b"x").hexdigest()
    checksum = Path(f"{tarball}.sha256sum")
    checksum.write_text(f"{digest}  {asset}.tar.gz\n")
    return tarball, checksum


def test_checksum_mismatch_aborts_before_installing(site, runner):
    site.inventory.write_text(site.inventory.read_text().replace("manage_packages: false", "manage_packages: true"))
    tarball, _ = _greptime_release(site.inventory.parent, corrupt=True)
    result = invoke(runner, "init-server", "--greptime-tarball", tarball, "-i", site.inventory)
    assert result.exit_code == 3 and "does not match" in result.stderr and "nothing installed" in result.stderr
    server = site.hosts["server"]
    assert not server.path("/usr/local/bin/greptime").exists()
    assert not server.path("/etc/greptime").exists()
    assert server.systemctl_calls == []


def test_an_existing_backup_directory_that_is_not_greptimes_is_not_handed_over(site, greptime_api, runner):
    setup = site.ssh("server", "mkdir -p /var/lib/logstack-backups && chmod 0755 /var/lib/logstack-backups")
    assert setup.returncode == 0, setup.stderr
    site.inventory.write_text(
        site.inventory.read_text().replace(
            "  manage_packages: false\n",
            "  manage_packages: false\n  backup: {directory: /var/lib/logstack-backups}\n",
        )
    )
    result = invoke(runner, "init-server", "-i", site.inventory)
    assert result.exit_code == 3, result.output
    assert "/var/lib/logstack-backups exists and is not the greptime user's" in result.stderr
    owner = site.ssh("server", "stat -c %U /var/lib/logstack-backups").stdout.strip()
    assert owner == "root"


def test_a_data_directory_below_a_directory_others_control_is_refused(site, greptime_api, runner):
    # a local user who owns a parent could swap it for a link and have install -d hand /etc to greptime
    setup = site.ssh("server", "mkdir -p /var/lib/tenant && chown 65534:65534 /var/lib/tenant")
    assert setup.returncode == 0, setup.stderr
    site.inventory.write_text(
        site.inventory.read_text().replace(
            "  manage_packages: false\n", "  manage_packages: false\n  data_dir: /var/lib/tenant/greptime\n"
        )
    )
    result = invoke(runner, "init-server", "-i", site.inventory)
    assert result.exit_code == 3, result.output
    assert "/var/lib/tenant is not owned by root; /var/lib/tenant/greptime is not created" in result.stderr
    assert not site.hosts["server"].path("/var/lib/tenant/greptime").exists()
    assert site.hosts["server"].systemctl_calls == []  # nothing deployed


def test_logstack_on_the_server_is_planned_upgraded_and_its_first_run_checked(
    site, greptime_api, runner, monkeypatch, mysql_4002
):
    import logstack

    server = site.hosts["server"]
    dry = invoke(runner, "init-server", "--dry-run", "-i", site.inventory)
    assert dry.exit_code == 0, dry.output
    assert "would install logstack 0.1.0-" in dry.stdout and "(installed: none)" in dry.stdout
    assert not server.path("/opt/logstack").exists()
    assert invoke(runner, "init-server", "-i", site.inventory).exit_code == 0
    first = os.readlink(server.path("/opt/logstack/current"))

    # the operator upgrades: the plan names both versions, the new venv goes live, the old one stays for a
    # run that may still use it
    monkeypatch.setattr(logstack, "__version__", "0.1.1")
    dry = invoke(runner, "init-server", "--dry-run", "-i", site.inventory)
    assert "would install logstack 0.1.1-" in dry.stdout and f"(installed: {first.removeprefix('venv-')})" in dry.stdout
    upgraded = invoke(runner, "init-server", "-i", site.inventory)
    assert upgraded.exit_code == 0, upgraded.output
    assert "logstack-analyze.service: the first scheduled run succeeded" in upgraded.stdout
    now = os.readlink(server.path("/opt/logstack/current"))
    assert now.startswith("venv-0.1.1-")
    assert {p.name for p in server.path("/opt/logstack").glob("venv-*")} == {first, now}
    resolved = site.ssh("server", "readlink -f /usr/local/bin/logstack; /usr/local/bin/logstack --version")
    assert resolved.stdout.split("\n")[:2] == [f"/opt/logstack/{now}/bin/logstack", "logstack 0.1.0"]

    # the server's Python changed under the venv (an upgrade removed its interpreter): it is built again
    assert site.ssh("server", "rm -- /opt/logstack/current/bin/python*").returncode == 0
    rebuilt = invoke(runner, "init-server", "-i", site.inventory)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "installed logstack 0.1.1-" in rebuilt.stdout and "(installed: none)" in rebuilt.stdout
    assert site.ssh("server", "/usr/local/bin/logstack --version").stdout.strip() == "logstack 0.1.0"

    # a scheduled run that cannot read the store is a failure init-server reports, with its exit status
    with mysql_4002.admin() as conn, conn.cursor() as cur:
        cur.execute("DROP DATABASE `vector`")
    monkeypatch.setattr(logstack, "__version__", "0.1.2")
    failed = invoke(runner, "init-server", "-i", site.inventory)
    assert failed.exit_code == 3, failed.output
    assert "the first run of logstack-analyze.service failed: Result=exit-code, exit status 3" in failed.output


def test_offline_wheels_that_miss_a_dependency_are_a_one_line_error(site, greptime_api, runner, tmp_path):
    from tests.conftest import WHEELS

    partial = tmp_path / "wheels"
    partial.mkdir()
    for wheel in WHEELS.glob("*.whl"):
        if not wheel.name.startswith("pydantic_core"):
            (partial / wheel.name).write_bytes(wheel.read_bytes())
    result = invoke(runner, "init-server", "--wheels", partial, "-i", site.inventory)
    assert result.exit_code == 3
    assert "cannot collect logstack's dependencies for Python 3." in result.output
    assert "from the given wheel directory" in result.output
    assert "Traceback" not in result.output
    assert not site.hosts["server"].path("/opt/logstack").exists()


def test_the_scheduled_run_alerts_and_status_shows_what_a_destination_has_yet_to_accept(
    site, greptime_api, runner, mysql_4002, tmp_path
):
    """init-server wires alerts into the analysis unit: its run (through the unit's ExecStart line, with the
    secrets as a credential) delivers; a failing destination keeps its events, status shows the backlog."""
    import shutil
    import tempfile
    import time as _time

    import yaml

    from logstack.base.clock import SECOND
    from logstack.connection.registry import connect
    from logstack.connection.targets import known_hosts_path, server_target
    from logstack.evidence.status import ServerStatus, _check_alerts
    from tests.journal import entry
    from tests.test_analyze_db import to_row

    outbox = Path(tempfile.mkdtemp(prefix="logstack-delivered-", dir="/tmp"))  # the unit's user writes there
    outbox.chmod(0o777)
    request_cleanup = lambda: shutil.rmtree(outbox, ignore_errors=True)  # noqa: E731
    spec = yaml.safe_load(site.inventory.read_text())
    spec["server"]["alerts"] = [
        {
            "name": "log",
            "type": "exec",
            "min_severity": "info",
            "retries": 0,
            "command": ["/bin/sh", "-c", f"cat >> {outbox}/log.jsonl"],
        },
        {"name": "pager", "type": "exec", "min_severity": "info", "retries": 0, "command": ["/bin/false"]},
    ]
    site.inventory.write_text(yaml.safe_dump(spec, sort_keys=False))
    now = int(_time.time()) * SECOND
    rows = [
        entry(
            now - 3600 * SECOND + n * SECOND,
            "sshd-session",
            700 + n,
            f"Failed password for root from 198.51.100.7 port {700 + n} ssh2",
        )
        for n in range(3)
    ]
    mysql_4002.insert("vector", [to_row(e, int(e["__REALTIME_TIMESTAMP"])) for e in rows])

    failed = invoke(runner, "init-server", "-i", site.inventory)
    assert failed.exit_code == 3, failed.output
    assert "the first run of logstack-analyze.service failed: Result=exit-code, exit status 3" in failed.output
    unit = site.hosts["server"].path("/etc/systemd/system/logstack-analyze.service").read_text()
    assert "LoadCredential=alert-secrets:/etc/logstack/alert-secrets.json" in unit
    delivered = [json.loads(line) for line in (outbox / "log.jsonl").read_text().splitlines()]
    assert len(delivered) == 3 and {e["user"] for e in delivered} == {"root"}
    inv = load_inventory(site.inventory)
    with connect(server_target(inv), known_hosts_path(inv)) as conn:
        status = ServerStatus()
        _check_alerts(conn, inv, status)
    assert status.alert_backlog == {"log": 0, "pager": 3}
    assert status.problems == [
        "alerts: pager has 3 events waiting and 0 that did not fit its queue (last error: /bin/false exited 1: )"
    ]

    # the pager is fixed: its three events arrive once, the log destination gets nothing again
    spec["server"]["alerts"][1]["command"] = ["/bin/sh", "-c", f"cat >> {outbox}/pager.jsonl"]
    site.inventory.write_text(yaml.safe_dump(spec, sort_keys=False))
    fixed = invoke(runner, "init-server", "-i", site.inventory)
    assert fixed.exit_code == 0, fixed.output
    assert len((outbox / "pager.jsonl").read_text().splitlines()) == 3
    assert len((outbox / "log.jsonl").read_text().splitlines()) == 3
    with connect(server_target(inv), known_hosts_path(inv)) as conn:
        status = ServerStatus()
        _check_alerts(conn, load_inventory(site.inventory), status)
    assert status.alert_backlog == {"log": 0, "pager": 0} and status.problems == []
    request_cleanup()
