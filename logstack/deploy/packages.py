"""Vector as a package: what a machine must do to run the pinned version (planned from its facts, pure), and
the root script that does it with apt or dnf, from the signed repository or an uploaded package file.

The same discipline as files: the new package must report the pinned version and, where a configuration is
in place, validate it and stay up when restarted; otherwise the previous version is put back, or the error
says exactly why it could not be. The package is then held, so unattended upgrades do not move it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

from logstack.base.errors import BadInputError, RuntimeFailure
from logstack.base.safe_read import MiB, read_file
from logstack.base.shell import shell_command
from logstack.connection.base import Connection
from logstack.site.host_facts import HostFacts, gather
from logstack.site.vector_source import VectorSource


@dataclass(frozen=True)
class PackageStep:
    """Install (none there) or upgrade (an older one there) Vector to the pinned version."""

    manager: str  # apt | dnf
    wanted: str
    installed: str | None

    def describe(self, done: bool = False) -> str:
        """`install vector 0.57.0 (installed: 0.55.1)`, or once done `vector 0.57.0 installed (was: 0.55.1)`."""
        if done:
            return f"vector {self.wanted} installed (was: {self.installed or 'none'})"
        verb = "install" if self.installed is None else "upgrade to"
        return f"{verb} vector {self.wanted} (installed: {self.installed or 'none'})"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def plan_vector(name: str, facts: HostFacts, source: VectorSource) -> PackageStep | None:
    """What the machine needs so that Vector runs the pinned version; None when it does already (or a newer
    one: logstack never downgrades a Vector, whose disk buffer an older release may not read)."""
    if not source.manage_packages:
        return None
    if facts.vector is not None and _version(facts.vector) >= _version(source.version):
        return None
    if facts.packages not in ("apt", "dnf"):
        raise RuntimeFailure(
            f"{name}: neither apt nor dnf found: install Vector {source.version} yourself, or set "
            "vector.manage_packages: false"
        )
    return PackageStep(facts.packages, source.version, facts.vector)


# Runs as root; every value is an argument. Exit codes: 20 key not fetched, 21 key not pinned, 22 index not
# read, 23 version not in the repository, 24 failed and rolled back, 25 failed and not rolled back.
_COMMON = r"""
set -u
manager=$1 version=$2 repo=$3 key=$4 pins=$5 package=$6 service=$7
tmp=$(mktemp -d) || exit 1
trap 'GNUPGHOME="$tmp/gnupg" gpgconf --kill gpg-agent >/dev/null 2>&1; rm -rf "$tmp"' EXIT
say() { printf '%s\n' "$*" >&2; }
pinned_key() {  # the key file, reduced to the keys whose fingerprints are pinned, into $tmp/keys.gpg
    for tool in gpg curl; do
        command -v "$tool" >/dev/null 2>&1 || { say "$tool is needed to check the repository key"; exit 26; }
    done
    export GNUPGHOME="$tmp/gnupg"; mkdir -m 0700 "$GNUPGHOME"
    curl -fsSL --max-time 60 --proto =https,file -o "$tmp/key" -- "$key" || { say "cannot fetch $key"; exit 20; }
    found=$(gpg --batch --with-colons --show-keys "$tmp/key" 2>/dev/null | awk -F: '$1 == "fpr" {print $10}')
    keep=""
    for f in $found; do case " $pins " in *" $f "*) keep="$keep $f" ;; esac; done
    [ -n "$keep" ] || { say "the key at $key (fingerprints: $(echo $found)) is none of the pinned ones"; exit 21; }
    gpg --batch --quiet --import "$tmp/key" 2>/dev/null
    gpg --batch --export $keep > "$tmp/keys.gpg"
}
stays_up() {  # a configuration in place: the new binary validates it and runs it
    /usr/bin/vector --version 2>/dev/null | grep -q "^vector $version " || {
        say "vector --version is not $version"; return 1; }
    [ -f /etc/vector/vector.yaml ] || return 0
    /usr/bin/vector validate --no-environment /etc/vector/vector.yaml >"$tmp/validate" 2>&1 || {
        say "vector $version does not validate the configuration: $(tail -n 1 "$tmp/validate")"; return 1; }
    "$service" restart vector >/dev/null 2>&1 || true
    sleep 1
    [ "$("$service" is-active vector 2>/dev/null)" = active ] || { say "vector $version did not stay up"; return 1; }
}
"""

_APT = r"""
list=/etc/apt/sources.list.d/logstack-vector.list
only="-o Dir::Etc::sourcelist=$list -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0"
export DEBIAN_FRONTEND=noninteractive
# installed (wanted or held: ii, hi), not merely remembered (a removed package's "rc" entry has a version)
previous=$(dpkg-query -W -f='${db:Status-Abbrev}|${Version}' vector 2>/dev/null | sed -n 's/^[ih]i *|//p')
if [ -n "$package" ]; then
    target=$package
