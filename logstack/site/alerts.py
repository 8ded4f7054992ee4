"""Alert destinations as the inventory states them (`server.alerts`), and as the server reads them back.

Secrets (a webhook URL holding a token, a bearer token, an SMTP password) never live here: they come from
secrets.yaml (`alerts.<name>`) and reach the server in a root-only file the analysis unit loads as a
systemd credential.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from logstack.base import validation
from logstack.base.errors import SecretsError
from logstack.base.validation import https_url
from logstack.classify.kinds import EventType
from logstack.site.field_types import Port

SEVERITIES = ("info", "failure", "alert")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
# an address as people write it; no display names, no header syntax
_MAILBOX_RE = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_ITEM_KEY_RE = re.compile(r"[A-Za-z0-9_.-]{1,255}")  # a Zabbix item key without parameters
_SERVER_PATH_RE = re.compile(r"/[A-Za-z0-9._/+-]{1,4095}")


def _name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise ValueError(f"{value!r} must match [a-z0-9][a-z0-9_-]{{0,31}}")
    return value


def _mailbox(value: str) -> str:
    if not _MAILBOX_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a plain e-mail address like logstack@example.com")
    return value


def _server_path(value: str) -> str:
    if not _SERVER_PATH_RE.fullmatch(value) or "/../" in f"{value}/" or "//" in value:
        raise ValueError(f"{value[:60]!r} must be an absolute path on the server")
    return value


def _event_type(value: str) -> str:
    if value not in {t.value for t in EventType}:
        raise ValueError(f"{value!r} is not an event type ({', '.join(t.value for t in EventType)})")
    return value


Name = Annotated[str, AfterValidator(_name)]
Mailbox = Annotated[str, AfterValidator(_mailbox)]
ServerPath = Annotated[str, AfterValidator(_server_path)]


class _Destination(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    min_severity: Literal["info", "failure", "alert"] = "alert"
    event_types: list[Annotated[str, AfterValidator(_event_type)]] = []  # empty: every type
    timeout: Annotated[int, Field(ge=1, le=300, strict=True)] = 10
    retries: Annotated[int, Field(ge=0, le=10, strict=True)] = 2
    queue_limit: Annotated[int, Field(ge=10, le=1_000_000, strict=True)] = 10_000

    def wants(self, severity: str, event_type: str) -> bool:
        """Whether an event of this severity and type goes to this destination."""
        if severity not in SEVERITIES or SEVERITIES.index(severity) < SEVERITIES.index(self.min_severity):
            return False
        return not self.event_types or event_type in self.event_types


class Webhook(_Destination):
    """JSON POST over verified TLS; `url` may instead be in secrets.yaml (a chat webhook's URL is its token)."""

    type: Literal["webhook"]
    url: Annotated[str, AfterValidator(https_url)] | None = None
    ca_file: ServerPath | None = None  # a PEM bundle on the server (default: the system's trust store)


class Email(_Destination):
    """One message per delivery over SMTP with STARTTLS or implicit TLS; the password is in secrets.yaml."""

    type: Literal["email"]
    host: Annotated[str, AfterValidator(validation.address)]
    port: Port = 587
    tls: Literal["starttls", "implicit"] = "starttls"
    username: Annotated[str, AfterValidator(validation.ssh_user)] | None = None
    sender: Mailbox
    recipients: Annotated[list[Mailbox], Field(min_length=1, max_length=50)]
    ca_file: ServerPath | None = None


class Zabbix(_Destination):
    """Trapper items through zabbix-utils' Sender: one value per event on item `key` of Zabbix host `host`."""

    type: Literal["zabbix"]
    server: Annotated[str, AfterValidator(validation.address)]
    port: Port = 10051
    host: Annotated[str, AfterValidator(validation.hostname)]
    key: Annotated[str, AfterValidator(lambda v: v if _ITEM_KEY_RE.fullmatch(v) else _bad_key(v))] = "logstack.event"


def _bad_key(value: str) -> str:
    raise ValueError(f"{value[:60]!r} is not a Zabbix item key ([A-Za-z0-9_.-], no parameters)")


class Exec(_Destination):
    """A program (no shell) that reads the events as JSON Lines on stdin; exit 0 means accepted."""

    type: Literal["exec"]
    command: Annotated[list[Annotated[str, Field(min_length=1, max_length=4096)]], Field(min_length=1, max_length=64)]

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str]) -> list[str]:
        _server_path(value[0])
        if any("\0" in arg for arg in value):
            raise ValueError("command arguments may not hold NUL")
        return value


