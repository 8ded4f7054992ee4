"""What the commands do with certificates: one layer over the lifecycle, so every command goes through it."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.x509.oid import ExtendedKeyUsageOID

import logstack.pki.mint as mint
from logstack.base.clock import parse_registry_time as parse_time
from logstack.base.errors import PKIError
from logstack.integrity.keyring import ensure_keys, retire_keys
from logstack.pki.lifecycle import PKI
from logstack.pki.registry import SERVER, CARecord, CertRecord
from logstack.site.inventory import Inventory
from logstack.site.topology import receiver_key

MONITOR = "logstack-monitor"


def init_ca(inventory: Inventory, passphrase: bytes | None) -> CARecord:
    """Create the site's first CA."""
    return PKI.for_inventory(inventory).init_ca(passphrase)


def rotate_ca(inventory: Inventory, passphrase: bytes | None) -> CARecord:
    """Start a CA rotation; every host gets a new signing key with its next enrolment's certificate."""
    pki = PKI.for_inventory(inventory)
    record = pki.rotate_ca(passphrase)
    live = [h.name for h in inventory.hosts if h.name not in pki.registry.revoked_hosts]
    ensure_keys(inventory.site_dir, live, dt.datetime.now(dt.UTC), rotate=True)
    return record


def retire_old_ca(inventory: Inventory, passphrase: bytes | None, force: bool) -> str:
    """End a CA rotation; returns the retired CA's id."""
    return PKI.for_inventory(inventory).retire_old_ca(inventory, passphrase, force=force)


def revoke(inventory: Inventory, host: str) -> CertRecord:
    """Mark a host's certificate revoked; its signing key stops proving rows (after the retired keys' grace)."""
    record = PKI.for_inventory(inventory).revoke(host)
    retire_keys(inventory.site_dir, host, dt.datetime.now(dt.UTC))
    return record


def expiring(inventory: Inventory, within: dt.timedelta) -> list[CertRecord]:
    """Valid certificates that expire within `within`."""
    return PKI.for_inventory(inventory).expiring(within)


@contextmanager
def monitor_credentials(pki: PKI, passphrase: bytes | None) -> Iterator[tuple[Path, Path]]:
    """A short-lived client certificate for a handshake as a sender makes it, in a private temp directory.

    Nothing is written to the site or registered: checking the receiver is a read-only act.
    """
    ca = pki.registry.active_ca
    if ca is None:
        raise PKIError(f"{pki.root}: no CA yet (run `logstack ca init`)")
    cert, key = pki.mint_leaf(MONITOR, [], [], ExtendedKeyUsageOID.CLIENT_AUTH, 1, passphrase, ca)
    with tempfile.TemporaryDirectory(prefix="logstack-monitor-") as tmp:
        cert_path, key_path = Path(tmp) / "monitor.pem", Path(tmp) / "monitor.key"
        key_path.touch(mode=0o600)
        key_path.write_bytes(mint.key_pem(key))
        cert_path.write_bytes(mint.cert_pem(cert))
        yield cert_path, key_path


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


def list_certificates(inventory: Inventory, include_history: bool = False) -> list[CertView]:
    """Current certificates (and superseded ones with `include_history`)."""
    pki = PKI.for_inventory(inventory)
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
    inventory: Inventory,
    names: list[str],
    renew_all: bool,
    within: dt.timedelta | None,
    passphrase: bytes | None,
) -> list[CertRecord]:
    """Re-issue certificates (new key, same names); with `within`, only those expiring by then."""
    pki = PKI.for_inventory(inventory)
    receivers = {receiver_key(r.name): r for r in inventory.server.receivers}
    if renew_all:
        targets = [SERVER, *receivers]
        targets += [h.name for h in inventory.hosts if h.name not in pki.registry.revoked_hosts]
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
        elif name in receivers:
            issued.append(pki.issue_receiver(receivers[name], passphrase, save=False))
        else:
            issued.append(pki.issue_client(inventory.host(name), passphrase, save=False))
    pki.save()
    # a renewed host signs with a new key too; the old one stays to verify what it signed
    hosts = [r.name for r in issued if r.name != SERVER and r.name not in receivers]
    ensure_keys(inventory.site_dir, hosts, dt.datetime.now(dt.UTC), True)
    return issued
