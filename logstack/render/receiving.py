"""The receivers' and the store's files: the server's, and those of more receiving machines."""

from __future__ import annotations

import ipaddress
import json
from typing import TYPE_CHECKING, Any

from logstack.base.ca_bundle import read_bundle, resolve
from logstack.base.paths import source_id
from logstack.base.validation import without_scope
from logstack.journal.record import SIGNATURE_COLUMNS, STORE_COLUMNS
from logstack.render.rendered import SERVER_MACHINE, RenderedFile
from logstack.render.templating import placeholder, template
from logstack.site.inventory import Inventory
from logstack.site.secrets import DB_USERS, S3_KEYS, Secrets
from logstack.site.topology import STORE_CA, STORE_CA_ANALYSIS

if TYPE_CHECKING:
    from logstack.pki import PKI


def table_columns(inventory: Inventory) -> list[str]:
    """String columns of the logs table: journald fields, then every identity field in the fleet."""
    columns = [*STORE_COLUMNS, "logstack_config", *SIGNATURE_COLUMNS]
    seen = set(columns)
    for host in inventory.hosts:
        for name in host.columns:
            if name not in seen:
                seen.add(name)
                columns.append(name)
    return columns


def db_passwords(secrets: Secrets | None) -> dict[str, str]:
    """Database passwords for deployment, or placeholders for review."""
    if secrets is None:
        return {user: placeholder(f"greptimedb/{user}") for user in DB_USERS}
    return dict(secrets.db_passwords)


def alert_files(inventory: Inventory, secrets: Secrets | None) -> list[RenderedFile]:
    """The destinations (readable) and their secrets (root's only; placeholders in review)."""
    from logstack.site.alerts import ALERT_SECRETS_FILE, ALERTS_FILE, AlertConfig, check_secrets, server_files

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


