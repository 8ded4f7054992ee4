"""enroll-host and trust-host against real sshd hosts on 127.0.0.x."""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import threading
import time

import pytest
import yaml

from logstack.pki import PKI
from logstack.render.site_files import render_site
from logstack.site.inventory import load_inventory
from tests.conftest import invoke
from tests.fleet_site import make_fleet

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="test hosts need root (mount namespaces, sshd)")


@pytest.fixture
def fleet(tmp_path, ssh_client_key):
    site = make_fleet(tmp_path, ssh_client_key, ["web1", "web2", "db1"], first_octet=20)
    yield site
    site.stop()


def _owner(host, path: str) -> tuple[str, str, int]:
    st = host.path(path).stat()
    passwd = (host.upper / "etc/passwd").read_text() if (host.upper / "etc/passwd").exists() else ""
    group = (host.upper / "etc/group").read_text() if (host.upper / "etc/group").exists() else ""

    def name(table: str, ident: int, fallback) -> str:
        for line in table.splitlines():
            parts = line.split(":")
            if len(parts) > 2 and parts[2] == str(ident):
                return parts[0]
        return fallback(ident)

    return (
        name(passwd, st.st_uid, lambda i: pwd.getpwuid(i).pw_name),
        name(group, st.st_gid, lambda i: __import__("grp").getgrgid(i).gr_name),
        st.st_mode & 0o7777,
    )


def test_enroll_lands_exact_files_then_rerun_changes_nothing(fleet, runner):
    inv = load_inventory(fleet.inventory)
    PKI.for_inventory(inv).init_ca()
    result = invoke(runner, "enroll-host", "--no-verify", "--all", "-i", fleet.inventory)
    assert result.exit_code == 0, result.output
    inv = load_inventory(fleet.inventory)
    pki = PKI.for_inventory(inv)
    files = render_site(inv, pki=pki, include_keys=True, server=False)
    assert len(files) == 18  # 6 files on each of 3 hosts
    for f in files:
        host = fleet.hosts[f.machine.split("/")[1]]
        assert host.path(f.path).read_bytes() == f.content, f.path
        assert _owner(host, f.path) == (f.owner, f.group, f.mode), f.path
    for host in fleet.hosts.values():
        assert host.systemctl_calls == ["daemon-reload", "enable vector", "restart vector"]
    # no private key ever reaches the output
    for name in ("web1", "web2", "db1"):
        assert pki.key_pem(name).decode() not in result.output
    assert "PRIVATE KEY" not in result.output

    again = invoke(runner, "enroll-host", "--no-verify", "--all", "-i", fleet.inventory)
    assert again.exit_code == 0
    assert again.output.count(" ok ") >= 3 and "changed" not in again.output
    for host in fleet.hosts.values():
        assert host.systemctl_calls == ["daemon-reload", "enable vector", "restart vector"]


def test_dry_run_changes_nothing_and_hides_secret_diffs(fleet, runner):
    inv = load_inventory(fleet.inventory)
    PKI.for_inventory(inv).init_ca()
    assert invoke(runner, "enroll-host", "--no-verify", "web1", "-i", fleet.inventory).exit_code == 0
    before = {p: p.read_bytes() for p in fleet.hosts["web1"].upper.rglob("*") if p.is_file()}
    # change a non-secret (identity) and a secret (new key) input
    fleet.inventory.write_text(fleet.inventory.read_text().replace("cmdb_id: 1000", "cmdb_id: 4711"))
    assert invoke(runner, "certs", "renew", "web1", "-i", fleet.inventory).exit_code == 0
    dry = invoke(runner, "enroll-host", "--no-verify", "web1", "--dry-run", "-i", fleet.inventory)
    assert dry.exit_code == 0, dry.output
    assert "update  /etc/vector/vector.yaml" in dry.output
    assert '-      .cmdb_id = "1000"' in dry.output and '+      .cmdb_id = "4711"' in dry.output
    assert "/etc/vector/tls/client.key: changed (secret, diff hidden)" in dry.output
    new_key = PKI.for_inventory(load_inventory(fleet.inventory)).key_pem("web1").decode()
    assert new_key not in dry.output and "PRIVATE KEY" not in dry.output
    after = {p: p.read_bytes() for p in fleet.hosts["web1"].upper.rglob("*") if p.is_file()}
    assert after == before
    assert fleet.hosts["web1"].systemctl_calls == ["daemon-reload", "enable vector", "restart vector"]


