"""`systemd-analyze verify` on every rendered unit and drop-in (in a private mount namespace)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from logstack.render.site_files import render_site
from logstack.site.inventory import load_inventory
from tests.conftest import EXAMPLE

DATA = Path(__file__).parent / "data"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a private mount namespace")


def _verify(tmp_path: Path, units: dict[str, bytes]) -> subprocess.CompletedProcess[str]:
    unit_dir, local_bin, upper, work = (tmp_path / n for n in ("unit", "bin", "up", "work"))
    for d in (unit_dir, local_bin, upper, work):
        d.mkdir(parents=True)
    # The executables the units name, as they will exist on the server (greptime and logstack are
    # installed to /usr/local/bin, vector by its package to /usr/bin).
    for exe in (local_bin / "greptime", local_bin / "logstack", upper / "vector"):
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    shutil.copy(DATA / "vector.service", unit_dir / "vector.service")  # as the vector package ships it
    names = ["vector.service"]
    for rel, content in units.items():
        target = unit_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        if "/" not in rel:
            names.append(rel)
    script = (
        f"mount -t overlay overlay -o lowerdir=/usr/bin,upperdir={upper},workdir={work} /usr/bin && "
        f"mount --bind {local_bin} /usr/local/bin && cd {unit_dir} && "
        "exec systemd-analyze verify " + " ".join(f"./{n}" for n in names)
    )
    return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=60)


def _units(machine: str) -> dict[str, bytes]:
    inv = load_inventory(EXAMPLE)
    units = {}
    for f in render_site(inv):
        if f.machine == machine and f.unit:
            units[f.path.removeprefix("/etc/systemd/system/")] = f.content
    return units


@pytest.mark.parametrize("machine", ["server", "hosts/web1"])
def test_rendered_units_verify_cleanly(tmp_path: Path, machine: str):
    units = _units(machine)
    assert "vector.service.d/10-logstack.conf" in units
    result = _verify(tmp_path, units)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_verify_harness_catches_a_broken_unit(tmp_path: Path):
    units = _units("server")
    units["greptime.service"] = units["greptime.service"].replace(b"NoNewPrivileges=yes", b"NoNewPrivilege=yes")
    result = _verify(tmp_path, units)
    assert "Unknown key 'NoNewPrivilege'" in result.stderr


def test_firewall_unit_verifies(tmp_path: Path):
    path = tmp_path / "inventory.yaml"
    path.write_text(EXAMPLE.read_text().replace("firewall: false", "firewall: true"))
    inv = load_inventory(path)
    units = {
        f.path.removeprefix("/etc/systemd/system/"): f.content
        for f in render_site(inv)
        if f.machine == "server" and f.unit
    }
    assert "logstack-firewall.service" in units
    result = _verify(tmp_path / "verify", units)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
