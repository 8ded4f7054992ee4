"""Enrolling hosts: mint, render, plan and apply for many hosts in parallel; one failure stops none."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from logstack.base.clock import DAY, from_micros, to_micros
from logstack.base.errors import BadInputError, LogstackError, PKIError, RevokedHostError, RuntimeFailure
from logstack.connection.registry import connect
from logstack.connection.targets import host_target, known_hosts_path, receiver_target, server_target
from logstack.deploy.apply import DeployOptions, deploy_machine
from logstack.deploy.result import HostResult
from logstack.integrity.keyring import ensure_keys, keyring_path, keys_deployed, load_keyring, machines_enrolled
from logstack.integrity.signatures import Verifier, heartbeat_time, kid_in, site_verifier
from logstack.journal.record import HEARTBEAT_IDENTIFIER
from logstack.pki import PKI
from logstack.render.rendered import SERVER_MACHINE, RenderedFile
from logstack.render.site_files import firewall_files, render_site
from logstack.render.vrl import digest_in
from logstack.site.host_facts import HostFacts
from logstack.site.inventory import Host, Inventory
from logstack.site.secrets import load_secrets, secrets_path
from logstack.site.topology import receiver_key
from logstack.store.greptime import site_database
from logstack.store.reader import DatabaseSource


def select_hosts(inventory: Inventory, names: list[str], all_hosts: bool) -> list[Host]:
    if all_hosts and names:
        raise BadInputError("name hosts or pass --all, not both")
    if all_hosts:
        return list(inventory.hosts)
    if not names:
        raise BadInputError("name at least one host, or pass --all")
    return [inventory.host(name) for name in dict.fromkeys(names)]


def enroll(
    inventory: Inventory,
    hosts: list[Host],
    *,
    forks: int = 10,
    dry_run: bool = False,
    accept_new: bool = False,
    passphrase: bytes | None = None,
    on_result: Callable[[HostResult], None] | None = None,
    verify_timeout: float = 30.0,
    delivery_timeout: float | None = None,
    db_port: int = 4002,
    packages_dir: Path | None = None,
) -> list[HostResult]:
    """Mint missing client certificates, then deploy each host's files in parallel (Vector installed or
    upgraded to the pinned version first, when the site manages packages); then (unless `delivery_timeout`
    is None) wait until each host's new configuration delivers heartbeats."""
    if forks < 1:
        raise BadInputError("--forks must be at least 1")
    pki = PKI.for_inventory(inventory)
    if not pki.registry.active_ca:
        raise PKIError(f"{pki.root}: no CA yet (run `logstack ca init` or `logstack init-server`)")
    report = on_result or (lambda result: None)
    started = time.monotonic()
    ready, refused = _mint_missing(pki, hosts, dry_run, passphrase)
    if not dry_run:  # the signing key travels with the certificate, in the same upload
        ensure_keys(inventory.site_dir, [h.name for h in ready], dt.datetime.now(dt.UTC))
    # Vector puts a secret's value into the remap's source before compiling it: a diagnostic quoting that
    # line would show the key, so service logs shown are scrubbed of every signing key
    signing_keys = tuple(key.hex() for _, key, _ in load_keyring(keyring_path(inventory.site_dir)).by_kid().values())
    for result in refused:
        report(result)
    options = DeployOptions.for_site(
        inventory,
        dry_run=dry_run,
        accept_new=accept_new,
        verify_timeout=verify_timeout,
        slots=threading.Semaphore(forks),
        secrets=signing_keys,
        vector=inventory.spec.vector,
        packages_dir=packages_dir,
    )

    results = {r.name: r for r in refused}
    for result in _deploy_hosts(inventory, pki, ready, options, forks, report):
        results[result.name] = result
    if not dry_run:
        _record_deployed_keys(inventory, results)
    ordered = [results[h.name] for h in hosts if h.name in results]
    if delivery_timeout is not None and not dry_run:
        verify_delivery(inventory, ordered, delivery_timeout, db_port, accept_new, started)
    if inventory.server.firewall and not all(r.status in ("failed", "unreachable") for r in ordered):
        ordered += _update_allowlists(inventory, pki, options, report)
    return ordered


def _record_deployed_keys(inventory: Inventory, results: dict[str, HostResult]) -> None:
    """The keys the hosts now sign with (the ones minted before are retired) and the machine each host was
    enrolled on: its rows must name it (a re-imaged host is enrolled again)."""
    done = {n: r for n, r in results.items() if r.status in ("ok", "changed")}
    keys_deployed(inventory.site_dir, {n: kid for n, r in done.items() if (kid := _deployed_kid(r))}, _now())
    machines = {n: r.facts.machine_id for n, r in done.items() if r.facts is not None and r.facts.machine_id}
    machines_enrolled(inventory.site_dir, machines)


