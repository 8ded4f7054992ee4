"""The site model: a validated inventory, with vars merged all → group → host."""

from __future__ import annotations

import difflib
import ipaddress
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, ValidationError, field_validator

from logstack.base import validation
from logstack.base.errors import InventoryError
from logstack.base.terminal import escape
from logstack.base.validation import full
from logstack.base.yamlsource import LocatedDocument, format_loc, load_located_yaml
from logstack.classify.programs import DEFAULT_IDENTIFIERS
from logstack.site.alerts import Destinations
from logstack.site.field_types import Address, Hostname, IPAddress, KeyPrefix, LocalPath, Model, Port, Transport
from logstack.site.topology import RESERVED_HOST_NAMES, StandaloneStore, Store, check_topology
from logstack.site.vector_source import VectorSource

TTL = Annotated[str, AfterValidator(validation.ttl)]
ManagedPath = Annotated[str, AfterValidator(validation.data_directory)]
IdentityValue = Annotated[Any, AfterValidator(validation.identity_text)]
Identity = Annotated[dict[str, IdentityValue], AfterValidator(validation.identity_names)]


class SSHSettings(Model):
    """How to reach a machine; unset fields fall back to ~/.ssh/config and ssh defaults."""

    user: Annotated[str, AfterValidator(validation.ssh_user)] | None = None
    port: Port | None = None
    key: LocalPath | None = None
    proxy_jump: Annotated[str, AfterValidator(validation.proxy_jump)] | None = None


class HostVars(Model):
    """Vars that merge all → group → host."""

    ssh: SSHSettings = SSHSettings()
    sudo: bool | None = None
    identity: Identity = {}


class GroupSpec(Model):
    """A named set of vars hosts can opt into."""

    description: str | None = None
    vars: HostVars = HostVars()


class HostSpec(Model):
    """One sending machine as written in the inventory."""

    name: Hostname
    address: Address
    fqdn: Hostname | None = None
    cmdb_id: IdentityValue | None = None
    groups: list[str] = []
    ssh: SSHSettings = SSHSettings()
    sudo: bool | None = None
    identity: Identity = {}
    connection: Transport = "ssh"  # local: the machine logstack runs on, without SSH


class AnalyzeSchedule(Model):
    """The server-side timer that runs `logstack analyze --since-last-run`."""

    on_calendar: Annotated[str, AfterValidator(validation.calendar)] = "*:0/15"
    fail_on: Literal["never", "info", "failure", "alert"] = "alert"
    # rows younger than this may not be visible yet: an external store's frontends stamp ingest time with
    # their own clocks, so give it their largest clock difference plus the store's commit delay
    safety_lag: Annotated[str, AfterValidator(validation.pattern_check(validation.LAG_RE, "a lag like 10s or 2m"))] = (
        "10s"
    )


class BackupS3(Model):
    """Backups in an S3 bucket (keys: secrets.yaml `backup: {access_key_id, secret_access_key}`)."""

    bucket: Annotated[str, AfterValidator(validation.pattern_check(validation.BUCKET_RE, "an S3 bucket name"))]
    root: KeyPrefix = ""
    region: Annotated[str, AfterValidator(validation.pattern_check(validation.REGION_RE, "a region"))] = "us-east-1"
    endpoint: Annotated[str, AfterValidator(validation.s3_endpoint)] | None = None  # default: AWS in the region


class BackupSettings(Model):
    """`logstack backup` on a timer on the server: COPY DATABASE into a directory or an S3 bucket, kept N
    daily / M weekly."""

    directory: Annotated[str, AfterValidator(validation.backup_directory)] = "/var/backups/logstack"
    s3: BackupS3 | None = None  # set: backups go to S3 instead of the directory
    on_calendar: Annotated[str, AfterValidator(validation.calendar)] = "daily"
    keep_daily: Annotated[int, Field(ge=1, le=366, strict=True)] = 7
    keep_weekly: Annotated[int, Field(ge=0, le=520, strict=True)] = 4
    max_age_hours: Annotated[int, Field(ge=1, le=8760, strict=True)] = 26


class ReceiverSpec(Model):
    """Another machine running the receiving Vector; senders reach it after the server, in this order."""

    name: Hostname
    fqdn: Hostname
    dns_names: list[Hostname] = []
    ip_addresses: list[IPAddress] = []
    address: Address | None = None
    listen_address: IPAddress = "0.0.0.0"  # what its Vector binds (the server's own is server.listen_address)
    ssh: SSHSettings = SSHSettings()
    sudo: bool = False


