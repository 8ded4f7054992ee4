"""`logstack status`: is every host reporting, is the server healthy, are certificates current."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from logstack.base.clock import DAY, SECOND, iso, parse_registry_time, to_micros
from logstack.base.errors import RuntimeFailure, SecretsError
from logstack.base.paths import DATA_ROOT
from logstack.base.shell import shell_command
from logstack.base.terminal import escape
from logstack.connection.base import Connection
from logstack.connection.registry import connect
from logstack.connection.targets import known_hosts_path, receiver_target, server_target
from logstack.evidence.receiver_metrics import ReceiverMetrics, exporter_addresses, read_metrics
from logstack.integrity.signatures import Unverified, Verifier, heartbeat_time, site_verifier
from logstack.journal.record import HEARTBEAT_IDENTIFIER
from logstack.pki import PKI, SERVER
from logstack.pki.service import monitor_credentials
from logstack.provision.logstack_install import LINK as LOGSTACK
from logstack.site.inventory import Host, Inventory
from logstack.site.secrets import load_secrets, secrets_path
from logstack.site.topology import receiver_key
from logstack.store.backup import BACKUP_TABLE, last_backup, manifest_reader, newest_backup_manifest, site_s3
from logstack.store.backup_targets import S3Storage
from logstack.store.greptime import DatabaseConfig, GreptimeHTTP, site_database, store_api
from logstack.store.reader import DatabaseSource


@dataclass
class HostStatus:
    """One sender as status sees it."""

    name: str
    enrolled: bool
    certificate_days_left: int | None
    last_heartbeat: str | None
    heartbeat_age_seconds: int | None
    last_event: str | None
    rejected_heartbeats: int = 0  # recent heartbeats whose signature does not prove this host sent them
    problems: list[str] = field(default_factory=list)


@dataclass
class ServerStatus:
    """The receiver as status sees it."""

    greptimedb: str = "unknown"
    vector_tls: str = "unknown"
    receivers: dict[str, str] = field(default_factory=dict)  # the other receivers' Vector TLS ports
    receiver_certificates: dict[str, int | None] = field(default_factory=dict)  # their certificates' days left
    data_dir_free_bytes: int | None = None
    data_dir_free_percent: float | None = None
    certificate_days_left: int | None = None
    sink_discarded: int | None = None  # events the GreptimeDB sink dropped since Vector started
    sink_errors: int | None = None
    buffer_percent: float | None = None  # fill of the receiver's disk buffer
    receiver_metrics: dict[str, ReceiverMetrics] = field(default_factory=dict)  # the other receivers' metrics
    last_backup: str | None = None  # the newest backup `logstack backup` recorded in the store
    alert_backlog: dict[str, int] = field(default_factory=dict)  # destination -> events it has yet to accept
    problems: list[str] = field(default_factory=list)


@dataclass
class StatusReport:
    """Everything `logstack status` prints."""

    checked_at: str
    hosts: list[HostStatus]
    server: ServerStatus

    @property
    def problems(self) -> list[str]:
        return [
            *(f"server: {p}" for p in self.server.problems),
            *(f"{h.name}: {p}" for h in self.hosts for p in h.problems),
        ]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["problems"] = self.problems
        return data


def _days_left(pki: PKI, name: str, now: dt.datetime) -> int | None:
    record = pki.registry.current(name)
    if record is None or record.status != "valid":
        return None
    return (parse_registry_time(record.not_after) - now).days


@dataclass
class Seen:
    """What the store shows of each host: newest heartbeat and other line (µs), heartbeats that failed checks."""

    heartbeats: dict[str, int]
    events: dict[str, int]
    rejected: Counter[str] = field(default_factory=Counter)


def _last_seen(
    config: DatabaseConfig, since: dt.datetime, verifier: Verifier | None = None, recent: dt.datetime | None = None
) -> Seen:
    """Newest heartbeat and newest other line per host (ingest time, µs). With a verifier, a heartbeat counts
    only when its signature proves the host it names sent it: the newest such since `recent`."""
    found: list[dict[str, int]] = [{}, {}]
    rejected: Counter[str] = Counter()
    with DatabaseSource(config) as db:
        if verifier is not None and recent is not None:
            found[0] = _authentic_heartbeats(db, verifier, to_micros(recent), rejected)
        for index, op in enumerate(("=", "<>")):
            if index == 0 and verifier is not None and recent is not None:
                continue
            rows = db.query(
                f"SELECT `logstack_host` AS host, MAX(`greptime_timestamp`) AS newest FROM `{config.table}` "
                f"WHERE `SYSLOG_IDENTIFIER` {op} %s AND `greptime_timestamp` >= %s GROUP BY `logstack_host`",
                (HEARTBEAT_IDENTIFIER, since.replace(tzinfo=None)),
            )
            for row in rows:
                if row["host"] is not None and row["newest"] is not None:
                    found[index][str(row["host"])] = to_micros(row["newest"])
    return Seen(found[0], found[1], rejected)


def _authentic_heartbeats(db: DatabaseSource, verifier: Verifier, start: int, rejected: Counter[str]) -> dict[str, int]:
    newest: dict[str, int] = {}
    for row in db.rows(start, start + 30 * DAY, identifier=HEARTBEAT_IDENTIFIER):
        host, stamp = row.get("logstack_host"), heartbeat_time(row)
        if not isinstance(host, str) or stamp is None:
            continue
        if verifier.check(row).problem is not None:
            rejected[host] += 1
            continue
        newest[host] = max(newest.get(host, 0), stamp)
    return newest


def _vector_handshake(inventory: Inventory, pki: PKI, passphrase: bytes | None) -> dict[str, str]:
    """A mutual-TLS handshake with every receiver, as a sender makes it (each one's own name verified)."""
    server = inventory.server
    context = ssl.create_default_context(cadata=pki.ca_bundle_pem().decode())
    with monitor_credentials(pki, passphrase) as (cert, key):
        context.load_cert_chain(cert, key)
    machines = [("server", server.address or server.fqdn, server.fqdn)]
    machines += [(r.name, r.address or r.fqdn, r.fqdn) for r in server.receivers]
    found = {}
    for name, address, fqdn in machines:
        try:
            with (
                socket.create_connection((address, server.vector_port), timeout=10) as raw,
                context.wrap_socket(raw, server_hostname=fqdn) as tls,
            ):
                found[name] = f"ok ({tls.version()})"
        except (OSError, ssl.SSLError) as exc:
            found[name] = f"failed: {exc}"
    return found


def _df_free(output: str) -> tuple[int, int] | None:
    """(total, available) bytes from `df -P -B1` output; None when it is not what df prints."""
    rows = output.splitlines()
    parts = rows[-1].split() if len(rows) >= 2 else []
    if len(parts) < 6 or not parts[1].isdigit() or not parts[3].isdigit():
        return None
    return int(parts[1]), int(parts[3])


def check_status(
    inventory: Inventory,
    *,
    silence: dt.timedelta = dt.timedelta(minutes=10),
    cert_window: dt.timedelta = dt.timedelta(days=30),
    db_port: int = 4002,
    accept_new: bool = False,
    passphrase: bytes | None = None,
) -> StatusReport:
    """Check hosts (heartbeats, certificates) and the server (GreptimeDB, Vector's TLS port, disk)."""
    now = dt.datetime.now(dt.UTC)
    pki = PKI.for_inventory(inventory)
    secrets = load_secrets(secrets_path(inventory.site_dir))
    server = ServerStatus(certificate_days_left=_days_left(pki, SERVER, now))
    server.receiver_certificates = {
        r.name: _days_left(pki, receiver_key(r.name), now) for r in inventory.server.receivers
    }
    with connect(server_target(inventory), known_hosts_path(inventory), accept_new=accept_new) as conn:
        _check_server(conn, inventory, server, secrets.db_password("analyst"))
        exporters = exporter_addresses(inventory)
        metrics = read_metrics(conn, exporters.get("server"))
        if metrics.problem:
            server.problems.append(metrics.problem)
        else:
            server.sink_discarded, server.sink_errors, server.buffer_percent = (
                metrics.discarded,
                metrics.errors,
                metrics.buffer_percent,
            )
        analyst = store_api(conn, inventory, "analyst", secrets.db_password("analyst"))
        _check_backup(analyst, inventory, server, now)
        _check_backup_files(conn, analyst, inventory, server, site_s3(inventory, secrets))
        _check_alerts(conn, inventory, server)
        with site_database(conn, inventory, secrets.db_password("analyst"), db_port) as config:
            # fail closed: a key ring missing or unusable proves no heartbeat, and that is itself a finding
            try:
                verifier = site_verifier(inventory.site_dir, None)
            except SecretsError as exc:
                verifier = Unverified()
                server.problems.append(f"{exc}; no heartbeat is proven")
            recent = now - max(2 * silence, dt.timedelta(hours=1))
            seen = _last_seen(config, now - dt.timedelta(days=1), verifier, recent)
    server.receiver_metrics = _receivers_metrics(inventory, exporters, accept_new)
    handshakes = _vector_handshake(inventory, pki, passphrase) if pki.registry.active_ca else {"server": "no CA"}
    server.vector_tls = handshakes.pop("server")
    server.receivers = handshakes
    server.problems = _server_problems(server, inventory, cert_window)
    hosts = [_host_status(host, pki, now, seen, silence, cert_window) for host in inventory.hosts]
    return StatusReport(checked_at=iso(to_micros(now)), hosts=hosts, server=server)


def _receivers_metrics(
    inventory: Inventory, exporters: dict[str, tuple[str, int] | None], accept_new: bool
) -> dict[str, ReceiverMetrics]:
    """Each other receiving machine's Vector metrics, read over its own SSH connection."""
    found: dict[str, ReceiverMetrics] = {}
    for spec in inventory.server.receivers:
        try:
            with connect(receiver_target(spec), known_hosts_path(inventory), accept_new=accept_new) as conn:
                found[spec.name] = read_metrics(conn, exporters.get(spec.name))
        except RuntimeFailure as exc:
            found[spec.name] = ReceiverMetrics(problem=f"unreachable: {exc}")
    return found


def _check_server(conn: Connection, inventory: Inventory, server: ServerStatus, password: str) -> None:
    """The store's /health (on the server, or the external endpoint) and a standalone store's free space."""
    api = store_api(conn, inventory, "analyst", password)
    try:
        status, _ = api.request("GET", "/health")
        server.greptimedb = "ok" if status == 200 else f"HTTP {status}"
    except RuntimeFailure as exc:
        server.greptimedb = f"failed: {exc}"
    if inventory.server.store.type == "external":
        return
    df = 'df -P -B1 -- "$1" 2>/dev/null || df -P -B1 /'
    _, out, _ = conn.run(shell_command(df, inventory.server.data_dir), check=False)
    free = _df_free(out.decode(errors="replace"))
    if free is not None:
        total, available = free
        server.data_dir_free_bytes = available
        server.data_dir_free_percent = round(100 * available / total, 1) if total else None


def _check_backup(api: GreptimeHTTP, inventory: Inventory, server: ServerStatus, now: dt.datetime) -> None:
    """The newest recorded backup, flagged when older than `backup.max_age_hours`."""
    settings = inventory.server.backup
    if settings is None:
        return
    try:
        newest = last_backup(api, inventory.server.database)
    except RuntimeFailure as exc:
        server.problems.append(f"backups: cannot read {BACKUP_TABLE}: {exc}")
        return
    if newest is None:
        server.problems.append("no backup recorded yet (logstack-backup.timer; run `logstack backup` on the server)")
        return
    server.last_backup = newest.strftime("%Y-%m-%dT%H:%M:%SZ")
    age = (now - newest).total_seconds() / 3600
    if age < -0.1:
        server.problems.append(f"the newest recorded backup is dated in the future ({server.last_backup})")
    elif age > settings.max_age_hours:
        server.problems.append(f"the newest backup is {age:.0f} h old (max_age_hours {settings.max_age_hours})")


def _check_backup_files(
    conn: Connection, api: GreptimeHTTP, inventory: Inventory, server: ServerStatus, storage: S3Storage | None
) -> None:
    """The newest recorded backup is on the server with its manifest: a row alone proves nothing (the
    ingest user may write rows too)."""
    if inventory.server.backup is None or server.last_backup is None:
        return
    found = newest_backup_manifest(api, inventory.server.database, manifest_reader(conn, storage))
    if found is None:
        server.problems.append(
            f"the newest recorded backup ({server.last_backup}) has no manifest on the server: removed, or the "
            "record is not logstack's"
        )


def _check_alerts(conn: Connection, inventory: Inventory, server: ServerStatus) -> None:
    """What each alert destination has yet to accept, as the server's logstack reads its queues."""
    if not inventory.server.alerts:
        return
    backlog = '"$1" alerts backlog --data-dir "$2" --json'
    status, out, _ = conn.run(shell_command(backlog, LOGSTACK, str(DATA_ROOT)), check=False)
    if status != 0:
        server.problems.append(f"{LOGSTACK} cannot read the alert queues (exit {status}): run init-server")
        return
    try:
        states = json.loads(out)
        rows = [row for queues in states.values() for row in queues]
        for row in rows:
            server.alert_backlog[str(row["dest"])] = int(row["queued"]) + server.alert_backlog.get(str(row["dest"]), 0)
            if row["queued"] or row["overflow"]:
                error = f" (last error: {escape(str(row['last_error'])[:200])})" if row["last_error"] else ""
                server.problems.append(
                    f"alerts: {row['dest']} has {row['queued']} events waiting and {row['overflow']} that did "
                    f"not fit its queue{error}"
                )
    except (ValueError, KeyError, TypeError, AttributeError):
        server.problems.append("alerts: unreadable answer from the server's logstack alerts backlog")


def _server_problems(server: ServerStatus, inventory: Inventory, cert_window: dt.timedelta) -> list[str]:
    problems = list(server.problems)
    if server.sink_discarded:
        problems.append(
            f"the GreptimeDB sink discarded {server.sink_discarded} events since Vector started: GreptimeDB "
            "refused them (wrong password, column type, missing database) and they are lost; see its log"
        )
    if server.sink_errors:
        problems.append(f"the GreptimeDB sink had {server.sink_errors} failed requests since Vector started")
    if server.buffer_percent is not None and server.buffer_percent >= 80:
        problems.append(f"the receiver's disk buffer is {server.buffer_percent}% full (GreptimeDB slow or down)")
    if server.greptimedb != "ok":
        problems.append(f"GreptimeDB /health {server.greptimedb}")
    if not server.vector_tls.startswith("ok"):
        problems.append(f"Vector TLS port {server.vector_tls}")
    problems += [
        f"receiver {name}: Vector TLS port {state}"
        for name, state in server.receivers.items()
        if not state.startswith("ok")
    ]
    for name, metrics in server.receiver_metrics.items():
        if metrics.problem:
            problems.append(f"receiver {name}: {metrics.problem}")
        elif metrics.discarded or metrics.errors or (metrics.buffer_percent or 0) >= 80:
            problems.append(
                f"receiver {name}: the GreptimeDB sink discarded {metrics.discarded} events, had {metrics.errors} "
                f"failed requests; disk buffer {metrics.buffer_percent}% full"
            )
    for name, days in server.receiver_certificates.items():
        if days is None or days <= cert_window.days:
            problems.append(f"receiver {name}: certificate: {days} days left")
    if server.data_dir_free_percent is not None and server.data_dir_free_percent < 10:
        problems.append(f"only {server.data_dir_free_percent}% free in {inventory.server.data_dir}")
    if server.certificate_days_left is None or server.certificate_days_left <= cert_window.days:
        problems.append(f"server certificate: {server.certificate_days_left} days left")
    return problems


def _host_status(
    host: Host,
    pki: PKI,
    now: dt.datetime,
    seen: Seen,
    silence: dt.timedelta,
    cert_window: dt.timedelta,
) -> HostStatus:
    now_us = to_micros(now)
    days = _days_left(pki, host.name, now)
    beat = seen.heartbeats.get(host.name)
    events = seen.events
    item = HostStatus(
        name=host.name,
        enrolled=days is not None and host.name not in pki.registry.revoked_hosts,
        certificate_days_left=days,
        last_heartbeat=iso(beat) if beat else None,
        heartbeat_age_seconds=(now_us - beat) // SECOND if beat else None,
        last_event=iso(events[host.name]) if host.name in events else None,
        rejected_heartbeats=seen.rejected.get(host.name, 0),
    )
    if item.rejected_heartbeats:
        item.problems.append(f"{item.rejected_heartbeats} recent heartbeats failed signature checks")
    if not item.enrolled:
        item.problems.append("not enrolled")
    elif days is not None and days <= cert_window.days:
        item.problems.append(f"certificate expires in {days} days")
    if item.enrolled and (beat is None or now_us - beat > silence.total_seconds() * SECOND):
        age = "no authentic heartbeat recently" if beat is None else f"silent for {item.heartbeat_age_seconds} s"
        item.problems.append(age)
    return item
