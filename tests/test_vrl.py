"""Every VRL program logstack renders compiles and runs in the real VRL engine (pyvrl)."""

from __future__ import annotations

import re

import hypothesis
import pytest
import yaml
from hypothesis import strategies as st

pyvrl = pytest.importorskip("pyvrl", reason="pyvrl is a test dependency: pip install .[test]")

from logstack.render.site_files import render_site  # noqa: E402
from logstack.site.inventory import load_inventory  # noqa: E402
from tests.conftest import EXAMPLE  # noqa: E402


def _programs(machine: str) -> tuple[str, str]:
    inv = load_inventory(EXAMPLE)
    f = next(f for f in render_site(inv) if f.machine == machine and f.path == "/etc/vector/vector.yaml")
    config = yaml.safe_load(f.content)
    return config["transforms"]["login_events"]["condition"], config["transforms"]["identity"]["source"]


def _event(identifier: str, message: str, **extra: object) -> dict[str, object]:
    return {"SYSLOG_IDENTIFIER": identifier, "message": message, "_PID": "4242", "host": "web1", **extra}


@pytest.mark.parametrize(
    ("identifier", "message", "kept"),
    [
        ("sshd-session", "Failed password for invalid user bob from 203.0.113.9 port 50688 ssh2", True),
        ("sshd-auth", "Connection closed by 203.0.113.9 port 50688 [preauth]", True),
        ("sshd", "Accepted publickey for alice from 2001:db8::5 port 2222 ssh2", True),
        ("sudo", "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id", True),
        ("useradd", "new user: name=eve, UID=1001, GID=1001", True),
        ("systemd-journald", "Suppressed 1234 messages from sshd.service", True),
        ("systemd-journald", "Journal started", False),
        ("CRON", "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)", False),
        ("kernel", "Linux version 6.1", False),
    ],
)
def test_filter_keeps_login_events_only(identifier: str, message: str, kept: bool):
    condition, _ = _programs("hosts/web1")
    program = pyvrl.Transform(condition)
    assert program.remap(_event(identifier, message)) is kept


def test_filter_survives_missing_and_non_string_fields():
    condition, _ = _programs("hosts/web1")
    program = pyvrl.Transform(condition)
    assert program.remap({"message": "no identifier"}) is False
    assert program.remap({"SYSLOG_IDENTIFIER": 5, "message": None}) is False


def test_identity_remap_stamps_strings():
    _, source = _programs("hosts/web1")
    event = pyvrl.Transform(source + "\n.").remap(_event("sshd-session", "x"))
    assert event["logstack_host"] == "web1"
    assert event["cmdb_id"] == "4711" and isinstance(event["cmdb_id"], str)
    assert event["fqdn"] == "web1.example.com"
    assert event["role"] == "web" and event["environment"] == "production"
    assert event["message"] == "x" and event["_PID"] == "4242"


def test_identity_remap_with_quotes_and_unicode(tmp_path):
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "site: t\nserver:\n  fqdn: logs.example.com\nhosts:\n  - name: a\n    address: 10.0.0.1\n"
        "    identity:\n      owner: 'Zoë \"ops\" \\\\ team'\n"
    )
    inv = load_inventory(path)
    f = next(f for f in render_site(inv) if f.machine == "hosts/a" and f.path == "/etc/vector/vector.yaml")
    source = yaml.safe_load(f.content)["transforms"]["identity"]["source"]
    event = pyvrl.Transform(source + "\n.").remap({})
    assert event["owner"] == 'Zoë "ops" \\\\ team'


def test_heartbeat_remap_marks_events_and_identity_follows():
    inv = load_inventory(EXAMPLE)
    f = next(f for f in render_site(inv) if f.machine == "hosts/web1" and f.path == "/etc/vector/vector.yaml")
    config = yaml.safe_load(f.content)
    assert config["sources"]["heartbeat"]["type"] == "demo_logs"
    assert config["sources"]["heartbeat"]["interval"] == 60.0
    assert config["transforms"]["identity"]["inputs"] == ["login_events", "heartbeat_fields"]
    source = config["transforms"]["heartbeat_fields"]["source"]
    event = pyvrl.Transform(source + "\n.").remap({"message": "heartbeat", "service": "vector"})
    assert event["SYSLOG_IDENTIFIER"] == "logstack-heartbeat" and event["message"] == "heartbeat"
    assert "service" not in event and int(event["__REALTIME_TIMESTAMP"]) > 1_700_000_000_000_000
    stamped = pyvrl.Transform(config["transforms"]["identity"]["source"] + "\n.").remap(event)
    assert stamped["logstack_host"] == "web1"


# Vector v0.57.0 src/config/vars.rs (environment interpolation, when enabled) and
# src/config/loading/secret.rs (secret interpolation, when a backend is configured), as Python regexes.
_ENV_INTERPOLATION = re.compile(r"\$\$|\$([\w.]+)|\$\{([\w.]+)(?:(:?-|:?\?)([^}]*))?\}")
_SECRET_INTERPOLATION = re.compile(r"SECRET\[(\w+)\.([\w.\-/]+)\]")

_TRICKY = ["$HOME", "$$", "a$", "$", "$.x", "SECRET[file.key]", "xSECRET[a.b]y", "\\$HOME", "$\"$'", "€$€"]


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
    st.lists(st.one_of(st.sampled_from(_TRICKY), st.text(alphabet="$SECRT[].ab_\\\"' -", max_size=12)), min_size=1)
    .map("".join)
    .filter(lambda v: v and len(v) <= 256)
)
def test_identity_values_survive_vectors_interpolation(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("inv") / "inventory.yaml"
    spec = {
        "site": "t",
        "server": {"fqdn": "logs.example.com"},
        "hosts": [{"name": "a", "address": "10.0.0.1", "identity": {"owner": value}}],
    }
    path.write_text(yaml.safe_dump(spec, allow_unicode=True))
    inv = load_inventory(path)
    f = next(f for f in render_site(inv) if f.machine == "hosts/a" and f.path == "/etc/vector/vector.yaml")
    text = f.content.decode()
    # whatever interpolation mode Vector runs in, nothing in the file is a pattern it rewrites
    assert not _ENV_INTERPOLATION.search(text)
    # the one secret reference is logstack's own signing key (no identity value adds another)
    assert _SECRET_INTERPOLATION.findall(text) == [("logstack", "signing_key")]
    source = yaml.safe_load(text)["transforms"]["identity"]["source"]
    assert pyvrl.Transform(source + "\n.").remap({})["owner"] == value
