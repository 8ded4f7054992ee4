"""Render every file each machine needs, plus the manifest deployment applies."""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import jinja2

from logstack.facts import HostFacts, load_facts
from logstack.files import SERVER_MACHINE, RenderedFile, templates_dir
from logstack.identifiers import forwarded_identifiers
from logstack.inventory import Host, Inventory
from logstack.pki import PKI, SERVER
from logstack.secrets_store import DB_USERS, Secrets
from logstack.signing import (
    KEYRING,
    SECRET_DIR,
    SECRET_NAME,
    SIGNATURE_COLUMNS,
    keyring_path,
    load_keyring,
    sign_vrl,
)
from logstack.validation import without_scope
from logstack.vrl import CONFIG_DIGEST_PLACEHOLDER, HEARTBEAT_VRL, filter_vrl, identity_vrl

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


@dataclass(frozen=True)
class FileSpec:
    """One file a machine gets: where it goes, what makes it, who owns it, what it restarts.

    `source` is a template (`*.j2`) or the name of a piece of PKI material (`ca`, `cert`, `key`).
    """

    path: str
    source: str
    owner: str = "root"
    group: str = "root"
    mode: int = 0o644
    service: str | None = None
    secret: bool = False
    unit: bool = False


def _timer(name: str) -> FileSpec:
    """A systemd timer: enabled and restarted when it changes."""
    return FileSpec(f"/etc/systemd/system/{name}.timer", f"server/{name}.timer.j2", service=f"{name}.timer", unit=True)


_DROPIN = "/etc/systemd/system/vector.service.d/10-logstack.conf"

# Every file of every machine, in one table: the server's, then each host's.
SERVER_FILES: tuple[FileSpec, ...] = (
    FileSpec(
        "/etc/greptime/standalone.toml", "server/standalone.toml.j2", group="greptime", mode=0o640, service="greptime"
    ),
    FileSpec(
        "/etc/greptime/users.conf",
        "server/users.conf.j2",
        group="greptime",
        mode=0o640,
        service="greptime",
        secret=True,
    ),
    FileSpec("/etc/systemd/system/greptime.service", "server/greptime.service.j2", service="greptime", unit=True),
    FileSpec(
        "/etc/vector/vector.yaml", "server/vector.yaml.j2", group="vector", mode=0o640, service="vector", secret=True
    ),
    FileSpec(_DROPIN, "common/vector-dropin.conf.j2", service="vector", unit=True),
    FileSpec("/etc/logstack/schema.sql", "server/schema.sql.j2"),
    FileSpec("/etc/logstack/analyst.password", "server/analyst.password.j2", mode=0o600, secret=True),
    FileSpec("/etc/logstack/seal.key", "seal_key", mode=0o600, secret=True),
    FileSpec("/etc/systemd/system/logstack-analyze.service", "server/logstack-analyze.service.j2", unit=True),
    FileSpec("/etc/systemd/system/logstack-seal.service", "server/logstack-seal.service.j2", unit=True),
    _timer("logstack-analyze"),
    FileSpec("/etc/vector/tls/ca.pem", "ca", group="vector", service="vector"),
    FileSpec("/etc/vector/tls/server.pem", "cert", group="vector", service="vector"),
    FileSpec("/etc/vector/tls/server.key", "key", group="vector", mode=0o640, service="vector", secret=True),
)
BACKUP_FILES: tuple[FileSpec, ...] = (
    FileSpec("/etc/logstack/admin.password", "server/admin.password.j2", mode=0o600, secret=True),
    FileSpec("/etc/systemd/system/logstack-backup.service", "server/logstack-backup.service.j2", unit=True),
    _timer("logstack-backup"),
)
HOST_FILES: tuple[FileSpec, ...] = (
    FileSpec("/etc/vector/vector.yaml", "host/vector.yaml.j2", group="vector", mode=0o640, service="vector"),
    FileSpec(_DROPIN, "common/vector-dropin.conf.j2", service="vector", unit=True),
    FileSpec("/etc/vector/tls/ca.pem", "ca", group="vector", service="vector"),
    FileSpec("/etc/vector/tls/client.pem", "cert", group="vector", service="vector"),
    FileSpec("/etc/vector/tls/client.key", "key", group="vector", mode=0o640, service="vector", secret=True),
    FileSpec(f"{SECRET_DIR}/{SECRET_NAME}", "signing_key", group="vector", mode=0o440, service="vector", secret=True),
)


def _quoted(value: object) -> str:
    # JSON strings are valid YAML double-quoted scalars and TOML basic strings: safe for any content.
    return json.dumps(str(value), ensure_ascii=False)


def _bracket_ip(value: str) -> str:
    try:
        return f"[{value}]" if ipaddress.ip_address(value).version == 6 else value
    except ValueError:
        return value