def _update_allowlists(inventory: Inventory, pki: PKI, options: DeployOptions, report: Any) -> list[HostResult]:
    """Newly enrolled senders join the allowlist for Vector's port on the server and every receiver."""
    machines = [(server_target(inventory), SERVER_MACHINE, "server")]
    machines += [(receiver_target(r), receiver_key(r.name), r.name) for r in inventory.server.receivers]
    results = []
    for target, machine, name in machines:
        wall = deploy_machine(
            target, lambda facts, m=machine: firewall_files(inventory, pki, m), replace(options, needs_vector=False)
        )
        wall.name = f"{name} (firewall)"
        report(wall)
        results.append(wall)
    return results


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _deploy_hosts(
    inventory: Inventory,
    pki: PKI,
    hosts: list[Host],
    options: DeployOptions,
    forks: int,
    report: Callable[[HostResult], None],
) -> list[HostResult]:
    """Each host's files, rendered for the facts read over its own connection, in parallel."""

    def one(host: Host) -> HostResult:
        def render(facts: HostFacts) -> list[RenderedFile]:
            return render_site(
                inventory, pki=pki, include_keys=True, hosts=[host], server=False, facts={host.name: facts}
            )

        result = deploy_machine(host_target(host), render, options)
        report(result)
        return result

    # `forks` hosts are worked on at once (options.slots); hosts waiting for Vector to settle hold no slot
    with ThreadPoolExecutor(max_workers=min(4 * forks, max(1, len(hosts)))) as pool:
        return list(pool.map(one, hosts))


def _mint_missing(
    pki: PKI, hosts: list[Host], dry_run: bool, passphrase: bytes | None
) -> tuple[list[Host], list[HostResult]]:
    """Issue the certificates hosts lack; a revoked host fails alone (CA problems stop the run)."""
    ready: list[Host] = []
    refused: list[HostResult] = []
    for host in hosts:
        try:
            if pki.needs_client(host) and not dry_run:
                pki.issue_client(host, passphrase, save=False)
            ready.append(host)
        except RevokedHostError as exc:
            refused.append(HostResult(host.name, "failed", str(exc)))
    pki.save()
    return ready, refused


def _deployed_config(result: HostResult) -> bytes | None:
    """The sender config the run planned for this host (deployed, or found unchanged)."""
    if result.plan is None:
        return None
    config = next((c.file for c in result.plan.changes if c.file.path == "/etc/vector/vector.yaml"), None)
    return config.content if config is not None else None


def _deployed_kid(result: HostResult) -> str | None:
    config = _deployed_config(result)
    return kid_in(config) if config is not None else None


def _deployed_digest(result: HostResult) -> str | None:
    config = _deployed_config(result)
    return digest_in(config) if config is not None else None


def verify_delivery(
    inventory: Inventory,
    results: list[HostResult],
    timeout: float,
    db_port: int,
    accept_new: bool = False,
    started: float | None = None,
) -> None:
    """Each deployed host delivers: a heartbeat carrying the configuration just deployed reached GreptimeDB
    (read as `analyst` over the server's MySQL port, through SSH). Hosts that do not, within `timeout`, fail."""
    waiting = {
        r.name: (r, digest) for r in results if r.status in ("ok", "changed") and (digest := _deployed_digest(r))
    }
    if not waiting:
        return
    try:
        password = load_secrets(secrets_path(inventory.site_dir)).db_password("analyst")
        with (
            connect(server_target(inventory), known_hosts_path(inventory), accept_new=accept_new) as conn,
            site_database(conn, inventory, password, db_port) as config,
            DatabaseSource(config) as db,
        ):
            since = _run_start(db, started if started is not None else time.monotonic())
            interval = inventory.spec.senders.heartbeat_interval
            verifier = site_verifier(inventory.site_dir, None)
            _wait_for_heartbeats(db, waiting, timeout, since, interval, verifier)
    except LogstackError as exc:
        for result, _ in waiting.values():
            result.status, result.delivering = "failed", "unknown"
            result.reason = f"{result.name}: delivery not verified: {exc}"
        return
    for result, _ in waiting.values():
        result.status, result.delivering = "failed", "no"
        result.reason = (
            f"{result.name}: no heartbeat of the new configuration reached GreptimeDB within {timeout:.0f} s "
            "(is Vector running? `logstack status` shows what arrives)"
        )


def _run_start(db: DatabaseSource, started: float) -> dt.datetime:
    """When this run started, on the store's clock (ingest times are the store's: no clock skew)."""
    now = db.store_now()
    if now <= 0:
        raise RuntimeFailure("server: GreptimeDB did not say what time it is")
    return from_micros(now).replace(tzinfo=None) - dt.timedelta(seconds=time.monotonic() - started + 2)


def _wait_for_heartbeats(
    db: DatabaseSource,
    waiting: dict[str, tuple[HostResult, str]],
    timeout: float,
    since: dt.datetime,
    interval: int,
    verifier: Verifier | None,
) -> None:
    """A changed host's heartbeat counts from this run's start; an unchanged one's from one interval before
    (its Vector was not restarted, so it sends on its own schedule). Older rows prove nothing now, and with
    the site's keys only a heartbeat the host's own key signed proves anything."""
    deadline = time.monotonic() + timeout
    earliest = to_micros(since - dt.timedelta(seconds=2 * interval))
    while waiting:
        for row in db.rows(earliest, earliest + DAY, identifier=HEARTBEAT_IDENTIFIER):
            entry = waiting.get(str(row.get("logstack_host")))
            stamp = heartbeat_time(row)
            if entry is None or row.get("logstack_config") != entry[1] or stamp is None:
                continue
            if entry[0].status == "changed" and stamp < to_micros(since):
                continue
            if verifier is not None and verifier.check(row).problem is not None:
                continue
            entry[0].delivering = "yes"
            del waiting[str(row.get("logstack_host"))]
        if not waiting or time.monotonic() > deadline:
            return
        time.sleep(1)