def test_unknown_and_changed_host_keys_are_refused(fleet, runner, tmp_path):
    inv = load_inventory(fleet.inventory)
    PKI.for_inventory(inv).init_ca()
    fleet.known_hosts.write_text("")
    refused = invoke(runner, "enroll-host", "--no-verify", "web1", "-i", fleet.inventory)
    assert refused.exit_code == 3
    fp = subprocess.run(
        ["ssh-keygen", "-lf", str(fleet.hosts["web1"].base / "ssh_host_ed25519_key.pub")],
        capture_output=True,
        text=True,
    ).stdout.split()[1]
    assert fp in refused.stderr and "logstack trust-host web1" in refused.stderr
    assert refused.stderr.count("\n") == 1
    assert not fleet.hosts["web1"].path("/etc/vector").exists()

    trusted = invoke(runner, "trust-host", "web1", "-i", fleet.inventory)
    assert trusted.exit_code == 0 and fp in trusted.stdout
    assert fleet.hosts["web1"].address in fleet.known_hosts.read_text()
    assert "already pinned" in invoke(runner, "trust-host", "web1", "-i", fleet.inventory).stdout

    # web2 on first contact with --accept-new
    first = invoke(runner, "enroll-host", "--no-verify", "web2", "--accept-new", "-i", fleet.inventory)
    assert first.exit_code == 0, first.output
    assert fleet.hosts["web2"].address in fleet.known_hosts.read_text()

    # a changed key is refused, always, even with --accept-new
    other = tmp_path / "otherkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    parts = (other.with_suffix(".pub")).read_text().split()
    lines = [line for line in fleet.known_hosts.read_text().splitlines() if not line.startswith("127.0.0.20 ")]
    lines.append(f"127.0.0.20 {parts[0]} {parts[1]}")
    fleet.known_hosts.write_text("\n".join(lines) + "\n")
    changed = invoke(runner, "enroll-host", "--no-verify", "web1", "--accept-new", "-i", fleet.inventory)
    assert changed.exit_code == 3 and "HOST KEY CHANGED" in changed.stderr
    bad_trust = invoke(runner, "trust-host", "web1", "-i", fleet.inventory)
    assert bad_trust.exit_code == 3 and "different" in bad_trust.stderr


def test_one_dead_host_fails_alone(fleet, runner):
    inv = load_inventory(fleet.inventory)
    PKI.for_inventory(inv).init_ca()
    fleet.hosts["web2"].stop()
    result = invoke(runner, "enroll-host", "--no-verify", "--all", "--forks", "3", "-i", fleet.inventory)
    assert result.exit_code == 3
    rows = {
        line.split()[1]: line.split()[3]
        for line in result.stdout.splitlines()
        if re.match(r"^│ \S+\s+│ (changed|ok|failed|unreachable)", line)
    }
    assert rows == {"web1": "changed", "web2": "unreachable", "db1": "changed"}
    assert fleet.hosts["web1"].path("/etc/vector/vector.yaml").exists()
    assert fleet.hosts["db1"].path("/etc/vector/vector.yaml").exists()


def test_killed_connection_leaves_old_or_new_and_owed_restart_is_done(fleet, runner):
    inv = load_inventory(fleet.inventory)
    PKI.for_inventory(inv).init_ca()
    assert invoke(runner, "enroll-host", "--no-verify", "web1", "-i", fleet.inventory).exit_code == 0
    host = fleet.hosts["web1"]

    def rendered() -> dict[str, bytes]:
        inv = load_inventory(fleet.inventory)
        return {f.path: f.content for f in render_site(inv, include_keys=True, hosts=[inv.host("web1")], server=False)}

    def killer(stop: threading.Event) -> None:
        # kill the session as soon as an upload is in flight
        etc_vector = host.path("/etc/vector")
        while not stop.is_set():
            if any(p.name.startswith(".logstack-tmp-") for p in etc_vector.rglob("*")):
                host.kill_connections()
                return
            time.sleep(0.001)

    # The window is short: try a few changes until one run is really cut off mid-deploy.
    died = None
    for attempt in range(8):
        old = rendered()
        cmdb = "cmdb_id: 1000" if attempt == 0 else f"cmdb_id: {attempt + 6}"
        fleet.inventory.write_text(fleet.inventory.read_text().replace(cmdb, f"cmdb_id: {attempt + 7}"))
        assert invoke(runner, "certs", "renew", "web1", "-i", fleet.inventory).exit_code == 0
        new = rendered()
        stop = threading.Event()
        thread = threading.Thread(target=killer, args=(stop,))
        thread.start()
        died = invoke(runner, "enroll-host", "--no-verify", "web1", "-i", fleet.inventory)
        stop.set()
        thread.join()
        for path in new:
            assert host.path(path).read_bytes() in (old[path], new[path]), path
        if died.exit_code == 3:
            break
    assert died is not None and died.exit_code == 3, "no run was cut off mid-deploy"
    healed = invoke(runner, "enroll-host", "--no-verify", "web1", "-i", fleet.inventory)
    assert healed.exit_code == 0, healed.output
    for path, content in new.items():
        assert host.path(path).read_bytes() == content
    assert host.systemctl_calls[-1] == "restart vector"


