"""Enroll N hosts (default 50 sshd test hosts on loopback) and time the first run and an unchanged re-run.

Targets: 50 hosts in <= 10 s on the first run (2 cores), facts and verification included; the re-run
<= 20 % of the first. Each run reads every host's facts, and a restarted Vector must stay up (stand-ins,
tests/standins.py). With --delivery a server host and MariaDB (the MySQL stand-in) take part: a watcher
plays each sender's first heartbeat when its new configuration lands, and enrollment waits for it.
Needs root (each host is an sshd in its own mount namespace), openssh-server and mariadb-server.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from logstack.deploy.enroll import enroll
from logstack.integrity.signatures import sign_row
from logstack.pki import PKI
from logstack.site.inventory import load_inventory
from tests.fleet_site import make_fleet
from tests.mariadb import PASSWORD, start_mariadb
from tests.sshd import make_client_key

_DIGEST = re.compile(r'\.logstack_config = "([0-9a-f]{16})"')


def _senders(fleet, names, mariadb, stop: threading.Event) -> None:
    """Each sender's first heartbeat, as soon as its new configuration is in place."""
    seen: dict[str, str] = {}
    while not stop.is_set():
        rows = []
        for name in names:
            path = fleet.hosts[name].path("/etc/vector/vector.yaml")
            try:
                digest = _DIGEST.search(path.read_text())
            except OSError:
                continue
            if digest and seen.get(name) != digest[1]:
                try:  # the key the sender's Vector reads, signing as its remap does
                    key = bytes.fromhex(fleet.hosts[name].path("/etc/vector/secrets/signing_key").read_text().strip())
                except (OSError, ValueError):
                    continue
                seen[name] = digest[1]
                now = dt.datetime.now(dt.UTC)
                row = {
                    "greptime_timestamp": now.replace(tzinfo=None),
                    "logstack_host": name,
                    "SYSLOG_IDENTIFIER": "logstack-heartbeat",
                    "message": "heartbeat",
                    "__REALTIME_TIMESTAMP": str(int(now.timestamp() * 1_000_000)),
                    "logstack_config": digest[1],
                }
                rows.append(sign_row(row, key))
        if rows:
            mariadb.insert("vector", rows)
        time.sleep(0.05)


def _scaled(inventory: Path, count: int) -> None:
    """Receivers logs2.. in the senders' endpoints (not deployed: enrolment does not touch them)."""
    spec = yaml.safe_load(inventory.read_text())
    spec["server"]["receivers"] = [{"name": f"logs{i + 2}", "fqdn": f"logs{i + 2}.example.com"} for i in range(count)]
    spec["server"]["store"] = {
        "type": "external",
        "http_endpoint": "https://greptime.example.com",
        "mysql_host": "greptime.example.com",
    }
    inventory.write_text(yaml.safe_dump(spec, sort_keys=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--forks", type=int, default=10)
    parser.add_argument("--delivery", action="store_true", help="also wait for each host's heartbeat")
    parser.add_argument(
        "--receivers", type=int, default=0, help="the site's scaled form: this many more receivers, an external store"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        start = time.perf_counter()
        names = [f"h{i:03d}" for i in range(args.hosts)]
        fleet = make_fleet(base, make_client_key(base), names, server=args.delivery, first_octet=100)
        print(f"started {args.hosts} sshd hosts in {time.perf_counter() - start:.1f} s")
        mariadb = start_mariadb(base / "mariadb") if args.delivery else None
        stop = threading.Event()
        try:
            if mariadb is not None:
                mariadb.create_logs("vector")
                secrets = yaml.safe_load((fleet.inventory.parent / "secrets.yaml").read_text())
                secrets["greptimedb"]["analyst"] = PASSWORD
                (fleet.inventory.parent / "secrets.yaml").write_text(yaml.safe_dump(secrets))
                threading.Thread(target=_senders, args=(fleet, names, mariadb, stop), daemon=True).start()
            if args.receivers:
                _scaled(fleet.inventory, args.receivers)
            inv = load_inventory(fleet.inventory)
            PKI.for_inventory(inv).init_ca()
            timings = []
            for label in ("first run", "unchanged re-run"):
                inv = load_inventory(fleet.inventory)
                start, cpu = time.perf_counter(), time.process_time()
                results = enroll(
                    inv,
                    list(inv.hosts),
                    forks=args.forks,
                    delivery_timeout=30.0 if mariadb is not None else None,
                    db_port=mariadb.port if mariadb is not None else 4002,
                )
                elapsed = time.perf_counter() - start
                cpu = time.process_time() - cpu
                timings.append(elapsed)
                counts: dict[str, int] = {}
                for r in results:
                    counts[r.status] = counts.get(r.status, 0) + 1
                delivering = sum(1 for r in results if r.delivering == "yes")
                print(
                    f"{label}: {args.hosts} hosts in {elapsed:.2f} s ({counts}, delivering: {delivering}); "
                    f"logstack's own CPU {cpu:.2f} s"
                )
            print(
                f"re-run / first run = {timings[1] / timings[0]:.0%} "
                f"(targets: first <= 10 s for 50 hosts, re-run <= 20 %)"
            )
        finally:
            stop.set()
            if mariadb is not None:
                mariadb.stop()
            fleet.stop()


if __name__ == "__main__":
    main()
