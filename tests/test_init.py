from __future__ import annotations

import stat
from pathlib import Path

import pytest

from logstack.base.errors import SecretsError
from logstack.provision.scaffold import first_inventory
from logstack.site.inventory import load_inventory
from logstack.site.secrets import load_secrets
from tests.conftest import EXAMPLE, invoke


def test_init_scaffolds_a_site(tmp_path: Path, runner):
    site = tmp_path / "mysite"
    result = invoke(runner, "init", site)
    assert result.exit_code == 0, result.output
    example, written = EXAMPLE.read_text(), (site / "inventory.yaml").read_text()
    assert written == first_inventory(example) and written != example
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


def test_a_first_site_deploys_without_alert_destinations_configured(tmp_path: Path, runner):
    """The example's destinations need URLs and servers of their own: a new site has them commented out, so
    the server's files render with the site's secrets (what init-server does) without stopping on them."""
    from logstack.render.site_files import render_site

    site = tmp_path / "mysite"
    assert invoke(runner, "init", site).exit_code == 0
    inv = load_inventory(site / "inventory.yaml")
    assert inv.server.alerts == [] or tuple(inv.server.alerts) == ()
    secrets = load_secrets(site / "secrets.yaml")
    files = render_site(inv, secrets=secrets, include_keys=True)
    assert files and not any(f.path == "/etc/logstack/alerts.json" for f in files)
    example = load_inventory(_written(site / "example.yaml", EXAMPLE.read_text()))
    with pytest.raises(SecretsError, match=r"alerts\.security-chat\.url: the webhook has no url"):
        render_site(example, secrets=secrets, include_keys=True)  # what a copy of the example did
    text = (site / "inventory.yaml").read_text()
    assert "  #  - name: security-chat" in text and "  #    type: webhook" in text  # there to turn on
    assert load_inventory(_written(tmp_path / "on.yaml", _uncomment_alerts(text))).server.alerts  # as they were


def _uncomment_alerts(text: str) -> str:
    out, inside = [], False
    for line in text.splitlines(keepends=True):  # as the comment says: delete `alerts: []`, uncomment the block
        if line.startswith("  alerts: []"):
            continue
        if line == "  # alerts:\n":
            out.append("  alerts:\n")
            inside = True
        elif inside and line.startswith("  #  "):
            out.append("  " + line[3:])
        else:
            inside = inside and not line.strip()
            out.append(line)
    return "".join(out)


def _written(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
