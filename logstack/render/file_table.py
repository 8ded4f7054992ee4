"""What every rendering shares: the table of files per machine and the PKI material they hold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from logstack.integrity.keyring import KEYRING
from logstack.integrity.signatures import SECRET_DIR, SECRET_NAME
from logstack.render.rendered import SERVER_MACHINE, RenderedFile
from logstack.render.templating import placeholder, template

if TYPE_CHECKING:
    from logstack.pki import PKI


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
    # the seal records the chain's end in the store as the write-only ingest user
    FileSpec("/etc/logstack/ingest.password", "server/ingest.password.j2", mode=0o600, secret=True),
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


def pem_or_placeholder(pem: bytes | None, what: str) -> bytes:
    if pem is None:
        return f"<pending:{what}>\n".encode()
    return pem


def key_file(key: bytes, include_keys: bool, name: str) -> bytes:
    """A key file as Vector's directory secret backend and the seal service read it (hex), or a placeholder."""
    return key.hex().encode() if include_keys and key else (placeholder(f"{KEYRING} {name}") + "\n").encode()


def machine_material(pki: PKI, name: str, where: str, include_keys: bool, ca: bytes) -> dict[str, bytes]:
    """The PKI pieces of one machine: CA bundle, certificate, key (or placeholders in review mode)."""
    key = pki.key_pem(name) if include_keys else None
    key_where = "pki/server.key" if name == SERVER_MACHINE else f"pki/{name if '/' in name else 'hosts/' + name}.key"
    return {
        "ca": ca,
        "cert": pem_or_placeholder(pki.cert_pem(name) if pki.exists() else None, where),
        "key": key if key is not None else (placeholder(key_where) + "\n").encode(),
    }


def render_machine(
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


def _render(name: str, context: dict[str, Any]) -> bytes:
    return template(name).render(**context).encode("utf-8")