def test_non_root_user_goes_through_sudo(fleet, runner):
    if subprocess.run(["which", "sudo"], capture_output=True).returncode != 0:
        pytest.fail("sudo is not installed: run bash tests/setup.sh")
    setup = fleet.ssh(
        "db1",
        "useradd -M -p '*' deploy && echo 'deploy ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deploy && "
        "chmod 0440 /etc/sudoers.d/deploy",
    )
    assert setup.returncode == 0, setup.stderr
    text = fleet.inventory.read_text()
    text = text.replace("- name: db1\n", "- name: db1\n  ssh:\n    user: deploy\n  sudo: true\n")
    fleet.inventory.write_text(text)
    inv = load_inventory(fleet.inventory)
    assert inv.host("db1").ssh.user == "deploy"
    PKI.for_inventory(inv).init_ca()
    result = invoke(runner, "enroll-host", "--no-verify", "db1", "-i", fleet.inventory)
    assert result.exit_code == 0, result.output
    assert _owner(fleet.hosts["db1"], "/etc/vector/tls/client.key") == ("root", "vector", 0o640)
    # sudo that wants a password is a clear error
    assert fleet.ssh("db1", "rm /etc/sudoers.d/deploy && echo 'deploy ALL=(ALL) ALL' > /etc/sudoers.d/deploy")
    fleet.inventory.write_text(fleet.inventory.read_text().replace("cmdb_id: 1002", "cmdb_id: 9"))
    refused = invoke(runner, "enroll-host", "--no-verify", "db1", "-i", fleet.inventory)
    assert refused.exit_code == 3 and "sudo asks for a password" in refused.stderr


def test_invalid_unit_is_rejected_before_anything_is_swapped(fleet):
    from logstack.connection.targets import host_target, known_hosts_path
    from logstack.deploy.apply import DeployOptions, deploy_machine
    from logstack.render.rendered import RenderedFile

    inv = load_inventory(fleet.inventory)
    good = RenderedFile("hosts/web1", "/etc/logstack/note.txt", b"hello\n", "root", "root", 0o644, None, False)
    bad = RenderedFile(
        "hosts/web1",
        "/etc/systemd/system/broken.service",
        b"[Service]\nExecStart=/bin/true\nNoNewPrivilege=yes\n",
        "root",
        "root",
        0o644,
        "broken",
        False,
        unit=True,
    )
    result = deploy_machine(
        host_target(inv.host("web1")),
        lambda facts: [good, bad],
        DeployOptions(known_hosts=known_hosts_path(inv), site_dir=inv.site_dir),
    )
    assert result.status == "failed"
    assert "systemd-analyze rejected /etc/systemd/system/broken.service" in result.reason
    assert "Unknown key" in result.reason
    host = fleet.hosts["web1"]
    assert not host.path("/etc/logstack/note.txt").exists()
    assert not host.path("/etc/systemd/system/broken.service").exists()
    assert not [p for p in host.upper.rglob(".logstack-tmp-*")]
    assert host.systemctl_calls == []


def test_ssh_config_alias_and_proxy_jump(fleet, runner, tmp_path, monkeypatch):
    from logstack.connection.base import Target
    from logstack.connection.ssh import resolve

    web2 = fleet.hosts["web2"]
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host web2-alias\n  HostName {web2.address}\n  Port {web2.port}\n  User root\n"
        f"  IdentityFile {fleet.key}\n  ProxyJump root@{fleet.hosts['web1'].address}\n"
    )
    monkeypatch.setenv("LOGSTACK_SSH_CONFIG", str(config))
    params = resolve(Target(name="web2", address="web2-alias"))
    assert params["hostname"] == web2.address and params["username"] == "root"
    assert params["key_filenames"] == [str(fleet.key)] and params["proxy_jump"] == f"root@{fleet.hosts['web1'].address}"
    # the inventory names only the alias: ~/.ssh/config supplies address, user, key and the bastion
    spec = yaml.safe_load(fleet.inventory.read_text())
    spec["defaults"]["ssh"] = {}
    spec["hosts"] = [{**h, "address": "web2-alias"} if h["name"] == "web2" else h for h in spec["hosts"]]
    fleet.inventory.write_text(yaml.safe_dump(spec))
    inv = load_inventory(fleet.inventory)
    assert inv.host("web2").ssh.key is None and inv.host("web2").ssh.user is None
    PKI.for_inventory(inv).init_ca()
    result = invoke(runner, "enroll-host", "--no-verify", "web2", "-i", fleet.inventory)
    assert result.exit_code == 0, result.output
    assert web2.path("/etc/vector/vector.yaml").exists()