Destination = Annotated[Webhook | Email | Zabbix | Exec, Field(discriminator="type")]
# The secrets each kind of destination takes from secrets.yaml (`alerts.<name>.<key>`): the one list of them.
SECRET_KEYS = {"webhook": ("url", "token"), "email": ("password",), "zabbix": (), "exec": ()}
ALL_SECRET_KEYS: tuple[str, ...] = tuple(dict.fromkeys(key for keys in SECRET_KEYS.values() for key in keys))


def check_destinations(destinations: list[Destination]) -> list[Destination]:
    """Names are unique: each has its own queue."""
    seen: set[str] = set()
    for dest in destinations:
        if dest.name in seen:
            raise ValueError(f"alert destination {dest.name!r} is listed twice")
        seen.add(dest.name)
    return destinations


Destinations = Annotated[list[Destination], AfterValidator(check_destinations)]
DESTINATIONS = TypeAdapter(Destinations)


# The server's alert files, what they hold and what they may not lack: shared by rendering and delivery.
ALERTS_FILE = "/etc/logstack/alerts.json"
ALERT_SECRETS_FILE = "/etc/logstack/alert-secrets.json"


@dataclass(frozen=True)
class AlertConfig:
    """Where alerts go: the destinations and their secrets."""

    site: str
    destinations: tuple[Destination, ...]
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)


def check_secrets(config: AlertConfig, where: str) -> None:
    """Every secret a destination needs is there, and no other."""
    for dest in config.destinations:
        have = config.secrets.get(dest.name, {})
        for key in have:
            if key not in SECRET_KEYS[dest.type]:
                raise SecretsError(f"{where}: alerts.{dest.name}.{key}: a {dest.type} destination takes no {key}")
        for key, value in have.items():
            if not (value.isascii() and value.isprintable()) or (key != "password" and " " in value):
                raise SecretsError(f"{where}: alerts.{dest.name}.{key}: must be printable ASCII (no spaces in {key})")
        if have.get("url"):
            try:
                https_url(have["url"])
            except ValueError as exc:
                raise SecretsError(f"{where}: alerts.{dest.name}.url: {exc}") from None
        if dest.type == "webhook" and not (have.get("url") or getattr(dest, "url", None)):
            raise SecretsError(f"{where}: alerts.{dest.name}.url: the webhook has no url (inventory or secrets)")
        if dest.type == "email" and getattr(dest, "username", None) and not have.get("password"):
            raise SecretsError(f"{where}: alerts.{dest.name}.password: needed for SMTP user {dest.username}")


def server_files(
    site: str, destinations: list[Destination], secrets: dict[str, dict[str, str]] | None
) -> tuple[bytes, bytes]:
    """alerts.json (no secrets) and alert-secrets.json (placeholders when `secrets` is None: review)."""
    public = {"site": site, "destinations": [d.model_dump(mode="json") for d in destinations]}
    if secrets is None:
        private = {
            d.name: {k: f"<secret:secrets.yaml alerts.{d.name}.{k}>" for k in SECRET_KEYS[d.type]} for d in destinations
        }
    else:
        private = {d.name: secrets.get(d.name, {}) for d in destinations}
    dump = lambda value: (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()  # noqa: E731
    return dump(public), dump(private)
