"""A site whose server and hosts are real sshd test hosts on 127.0.0.x."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from logstack.site.secrets import generate_secrets, secrets_path, write_secrets
from tests.sshd import SSHHost, make_host


@dataclass
class FleetSite:
    inventory: Path
    hosts: dict[str, SSHHost]
    key: Path

    @property
    def known_hosts(self) -> Path:
        return self.inventory.parent / "known_hosts"

    def pin_all(self) -> None:
        self.known_hosts.write_text("".join(h.host_key_line() for h in self.hosts.values()))

    def ssh(self, name: str, command: str) -> subprocess.CompletedProcess[str]:
        host = self.hosts[name]
        return subprocess.run(
            [
                "ssh",
                "-i",
                str(self.key),
                "-p",
                str(host.port),
                "-o",
                f"UserKnownHostsFile={self.known_hosts}",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                f"root@{host.address}",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def stop(self) -> None:
        for host in self.hosts.values():
            host.stop()


def make_fleet(
    base: Path,
    key: Path,
    names: list[str],
    server: bool = False,
    first_octet: int = 2,
    extra: dict | None = None,
    machine_state: str = "",
    versions: dict[str, tuple[int, str | None]] | None = None,
    receivers: tuple[str, ...] = (),
) -> FleetSite:
    """Hosts on 127.0.0.x; `machine_state` is a shell command run on each first (state a machine may have);
    `versions` gives a host's (systemd, Vector) versions (default: systemd 252, Vector 0.57.0)."""
    hosts: dict[str, SSHHost] = {}
    try:
        return _make_fleet(
            base, key, names, server, first_octet, extra or {}, hosts, machine_state, versions or {}, receivers
        )
    except BaseException:  # hosts started before the failure must not outlive it
        for host in hosts.values():
            host.stop()
        raise


def _make_fleet(
    base: Path,
    key: Path,
    names: list[str],
    server: bool,
    first_octet: int,
    extra: dict,
    hosts: dict[str, SSHHost],
    machine_state: str,
    versions: dict[str, tuple[int, str | None]],
    receivers: tuple[str, ...] = (),
) -> FleetSite:
    octet = first_octet
    spec_hosts = []
    spec_receivers = []
    all_names = (["server"] if server else []) + list(receivers) + names
    for name in all_names:
        address = f"127.0.0.{octet}"
        octet += 1
        systemd, vector = versions.get(name, (252, "0.57.0"))
        hosts[name] = make_host(base / name, name, address, key, systemd=systemd, vector=vector)
        if name in receivers:  # more receivers: machines of their own, not senders
            spec_receivers.append(
                {
                    "name": name,
                    "fqdn": f"{name}.example.com",
                    "address": address,
                    "ssh": {"user": "root", "key": str(key)},
                }
            )
        elif name != "server":
            spec_hosts.append(
                {"name": name, "address": address, "fqdn": f"{name}.example.com", "cmdb_id": 1000 + len(spec_hosts)}
            )
    site = base / "site"
    site.mkdir()
    spec = {
        "site": "test",
        "server": {
            "fqdn": "logs.example.com",
            "address": hosts["server"].address if server else "127.0.0.250",
            "ssh": {"user": "root", "key": str(key)},
            "manage_packages": False,
        },
        "known_hosts": "known_hosts",
        "defaults": {"ssh": {"user": "root", "key": str(key)}},
        "hosts": spec_hosts,
    }
    if spec_receivers:
        spec["server"]["receivers"] = spec_receivers
    for key_path, value in extra.items():
        node = spec
        *parents, last = key_path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    (site / "inventory.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    write_secrets(secrets_path(site), generate_secrets())
    fleet = FleetSite(site / "inventory.yaml", hosts, key)
    fleet.pin_all()
    # the vector package would have created its user and group on every machine (where the machine running
    # the tests already has them, the hosts see them through their /etc overlay)
    for name in all_names:
        if machine_state:
            prepared = fleet.ssh(name, machine_state)
            assert prepared.returncode == 0, prepared.stderr
        result = fleet.ssh(
            name,
            "getent group vector >/dev/null || groupadd --system vector; "
            "id -u vector >/dev/null 2>&1 || useradd --system -g vector -M -s /usr/sbin/nologin vector; "
            "install -d -o vector -g vector -m 0755 /var/lib/vector",
        )
        assert result.returncode == 0, result.stderr
    return fleet
