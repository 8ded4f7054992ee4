from __future__ import annotations

import re
from pathlib import Path

import pytest

from logstack.base.errors import InventoryError
from logstack.site.inventory import DEFAULT_IDENTIFIERS, load_inventory
from tests.conftest import EXAMPLE, invoke

BASE = """\
site: t
server:
  fqdn: logs.example.com
hosts:
  - name: a
    address: 10.0.0.1
"""

# (inventory text, line the error must name, text the message must contain)
BAD = [
    (BASE + "    colour: blue\n", 7, "hosts[0].colour: unknown key"),
    (BASE + "  - name: a\n    address: 10.0.0.2\n", 7, "duplicate host 'a'"),
    (BASE + "  - name: bad_name!\n    address: 10.0.0.2\n", 7, "not a valid hostname"),
    (BASE + "  - name: b\n    address: 10.0.0.300\n", 8, "not a valid IP address or hostname"),
    (BASE.replace("fqdn: logs.example.com", "fqdn: logs.example.com\n  ttl: 3 fortnights"), 4, "server.ttl"),
    (BASE.replace("fqdn: logs.example.com", "fqdn: logs.example.com\n  vector_port: '3003'"), 4, "server.vector_port"),
    (BASE.replace("fqdn: logs.example.com", "fqdn: logs.example.com\n  vector_port: 70000"), 4, "server.vector_port"),
    (BASE + "    groups: [nope]\n", 7, "unknown group 'nope'"),
    (BASE + "    identity:\n      host: x\n", 7, "reserved"),
    (BASE + "    identity:\n      Rack: x\n", 7, "must match"),
    (BASE + "    identity:\n      rack: [1, 2]\n", 8, "scalars"),
    (BASE + "    identity:\n      rack: 'a{{b}}'\n", 8, "without braces"),
    (BASE.replace("site: t\n", "site: t\nsite: u\n"), 2, "duplicate key"),
    (BASE.replace("server:\n  fqdn: logs.example.com\n", "server:\n  dns_names: [x]\n"), 2, "server.fqdn"),
    (BASE + "    address: [\n", 8, "YAML syntax error"),
    ("- just\n- a list\n", 1, "must be a mapping"),
    (BASE.replace("site: t\n", "site: t\nserver_typo: 1\n"), 2, "server_typo: unknown key"),
    (BASE.replace("fqdn: logs.example.com", "fqdn: logs.example.com\n  greptimedb_version: v0.15.2"), 4, "1.x"),
    (BASE + "senders:\n  identifiers: []\n", 8, "at least one identifier"),
]


@pytest.mark.parametrize(("text", "line", "needle"), BAD)
def test_bad_inventory_is_one_located_line_and_exit_2(tmp_path: Path, runner, text: str, line: int, needle: str):
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}:"), message
    assert needle in message
    result = invoke(runner, "render", "-i", path, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_inventory_file(tmp_path: Path, runner):
    result = invoke(runner, "render", "-i", tmp_path / "nope.yaml", "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert "nope.yaml: file not found" in result.stderr


def test_vars_merge_all_group_host_and_identity_is_text():
    inv = load_inventory(EXAMPLE)
    web1, web2, db1 = inv.hosts
    assert web1.ssh.user == "deploy" and web1.ssh.port == 22 and web1.sudo is True  # group over defaults
    assert web2.ssh.port == 2222 and web2.ssh.user == "deploy"  # host over group
    assert db1.ssh.user == "root" and db1.sudo is False  # defaults
    assert web1.columns == {
        "logstack_host": "web1",
        "fqdn": "web1.example.com",
        "cmdb_id": "4711",
        "environment": "production",
        "role": "web",
    }
    assert db1.identity["rack"] == "r12" and db1.address == "2001:db8::31"
    assert tuple(inv.spec.senders.identifiers) == DEFAULT_IDENTIFIERS


@pytest.mark.parametrize(
    ("yaml_value", "text"),
    # as written: YAML 1.1 would make 0755 the number 493, 12:30:00 the number 45000 and 1.50 the float 1.5
    [
        ("4711", "4711"),
        ("true", "true"),
        ("1.50", "1.50"),
        ("2024-01-02", "2024-01-02"),
        ("'007'", "007"),
        ("0755", "0755"),
        ("12:30:00", "12:30:00"),
        ("0x1F", "0x1F"),
    ],
)
def test_identity_values_become_strings(tmp_path: Path, yaml_value: str, text: str):
    path = tmp_path / "inventory.yaml"
    path.write_text(BASE + f"    cmdb_id: {yaml_value}\n")
    assert load_inventory(path).hosts[0].columns["cmdb_id"] == text


def test_every_example_field_is_commented():
    # A key is documented by a comment on its line or the line above, or by its parent key being documented.
    lines = EXAMPLE.read_text().splitlines()

    def indent(text: str) -> int:
        return len(text) - len(text.lstrip(" -"))

    def documented(i: int) -> bool:
        if "#" in lines[i] or lines[i - 1].strip().startswith("#"):
            return True
        for j in range(i - 1, -1, -1):
            text = lines[j]
            if text.strip() and not text.strip().startswith("#") and indent(text) < indent(lines[i]):
                return documented(j)
        return False

    for i, line in enumerate(lines):
        if re.match(r"^\s*(- )?[a-z_]+:", line):
            assert documented(i), f"inventory.example.yaml:{i + 1} has no comment: {line!r}"


def test_every_problem_is_listed_with_a_suggestion_for_a_mistyped_key(tmp_path, runner):
    from tests.conftest import EXAMPLE, invoke

    text = EXAMPLE.read_text().replace("\n  vector_port:", "\n  vectorport:").replace("\n  table:", "\n  tabel:")
    bad = tmp_path / "inventory.yaml"
    bad.write_text(text)
    result = invoke(runner, "render", "-i", bad, "-o", tmp_path / "out")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].endswith("server.vectorport: unknown key (did you mean 'vector_port'?)")
    assert lines[1].endswith("server.tabel: unknown key (did you mean 'table'?)")
    assert all(line.startswith(f"logstack: error: {bad}:") for line in lines)


def test_at_most_twenty_problems_are_listed(tmp_path, runner):
    from tests.conftest import EXAMPLE, invoke

    text = EXAMPLE.read_text().replace("\nserver:\n", "\nserver:\n" + "".join(f"  bogus{i}: 1\n" for i in range(25)))
    bad = tmp_path / "inventory.yaml"
    bad.write_text(text)
    lines = invoke(runner, "render", "-i", bad, "-o", tmp_path / "out").stderr.splitlines()
    assert len(lines) == 21 and lines[-1] == "logstack: error: (and 5 more problems)"


def test_a_key_cannot_forge_a_line_and_problems_come_in_file_order(tmp_path, runner):
    from tests.conftest import EXAMPLE, invoke

    text = EXAMPLE.read_text().replace("      url: null ", "      ulr: null ").replace("\n  vector_port:", "\n  vp:")
    bad = tmp_path / "inventory.yaml"
    bad.write_text('"x\\nlogstack: error: FORGED\\u2028y": 1\n' + text)
    lines = invoke(runner, "render", "-i", bad, "-o", tmp_path / "out").stderr.splitlines()
    assert len(lines) == 3 and "FORGED" in lines[0] and "\\x0a" in lines[0]  # the key's newline, escaped
    assert "server.vp: unknown key" in lines[1]
    assert lines[2].endswith("server.alerts[0].webhook.ulr: unknown key (did you mean 'url'?)")  # in the union
