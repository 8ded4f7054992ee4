"""The server's sender allowlist: enrolled hosts only, checked by the real nft, deployed by enroll-host."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from logstack.base.errors import InventoryError
from logstack.pki import PKI
from logstack.render.site_files import firewall_files, render_site
from logstack.site.inventory import load_inventory
from tests.conftest import EXAMPLE, invoke
from tests.fleet_site import make_fleet

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="nft -c and test hosts need root")


def _site(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(EXAMPLE.read_text().replace("firewall: false", "firewall: true"))
    return path


@root_only
def test_allowlist_holds_enrolled_hosts_only_and_nft_accepts_it(tmp_path):
    inv = load_inventory(_site(tmp_path))
    pki = PKI.for_inventory(inv)
    pki.init_ca()
    empty = firewall_files(inv, pki)[0].content.decode()
    assert "elements" not in empty
    for name in ("web1", "db1"):
        pki.issue_client(inv.host(name))
    pki.issue_client(inv.host("web2"))
    pki.revoke("web2")
    nft = firewall_files(inv, pki)[0].content.decode()
    assert "elements = { 192.0.2.21 }" in nft and "elements = { 2001:db8::31 }" in nft
    assert "192.0.2.22" not in nft
    assert "tcp dport 3003 counter drop" in nft
    for text in (empty, nft):
        checked = tmp_path / "check.nft"
        checked.write_text(text)
        result = subprocess.run(["nft", "-c", "-f", str(checked)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    names = {f.path for f in render_site(inv, pki=pki) if f.machine == "server"}
    assert {"/etc/logstack/firewall.nft", "/etc/systemd/system/logstack-firewall.service"} <= names


def test_firewall_needs_ip_addresses(tmp_path):
    path = _site(tmp_path)
    path.write_text(path.read_text().replace("address: 192.0.2.22", "address: web2.internal"))
    with pytest.raises(InventoryError, match=r"hosts\[1\]\.address: must be an IP address while server.firewall"):
        load_inventory(path)


@root_only
def test_enroll_adds_the_host_to_the_servers_allowlist(tmp_path, ssh_client_key, runner):
    if shutil.which("nft") is None:
        pytest.fail("nftables is not installed: run bash tests/setup.sh")
    fleet = make_fleet(tmp_path, ssh_client_key, ["web1"], server=True, first_octet=70, extra={"server.firewall": True})
    try:
        inv = load_inventory(fleet.inventory)
        PKI.for_inventory(inv).init_ca()
        result = invoke(runner, "enroll-host", "--no-verify", "web1", "-i", fleet.inventory)
        assert result.exit_code == 0, result.output
        server = fleet.hosts["server"]
        nft = server.path("/etc/logstack/firewall.nft").read_text()
        assert "elements = { 127.0.0.71 }" in nft
        assert server.systemctl_calls == ["daemon-reload", "enable logstack-firewall", "restart logstack-firewall"]
        again = invoke(runner, "enroll-host", "--no-verify", "web1", "-i", fleet.inventory)
        assert again.exit_code == 0
        assert server.systemctl_calls == ["daemon-reload", "enable logstack-firewall", "restart logstack-firewall"]
    finally:
        fleet.stop()


def test_enroll_adds_the_host_to_every_receivers_allowlist(tmp_path, ssh_client_key, runner):
    import yaml

    fleet = make_fleet(
        tmp_path,
        ssh_client_key,
        ["web1"],
        server=True,
        first_octet=90,
        extra={"server.firewall": True},
        receivers=("logs2",),
    )
    try:
        spec = yaml.safe_load(fleet.inventory.read_text())
        spec["server"]["store"] = {
            "type": "external",
            "http_endpoint": "https://greptime.example.com",
            "mysql_host": "greptime.example.com",
        }
        fleet.inventory.write_text(yaml.safe_dump(spec, sort_keys=False))
        PKI.for_inventory(load_inventory(fleet.inventory)).init_ca()
        result = invoke(runner, "enroll-host", "--no-verify", "web1", "-i", fleet.inventory)
        assert result.exit_code == 0, result.output
        web1 = fleet.hosts["web1"].address
        for name in ("server", "logs2"):
            nft = fleet.hosts[name].path("/etc/logstack/firewall.nft").read_text()
            assert f"elements = {{ {web1} }}" in nft, name
            assert fleet.hosts[name].systemctl_calls == [
                "daemon-reload",
                "enable logstack-firewall",
                "restart logstack-firewall",
            ]
        assert "logs2 (firewall)" in result.stdout
    finally:
        fleet.stop()
