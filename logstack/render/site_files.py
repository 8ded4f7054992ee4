"""Render every file each machine needs, plus the manifest deployment applies."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from logstack.base.paths import DATA_ROOT
from logstack.integrity.keyring import KeyRing, keyring_path, load_keyring
from logstack.integrity.signatures import SECRET_DIR, sign_vrl
from logstack.journal.selection import Selection
from logstack.pki import PKI, SERVER
from logstack.render.file_table import (
    BACKUP_FILES,
    HOST_FILES,
    SERVER_FILES,
    key_file,
    machine_material,
    pem_or_placeholder,
    render_machine,
)
from logstack.render.receiving import (
    METRICS_ADDRESS,
    RECEIVER_PATHS,
    STANDALONE_ONLY,
    alert_files,
    analysis_state,
    backup_s3_files,
    db_args,
    db_http,
    db_passwords,
    firewall_files,
    run_limits,
    storage_env_files,
    store_ca_files,
    store_ca_pem,
    table_columns,
)
from logstack.render.rendered import SERVER_MACHINE, RenderedFile
from logstack.render.vrl import CONFIG_DIGEST_PLACEHOLDER, HEARTBEAT_VRL, identity_vrl
from logstack.site.host_facts import HostFacts, load_facts
from logstack.site.inventory import Host, Inventory
from logstack.site.secrets import Secrets
from logstack.site.topology import STORE_CA, endpoints, receivers_of


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


# The key id of a host whose key `enroll-host` has not minted yet (review renders only).
UNMINTED_KID = "0000000000000000"


def _ring_for(inventory: Inventory, include_keys: bool, hosts: list[Host]) -> KeyRing:
    """The ring gives host configs their key id and deployments the seal key; the server's review files need
    neither (status renders them for addresses only, and must not stop at an unusable ring)."""
    return load_keyring(keyring_path(inventory.site_dir)) if include_keys or hosts else KeyRing()


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
    ring = _ring_for(inventory, include_keys, inventory.hosts if hosts is None else hosts)
    base = {"site": inventory.spec.site, "server": inventory.server, "senders": inventory.spec.senders}
    ca_bundle = pki.ca_bundle_pem() if pki.exists() and pki.registry.trusted_cas else None
    ca = pem_or_placeholder(ca_bundle, "pki/ca (run `logstack ca init`)")
    files: list[RenderedFile] = []
    if server:
        files += _receiving_machines(inventory, secrets, pki, include_keys, ca, ring.seal_key, base)
    selection = Selection.of(inventory)
    shared = {
        **base,
        "endpoints": endpoints(inventory.server),
        "journal_reader": True,
        "journal_identifiers": selection.journal_identifiers(),
        "filter_vrl": selection.vrl(),
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
        material = machine_material(pki, host.name, where, include_keys, ca)
        material["signing_key"] = key_file(signing.key if signing else b"", include_keys, host.name)
        files += _stamp_digest(render_machine(f"hosts/{host.name}", HOST_FILES, context, material), material)
    return files


def _receiving_machines(
    inventory: Inventory,
    secrets: Secrets | None,
    pki: PKI,
    include_keys: bool,
    ca: bytes,
    seal_key: bytes,
    base: dict[str, Any],
) -> list[RenderedFile]:
    """The server (receiver, timers, and a standalone store), then every other receiving machine."""
    spec = inventory.server
    context = {
        **base,
        "passwords": db_passwords(secrets),
        "columns": table_columns(inventory),
        "journal_reader": False,
        "db_args": db_args(spec),
        "db_http": db_http(spec),
        "analysis_state": analysis_state(spec),
        "data_root": str(DATA_ROOT),
        "run_limits": run_limits(spec),
        "metrics_address": METRICS_ADDRESS,
        "store_ca": STORE_CA,
        "listen_address": spec.listen_address,
    }
    material = machine_material(pki, SERVER, "pki/server.pem", include_keys, ca)
    material["seal_key"] = key_file(seal_key, include_keys, "seal_key")
    own = (
        SERVER_FILES
        if spec.store.type == "standalone"
        else tuple(f for f in SERVER_FILES if f.path not in STANDALONE_ONLY)
    )
    files = render_machine(SERVER_MACHINE, own, context, material)
    store = spec.store
    ca_pem = store_ca_pem(inventory) if store.type == "external" and store.ca_file else None  # read once
    files += store_ca_files(SERVER_MACHINE, ca_pem, analysis=True) + storage_env_files(inventory, secrets)
    if spec.firewall:
        files += firewall_files(inventory, pki)
    if spec.alerts:
        files += alert_files(inventory, secrets)
    if spec.backup is not None:
        files += render_machine(SERVER_MACHINE, BACKUP_FILES, context, material)
        files += backup_s3_files(inventory, secrets)
    receiving = tuple(f for f in SERVER_FILES if f.path in RECEIVER_PATHS)
    for receiver in receivers_of(spec)[1:]:
        where = f"pki/{receiver.key}.pem (issued by `logstack init-server`)"
        theirs = machine_material(pki, receiver.key, where, include_keys, ca)
        own = {**context, "listen_address": receiver.listen_address}
        files += render_machine(receiver.key, receiving, own, theirs)
        files += store_ca_files(receiver.key, ca_pem, analysis=False)
        if spec.firewall:
            files += firewall_files(inventory, pki, receiver.key)
    return files


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
