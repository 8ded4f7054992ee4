"""The server's alert files, what they hold and what they may not lack: shared by rendering and delivery."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from logstack.base.errors import SecretsError
from logstack.base.validation import https_url
from logstack.site.alerts import SECRET_KEYS, Destination

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
