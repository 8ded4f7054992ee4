"""The core of `logstack facts`: each machine's facts, read over SSH (and cached) or from the cache."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from logstack.base.errors import LogstackError
from logstack.connection.registry import connect
from logstack.connection.targets import host_target, known_hosts_path, server_target
from logstack.site.host_facts import HostFacts, gather, load_facts, save_facts
from logstack.site.inventory import Inventory


@dataclass(frozen=True)
class MachineFacts:
    """One machine's facts, or why they could not be read."""

    name: str
    facts: HostFacts | None
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "facts": self.facts.as_dict() if self.facts else None, "error": self.error}


def machine_facts(
    inventory: Inventory, names: list[str], *, cached: bool = False, accept_new: bool = False, forks: int = 10
) -> list[MachineFacts]:
    """Facts of the named machines (`server` included; none named: all), read live unless `cached`."""
    wanted = names or ["server", *(h.name for h in inventory.hosts)]
    for name in wanted:
        if name != "server":
            inventory.host(name)  # an unknown name is an error naming the inventory

    def one(name: str) -> MachineFacts:
        if cached:
            return MachineFacts(name, load_facts(inventory.site_dir, name))
        target = server_target(inventory) if name == "server" else host_target(inventory.host(name))
        try:
            with connect(target, known_hosts_path(inventory), accept_new=accept_new) as conn:
                facts = gather(conn)
        except LogstackError as exc:
            return MachineFacts(name, load_facts(inventory.site_dir, name), str(exc))
        save_facts(inventory.site_dir, name, facts)
        return MachineFacts(name, facts)

    with ThreadPoolExecutor(max_workers=max(1, min(forks, len(wanted)))) as pool:
        return list(pool.map(one, wanted))