def test_a_revoked_host_is_refused_while_the_others_enroll(fleet, runner):
    inv = load_inventory(fleet.inventory)
    pki = PKI.for_inventory(inv)
    pki.init_ca()
    pki.issue_client(inv.host("web2"))
    pki.revoke("web2")
    result = invoke(runner, "enroll-host", "--no-verify", "--all", "-i", fleet.inventory)
    assert result.exit_code == 3
    assert "logstack: failed: host 'web2' is revoked" in result.stderr
    assert fleet.hosts["web1"].path("/etc/vector/vector.yaml").exists()
    assert not fleet.hosts["web2"].path("/etc/vector").exists()


def test_a_wrong_mode_is_fixed_without_a_restart(fleet, runner):
    inv = load_inventory(fleet.inventory)
    PKI.for_inventory(inv).init_ca()
    assert invoke(runner, "enroll-host", "--no-verify", "web1", "-i", fleet.inventory).exit_code == 0
    host = fleet.hosts["web1"]
    assert (
        fleet.ssh("web1", "chmod 0644 /etc/vector/tls/client.key && chgrp root /etc/vector/tls/client.key").returncode
        == 0
    )
    dry = invoke(runner, "enroll-host", "--no-verify", "web1", "--dry-run", "-i", fleet.inventory)
    assert "fix     /etc/vector/tls/client.key (root:root 0644 -> root:vector 0640)" in dry.stdout
    fixed = invoke(runner, "enroll-host", "--no-verify", "web1", "-i", fleet.inventory)
    assert fixed.exit_code == 0
    assert _owner(host, "/etc/vector/tls/client.key") == ("root", "vector", 0o640)
    assert host.systemctl_calls == ["daemon-reload", "enable vector", "restart vector"]  # no second restart


def test_directories_are_created_readable_and_a_closed_one_is_fixed(fleet, runner):
    inv = load_inventory(fleet.inventory)
    PKI.for_inventory(inv).init_ca()
    # web1: a new /etc/vector/tls is made by the apply script (umask 077 for files) and must still be 0755
    assert invoke(runner, "enroll-host", "--no-verify", "web1", "-i", fleet.inventory).exit_code == 0
    tls_dir = fleet.hosts["web1"].path("/etc/vector/tls")
    assert tls_dir.stat().st_mode & 0o7777 == 0o755
    # web2: a directory left 0700 (Vector, user vector, could not reach its certificates) is found and fixed
    assert fleet.ssh("web2", "mkdir -p -m 0700 /etc/vector/tls && chmod 0700 /etc/vector/tls").returncode == 0
    assert invoke(runner, "enroll-host", "--no-verify", "web2", "-i", fleet.inventory).exit_code == 0
    assert fleet.hosts["web2"].path("/etc/vector/tls").stat().st_mode & 0o7777 == 0o755
    assert fleet.ssh("web2", "chmod 0700 /etc/vector/tls").returncode == 0
    dry = invoke(runner, "enroll-host", "--no-verify", "web2", "--dry-run", "-i", fleet.inventory)
    assert "fix     /etc/vector/tls (root:root 0700 -> root:root 0755)" in dry.stdout, dry.stdout
    assert "1 directory to fix" in dry.stdout
    fixed = invoke(runner, "enroll-host", "--no-verify", "web2", "-i", fleet.inventory)
    assert fixed.exit_code == 0 and "changed" in fixed.stdout
    assert fleet.hosts["web2"].path("/etc/vector/tls").stat().st_mode & 0o7777 == 0o755
    # the vector user can now read what it needs (checked as that user on the host)
    read = fleet.ssh("web2", "su -s /bin/sh vector -c 'cat /etc/vector/tls/client.key >/dev/null'")
    assert read.returncode == 0, read.stderr
    again = invoke(runner, "enroll-host", "--no-verify", "web2", "-i", fleet.inventory)
    assert "changed" not in again.stdout


def test_a_machine_that_already_has_a_vector_user(tmp_path, ssh_client_key, runner):
    # as on a host where the vector package is installed: its user and group exist before the tests run
    fleet = make_fleet(
        tmp_path,
        ssh_client_key,
        ["web1"],
        first_octet=30,
        machine_state="{ getent group vector >/dev/null || groupadd --system vector; } && "
        "{ id -u vector >/dev/null 2>&1 || useradd --system -g vector -M -s /usr/sbin/nologin vector; }",
    )
    try:
        PKI.for_inventory(load_inventory(fleet.inventory)).init_ca()
        result = invoke(runner, "enroll-host", "--no-verify", "web1", "-i", fleet.inventory)
        assert result.exit_code == 0, result.output
        assert _owner(fleet.hosts["web1"], "/etc/vector/tls/client.key") == ("root", "vector", 0o640)
    finally:
        fleet.stop()