else
    pinned_key
    install -d -m 0755 /etc/apt/keyrings
    install -m 0644 "$tmp/keys.gpg" /etc/apt/keyrings/logstack-vector.gpg
    printf 'deb [signed-by=/etc/apt/keyrings/logstack-vector.gpg] %s\n' "$repo" > "$list.new" \
        && mv "$list.new" "$list" || { say "cannot write $list"; exit 22; }
    apt-get $only update >"$tmp/log" 2>&1 || { say "apt-get update: $(tail -n 1 "$tmp/log")"; exit 22; }
    candidate=$(apt-cache $only madison vector | awk -F'|' -v v="$version" \
        '{gsub(/ /, "", $2); if ($2 == v || index($2, v "-") == 1) {print $2; exit}}')
    [ -n "$candidate" ] || { say "vector $version is not in $repo"; exit 23; }
    target="vector=$candidate"
fi
apt-mark unhold vector >/dev/null 2>&1 || true
if apt-get $only install -y -o Dpkg::Options::=--force-confold "$target" >"$tmp/log" 2>&1; then
    if stays_up; then
        apt-mark hold vector >/dev/null
        echo "installed $version"
        exit 0
    fi
else
    say "installing vector $version failed: $(grep -v '^$' "$tmp/log" | tail -n 1)"
fi
if [ -z "$previous" ]; then
    dpkg --remove vector >/dev/null 2>&1 || true
    say "there was no Vector before: it is removed again"; exit 25
fi
# the previous release: a package file logstack uploaded for it, else the repository
back="vector=$previous"
for kept in /var/cache/logstack/packages/vector_"$previous"_*.deb; do [ -f "$kept" ] && back=$kept; done
if apt-get $only install -y --allow-downgrades -o Dpkg::Options::=--force-confold "$back" >"$tmp/log" 2>&1; then
    apt-mark hold vector >/dev/null
    "$service" restart vector >/dev/null 2>&1 || true
    say "vector $previous is back"; exit 24
fi
apt-mark hold vector >/dev/null 2>&1 || true
say "vector $previous could not be put back ($(tail -n 1 "$tmp/log")): install it by hand"; exit 25
"""

_DNF = r"""
repofile=/etc/yum.repos.d/logstack-vector.repo
previous=$(rpm -q --qf '%{VERSION}' vector 2>/dev/null) || previous=""
if [ -n "$package" ]; then
    target=$package
else
    pinned_key
    install -d -m 0755 /etc/pki/rpm-gpg
    gpg --batch --armor --export $keep > /etc/pki/rpm-gpg/logstack-vector.asc
    install -d -m 0755 /etc/yum.repos.d
    {
        printf '[logstack-vector]\nname=Vector (logstack)\nbaseurl=%s\nenabled=1\n' "$repo"
        printf 'gpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/logstack-vector.asc\nexclude=vector\n'
    } > "$repofile.new" && mv "$repofile.new" "$repofile" || { say "cannot write $repofile"; exit 22; }
    target="vector-$version"
fi
# the repository excludes vector (held against upgrades): only logstack lifts that, for this transaction
if dnf install -y --disableexcludes=logstack-vector --allowerasing "$target" >"$tmp/log" 2>&1; then
    if stays_up; then
        echo "installed $version"
        exit 0
    fi
