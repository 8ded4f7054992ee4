"""Every remote command is built so that no value can become shell syntax."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from logstack.base.shell import shell_command

PACKAGE = Path(__file__).resolve().parents[1] / "logstack"

# A remote command is a literal, a module constant, or `shell_command(SCRIPT, *values)` (values as $1...).
_SAFE_BUILDERS = {"shell_command"}


def _remote_commands() -> list[tuple[Path, ast.Call]]:
    calls = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "run"
                and not (isinstance(node.func.value, ast.Name) and node.func.value.id == "subprocess")
                and node.args
            ):
                calls.append((path, node))
    return calls


def _is_safe(arg: ast.expr) -> bool:
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return True
    if isinstance(arg, ast.Name) and arg.id.isupper():  # a module constant
        return True
    return isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name) and arg.func.id in _SAFE_BUILDERS


def test_the_scan_finds_the_remote_commands():
    # the scan must see the call sites it guards, or it passes vacuously
    assert len(_remote_commands()) >= 8


def test_no_remote_command_interpolates_a_value():
    unsafe = [
        f"{path.relative_to(PACKAGE.parent)}:{call.lineno}: {ast.unparse(call.args[0])[:80]}"
        for path, call in _remote_commands()
        if not _is_safe(call.args[0])
    ]
    assert unsafe == []


def test_the_scan_flags_an_interpolated_command():
    call = ast.parse('conn.run(f"df -P {data_dir}")').body[0].value
    assert not _is_safe(call.args[0])
    call = ast.parse('conn.run("cat " + path)').body[0].value
    assert not _is_safe(call.args[0])


@pytest.mark.parametrize(
    "value",
    ["/var/lib/greptime;touch /tmp/pwned;echo", "$(id)", "`id`", "a'b\"c", "x\ny", "-rf", "*", "a b"],
)
def test_shell_command_passes_values_as_data(tmp_path, value):
    import subprocess

    script = 'printf "%s" "$1" > "$2"'
    out = tmp_path / "out"
    subprocess.run(shell_command(script, value, str(out)), shell=True, check=True, cwd=tmp_path)
    assert out.read_text() == value
    assert not (tmp_path / "pwned").exists()
