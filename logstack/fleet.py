"""Enrolling hosts: mint, render, plan and apply for many hosts in parallel; one failure stops none."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from logstack.deploy import Plan, apply, diffs, inspect, make_plan
from logstack.errors import BadInputError, LogstackError, PKIError, RevokedHostError
from logstack.inventory import Host, Inventory
from logstack.pki import PKI
from logstack.render import RenderedFile, firewall_files, render_site
from logstack.ssh import HostKeyError, Target, UnreachableError, connect

Status = Literal["ok", "changed", "failed", "unreachable"]


@dataclass
class HostResult:
    """The outcome for one machine."""

    name: str
    status: Status
    reason: str = ""
    plan: Plan | None = None
    diff: list[str] = field(default_factory=list)


def known_hosts_path(inventory: Inventory) -> Path:
    """The inventory's known_hosts file (relative to the site), else ~/.ssh/known_hosts."""
    if inventory.spec.known_hosts:
        path = Path(inventory.spec.known_hosts).expanduser()
        return path if path.is_absolute() else inventory.site_dir / path
    return Path(os.path.expanduser("~/.ssh/known_hosts"))


def host_target(host: Host) -> Target:
    return Target(
        name=host.name,
        address=host.address,
        port=host.ssh.port,
        user=host.ssh.user,
        key=host.ssh.key,
        proxy_jump=host.ssh.proxy_jump,
        sudo=host.sudo,
    )


def server_target(inventory: Inventory) -> Target:
    server = inventory.server
    return Target(
        name="server",
        address=server.address or server.fqdn,
        port=server.ssh.port,
        user=server.ssh.user,
        key=server.ssh.key,
        proxy_jump=server.ssh.proxy_jump,
        sudo=server.sudo,
    )


def deploy_files(
    target: Target,
    files: list[RenderedFile],
    known_hosts: Path,
    *,
    dry_run: bool,
    accept_new: bool,
    service_manager: str,
) -> HostResult:
    """Plan and (unless dry_run) apply `files` on one target; never raises for target problems."""
    try:
        with connect(target, known_hosts, accept_new=accept_new) as conn:
            facts = inspect(conn, files)
            plan = make_plan(target.name, files, facts.files, facts.owed, facts.dirs)
            if dry_run:
                return HostResult(target.name, "changed" if plan.changed else "ok", "dry run", plan, diffs(conn, plan))
            if not plan.changed:
                return HostResult(target.name, "ok", "", plan)
            apply(conn, plan, service_manager)
            return HostResult(target.name, "changed", plan.summary(), plan)
    except UnreachableError as exc:
        return HostResult(target.name, "unreachable", str(exc))
    except HostKeyError as exc:
        return HostResult(target.name, "failed", str(exc))
    except LogstackError as exc:
        return HostResult(target.name, "failed", str(exc))


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
) -> list[HostResult]:
    """Mint missing client certificates, then deploy each host's files in parallel."""
    if forks < 1:
        raise BadInputError("--forks must be at least 1")
    pki = PKI.for_inventory(inventory)
    if not pki.registry.active_ca:
        raise PKIError(f"{pki.root}: no CA yet (run `logstack ca init` or `logstack init-server`)")
    results: dict[str, HostResult] = {}
    ready: list[Host] = []
    for host in hosts:
        try:
            if pki.needs_client(host) and not dry_run:
                pki.issue_client(host, passphrase, save=False)
            ready.append(host)
        except RevokedHostError as exc:  # this host only; CA problems (passphrase) stop the run
            results[host.name] = HostResult(host.name, "failed", str(exc))
            if on_result:
                on_result(results[host.name])
    pki.save()
    files = render_site(inventory, pki=pki, include_keys=True, hosts=ready, server=False)
    by_machine: dict[str, list[RenderedFile]] = {}
    for f in files:
        by_machine.setdefault(f.machine, []).append(f)
    known_hosts = known_hosts_path(inventory)
    manager = inventory.spec.service_manager

    def one(host: Host) -> HostResult:
        result = deploy_files(
            host_target(host),
            by_machine[f"hosts/{host.name}"],
            known_hosts,
            dry_run=dry_run,
            accept_new=accept_new,
            service_manager=manager,
        )
        if on_result:
            on_result(result)
        return result

    with ThreadPoolExecutor(max_workers=min(forks, max(1, len(ready)))) as pool:
        for result in pool.map(one, ready):
            results[result.name] = result
    ordered = [results[h.name] for h in hosts if h.name in results]
    if inventory.server.firewall and not all(r.status in ("failed", "unreachable") for r in ordered):
        # Newly enrolled senders join the server's allowlist for Vector's port.
        wall = deploy_files(
            server_target(inventory),
            firewall_files(inventory, pki),
            known_hosts,
            dry_run=dry_run,
            accept_new=accept_new,
            service_manager=manager,
        )
        wall.name = "server (firewall)"
        if on_result:
            on_result(wall)
        ordered.append(wall)
    return ordered
