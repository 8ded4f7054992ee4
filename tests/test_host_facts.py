"""Host facts drive the sender configuration; what does not build is never swapped in; what does not stay
up is rolled back. Test hosts run stand-ins for vector, journalctl and systemctl (tests/standins.py)."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from logstack.pki import PKI
from logstack.render.site_files import render_site
from logstack.site.host_facts import HostFacts, parse_facts
from logstack.site.inventory import load_inventory
from tests.conftest import EXAMPLE, invoke
from tests.fleet_site import make_fleet

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="test hosts need root (mount namespaces, sshd)")


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            "os_id=debian\nos_version=12\nsystemd=systemd 252 (252.22-1~deb12u1)\n"
            "vector=vector 0.57.0 (x86_64-unknown-linux-gnu abc 2026-07-14)\narch=x86_64\njournal=persistent\n",
            HostFacts("debian", "12", 252, "0.57.0", "x86_64", "persistent"),
        ),
        ("systemd=systemd 258 (258)\nvector=\n", HostFacts(systemd=258)),
        ("systemd=\nvector=vector 0.55.1 (x)\njournal=volatile\n", HostFacts(vector="0.55.1", journal="volatile")),
        # what a hostile or broken target prints is unknown, never trusted
        ("os_id=debian; rm -rf /\nsystemd=systemd 99999 (x)\narch=x86_64\x1b[2J\n", HostFacts()),
        ("systemd=systemd two-five-two\nvector=vector 0.57\njournal=somewhere\n", HostFacts()),
        ("", HostFacts()),
    ],
)
def test_facts_are_read_strictly(output, expected):
    assert parse_facts(output) == expected


def _journald(inv, host: str, facts: HostFacts | None) -> dict:
    given = {host: facts} if facts is not None else None
    f = next(
        f
        for f in render_site(inv, hosts=[inv.host(host)], server=False, facts=given)
        if f.path == "/etc/vector/vector.yaml"
    )
    return yaml.safe_load(f.content)["sources"]["journal"]


@pytest.mark.parametrize(
    ("systemd", "current_boot_only", "warned"),
    [(249, False, False), (250, True, True), (252, True, True), (257, True, True), (258, False, False)],
)
def test_current_boot_only_follows_the_systemd_version(systemd, current_boot_only, warned):
    inv = load_inventory(EXAMPLE)
    facts = HostFacts(systemd=systemd, vector="0.57.0")
    assert _journald(inv, "web1", facts)["current_boot_only"] is current_boot_only
    assert bool(facts.warnings()) is warned


def test_unknown_facts_render_the_value_every_systemd_accepts():
    inv = load_inventory(EXAMPLE)
    assert _journald(inv, "web1", None)["current_boot_only"] is True
    assert HostFacts().warnings()[0].startswith("systemd version unknown")


@pytest.fixture
def fleet(tmp_path, ssh_client_key):
    site = make_fleet(
        tmp_path,
        ssh_client_key,
        ["old", "new", "deb12", "vec055"],
        first_octet=80,
        versions={"old": (249, "0.57.0"), "new": (258, "0.57.1"), "deb12": (252, "0.57.0"), "vec055": (252, "0.55.0")},
        extra={"vector.manage_packages": False},  # an old Vector is the operator's to upgrade: it is refused
    )
    PKI.for_inventory(load_inventory(site.inventory)).init_ca()
    yield site
    site.stop()


@root_only
def test_enroll_renders_for_each_hosts_facts_and_refuses_an_old_vector(fleet, runner):
    dry = invoke(runner, "enroll-host", "--no-verify", "--all", "--dry-run", "-i", fleet.inventory)
    assert "warning: systemd 252: current_boot_only: true" in dry.stdout
    result = invoke(runner, "enroll-host", "--no-verify", "--all", "-i", fleet.inventory)
    assert result.exit_code == 3, result.output
    assert "vec055: Vector 0.55.0 is older than 0.57.0" in result.stderr and "upgrade Vector" in result.stderr
    assert "warning: deb12: systemd 252: current_boot_only: true" in result.stdout
    assert "warning: old:" not in result.stdout and "warning: new:" not in result.stdout
    for name, expected in (("old", False), ("new", False), ("deb12", True)):
        config = yaml.safe_load(fleet.hosts[name].path("/etc/vector/vector.yaml").read_text())
        assert config["sources"]["journal"]["current_boot_only"] is expected, name
    assert not fleet.hosts["vec055"].path("/etc/vector/vector.yaml").exists()
    assert fleet.hosts["vec055"].systemctl_calls == []
    # the facts are cached in the site, shown by `facts --cached`, and the review render follows them
    shown = invoke(runner, "facts", "--cached", "--format", "json", "-i", fleet.inventory)
    by_name = {row["name"]: row["facts"] for row in json.loads(shown.stdout)}
    assert by_name["deb12"]["systemd"] == 252 and by_name["vec055"]["vector"] == "0.55.0"
    assert by_name["server"] is None  # never read
    inv = load_inventory(fleet.inventory)
    assert _journald(inv, "new", None)["current_boot_only"] is False
    assert _journald(inv, "deb12", None)["current_boot_only"] is True
    live = invoke(runner, "facts", "deb12", "-i", fleet.inventory)
    assert live.exit_code == 0 and "252" in live.stdout and "warning: systemd 252" in live.stdout


@root_only
def test_a_configuration_that_does_not_build_is_never_swapped_in(fleet, runner):
    from logstack.connection.targets import host_target, known_hosts_path
    from logstack.deploy.apply import DeployOptions, deploy_machine

    assert invoke(runner, "enroll-host", "--no-verify", "deb12", "-i", fleet.inventory).exit_code == 0
    host = fleet.hosts["deb12"]
    before = {p: host.path(p).read_bytes() for p in ("/etc/vector/vector.yaml", "/etc/vector/tls/client.key")}
    calls = list(host.systemctl_calls)
    inv = load_inventory(fleet.inventory)

    def wrong_facts(facts: HostFacts) -> list:
        # rendered as if the host ran systemd 249: Vector refuses the result on 252
        return render_site(
            inv,
            pki=PKI.for_inventory(inv),
            include_keys=True,
            hosts=[inv.host("deb12")],
            server=False,
            facts={"deb12": HostFacts(systemd=249, vector="0.57.0")},
        )

    result = deploy_machine(
        host_target(inv.host("deb12")),
        wrong_facts,
        DeployOptions(known_hosts=known_hosts_path(inv), site_dir=inv.site_dir),
    )
    assert result.status == "failed"
    assert "Vector cannot build /etc/vector/vector.yaml" in result.reason
    assert "not supported for systemd versions 250 through 257 (got 252)" in result.reason
    assert {p: host.path(p).read_bytes() for p in before} == before
    assert host.systemctl_calls == calls
    assert not [p for p in host.upper.rglob(".logstack-tmp-*")]


@root_only
def test_a_service_that_does_not_stay_up_is_rolled_back(fleet, runner):
    assert invoke(runner, "enroll-host", "--no-verify", "new", "-i", fleet.inventory).exit_code == 0
    host = fleet.hosts["new"]
    managed = ("/etc/vector/vector.yaml", "/etc/vector/tls/client.pem", "/etc/vector/tls/client.key")
    before = {p: host.path(p).read_bytes() for p in managed}
    # Vector starts, then fails at run time (validation cannot see it): the new files must not stay
    assert fleet.ssh("new", "touch /var/lib/vector/stand-in-crash").returncode == 0
    fleet.inventory.write_text(fleet.inventory.read_text().replace("cmdb_id: 1001", "cmdb_id: 2001"))
    assert invoke(runner, "certs", "renew", "new", "-i", fleet.inventory).exit_code == 0
    result = invoke(runner, "enroll-host", "--no-verify", "new", "-i", fleet.inventory)
    assert result.exit_code == 3, result.output
    assert "vector did not stay up with the new files; the previous files are back" in result.stderr
    assert "Address already in use" in result.stderr  # the service's own last lines
    assert "PRIVATE KEY" not in result.output
    assert {p: host.path(p).read_bytes() for p in managed} == before
    assert host.systemctl_calls[-2:] == ["restart vector", "restart vector"]  # the new files, then the old
    assert not [p for p in host.upper.rglob("*.logstack-prev")]
    # once the cause is gone, the same change goes through and leaves no copies behind
    assert fleet.ssh("new", "rm /var/lib/vector/stand-in-crash").returncode == 0
    again = invoke(runner, "enroll-host", "--no-verify", "new", "-i", fleet.inventory)
    assert again.exit_code == 0, again.output
    assert b"2001" in host.path("/etc/vector/vector.yaml").read_bytes()
    assert not [p for p in host.upper.rglob("*.logstack-prev")]