@cache
def _environment(root: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["yaml_str"] = _quoted
    env.filters["toml_str"] = _quoted
    env.filters["bracket_ip"] = _bracket_ip
    return env


def _template(name: str) -> jinja2.Template:
    return _environment(str(templates_dir())).get_template(name)


def placeholder(what: str) -> str:
    return f"<secret:{what}>"


def config_digest(config: bytes, ca: bytes, cert: bytes) -> str:
    """What a sender's heartbeats carry as `logstack_config` (the config rendered with the placeholder)."""
    return hashlib.sha256(b"\0".join((config, ca, cert))).hexdigest()[:16]


def _stamp_digest(files: list[RenderedFile], material: dict[str, bytes]) -> list[RenderedFile]:
    stamped = []
    for f in files:
        if f.path == "/etc/vector/vector.yaml":
            digest = config_digest(f.content, material["ca"], material["cert"])
            f = replace(f, content=f.content.replace(CONFIG_DIGEST_PLACEHOLDER.encode(), digest.encode()))
        stamped.append(f)
    return stamped


def journal_identifiers(inventory: Inventory) -> list[str]:
    senders = inventory.spec.senders
    return forwarded_identifiers(senders.identifiers, senders.forward_suppression_notices)


# The key id of a host whose key `enroll-host` has not minted yet (review renders only).
UNMINTED_KID = "0000000000000000"


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


def _pem_or_placeholder(pem: bytes | None, what: str) -> bytes:
    if pem is None:
        return f"<pending:{what}>\n".encode()
    return pem


def render_site(
    inventory: Inventory,
    secrets: Secrets | None = None,
    pki: PKI | None = None,
    include_keys: bool = False,
    hosts: list[Host] | None = None,
    server: bool = True,
    facts: dict[str, HostFacts] | None = None,
) -> list[RenderedFile]:
    """Render the server and host files. Without `secrets`/`include_keys` this is review mode.

    Host configurations follow each host's facts: those given, else the site's cache, else unknown."""
    if pki is None:
        pki = PKI.for_inventory(inventory)
    ring = load_keyring(keyring_path(inventory.site_dir))
    base = {"site": inventory.spec.site, "server": inventory.server, "senders": inventory.spec.senders}
    ca_bundle = pki.ca_bundle_pem() if pki.exists() and pki.registry.trusted_cas else None
    ca = _pem_or_placeholder(ca_bundle, "pki/ca (run `logstack ca init`)")
    files: list[RenderedFile] = []
    if server:
        context = {
            **base,
            "passwords": _passwords(secrets),
            "columns": table_columns(inventory),
            "journal_reader": False,
        }
        material = _material(pki, SERVER, "pki/server.pem", include_keys, ca)
        material["seal_key"] = _key_file(ring.seal_key, include_keys, "seal_key")
        files += _render_machine(SERVER_MACHINE, SERVER_FILES, context, material)
        if inventory.server.firewall:
            files.extend(firewall_files(inventory, pki))
        if inventory.server.alerts:
            files.extend(alert_files(inventory, secrets))
        if inventory.server.backup is not None:
            files += _render_machine(SERVER_MACHINE, BACKUP_FILES, context, material)
    senders = inventory.spec.senders
    shared = {
        **base,
        "journal_reader": True,
        "journal_identifiers": journal_identifiers(inventory),
        "filter_vrl": filter_vrl(list(senders.identifiers), senders.forward_suppression_notices),
        "heartbeat_vrl": HEARTBEAT_VRL,
    }
    for host in inventory.hosts if hosts is None else hosts:
        known = (facts or {}).get(host.name) or load_facts(inventory.site_dir, host.name) or HostFacts()
        signing = ring.current(host.name)
        context = {
            **shared,
            "host": host,
            "identity_vrl": identity_vrl(host),
            "sign_vrl": sign_vrl(signing.kid if signing else UNMINTED_KID, host.columns),
            "secret_dir": SECRET_DIR,
            "facts": known,
            "boot_note": boot_note(known),
        }
        where = f"pki/hosts/{host.name}.pem (minted by `logstack enroll-host`)"
        material = _material(pki, host.name, where, include_keys, ca)
        material["signing_key"] = _key_file(signing.key if signing else b"", include_keys, host.name)
        files += _stamp_digest(_render_machine(f"hosts/{host.name}", HOST_FILES, context, material), material)
    return files


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


def _key_file(key: bytes, include_keys: bool, name: str) -> bytes:
    """A key file as Vector's directory secret backend and the seal service read it (hex), or a placeholder."""
    return key.hex().encode() if include_keys and key else (placeholder(f"{KEYRING} {name}") + "\n").encode()


def boot_note(facts: HostFacts) -> str:
    """Why the journald source reads what it reads on this host (a comment in its configuration)."""
    if facts.systemd is None:
        return "systemd version unknown (`logstack facts` reads it): true, the value every systemd accepts"
    if facts.current_boot_only:
        return (
            f"systemd {facts.systemd}: Vector refuses false on systemd 250-257, so lines of a previous boot "
            "not shipped before the reboot are not shipped"
        )
    return f"systemd {facts.systemd}: false, so lines logged before a reboot are shipped after it"


def _material(pki: PKI, name: str, where: str, include_keys: bool, ca: bytes) -> dict[str, bytes]:
    """The PKI pieces of one machine: CA bundle, certificate, key (or placeholders in review mode)."""
    key = pki.key_pem(name) if include_keys else None
    key_where = "pki/server.key" if name == SERVER else f"pki/hosts/{name}.key"
    return {
        "ca": ca,
        "cert": _pem_or_placeholder(pki.cert_pem(name) if pki.exists() else None, where),
        "key": key if key is not None else (placeholder(key_where) + "\n").encode(),
    }


def _render_machine(
    machine: str, specs: tuple[FileSpec, ...], context: dict[str, Any], material: dict[str, bytes]
) -> list[RenderedFile]:
    """Every file of one machine, from its table."""
    return [
        RenderedFile(
            machine,
            spec.path,
            _render(spec.source, context) if spec.source.endswith(".j2") else material[spec.source],
            spec.owner,
            spec.group,
            spec.mode,
            spec.service,
            spec.secret,
            spec.unit,
        )
        for spec in specs
    ]


def _render(template: str, context: dict[str, Any]) -> bytes:
    return _template(template).render(**context).encode("utf-8")


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