else
    say "installing vector $version failed: $(grep -v '^$' "$tmp/log" | tail -n 1)"
fi
if [ -z "$previous" ]; then
    rpm -e vector >/dev/null 2>&1 || true
    say "there was no Vector before: it is removed again"; exit 25
fi
if dnf downgrade -y --disableexcludes=logstack-vector "vector-$previous" >"$tmp/log" 2>&1; then
    "$service" restart vector >/dev/null 2>&1 || true
    say "vector $previous is back"; exit 24
fi
say "vector $previous could not be put back ($(tail -n 1 "$tmp/log")): install it by hand"; exit 25
"""

SCRIPTS = {"apt": _COMMON + _APT, "dnf": _COMMON + _DNF}
UPLOAD_DIR = "/var/cache/logstack/packages"


def install_vector(
    conn: Connection, step: PackageStep, source: VectorSource, service_manager: str, package: Path | None = None
) -> str:
    """Run the step on the machine; its one-line outcome, or a RuntimeFailure naming the machine and why."""
    repo, key, pins = (
        (source.apt_repository, source.apt_key, source.apt_fingerprints)
        if step.manager == "apt"
        else (source.rpm_repository, source.rpm_key, source.rpm_fingerprints)
    )
    remote = upload_package(conn, package) if package is not None else ""
    script = SCRIPTS[step.manager]
    args = (step.manager, step.wanted, repo, key, " ".join(pins), remote, service_manager)
    status, out, err = conn.run(shell_command(script, *args), check=False, timeout=900)
    said = err.decode(errors="replace").strip().splitlines()
    if status != 0:
        reason = "; ".join(said[-2:]) if said else f"exit {status}"
        raise RuntimeFailure(f"{conn.target.name}: Vector {step.wanted}: {reason}")
    return out.decode(errors="replace").strip()


def upload_package(conn: Connection, package: Path) -> str:
    """Put a package file the operator downloaded on the machine (root's directory), checked against the
    SHA256SUMS beside it; its path there."""
    data = read_file(package, "Vector package", 512 * MiB, follow_links=True)
    sums = package.parent / "SHA256SUMS"
    try:
        listed = read_file(sums, "package checksums", MiB, follow_links=True).decode("ascii", "replace")
    except FileNotFoundError:
        raise BadInputError(f"{sums}: no checksums beside the package (run `logstack packages -o DIR`)") from None
    digest = hashlib.sha256(data).hexdigest()
    if f"{digest}  {package.name}" not in listed.splitlines():
        raise BadInputError(f"{package}: its SHA-256 is not the one {sums} lists")
    remote = f"{UPLOAD_DIR}/{package.name}"
    conn.run(
        shell_command('install -d -m 0700 -- "$1" && cat > "$2.new" && mv -- "$2.new" "$2"', UPLOAD_DIR, remote),
        stdin=data,
    )
    return remote


def package_for(directory: Path, manager: str, version: str, arch: str | None) -> Path:
    """The package file for a machine in a directory `logstack packages` filled."""
    deb_arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf"}.get(arch or "", arch or "")
    name = f"vector_{version}-1_{deb_arch}.deb" if manager == "apt" else f"vector-{version}-1.{arch}.rpm"
    path = directory / name
    if not path.is_file():
        raise BadInputError(f"{directory}: no {name} (run `logstack packages -o {directory}`)")
    return path


def converge_vector(
    conn: Connection,
    name: str,
    facts: HostFacts,
    source: VectorSource,
    service_manager: str,
    *,
    dry_run: bool,
    packages_dir: Path | None = None,
) -> tuple[HostFacts, str | None]:
    """The machine's facts once Vector is the pinned version, and what was (or would be) done; a dry run
    changes nothing and answers with the facts the machine would then have."""
    step = plan_vector(name, facts, source)
    if step is None:
        return facts, None
    if dry_run:
        return replace(facts, vector=step.wanted), f"would {step.describe()}"
    package = package_for(packages_dir, step.manager, step.wanted, facts.arch) if packages_dir else None
    install_vector(conn, step, source, service_manager, package)
    return gather(conn), step.describe(done=True)
