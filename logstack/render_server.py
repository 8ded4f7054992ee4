"""The receivers' and the store's files: the server's, and those of more receiving machines."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from logstack.files import SERVER_MACHINE, RenderedFile
from logstack.inventory import Inventory
from logstack.secrets_store import DB_USERS, Secrets
from logstack.signing import SIGNATURE_COLUMNS
from logstack.templating import _template, placeholder
from logstack.validation import without_scope

if TYPE_CHECKING:
    from logstack.pki import PKI

# journald columns every event carries, created up front so the first batch cannot race table creation.
JOURNAL_COLUMNS: tuple[str, ...] = (
    "host",
    "message",
    "timestamp",
    "source_type",
    "SYSLOG_IDENTIFIER",
    "SYSLOG_FACILITY",
    "SYSLOG_PID",
    "PRIORITY",
    "_PID",
    "_UID",
    "_GID",
    "_COMM",
    "_EXE",
    "_CMDLINE",
    "_AUDIT_LOGINUID",
    "_AUDIT_SESSION",
    "_SYSTEMD_UNIT",
    "_BOOT_ID",
    "_MACHINE_ID",
    "_TRANSPORT",
    "__CURSOR",
    "__MONOTONIC_TIMESTAMP",
    "__REALTIME_TIMESTAMP",
)



def table_columns(inventory: Inventory) -> list[str]:
    """String columns of the logs table: journald fields, then every identity field in the fleet."""
    columns = [*JOURNAL_COLUMNS, "logstack_config", *SIGNATURE_COLUMNS]
    seen = set(columns)
    for host in inventory.hosts:
        for name in host.columns:
            if name not in seen:
                seen.add(name)
                columns.append(name)
    return columns


def _passwords(secrets: Secrets | None) -> dict[str, str]:
    """Database passwords for deployment, or placeholders for review."""
    if secrets is None:
        return {user: placeholder(f"greptimedb/{user}") for user in DB_USERS}
    return dict(secrets.db_passwords)



def alert_files(inventory: Inventory, secrets: Secrets | None) -> list[RenderedFile]:
    """The destinations (readable) and their secrets (root's only; placeholders in review)."""
    from logstack.alerts.files import ALERT_SECRETS_FILE, ALERTS_FILE, AlertConfig, check_secrets, server_files

    destinations = list(inventory.server.alerts)
    if secrets is not None:
        config = AlertConfig(inventory.spec.site, tuple(destinations), secrets.alerts)
        check_secrets(config, str(inventory.site_dir / "secrets.yaml"))
    public, private = server_files(inventory.spec.site, destinations, None if secrets is None else secrets.alerts)
    return [
        RenderedFile(SERVER_MACHINE, ALERTS_FILE, public, "root", "root", 0o644, None, False),
        RenderedFile(SERVER_MACHINE, ALERT_SECRETS_FILE, private, "root", "root", 0o600, None, True),
    ]



def enrolled_addresses(inventory: Inventory, pki: PKI) -> tuple[list[str], list[str]]:
    """IPv4 and IPv6 addresses of hosts holding a valid certificate (the firewall allowlist)."""
    v4: list[str] = []
    v6: list[str] = []
    if not pki.exists():
        return v4, v6
    for host in inventory.hosts:
        record = pki.registry.current(host.name)
        if record is None or record.status != "valid" or host.name in pki.registry.revoked_hosts:
            continue
        # a packet filter matches addresses: an IPv6 scope id (an interface name) is not part of one
        address = ipaddress.ip_address(without_scope(host.address))
        (v4 if address.version == 4 else v6).append(str(address))
    return sorted(set(v4), key=ipaddress.ip_address), sorted(set(v6), key=ipaddress.ip_address)


def firewall_files(inventory: Inventory, pki: PKI) -> list[RenderedFile]:
    """The server's sender allowlist and the unit that loads it."""
    v4, v6 = enrolled_addresses(inventory, pki)
    ctx = {"site": inventory.spec.site, "server": inventory.server}
    nft = _template("server/firewall.nft.j2").render(**ctx, v4=v4, v6=v6).encode()
    unit = _template("server/logstack-firewall.service.j2").render(**ctx).encode()
    return [
        RenderedFile(
            SERVER_MACHINE, "/etc/logstack/firewall.nft", nft, "root", "root", 0o644, "logstack-firewall", False
        ),
        RenderedFile(
            SERVER_MACHINE,
            "/etc/systemd/system/logstack-firewall.service",
            unit,
            "root",
            "root",
            0o644,
            "logstack-firewall",
            False,
            unit=True,
        ),
    ]
