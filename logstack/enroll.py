"""Enrolling hosts: mint, render, plan and apply for many hosts in parallel; one failure stops none."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from logstack.deploy import DeployOptions, deploy_machine
from logstack.errors import BadInputError, PKIError, RevokedHostError
from logstack.facts import HostFacts
from logstack.files import RenderedFile
from logstack.inventory import Host, Inventory
from logstack.pki import PKI
from logstack.render import firewall_files, render_site
from logstack.targets import HostResult, host_target, known_hosts_path, server_target


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
) -> list[HostResult]:
    """Mint missing client certificates, then deploy each host's files in parallel."""
    if forks < 1:
        raise BadInputError("--forks must be at least 1")
    pki = PKI.for_inventory(inventory)
    if not pki.registry.active_ca:
        raise PKIError(f"{pki.root}: no CA yet (run `logstack ca init` or `logstack init-server`)")
    report = on_result or (lambda result: None)
    ready, refused = _mint_missing(pki, hosts, dry_run, passphrase)
    for result in refused:
        report(result)
    options = DeployOptions(
        known_hosts=known_hosts_path(inventory),
        site_dir=inventory.site_dir,
        dry_run=dry_run,
        accept_new=accept_new,
        service_manager=inventory.spec.service_manager,
        verify_timeout=verify_timeout,
    )

    def one(host: Host) -> HostResult:
        # rendered for this host's facts, read over the connection the deployment opens
        def render(facts: HostFacts) -> list[RenderedFile]:
            return render_site(
                inventory, pki=pki, include_keys=True, hosts=[host], server=False, facts={host.name: facts}
            )

        result = deploy_machine(host_target(host), render, options)
        report(result)
        return result

    results = {r.name: r for r in refused}
    with ThreadPoolExecutor(max_workers=min(forks, max(1, len(ready)))) as pool:
        for result in pool.map(one, ready):
            results[result.name] = result
    ordered = [results[h.name] for h in hosts if h.name in results]
    if inventory.server.firewall and not all(r.status in ("failed", "unreachable") for r in ordered):
        # Newly enrolled senders join the server's allowlist for Vector's port.
        wall = deploy_machine(
            server_target(inventory), lambda facts: firewall_files(inventory, pki), replace(options, needs_vector=False)
        )
        wall.name = "server (firewall)"
        report(wall)
        ordered.append(wall)
    return ordered


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
