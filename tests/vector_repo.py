"""A signed apt repository of `vector` packages, made here the way Vector's is served (file: on loopback
paths): packages built with dpkg-deb whose /usr/bin/vector is the Vector stand-in of the given version,
an index with their SHA-256, a Release signed inline (InRelease) by a key made for the test."""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests import standins

# A broken release: it says its version, then fails to build any configuration (as a Vector that cannot run).
BROKEN = """#!/bin/sh
[ "$1" = --version ] && { echo "vector {version} (x86_64-unknown-linux-gnu stand-in 2026-07-14)"; exit 0; }
echo "broken build: cannot start" >&2
exit 78
"""

POSTINST = """#!/bin/sh
set -e
getent group vector >/dev/null || groupadd --system vector
id -u vector >/dev/null 2>&1 || useradd --system -g vector -M -s /usr/sbin/nologin vector
install -d -o vector -g vector -m 0755 /var/lib/vector
"""


@dataclass(frozen=True)
class Repository:
    line: str  # what inventory.vector.apt_repository takes
    key: str  # inventory.vector.apt_key
    fingerprint: str
    root: Path


def _arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()


def build_deb(out: Path, version: str, broken: bool = False) -> Path:
    stage = out / f"stage-{version}"
    (stage / "DEBIAN").mkdir(parents=True)
    (stage / "usr" / "bin").mkdir(parents=True)
    (stage / "DEBIAN" / "control").write_text(
        f"Package: vector\nVersion: {version}-1\nArchitecture: {_arch()}\nMaintainer: logstack tests\n"
        "Description: the Vector stand-in, packaged\n"
    )
    postinst = stage / "DEBIAN" / "postinst"
    postinst.write_text(POSTINST)
    postinst.chmod(0o755)
    binary = stage / "usr" / "bin" / "vector"
    script = BROKEN if broken else standins.VECTOR
    binary.write_text(script.replace("{version}", version))
    binary.chmod(0o755)
    deb = out / "pool" / f"vector_{version}-1_{_arch()}.deb"
    deb.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(stage), str(deb)], check=True, capture_output=True
    )
    return deb


def new_key(home: Path, uid: str) -> tuple[dict[str, str], list[str], str]:
    """A signing key made in a GnuPG home of its own: the environment and gpg command that use it, and its
    fingerprint."""
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    gpg = ["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""]
    subprocess.run([*gpg, "--quick-gen-key", uid, "ed25519", "sign", "never"], env=env, check=True, capture_output=True)
    listing = subprocess.run(
        ["gpg", "--batch", "--with-colons", "--list-keys"], env=env, check=True, capture_output=True, text=True
    ).stdout
    return env, gpg, next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


def signed_repository(root: Path, debs: list[Path]) -> Repository:
    """An apt repository below `root` (suite `stable`, component `main`) signed by a new test key."""
    env, gpg, fingerprint = new_key(root / "gnupg", "logstack test <test@example.invalid>")
    key = root / "key.asc"
    key.write_bytes(
        subprocess.run(
            ["gpg", "--batch", "--armor", "--export", fingerprint], env=env, check=True, capture_output=True
        ).stdout
    )
    index_dir = root / "dists" / "stable" / "main" / f"binary-{_arch()}"
    index_dir.mkdir(parents=True)
    entries = []
    for deb in debs:
        control = subprocess.run(["dpkg-deb", "-f", str(deb)], check=True, capture_output=True, text=True).stdout
        data = deb.read_bytes()
        entries.append(
            control.rstrip("\n")
            + f"\nFilename: {deb.relative_to(root)}\nSize: {len(data)}\nSHA256: {hashlib.sha256(data).hexdigest()}\n"
        )
    packages = "\n".join(entries).encode()
    (index_dir / "Packages").write_bytes(packages)
    relative = f"main/binary-{_arch()}/Packages"
    release = root / "dists" / "stable" / "Release"
    release.write_text(
        f"Suite: stable\nCodename: stable\nComponents: main\nArchitectures: {_arch()}\n"
        "Date: Sun, 06 Dec 2026 00:00:00 UTC\n"
        f"SHA256:\n {hashlib.sha256(packages).hexdigest()} {len(packages)} {relative}\n"
    )
    subprocess.run(
        [*gpg, "--local-user", fingerprint, "--clearsign", "-o", str(release.with_name("InRelease")), str(release)],
        env=env,
        check=True,
        capture_output=True,
    )
    return Repository(f"file:{root} stable main", f"file://{key}", fingerprint, root)


def stop_agent(home: Path) -> None:
    """End the gpg-agent gpg started for a test's home (the suite leaves no process behind)."""
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True, check=False)
