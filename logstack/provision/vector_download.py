"""Vector's package files for a site without access to the repository: fetched here from the signed apt
repository (its InRelease checked against the pinned keys, then each index and package by SHA-256), one per
kind of machine the fleet's cached facts name, with SHA256SUMS beside them for `enroll-host --packages`."""

from __future__ import annotations

import gzip
import hashlib
import re
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from logstack.base.deadline import within
from logstack.base.errors import BadInputError, RuntimeFailure
from logstack.base.fsutil import atomic_write
from logstack.deploy.packages import package_for
from logstack.site.host_facts import load_facts
from logstack.site.inventory import Inventory

MAX_INDEX = 64 * 1024 * 1024
MAX_PACKAGE = 512 * 1024 * 1024
_DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf"}


def fetch(url: str, limit: int, timeout: float = 300) -> bytes:
    """The bytes at an https:// or file: URL (TLS verified), at most `limit`."""
    if not url.startswith(("https://", "file:")):
        raise BadInputError(f"{url[:120]}: only https:// and file: URLs are fetched")

    def get() -> bytes:
        with urllib.request.urlopen(url, timeout=60) as answer:
            return answer.read(limit + 1)

    try:
        data = within(timeout, get)
    except OSError as exc:
        raise RuntimeFailure(f"{url[:120]}: {type(exc).__name__}: {exc}") from None
    if len(data) > limit:
        raise RuntimeFailure(f"{url[:120]}: larger than logstack fetches")
    return data


def verified_release(in_release: bytes, key: bytes, pins: tuple[str, ...]) -> str:
    """The Release text of a clear-signed InRelease whose signature is by a key with a pinned fingerprint."""
    with tempfile.TemporaryDirectory(prefix="logstack-gpg-") as home:
        env = {"GNUPGHOME": home, "PATH": "/usr/bin:/bin"}
        subprocess.run(["gpg", "--batch", "--quiet", "--import"], input=key, env=env, capture_output=True, check=False)
        done = subprocess.run(
            ["gpg", "--batch", "--status-fd", "2", "--output", "-", "--decrypt"],
            input=in_release,
            env=env,
            capture_output=True,
            check=False,
        )
        # an agent gpg may have started for this home ends with it
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], env=env, capture_output=True, check=False)
    status = done.stderr
    signers = re.findall(rb"^\[GNUPG:\] VALIDSIG ([0-9A-F]{40}) .* ([0-9A-F]{40})$", status, re.M)
    # a good signature, by a key neither revoked nor expired, of a signature that has not expired either
    sound = b"[GNUPG:] GOODSIG " in status and not re.search(
        rb"^\[GNUPG:\] (?:REVKEYSIG|EXPKEYSIG|EXPSIG|BADSIG) ", status, re.M
    )
    if done.returncode != 0 or not sound or not any(fpr.decode() in pins or p.decode() in pins for fpr, p in signers):
        raise RuntimeFailure("the repository's InRelease is not signed by a pinned key")
    return done.stdout.decode("utf-8", "replace")


def _sha256_of(release: str, name: str) -> str:
    """The SHA-256 a Release lists for one index file."""
    section = release.split("\nSHA256:", 1)[1] if "\nSHA256:" in release else ""
    for line in section.splitlines()[1:]:
        if not line.startswith(" "):
            break
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return parts[0]
    raise RuntimeFailure(f"the repository's Release lists no {name}")


def _stanza(packages: str, version: str) -> dict[str, str]:
    for block in packages.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line[0].isspace())
        if fields.get("Package") == "vector" and re.fullmatch(
            re.escape(version) + r"(-\d+)?", fields.get("Version", "")
        ):
            return fields
    raise RuntimeFailure(f"vector {version} is not in the repository")


def _url(value: str) -> str:
    """An inventory's `file:/path` as a URL urllib reads (https:// stays as it is)."""
    return value if value.startswith(("https://", "file://")) else "file://" + value.removeprefix("file:")


def download_apt(inventory: Inventory, arch: str, output: Path) -> Path:
    """The pinned Vector's .deb for one architecture, checked all the way from the signed InRelease."""
    source = inventory.spec.vector
    base, suite, component = [*source.apt_repository.split(), "", ""][:3]
    base = _url(base).rstrip("/")
    release = verified_release(
        fetch(f"{base}/dists/{suite}/InRelease", MAX_INDEX),
        fetch(_url(source.apt_key), 1 << 20),
        source.apt_fingerprints,
    )
    deb_arch = _DEB_ARCH.get(arch, arch)
    index = f"{component}/binary-{deb_arch}/Packages"
    for name, unpack in ((index, lambda b: b), (index + ".gz", gzip.decompress)):
        try:
            wanted = _sha256_of(release, name)
        except RuntimeFailure:
            continue
        raw = fetch(f"{base}/dists/{suite}/{name}", MAX_INDEX)
        if hashlib.sha256(raw).hexdigest() != wanted:
            raise RuntimeFailure(f"{name}: not the SHA-256 the signed Release lists")
        packages = unpack(raw).decode("utf-8", "replace")
        break
    else:
        raise RuntimeFailure(f"the repository's Release lists no {index}")
    stanza = _stanza(packages, source.version)
    data = fetch(f"{base}/{stanza['Filename']}", MAX_PACKAGE)
    if hashlib.sha256(data).hexdigest() != stanza.get("SHA256"):
        raise RuntimeFailure(f"{stanza['Filename']}: not the SHA-256 the signed index lists")
    path = output / f"vector_{source.version}-1_{deb_arch}.deb"
    atomic_write(path, data, mode=0o644)
    return path


def download_packages(inventory: Inventory, output: Path) -> list[Path]:
    """Every package file the fleet's machines need (from their cached facts), and SHA256SUMS."""
    names = ["server", *(r.name for r in inventory.server.receivers), *(h.name for h in inventory.hosts)]
    kinds: set[tuple[str, str]] = set()
    for name in names:
        facts = load_facts(inventory.site_dir, name)
        if facts is not None and facts.packages and facts.arch:
            kinds.add((facts.packages, facts.arch))
    if not kinds:
        raise BadInputError("no machine's facts are known yet: run `logstack facts` once where they are reachable")
    output.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    missing: list[str] = []
    for manager, arch in sorted(kinds):
        if manager == "apt":
            files.append(download_apt(inventory, arch, output))
            continue
        rpm = output / f"vector-{inventory.spec.vector.version}-1.{arch}.rpm"
        if rpm.is_file():  # fetched by the operator from the repository: listed with the rest
            files.append(rpm)
        else:
            missing.append(rpm.name)
    sums = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in sorted(files))
    atomic_write(output / "SHA256SUMS", sums, mode=0o644)
    if missing:
        raise BadInputError(
            f"dnf machines need {', '.join(missing)}: put it from the repository into {output} and run this "
            "again (logstack checks apt repositories only; SHA256SUMS lists what is there)"
        )
    for manager, arch in kinds:
        package_for(output, manager, inventory.spec.vector.version, arch)  # what enroll-host will look for
    return files
