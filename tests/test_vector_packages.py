"""Vector installed and kept current by logstack, for real: apt on test hosts (their own dpkg database and
/usr/bin), from a repository signed with a test key whose fingerprint the inventory pins. A missing Vector is
installed, an older one upgraded, a broken release rolled back, a key that is not pinned refused; packages
are held. The hosts are sshd test hosts (tests/sshd.py) whose /var/lib, /var/cache, /var/log, /etc and
/usr/bin are their own."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

from logstack.pki import PKI
from logstack.site.inventory import load_inventory
from tests.conftest import invoke
from tests.fleet_site import make_fleet
from tests.vector_repo import build_deb, new_key, signed_repository, stop_agent

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="test hosts need root (mount namespaces, sshd)")


@pytest.fixture(scope="module")
def repo():
    # apt reads a repository as its unprivileged `_apt` user: the tree must be readable by all (pytest's own
    # temporary directories are root's alone)
    base = Path(tempfile.mkdtemp(prefix="logstack-vector-repo-"))
    try:
        base.chmod(0o755)
        debs = [build_deb(base, "0.55.1"), build_deb(base, "0.57.0"), build_deb(base, "0.57.1", broken=True)]
        yield signed_repository(base, debs)
    finally:
        stop_agent(base / "gnupg")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def fleet(tmp_path, ssh_client_key, repo):
    site = make_fleet(
        tmp_path,
        ssh_client_key,
        ["fresh", "old"],
        first_octet=120,
        versions={"fresh": (252, None), "old": (252, None)},
        extra={"vector": {"apt_repository": repo.line, "apt_key": repo.key, "apt_fingerprints": [repo.fingerprint]}},
    )
    PKI.for_inventory(load_inventory(site.inventory)).init_ca()
    yield site
    site.stop()


def _set(fleet, **vector) -> None:
    doc = yaml.safe_load(fleet.inventory.read_text())
    doc["vector"].update(vector)
    fleet.inventory.write_text(yaml.safe_dump(doc, sort_keys=False))


def _installed(fleet, name: str) -> tuple[str, str, str]:
    """(dpkg's version, held or not, what /usr/bin/vector says) on a host."""
    run = fleet.ssh(
        name,
        "dpkg-query -W -f='${Version}' vector 2>/dev/null; echo; apt-mark showhold; "
        "vector --version 2>/dev/null | cut -d' ' -f2",
    )
    version, held, reported = [*run.stdout.splitlines(), "", "", ""][:3]
    return version, held, reported


@root_only
def test_a_host_without_vector_gets_the_pinned_version_and_it_is_held(fleet, runner):
    dry = invoke(runner, "enroll-host", "fresh", "--no-verify", "--dry-run", "-i", fleet.inventory)
    assert dry.exit_code == 0, dry.output
    assert "would install vector 0.57.0 (installed: none)" in dry.stdout
    assert _installed(fleet, "fresh")[0] == ""  # a dry run changes nothing
    done = invoke(runner, "enroll-host", "fresh", "--no-verify", "-i", fleet.inventory)
    assert done.exit_code == 0, done.output
    assert "vector 0.57.0 installed (was: none)" in done.stdout
    assert _installed(fleet, "fresh") == ("0.57.0-1", "vector", "0.57.0")
    assert fleet.hosts["fresh"].path("/etc/vector/vector.yaml").exists()
    again = invoke(runner, "enroll-host", "fresh", "--no-verify", "-i", fleet.inventory)
    assert again.exit_code == 0 and "installed (was" not in again.stdout  # current: nothing to do
    facts = invoke(runner, "facts", "fresh", "--cached", "--format", "json", "-i", fleet.inventory)
    assert '"packages": "apt"' in facts.stdout and '"vector": "0.57.0"' in facts.stdout


@root_only
def test_an_older_vector_is_upgraded_and_a_broken_release_rolled_back(fleet, runner):
    _set(fleet, version="0.55.1")  # older than the configs need: installed, then the configs are refused
    first = invoke(runner, "enroll-host", "old", "--no-verify", "-i", fleet.inventory)
    assert first.exit_code == 3 and "older than 0.57.0" in first.output
    assert _installed(fleet, "old") == ("0.55.1-1", "vector", "0.55.1")
    _set(fleet, version="0.57.0")
    dry = invoke(runner, "enroll-host", "old", "--no-verify", "--dry-run", "-i", fleet.inventory)
    assert "would upgrade to vector 0.57.0 (installed: 0.55.1)" in dry.stdout
    upgraded = invoke(runner, "enroll-host", "old", "--no-verify", "-i", fleet.inventory)
    assert upgraded.exit_code == 0, upgraded.output
    assert "vector 0.57.0 installed (was: 0.55.1)" in upgraded.stdout
    assert _installed(fleet, "old") == ("0.57.0-1", "vector", "0.57.0")
    # 0.57.1 reports its version but cannot build the configuration in place: 0.57.0 is put back
    _set(fleet, version="0.57.1")
    broken = invoke(runner, "enroll-host", "old", "--no-verify", "-i", fleet.inventory)
    assert broken.exit_code == 3
    assert "does not validate the configuration" in broken.output and "vector 0.57.0-1 is back" in broken.output
    assert _installed(fleet, "old") == ("0.57.0-1", "vector", "0.57.0")


@root_only
def test_a_repository_key_that_is_not_pinned_installs_nothing(fleet, runner):
    _set(fleet, apt_fingerprints=["0" * 40])
    result = invoke(runner, "enroll-host", "fresh", "--no-verify", "-i", fleet.inventory)
    assert result.exit_code == 3
    assert "is none of the pinned ones" in result.output
    assert _installed(fleet, "fresh")[0] == ""
    assert not fleet.hosts["fresh"].path("/etc/apt/sources.list.d/logstack-vector.list").exists()


@root_only
def test_unmanaged_packages_leave_an_old_vector_to_the_operator(fleet, runner):
    _set(fleet, manage_packages=False)
    result = invoke(runner, "enroll-host", "fresh", "--no-verify", "-i", fleet.inventory)
    assert result.exit_code == 3 and "Vector is not installed" in result.output
    assert _installed(fleet, "fresh")[0] == ""


@root_only
def test_an_air_gapped_site_installs_the_package_logstack_packages_fetched(fleet, runner, repo, tmp_path):
    # the fleet's facts are read once, then the files are fetched where the repository is reachable
    assert invoke(runner, "facts", "fresh", "-i", fleet.inventory).exit_code == 0
    out = tmp_path / "packages"
    fetched = invoke(runner, "packages", "-o", out, "-i", fleet.inventory)
    assert fetched.exit_code == 0, fetched.output
    (deb,) = out.glob("*.deb")
    assert deb.name.startswith("vector_0.57.0-1_") and (out / "SHA256SUMS").read_text().endswith(f"  {deb.name}\n")
    # the machines reach no repository: the package travels over SSH, checked against SHA256SUMS
    _set(fleet, apt_repository="file:/nonexistent stable main", apt_key="file:///nonexistent/key.asc")
    done = invoke(runner, "enroll-host", "fresh", "--no-verify", "--packages", out, "-i", fleet.inventory)
    assert done.exit_code == 0, done.output
    assert _installed(fleet, "fresh") == ("0.57.0-1", "vector", "0.57.0")
    # a package that is not the one SHA256SUMS lists is refused before it travels
    deb.write_bytes(deb.read_bytes() + b"x")
    _set(fleet, version="0.57.0")
    fleet.ssh("fresh", "apt-mark unhold vector >/dev/null; dpkg --purge vector >/dev/null")
    tampered = invoke(runner, "enroll-host", "fresh", "--no-verify", "--packages", out, "-i", fleet.inventory)
    assert tampered.exit_code == 3 and "is not the one" in tampered.output


def test_a_release_not_signed_by_a_pinned_key_is_refused(repo):
    from logstack.base.errors import RuntimeFailure
    from logstack.provision.vector_download import verified_release

    in_release = (repo.root / "dists" / "stable" / "InRelease").read_bytes()
    key = (repo.root / "key.asc").read_bytes()
    assert "Suite: stable" in verified_release(in_release, key, (repo.fingerprint,))
    with pytest.raises(RuntimeFailure, match="not signed by a pinned key"):
        verified_release(in_release, key, ("0" * 40,))
    with pytest.raises(RuntimeFailure, match="not signed by a pinned key"):
        verified_release(in_release.replace(b"Suite: stable", b"Suite: evil!"), key, (repo.fingerprint,))


# dnf, imitated: only what the dnf path relies on (dnf(8): `install`, `downgrade`, `--disableexcludes=REPOID`
# lifting a repository's `exclude=` for one transaction; rpm(8): `rpm -q --qf '%{VERSION}' NAME`, exit 1 when
# not installed). Installing `vector-X` puts the Vector stand-in of version X in place; 0.57.1 is broken.
DNF = r"""#!/bin/sh
echo "dnf $*" >> /var/log/dnf-calls
for last; do :; done
case "$1" in install|downgrade) ;; *) exit 1 ;; esac
case " $* " in *" --disableexcludes=logstack-vector "*) ;; *) echo "No match for argument: $last" >&2; exit 1 ;; esac
version=${last#vector-}
grep -q '^exclude=vector$' /etc/yum.repos.d/logstack-vector.repo || exit 1
install -m 0755 "/opt/stand-in/vector-$version" /usr/bin/vector || exit 1
echo "$version" > /var/lib/rpm-vector
"""
RPM = r"""#!/bin/sh
[ -s /var/lib/rpm-vector ] || { echo "package vector is not installed"; exit 1; }
printf '%s' "$(cat /var/lib/rpm-vector)"
"""


@root_only
def test_the_dnf_path_pins_the_key_excludes_vector_and_rolls_back(fleet, runner, repo):
    from tests import standins
    from tests.vector_repo import BROKEN

    host = "old"
    scripts = {v: (BROKEN if v == "0.57.1" else standins.VECTOR).replace("{version}", v) for v in ("0.57.0", "0.57.1")}
    stand_ins = "".join(f"cat > /opt/stand-in/vector-{v} <<'EOF'\n{s}EOF\n" for v, s in scripts.items())
    setup = fleet.ssh(
        host,
        "rm -f /usr/bin/apt-get && mkdir -p /opt/stand-in && "
        f"cat > /usr/bin/dnf <<'EOF'\n{DNF}EOF\ncat > /usr/bin/rpm <<'EOF'\n{RPM}EOF\n"
        f"chmod 0755 /usr/bin/dnf /usr/bin/rpm\n{stand_ins}",
    )
    assert setup.returncode == 0, setup.stderr
    _set(fleet, rpm_repository="file:/srv/rpms", rpm_key=repo.key, rpm_fingerprints=[repo.fingerprint])
    done = invoke(runner, "enroll-host", host, "--no-verify", "-i", fleet.inventory)
    assert done.exit_code == 0, done.output
    assert "vector 0.57.0 installed (was: none)" in done.stdout
    repofile = fleet.ssh(host, "cat /etc/yum.repos.d/logstack-vector.repo").stdout
    for line in (
        "baseurl=file:/srv/rpms",
        "gpgcheck=1",
        "repo_gpgcheck=1",
        "exclude=vector",
        "gpgkey=file:///etc/pki/rpm-gpg/logstack-vector.asc",
    ):
        assert line in repofile.splitlines(), line
    key = fleet.ssh(host, "cat /etc/pki/rpm-gpg/logstack-vector.asc").stdout
    assert key.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    _set(fleet, version="0.57.1")
    broken = invoke(runner, "enroll-host", host, "--no-verify", "-i", fleet.inventory)
    assert broken.exit_code == 3 and "vector 0.57.0 is back" in broken.output
    calls = fleet.ssh(host, "cat /var/log/dnf-calls").stdout.splitlines()
    assert calls == [
        "dnf install -y --disableexcludes=logstack-vector --allowerasing vector-0.57.0",
        "dnf install -y --disableexcludes=logstack-vector --allowerasing vector-0.57.1",
        "dnf downgrade -y --disableexcludes=logstack-vector vector-0.57.0",
    ]
    assert fleet.ssh(host, "vector --version").stdout.startswith("vector 0.57.0 ")


def test_the_docs_say_tested_only_of_the_system_the_tests_run_on():
    fields = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    name = {"debian": "Debian", "ubuntu": "Ubuntu"}.get(fields["ID"].strip('"'), fields["ID"])
    readme = (Path(__file__).resolve().parents[1] / "docs" / "deploying.md").read_text()
    tested = [row for row in readme.splitlines() if row.startswith("| ") and "| tested:" in row]
    assert tested == [row for row in tested if row.startswith(f"| {name} {fields['VERSION_ID'].strip(chr(34))} ")]
    assert tested, "docs/deploying.md names no system the package tests ran on"


def test_a_release_signed_by_a_revoked_pinned_key_is_refused(tmp_path):
    import subprocess

    from logstack.base.errors import RuntimeFailure
    from logstack.provision.vector_download import verified_release

    home = tmp_path / "gnupg"
    env, gpg, fpr = new_key(home, "old <old@example.invalid>")
    try:
        release = tmp_path / "Release"
        release.write_text("Suite: stable\n")
        subprocess.run(
            [*gpg, "--clearsign", "-o", str(tmp_path / "InRelease"), str(release)],
            env=env,
            check=True,
            capture_output=True,
        )
        revocation = home / "openpgp-revocs.d" / f"{fpr}.rev"
        text = revocation.read_text().replace(
            ":-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----BEGIN PGP PUBLIC KEY BLOCK-----"
        )
        subprocess.run([*gpg, "--import"], input=text.encode(), env=env, check=True, capture_output=True)
        key = subprocess.run(
            ["gpg", "--batch", "--armor", "--export", fpr], env=env, check=True, capture_output=True
        ).stdout
        with pytest.raises(RuntimeFailure, match="not signed by a pinned key"):
            verified_release((tmp_path / "InRelease").read_bytes(), key, (fpr,))
    finally:
        stop_agent(home)


@root_only
def test_a_dry_run_keeps_the_facts_the_machine_has(fleet, runner):
    from logstack.site.host_facts import load_facts

    dry = invoke(runner, "enroll-host", "fresh", "--no-verify", "--dry-run", "-i", fleet.inventory)
    assert "would install vector 0.57.0" in dry.stdout
    assert load_facts(fleet.inventory.parent, "fresh").vector is None  # not what it would have


@root_only
def test_a_host_without_vector_is_installed_and_then_delivers(tmp_path, ssh_client_key, repo, mariadb, runner):
    """The whole enrolment of a bare host: Vector installed from the repository, the configuration deployed,
    and delivery proven by a heartbeat of the new configuration in the store (MariaDB, as GreptimeDB's MySQL
    port; the stand-in Vector sends none itself, so the test plays the heartbeat the host's config stamps)."""
    import datetime as dt
    import re

    from tests.test_status import _heartbeat, _prepare, _signed

    source = {"apt_repository": repo.line, "apt_key": repo.key, "apt_fingerprints": [repo.fingerprint]}
    fleet = make_fleet(
        tmp_path, ssh_client_key, ["bare"], server=True, first_octet=140, versions={"bare": (252, None)},
        extra={"vector": source},
    )  # fmt: skip
    try:
        _prepare(fleet)
        mariadb.create_logs("vector")
        first = invoke(runner, "enroll-host", "bare", "--no-verify", "-i", fleet.inventory)
        assert first.exit_code == 0 and "vector 0.57.0 installed (was: none)" in first.stdout, first.output
        config = fleet.hosts["bare"].path("/etc/vector/vector.yaml").read_text()
        digest = re.search(r'\.logstack_config = "([0-9a-f]{16})"', config)[1]
        beat = {**_heartbeat("bare", dt.timedelta(seconds=1)), "logstack_config": digest}
        mariadb.insert("vector", [_signed(fleet, beat)])
        verified = invoke(runner, "enroll-host", "bare", "--verify-timeout", "1", "--db-port", str(mariadb.port),
                          "-i", fleet.inventory)  # fmt: skip
        assert verified.exit_code == 0, verified.output
        assert re.search(r"bare .* ok .* yes", verified.stdout), verified.stdout
        assert _installed(fleet, "bare") == ("0.57.0-1", "vector", "0.57.0")
    finally:
        fleet.stop()