class ServerSpec(Model):
    """The central receiver: Vector listening for senders, GreptimeDB on loopback."""

    fqdn: Hostname
    dns_names: list[Hostname] = []
    ip_addresses: list[IPAddress] = []
    address: Address | None = None
    ssh: SSHSettings = SSHSettings()
    sudo: bool = False
    vector_port: Port = 3003
    listen_address: IPAddress = "0.0.0.0"
    greptimedb_version: str = "v1.1.4"
    database: str = "vector"
    table: str = "logs"
    ttl: TTL = "90d"
    data_dir: ManagedPath = "/var/lib/greptime"
    buffer_max_bytes: Annotated[int, Field(ge=268435488, le=1 << 50, strict=True)] = 1073741824
    analyze: AnalyzeSchedule = AnalyzeSchedule()
    manage_packages: bool = True
    firewall: bool = False
    alerts: Destinations = []
    backup: BackupSettings | None = None
    receivers: list[ReceiverSpec] = []
    routing: Literal["failover", "failover_primary", "load_balance"] = "failover"
    store: Store = StandaloneStore()

    @field_validator("greptimedb_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not full(validation.VERSION_RE, value):
            raise ValueError(f"{value!r} is not a release tag like v1.1.4")
        if int(value[1:].split(".")[0]) < 1:
            raise ValueError(f"{value}: Vector's greptimedb_logs sink needs GreptimeDB 1.x or newer")
        return value

    @field_validator("database", "table")
    @classmethod
    def _sql_name(cls, value: str) -> str:
        if not full(validation.SQL_NAME_RE, value):
            raise ValueError(f"{value!r} must match [A-Za-z_][A-Za-z0-9_]*")
        if value == "logstack_backups":
            raise ValueError("logstack_backups is the table of store backups; choose another name")
        return value


class PKISettings(Model):
    """Key types and validity periods of the private CA and what it issues."""

    key_type: Literal["ecdsa-p256", "rsa-3072", "rsa-4096"] = "ecdsa-p256"
    ca_days: Annotated[int, Field(ge=30, le=36500)] = 3650
    server_days: Annotated[int, Field(ge=1, le=825)] = 397
    client_days: Annotated[int, Field(ge=1, le=825)] = 397


class SenderSettings(Model):
    """What every sender forwards and how it buffers."""

    identifiers: list[str] = list(DEFAULT_IDENTIFIERS)
    forward_suppression_notices: bool = True
    heartbeat_interval: Annotated[int, Field(ge=5, le=3600, strict=True)] = 60
    buffer_max_bytes: Annotated[int, Field(ge=268435488, le=1 << 50, strict=True)] = 536870912

    @field_validator("identifiers")
    @classmethod
    def _identifiers(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one identifier is needed")
        for ident in value:
            if not full(validation.IDENTIFIER_RE, ident):
                raise ValueError(f"{ident!r} is not a journal SYSLOG_IDENTIFIER")
        if len(set(value)) != len(value):
            raise ValueError("identifiers are listed twice")
        return value


class InventorySpec(Model):
    """The whole inventory file."""

    site: Annotated[
        str, AfterValidator(validation.pattern_check(validation.SITE_RE, "a site name ([A-Za-z0-9][A-Za-z0-9_.-]*)"))
    ]
    server: ServerSpec
    pki: PKISettings = PKISettings()
    senders: SenderSettings = SenderSettings()
    known_hosts: LocalPath | None = None
    service_manager: Annotated[
        str, AfterValidator(validation.pattern_check(validation.SERVICE_MANAGER_RE, "a command name"))
    ] = "systemctl"
    vector: VectorSource = VectorSource()
    defaults: HostVars = HostVars()
    groups: dict[Hostname, GroupSpec] = {}
    hosts: list[HostSpec] = []


@dataclass(frozen=True)
class Host:
    """A sending machine with its vars merged all → groups → host."""

    name: str
    address: str
    fqdn: str | None
    groups: tuple[str, ...]
    ssh: SSHSettings
    sudo: bool
    identity: dict[str, str]
    connection: Transport = "ssh"

    @property
    def columns(self) -> dict[str, str]:
        """Identity columns the sender stamps on every event, in a fixed order."""
        cols = {"logstack_host": self.name}
        if self.fqdn:
            cols["fqdn"] = self.fqdn
        cols.update(self.identity)
        return cols


@dataclass(frozen=True)
class Inventory:
    """A loaded, validated site; all site state lives in `site_dir`."""

    path: Path
    spec: InventorySpec
    hosts: tuple[Host, ...]

    @property
    def site_dir(self) -> Path:
        return self.path.parent

    @property
    def server(self) -> ServerSpec:
        return self.spec.server

    def host(self, name: str) -> Host:
        """The host called `name`, or a BadInput error naming the inventory."""
        for host in self.hosts:
            if host.name == name:
                return host
        raise InventoryError(f"{self.path}: no host named {name!r} in the inventory")


def _merge_ssh(*layers: SSHSettings) -> SSHSettings:
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({k: v for k, v in layer.model_dump().items() if v is not None})
    return SSHSettings(**merged)


def _resolve_host(spec: InventorySpec, host: HostSpec) -> Host:
    layers: list[HostVars] = [spec.defaults] + [spec.groups[g].vars for g in host.groups]
    identity: dict[str, str] = {}
    sudo = False
    for layer in layers:
        identity.update(layer.identity)
        if layer.sudo is not None:
            sudo = layer.sudo
    identity.update(host.identity)
    if host.cmdb_id is not None:
        identity = {"cmdb_id": host.cmdb_id, **identity}
    if host.sudo is not None:
        sudo = host.sudo
    return Host(
        name=host.name,
        address=host.address,
        fqdn=host.fqdn,
        groups=tuple(host.groups),
        ssh=_merge_ssh(*(layer.ssh for layer in layers), host.ssh),
        sudo=sudo,
        identity=identity,
        connection=host.connection,
    )


MAX_PROBLEMS = 20


def _keys_at(loc: tuple[Any, ...]) -> set[str]:
    """The keys the mapping at `loc` may hold: its model's fields (every member's, for a tagged union)."""
    models: list[type[BaseModel]] = [InventorySpec]
    for part in loc:
        if isinstance(part, int):
            continue
        fields = [m.model_fields[part] for m in models if part in m.model_fields]
        if not fields:
            continue  # a union's tag in pydantic's location (`alerts[0].webhook.url`): the models stay
        models = [m for f in fields for m in _inner_models(f.annotation)]
    return {name for m in models for name in m.model_fields}


def _inner_models(annotation: Any) -> list[type[BaseModel]]:
    """The models inside `X`, `X | Y`, `list[X]`, `tuple[X, ...]`, `Annotated[X, ...]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _inner_models(arg)]


def _describe(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        loc = tuple(error["loc"])
        close = difflib.get_close_matches(str(loc[-1]), sorted(_keys_at(loc[:-1])), n=1, cutoff=0.6)
        return f"unknown key (did you mean {close[0]!r}?)" if close else "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = str(error["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind.endswith("_type") or kind.endswith("_parsing") or kind == "literal_error":
        msg = f"{msg} (got {error['input']!r})"
    return msg


def validate_inventory(doc: LocatedDocument) -> Inventory:
    """Validate parsed inventory data; the first problem becomes a one-line located error."""
    if not isinstance(doc.data, dict):
        raise InventoryError(f"{doc.path}:1: the inventory must be a mapping with site, server and hosts")
    try:
        spec = InventorySpec.model_validate(doc.data)
    except ValidationError as exc:
        # every problem at once (up to MAX_PROBLEMS), each on a line of its own naming file:line and key
        # (a key may hold anything: each problem is escaped, so only the lines between problems are lines)
        errors = sorted(exc.errors(include_url=False), key=lambda e: doc.line_of(tuple(e["loc"])))
        lines = [escape(f"{doc.where(tuple(e['loc']))}: {_describe(e)}") for e in errors[:MAX_PROBLEMS]]
        if len(errors) > MAX_PROBLEMS:
            lines.append(f"(and {len(errors) - MAX_PROBLEMS} more problems)")
        raise InventoryError("\n".join(lines)) from None
    check_topology(doc, spec)
    seen: dict[str, int] = {}
    for index, host in enumerate(spec.hosts):
        if host.name in RESERVED_HOST_NAMES:
            raise InventoryError(
                f"{doc.where(('hosts', index, 'name'))}: {host.name!r} is reserved "
                "(the server's facts, the server's self-test rows and status' handshake use it)"
            )
        if host.name in seen:
            raise InventoryError(
                f"{doc.where(('hosts', index, 'name'))}: duplicate host {host.name!r} "
                f"(first at hosts[{seen[host.name]}])"
            )
        seen[host.name] = index
        if spec.server.firewall:
            try:
                ipaddress.ip_address(host.address)
            except ValueError:
                raise InventoryError(
                    f"{doc.where(('hosts', index, 'address'))}: must be an IP address while server.firewall is on "
                    "(the allowlist holds addresses)"
                ) from None
        for g_index, group in enumerate(host.groups):
            if group not in spec.groups:
                raise InventoryError(f"{doc.where(('hosts', index, 'groups', g_index))}: unknown group {group!r}")
    return Inventory(path=doc.path, spec=spec, hosts=tuple(_resolve_host(spec, h) for h in spec.hosts))


def _identity_location(loc: tuple[str | int, ...]) -> bool:
    """Where identity values live: they are stamped as the text written, whatever YAML 1.1 makes of it."""
    match loc:
        case ("hosts", int(), "cmdb_id") | ("hosts", int(), "identity", str()) | ("defaults", "identity", str()):
            return True
        case ("groups", str(), "vars", "identity", str()):
            return True
    return False


def load_inventory(path: Path | str) -> Inventory:
    """Load and validate an inventory file."""
    return validate_inventory(load_located_yaml(Path(path), keep_text=_identity_location))


__all__ = [
    "DEFAULT_IDENTIFIERS",
    "Host",
    "Inventory",
    "InventorySpec",
    "format_loc",
    "load_inventory",
    "validate_inventory",
]
