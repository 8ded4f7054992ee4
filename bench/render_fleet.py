"""Render a generated 1000-host inventory and print hosts/s (target: 1000 hosts in <= 3 s on 2 cores)."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from logstack.render.rendered import write_tree
from logstack.render.site_files import render_site
from logstack.site.inventory import load_inventory


def generate(path: Path, hosts: int) -> None:
    lines = [
        "site: bench",
        "server:",
        "  fqdn: logs.example.com",
        "defaults:",
        "  ssh: {user: root, port: 22}",
        "  identity: {environment: production}",
        "groups:",
        "  web: {vars: {identity: {role: web}, sudo: true}}",
        "  db: {vars: {identity: {role: db}}}",
        "hosts:",
    ]
    for i in range(hosts):
        group = "web" if i % 3 else "db"
        lines.append(
            f"  - {{name: host{i:04d}, address: 10.{i // 65536}.{i // 256 % 256}.{i % 256}, "
            f"fqdn: host{i:04d}.example.com, cmdb_id: {100000 + i}, groups: [{group}], identity: {{rack: r{i % 40}}}}}"
        )
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tmp", default=None, help="where to write (e.g. /dev/shm to leave the disk out)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        inventory = Path(tmp) / "inventory.yaml"
        generate(inventory, args.hosts)
        best = float("inf")
        for round_ in range(args.rounds):
            out = Path(tmp) / f"out{round_}"
            start, cpu = time.perf_counter(), time.process_time()
            inv = load_inventory(inventory)
            files = render_site(inv)
            rendered = time.perf_counter()
            count = write_tree(files, out)
            elapsed = time.perf_counter() - start
            best = min(best, elapsed)
            print(
                f"round {round_ + 1}: {args.hosts} hosts, {count} files in {elapsed:.3f} s "
                f"(load+render {rendered - start:.3f} s, write {elapsed - (rendered - start):.3f} s, "
                f"cpu {time.process_time() - cpu:.3f} s)"
            )
        print(f"best: {best:.3f} s for {args.hosts} hosts = {args.hosts / best:,.0f} hosts/s (target: <= 3 s)")


if __name__ == "__main__":
    main()
