"""The certificate lifecycle: create and rotate CAs, issue, renew and revoke certificates, retire old CAs.

Vector has no CRL or OCSP option, so revocation is made real by CA rotation: the receiver trusts
old + new CA during an overlap, hosts are re-enrolled onto the new CA, and retiring the old CA drops
every certificate it issued (revoked or stolen ones included).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

import logstack.pki.mint as mint
from logstack.base.clock import now as _now
from logstack.base.clock import parse_registry_time, registry_time
from logstack.base.errors import PKIError, RevokedHostError
from logstack.base.safe_read import MiB, read_file
from logstack.pki.registry import SERVER, CARecord, CertRecord, PKIStore
from logstack.site.topology import receiver_key

if TYPE_CHECKING:
    from logstack.site.inventory import Host, Inventory, PKISettings, ReceiverSpec, ServerSpec


class PKI(PKIStore):
    """The site's PKI: `<site>/pki/` with the rules for what may be issued, renewed, revoked and retired."""

    def __init__(self, site_dir: Path, settings: PKISettings, site_name: str = "logstack") -> None:
        super().__init__(site_dir)
        self.settings = settings
        self.site_name = site_name
        self._ca_cache: dict[str, tuple[x509.Certificate, mint.PrivateKey | None]] = {}

    @classmethod
    def for_inventory(cls, inventory: Inventory) -> PKI:
        return cls(inventory.site_dir, inventory.spec.pki, inventory.spec.site)

    # -- CA ------------------------------------------------------------------------------------------
    def init_ca(self, passphrase: bytes | None = None) -> CARecord:
        """Create the first CA; refuses when one exists."""
        if self.registry.cas:
            raise PKIError(f"{self.root}: a CA already exists (use `logstack ca rotate` for a new one)")
        record = self._create_ca(passphrase)
        self.save()
        return record

    def ensure_ca(self, passphrase: bytes | None = None) -> tuple[CARecord, bool]:
        """The active CA, created when there is none; returns (record, created)."""
        active = self.registry.active_ca
        if active:
            return active, False
        return self.init_ca(passphrase), True

    def _create_ca(self, passphrase: bytes | None) -> CARecord:
        generation = len(self.registry.cas) + 1
        ca_id = f"ca-{generation}"
        key = mint.new_key(self.settings.key_type)
        cert = mint.make_ca(
            key, self.site_name, f"logstack {self.site_name} CA {generation}", _now(), self.settings.ca_days
        )
        self.write_ca(ca_id, mint.key_pem(key, passphrase), mint.cert_pem(cert))
        for ca in self.registry.cas:
            if ca.status == "active":
                ca.status = "previous"
        record = CARecord(
            id=ca_id,
            subject=cert.subject.rfc4514_string(),
            fingerprint=mint.fingerprint(cert),
            not_before=registry_time(cert.not_valid_before_utc),
            not_after=registry_time(cert.not_valid_after_utc),
            status="active",
        )
        self.registry.cas.append(record)
        self._ca_cache[ca_id] = (cert, key)
        return record

    def load_ca(self, ca_id: str, passphrase: bytes | None = None) -> tuple[x509.Certificate, mint.PrivateKey]:
        """The CA certificate and its private key (decrypted with `passphrase` when encrypted)."""
        cached = self._ca_cache.get(ca_id)
        if cached and cached[1] is not None:
            return cached[0], cached[1]
        cert = self.ca_certificate(ca_id)
        key_path = self.ca_key_path(ca_id)
        try:
            data = read_file(key_path, "CA key", MiB, error=PKIError)
        except OSError as exc:
            raise PKIError(f"{key_path}: cannot read CA key: {exc.strerror}") from None
        key = mint.load_key(data, passphrase, str(key_path))
        self._ca_cache[ca_id] = (cert, key)
        return cert, key

    def ca_certificate(self, ca_id: str) -> x509.Certificate:
        path = self.ca_cert_path(ca_id)
        try:
            return x509.load_pem_x509_certificate(read_file(path, "CA certificate", MiB, error=PKIError))
        except (OSError, ValueError) as exc:
            raise PKIError(f"{path}: cannot read CA certificate: {exc}") from None

    def rotate_ca(self, passphrase: bytes | None = None) -> CARecord:
        """Start a rotation: a new active CA; the old one stays trusted as `previous`."""
        if not self.registry.active_ca:
            raise PKIError(f"{self.root}: no CA yet (run `logstack ca init`)")
        if any(ca.status == "previous" for ca in self.registry.cas):
            raise PKIError("a rotation is already in progress; finish it with `logstack ca retire-old`")
        record = self._create_ca(passphrase)
        self.save()
        return record

    def hosts_on_old_ca(self, inventory: Inventory) -> list[str]:
        """Non-revoked inventory hosts whose certificate was not issued by the active CA."""
        active = self.registry.active_ca
        behind = []
        for host in inventory.hosts:
            if host.name in self.registry.revoked_hosts:
                continue
            rec = self.registry.current(host.name)
            if rec is not None and active is not None and rec.ca != active.id:
                behind.append(host.name)
        return behind

    def retire_old_ca(self, inventory: Inventory, passphrase: bytes | None = None, force: bool = False) -> str:
        """End a rotation: stop trusting the previous CA and re-issue the receivers' certificates."""
        previous = [ca for ca in self.registry.cas if ca.status == "previous"]
        if not previous:
            raise PKIError("no rotation in progress (run `logstack ca rotate` first)")
        behind = self.hosts_on_old_ca(inventory)
        if behind and not force:
            raise PKIError(
                "hosts still hold certificates of the old CA: "
                + ", ".join(behind)
                + " (run `logstack enroll-host` for them, or --force to cut them off)"
            )
        for ca in previous:
            ca.status = "retired"
        self.issue_server(inventory, passphrase, save=False)
        for spec in inventory.server.receivers:  # every receiver moves to the new CA with the server
            self.issue_receiver(spec, passphrase, save=False)
        self.save()
        return previous[0].id

    # -- leaf certificates ---------------------------------------------------------------------------
    def _active(self) -> CARecord:
        ca = self.registry.active_ca
        if ca is None:
            raise PKIError(f"{self.root}: no CA yet (run `logstack ca init`)")
        return ca

    def mint_leaf(
        self,
        common_name: str,
        dns: Iterable[str],
        ips: Iterable[str],
        usage: x509.ObjectIdentifier,
        days: int,
        passphrase: bytes | None,
        ca: CARecord,
    ) -> tuple[x509.Certificate, mint.PrivateKey]:
        """A new key and certificate from `ca`, in memory only (nothing written, nothing registered)."""
        ca_cert, ca_key = self.load_ca(ca.id, passphrase)
        key = mint.new_key(self.settings.key_type)
        cert = mint.make_leaf(
            ca_cert,
            ca_key,
            key,
            organisation=self.site_name,
            common_name=common_name,
            dns=dns,
            ips=ips,
            usage=usage,
            now=_now(),
            days=days,
        )
        return cert, key

    def _issue(
        self,
        name: str,
        dns: list[str],
        ips: list[str],
        usage: x509.ObjectIdentifier,
        days: int,
        passphrase: bytes | None,
        ca: CARecord,
        common_name: str | None = None,
    ) -> CertRecord:
        cert, key = self.mint_leaf(common_name or name, dns, ips, usage, days, passphrase, ca)
        self.write_pair(name, mint.key_pem(key), mint.cert_pem(cert))
        for rec in self.registry.certs:
            if rec.name == name and rec.status == "valid":
                rec.status = "superseded"
        record = CertRecord(
            serial=format(cert.serial_number, "x"),
            kind="server" if usage == ExtendedKeyUsageOID.SERVER_AUTH else "client",
            name=name,
            subject=cert.subject.rfc4514_string(),
            sans=[str(d) for d in dns] + [str(i) for i in ips],
            fingerprint=mint.fingerprint(cert),
            not_before=registry_time(cert.not_valid_before_utc),
            not_after=registry_time(cert.not_valid_after_utc),
            ca=ca.id,
            status="valid",
        )
        self.registry.certs.append(record)
        return record

    def issue_receiving(
        self, name: str, spec: ServerSpec | ReceiverSpec, passphrase: bytes | None = None, save: bool = True
    ) -> CertRecord:
        """Issue (or re-issue) a receiving machine's certificate: SANs = fqdn + dns_names + ip_addresses."""
        dns = [spec.fqdn, *(d for d in spec.dns_names if d != spec.fqdn)]
        # During a rotation senders not yet re-enrolled trust only the old CA: keep the receivers on it.
        ca = next((c for c in self.registry.cas if c.status == "previous"), None) or self._active()
        record = self._issue(
            name,
            dns,
            list(spec.ip_addresses),
            ExtendedKeyUsageOID.SERVER_AUTH,
            self.settings.server_days,
            passphrase,
            ca,
            common_name=spec.fqdn,
        )
        if save:
            self.save()
        return record

    def issue_server(self, inventory: Inventory, passphrase: bytes | None = None, save: bool = True) -> CertRecord:
        """Issue (or re-issue) the server's certificate."""
        return self.issue_receiving(SERVER, inventory.server, passphrase, save)

    def issue_receiver(self, spec: ReceiverSpec, passphrase: bytes | None = None, save: bool = True) -> CertRecord:
        """Issue (or re-issue) another receiver's certificate: its own names and addresses as SANs."""
        return self.issue_receiving(receiver_key(spec.name), spec, passphrase, save)

    def holds_current(self, name: str, spec: ServerSpec | ReceiverSpec) -> bool:
        """Whether `name` has its certificate and key, for the names the inventory gives it now."""
        wanted = [spec.fqdn, *(d for d in spec.dns_names if d != spec.fqdn), *spec.ip_addresses]
        current = self.registry.current(name)
        return (
            current is not None
            and current.sans == wanted
            and self.cert_pem(name) is not None
            and self.key_pem(name) is not None
        )

    def issue_client(self, host: Host, passphrase: bytes | None = None, save: bool = True) -> CertRecord:
        """Issue (or re-issue) a host's client certificate: CN = host name, fqdn as DNS SAN."""
        if host.name in self.registry.revoked_hosts:
            self.registry.revoked_hosts.remove(host.name)
        record = self._issue(
            host.name,
            [host.fqdn] if host.fqdn else [],
            [],
            ExtendedKeyUsageOID.CLIENT_AUTH,
            self.settings.client_days,
            passphrase,
            self._active(),
        )
        if save:
            self.save()
        return record

    def needs_client(self, host: Host, within: dt.timedelta = dt.timedelta(0)) -> bool:
        """Whether enrolling `host` must mint: no certificate, files gone, old CA, or expiring."""
        if host.name in self.registry.revoked_hosts:
            raise RevokedHostError(
                f"host {host.name!r} is revoked; remove it from the inventory or issue a new certificate "
                f"deliberately with `logstack certs renew {host.name}`"
            )
        rec = self.registry.current(host.name)
        active = self.registry.active_ca
        if rec is None or rec.status != "valid" or active is None or rec.ca != active.id:
            return True
        if not (self.cert_path(host.name).exists() and self.key_path(host.name).exists()):
            return True
        return parse_registry_time(rec.not_after) - _now() <= within

    def revoke(self, name: str) -> CertRecord:
        """Mark a host's certificate revoked; it stops working once its CA is retired."""
        rec = self.registry.current(name)
        if rec is None or rec.kind != "client":
            raise PKIError(f"no client certificate for host {name!r} in {self.index_path}")
        rec.status = "revoked"
        if name not in self.registry.revoked_hosts:
            self.registry.revoked_hosts.append(name)
        self.key_path(name).unlink(missing_ok=True)
        self.save()
        return rec

    def expiring(self, within: dt.timedelta) -> list[CertRecord]:
        """Valid certificates (server and clients) that expire within `within`."""
        limit = _now() + within
        return [r for r in self.registry.certs if r.status == "valid" and parse_registry_time(r.not_after) <= limit]
