"""Beyond one server: the receivers senders reach, and the store they write to.

The inventory's `server` is the first receiver (and, with the default standalone store, the store's
machine: today's one-server site, rendered byte for byte as before). `server.receivers` adds receiving
Vectors on machines of their own; `server.store` is either GreptimeDB standalone on the server (optionally
keeping its data on object storage) or an external GreptimeDB (a cluster's frontend, GreptimeCloud) the
user runs.

Facts relied on: Vector 0.57's `vector` sink takes `routing.endpoints` (strings, host:port) with
`routing.strategy` load_balance (its default), failover (keeps the last endpoint that worked, moving on
when it fails) or failover_primary (src/sinks/vector/config.rs:171-346); one `tls` block serves every
endpoint and each endpoint's certificate is verified against that endpoint's own host (src/http.rs:240,
lib/vector-core/src/tls/settings.rs:351). GreptimeDB v1.1.4 serves its HTTP API without TLS
(src/servers/src/http.rs HttpOptions has no tls), so receivers on other machines than a standalone store
could only write to it in clear: several receivers need an external store behind TLS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Tag

if TYPE_CHECKING:
    from logstack.base.yamlsource import LocatedDocument
    from logstack.site.inventory import InventorySpec

from logstack.base.errors import InventoryError
from logstack.base.validation import https_url
from logstack.site.field_types import Address, KeyPrefix, LocalPath, Model, Port, pattern

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION_RE = re.compile(r"[a-z0-9-]{1,40}")


def _endpoint(value: str) -> str:
    https_url(value)
    if re.sub(r"^https://[^/]+", "", value) not in ("", "/"):
        raise ValueError(
            "the store's HTTP endpoint is scheme, host and port only (e.g. https://greptime.example.com:4000)"
        )
    return value.rstrip("/")


class ObjectStorage(Model):
    """GreptimeDB standalone's data on S3 (or an S3-compatible service). The keys are secrets.yaml's
    `store.access_key_id` / `store.secret_access_key`, given to GreptimeDB as environment variables."""

    type: Literal["S3"] = "S3"
    bucket: Annotated[str, pattern(_BUCKET_RE, "an S3 bucket name")]
    root: KeyPrefix = ""
    endpoint: Annotated[str, AfterValidator(_endpoint)] | None = None
    region: Annotated[str, pattern(_REGION_RE, "a region like eu-central-1")] | None = None


class StandaloneStore(Model):
    """GreptimeDB standalone on the server (the default)."""

    type: Literal["standalone"] = "standalone"
    object_storage: ObjectStorage | None = None


class ExternalStore(Model):
    """A GreptimeDB the user runs (a cluster's frontend, GreptimeCloud), reached over TLS."""

    type: Literal["external"]
    http_endpoint: Annotated[str, AfterValidator(_endpoint)]
    mysql_host: Address
    mysql_port: Port = 4002
    ca_file: LocalPath | None = None  # PEM the store's certificates chain to (default: the system's store)


def _store_type(value: Any) -> str | None:
    """The store's kind; written without one it is the standalone store."""
    if isinstance(value, dict):
        return str(value.get("type", "standalone"))
    return getattr(value, "type", None)


Store = Annotated[
    Annotated[StandaloneStore, Tag("standalone")] | Annotated[ExternalStore, Tag("external")],
    Discriminator(_store_type),
]


@dataclass(frozen=True)
class Receiver:
    """A receiving Vector as deployment and rendering see it."""

    name: str  # "server", or the receiver's name
    fqdn: str
    key: str  # its machine in a render and its name in the PKI: "server" or "receivers/<name>"
    listen_address: str


def receiver_key(name: str) -> str:
    """A receiver's machine in a render and its certificate's name in the PKI."""
    return f"receivers/{name}"


def probe_address(listen_address: str) -> str:
    """Where a receiver's port is checked from its own machine: its listen address, or loopback for any."""
    return listen_address if listen_address not in ("0.0.0.0", "::") else "127.0.0.1"


STORE_CA = "/etc/vector/tls/store-ca.pem"  # what receivers verify the store with (ca_file, deployed)
STORE_CA_ANALYSIS = "/etc/logstack/store-ca.pem"  # the same, for the server's analysis and seal units


def receivers_of(server: Any) -> list[Receiver]:
    """Every receiving Vector in the senders' order: the server first, then `server.receivers`."""
    first = Receiver("server", server.fqdn, "server", server.listen_address)
    return [first, *(Receiver(r.name, r.fqdn, receiver_key(r.name), r.listen_address) for r in server.receivers)]


def endpoints(server: Any) -> list[str]:
    """What senders dial, in order."""
    return [f"{r.fqdn}:{server.vector_port}" for r in receivers_of(server)]


# Names logstack uses for machines of its own: a host called so would share their facts or rows.
RESERVED_HOST_NAMES = frozenset({"server", "logstack-init-server", "logstack-monitor"})


def check_topology(doc: LocatedDocument, spec: InventorySpec) -> None:
    """The machines fit together: several receivers need a store they reach over TLS, every machine has a
    name, fqdn and address of its own, and at most one host is the machine logstack runs on."""
    local = [i for i, h in enumerate(spec.hosts) if h.connection == "local"]
    for index in local:
        if index != local[0] or spec.hosts[index].ssh.model_fields_set:
            raise InventoryError(
                f"{doc.where(('hosts', index, 'connection'))}: `local` is the machine logstack runs on: one host "
                "at most, and it takes no ssh settings"
            )
    server = spec.server
    if server.receivers and server.store.type == "standalone":
        raise InventoryError(
            f"{doc.where(('server', 'receivers'))}: receivers on other machines need server.store.type: external "
            "(GreptimeDB v1.1.4 standalone serves its HTTP API without TLS: they would write in clear)"
        )
    if server.backup is not None and server.store.type == "external" and server.backup.s3 is None:
        raise InventoryError(
            f"{doc.where(('server', 'backup'))}: an external store writes its backups itself, to a place it can "
            "reach: set backup.s3 (the server's disk is not one)"
        )
    names = {h.name.lower() for h in spec.hosts} | set(RESERVED_HOST_NAMES)
    fqdns = {server.fqdn.lower()}
    addresses = {(server.address or server.fqdn).lower()}
    for index, receiver in enumerate(server.receivers):
        where = ("server", "receivers", index)
        for field, value, taken in (
            ("name", receiver.name.lower(), names),
            ("fqdn", receiver.fqdn.lower(), fqdns),
            ("address", (receiver.address or receiver.fqdn).lower(), addresses),
        ):
            if value in taken:
                raise InventoryError(
                    f"{doc.where((*where, field))}: {value!r} is taken (the server, another receiver, a host, "
                    "or a name logstack uses): each receiver is a machine of its own"
                )
            taken.add(value)
