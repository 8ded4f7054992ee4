"""Mint client certificates with logstack and compare with the seed procedure's openssl commands.

The seed procedure makes, per client, an RSA 4096 key, a CSR and a CA signature with three openssl
invocations. Target: logstack >= 50x faster per certificate.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from logstack.pki import PKI
from logstack.site.inventory import Host, InventorySpec, SSHSettings


def mint_logstack(tmp: Path, count: int) -> float:
    spec = InventorySpec.model_validate({"site": "bench", "server": {"fqdn": "logs.example.com"}})
    pki = PKI(tmp, spec.pki, "bench")
    pki.init_ca()
    hosts = [
        Host(f"host{i:05d}", "10.0.0.1", f"host{i:05d}.example.com", (), SSHSettings(), False, {}) for i in range(count)
    ]
    start = time.perf_counter()
    for host in hosts:
        pki.issue_client(host, save=False)
    pki.save()
    return time.perf_counter() - start


def mint_seed(tmp: Path, count: int) -> float:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)

    run("genrsa", "-out", "ca-key.pem", "4096")
    run("req", "-new", "-x509", "-days", "999", "-key", "ca-key.pem", "-out", "ca-cert.pem", "-subj", "/CN=Vector-CA")
    start = time.perf_counter()
    for i in range(count):
        run("genrsa", "-out", f"client{i}-key.pem", "4096")
        run("req", "-new", "-key", f"client{i}-key.pem", "-out", f"client{i}.csr", "-subj", "/CN=vector-client")
        run(
            "x509",
            "-req",
            "-days",
            "365",
            "-in",
            f"client{i}.csr",
            "-CA",
            "ca-cert.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            f"client{i}-cert.pem",
        )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed-sample", type=int, default=10, help="seed-procedure certificates to time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        ours = mint_logstack(Path(a), args.count)
        seed = mint_seed(Path(b), args.seed_sample)
    ours_rate = args.count / ours
    seed_rate = args.seed_sample / seed
    print(
        f"logstack: {args.count} client certificates (ECDSA P-256, key + cert + registry) in {ours:.2f} s "
        f"= {ours_rate:,.0f} certs/s"
    )
    print(
        f"seed procedure: {args.seed_sample} client certificates (RSA 4096 genrsa + req + x509) in {seed:.2f} s "
        f"= {seed_rate:,.2f} certs/s"
    )
    print(f"ratio: {ours_rate / seed_rate:,.0f}x (target: >= 50x)")


if __name__ == "__main__":
    main()
