from __future__ import annotations

import stat
from pathlib import Path

from logstack.site.inventory import load_inventory
from logstack.site.secrets import load_secrets
from tests.conftest import EXAMPLE, invoke


def test_init_scaffolds_a_site(tmp_path: Path, runner):
    site = tmp_path / "mysite"
    result = invoke(runner, "init", site)
    assert result.exit_code == 0, result.output
    assert (site / "inventory.yaml").read_bytes() == EXAMPLE.read_bytes()
    secrets_file = site / "secrets.yaml"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    secrets = load_secrets(secrets_file)
    assert set(secrets.db_passwords) == {"admin", "vector", "analyst"}
    assert len(set(secrets.db_passwords.values())) == 3
    for password in secrets.db_passwords.values():
        assert password not in result.stdout
    assert stat.S_IMODE((site / "pki").stat().st_mode) == 0o700
    assert (site / "pki/ca/ca-1/ca.pem").is_file()
    load_inventory(site / "inventory.yaml")
    # a second init never overwrites a site
    before = secrets_file.read_bytes()
    again = invoke(runner, "init", site)
    assert again.exit_code == 2 and "already exists" in again.stderr
    assert secrets_file.read_bytes() == before
    # ca init refuses a second CA
    twice = invoke(runner, "ca", "init", "-i", site / "inventory.yaml")
    assert twice.exit_code == 2 and "already exists" in twice.stderr