def firewall_files(inventory: Inventory, pki: PKI, machine: str = SERVER_MACHINE) -> list[RenderedFile]:
    """A receiver's sender allowlist and the unit that loads it."""
    v4, v6 = enrolled_addresses(inventory, pki)
    ctx = {"site": inventory.spec.site, "server": inventory.server}
    nft = template("server/firewall.nft.j2").render(**ctx, v4=v4, v6=v6).encode()
    unit = template("server/logstack-firewall.service.j2").render(**ctx).encode()
    return [
        RenderedFile(machine, "/etc/logstack/firewall.nft", nft, "root", "root", 0o644, "logstack-firewall", False),
        RenderedFile(
            machine,
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


# Where every receiving machine's Vector serves its own metrics (prometheus_exporter; its default is
# 0.0.0.0:9598, vector v0.57.0 src/sinks/prometheus/exporter.rs:169-170): loopback only.
METRICS_ADDRESS = "127.0.0.1:9598"

# The server's files that belong to a standalone store: with an external one the server only receives.
STANDALONE_ONLY = frozenset(
    {"/etc/greptime/standalone.toml", "/etc/greptime/users.conf", "/etc/systemd/system/greptime.service"}
)
# What another receiving machine gets of the server's files.
RECEIVER_PATHS = frozenset(
    {
        "/etc/vector/vector.yaml",
        "/etc/systemd/system/vector.service.d/10-logstack.conf",
        "/etc/vector/tls/ca.pem",
        "/etc/vector/tls/server.pem",
        "/etc/vector/tls/server.key",
    }
)


def db_args(server: Any) -> str:
    """How the server's units reach the store's MySQL port: loopback, or the external store over TLS."""
    store = server.store
    if store.type != "external":
        return "--db-host 127.0.0.1 --db-port 4002"
    tls = f" --db-tls-ca {STORE_CA_ANALYSIS}" if store.ca_file else ""
    return f"--db-host {store.mysql_host} --db-port {store.mysql_port} --db-tls{tls}"


def db_http(server: Any) -> str:
    """Where the analysis reads the rows as Arrow: GreptimeDB's HTTP port on loopback (standalone.toml's
    `[http] addr`), or the external store's HTTP endpoint (verified with the same CA as its MySQL port)."""
    store = server.store
    return f"--db-http {store.http_endpoint}" if store.type == "external" else "--db-http http://127.0.0.1:4000"


def analysis_state(server: Any) -> str:
    """The analysis keeps the state it had with the standalone store when the store moves (the rows were
    carried over, and what was reported stays reported): named as for 127.0.0.1:4002."""
    if server.store.type != "external":
        return ""
    return f" --state-id {source_id(None, '127.0.0.1', 4002, server.database, server.table)}"


def store_ca_pem(inventory: Inventory) -> bytes:
    """The external store's CA certificates, read on the operator's machine (relative to the site)."""
    path = resolve(str(inventory.server.store.ca_file), inventory.site_dir)
    return read_bundle(path, "server.store.ca_file")


def store_ca_files(machine: str, pem: bytes | None, analysis: bool) -> list[RenderedFile]:
    """The external store's CA for a receiver's sink (and, on the server, its analysis units)."""
    if pem is None:
        return []
    files = [RenderedFile(machine, STORE_CA, pem, "root", "vector", 0o644, "vector", False)]
    if analysis:
        files.append(RenderedFile(machine, STORE_CA_ANALYSIS, pem, "root", "root", 0o644, None, False))
    return files


def storage_env_files(inventory: Inventory, secrets: Secrets | None) -> list[RenderedFile]:
    """The object storage keys of a standalone store, as GreptimeDB's environment (root's only)."""
    store = inventory.server.store
    if store.type != "standalone" or store.object_storage is None:
        return []
    keys = _s3_keys(inventory, secrets, "store", "object storage")
    env = "".join(f"GREPTIMEDB_STANDALONE__STORAGE__{k.upper()}={v}\n" for k, v in sorted(keys.items()))
    return [
        RenderedFile(SERVER_MACHINE, "/etc/greptime/storage.env", env.encode(), "root", "root", 0o600, "greptime", True)
    ]


def backup_s3_files(inventory: Inventory, secrets: Secrets | None) -> list[RenderedFile]:
    """The backup bucket's keys for the backup unit (root's only; placeholders in review)."""
    backup = inventory.server.backup
    if backup is None or backup.s3 is None:
        return []
    keys = _s3_keys(inventory, secrets, "backup", "backup.s3")
    content = (json.dumps(keys, indent=2, sort_keys=True) + "\n").encode()
    return [RenderedFile(SERVER_MACHINE, "/etc/logstack/backup-s3.json", content, "root", "root", 0o600, None, True)]


def _s3_keys(inventory: Inventory, secrets: Secrets | None, section: str, needed_for: str) -> dict[str, str]:
    """An S3 key pair from secrets.yaml for deployment, or placeholders for review."""
    if secrets is None:
        return {k: placeholder(f"secrets.yaml {section}.{k}") for k in S3_KEYS}
    return secrets.s3_keys(section, needed_for, inventory.site_dir / "secrets.yaml")


# How long one run of each scheduled unit may take (TimeoutStartSec= of a oneshot service: systemd stops a run
# that overruns, and the next scheduled one starts on time). Analysis: its own work, then every destination's
# tries, each bounded as a whole by its timeout, with the back-off between them (at most 8 s).
ANALYSIS_BUDGET = 30 * 60
SEAL_BUDGET = 30 * 60
BACKUP_BUDGET = 6 * 3600  # COPY DATABASE of a large store


def run_limits(server: Any) -> dict[str, int]:
    """Seconds each scheduled unit's run may take, sized from the inventory's alert destinations."""
    alerts = sum((dest.retries + 1) * (dest.timeout + 5 + 8) for dest in server.alerts)
    return {"analyze": ANALYSIS_BUDGET + alerts, "seal": SEAL_BUDGET, "backup": BACKUP_BUDGET}
