"""Certificate operations over the registry: list, check, renew, revoke, CA rotation."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from logstack.clock import parse_registry_time as parse_time
from logstack.errors import PKIError
from logstack.inventory import Inventory
from logstack.pki import PKI, SERVER, CertRecord


@dataclass(frozen=True)
class CertView:
    """A registry row as `certs list` shows it."""

    name: str
    kind: str
    status: str
    serial: str
    ca: str
    on_old_ca: bool
    not_after: str
    days_left: int
    fingerprint: str
    sans: list[str]

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def list_certificates(pki: PKI, include_history: bool = False) -> list[CertView]:
    """Current certificates (and superseded ones with `include_history`)."""
    now = dt.datetime.now(dt.UTC)
    active = pki.registry.active_ca
    rows = []
    for rec in pki.registry.certs:
        if rec.status == "superseded" and not include_history:
            continue
        left = (parse_time(rec.not_after) - now).days
        rows.append(
            CertView(
                name=rec.name,
                kind=rec.kind,
                status="expired" if left < 0 and rec.status == "valid" else rec.status,
                serial=rec.serial,
                ca=rec.ca,
                on_old_ca=active is not None and rec.ca != active.id,
                not_after=rec.not_after,
                days_left=left,
                fingerprint=rec.fingerprint,
                sans=list(rec.sans),
            )
        )
    return rows


def renew(
    pki: PKI,
    inventory: Inventory,
    names: list[str],
    renew_all: bool,
    within: dt.timedelta | None,
    passphrase: bytes | None,
) -> list[CertRecord]:
    """Re-issue certificates (new key, same names); with `within`, only those expiring by then."""
    if renew_all:
        targets = [SERVER, *(h.name for h in inventory.hosts if h.name not in pki.registry.revoked_hosts)]
    elif names:
        targets = names
    else:
        raise PKIError("name hosts to renew, or pass --all")
    limit = dt.datetime.now(dt.UTC) + within if within is not None else None
    issued = []
    for name in targets:
        current = pki.registry.current(name)
        if limit is not None and current is not None and parse_time(current.not_after) > limit:
            continue
        if name == SERVER:
            issued.append(pki.issue_server(inventory, passphrase, save=False))
        else:
            issued.append(pki.issue_client(inventory.host(name), passphrase, save=False))
    pki.save()
    return issued
