"""Enroll N hosts (default 50 sshd test hosts on loopback) and time the first run and an unchanged re-run.

Targets: 50 hosts in <= 10 s on the first run (2 cores); the re-run <= 20 % of the first.
Needs root (each host is an sshd in its own mount namespace) and openssh-server.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from logstack.enroll import enroll
from logstack.inventory import load_inventory
from logstack.pki import PKI
from tests.fleet_site import make_fleet
from tests.sshd import make_client_key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--forks", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        start = time.perf_counter()
        fleet = make_fleet(base, make_client_key(base), [f"h{i:03d}" for i in range(args.hosts)], first_octet=100)
        print(f"started {args.hosts} sshd hosts in {time.perf_counter() - start:.1f} s")
        try:
            inv = load_inventory(fleet.inventory)
            PKI.for_inventory(inv).init_ca()
            timings = []
            for label in ("first run", "unchanged re-run"):
                inv = load_inventory(fleet.inventory)
                start, cpu = time.perf_counter(), time.process_time()
                results = enroll(inv, list(inv.hosts), forks=args.forks)
                elapsed = time.perf_counter() - start
                cpu = time.process_time() - cpu
                timings.append(elapsed)
                counts: dict[str, int] = {}
                for r in results:
                    counts[r.status] = counts.get(r.status, 0) + 1
                print(f"{label}: {args.hosts} hosts in {elapsed:.2f} s ({counts}); logstack's own CPU {cpu:.2f} s")
            print(
                f"re-run / first run = {timings[1] / timings[0]:.0%} "
                f"(targets: first <= 10 s for 50 hosts, re-run <= 20 %)"
            )
        finally:
            fleet.stop()


if __name__ == "__main__":
    main()
