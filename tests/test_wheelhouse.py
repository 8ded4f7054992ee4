"""The wheels a server installs logstack from: built from the running code, pinned to the operator's
versions, for the server's platform."""

from __future__ import annotations

import hashlib
import zipfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logstack.base.errors import RuntimeFailure
from logstack.provision.logstack_install import venv_name
from logstack.provision.wheelhouse import Platform, build_wheel, constraints, parse_platform, requirements


def test_the_wheel_is_the_running_code_byte_for_byte_and_deterministic(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = build_wheel(tmp_path / "a"), build_wheel(tmp_path / "b")
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    names = zipfile.ZipFile(first).namelist()
    assert "logstack/cli.py" in names and "logstack/templates/server/logstack-analyze.service.j2" in names
    assert "logstack/inventory.example.yaml" in names and not any("__pycache__" in n for n in names)
    metadata = zipfile.ZipFile(first).read("logstack-0.1.0.dist-info/METADATA").decode()
    # the dependencies the code declares now (pyproject.toml), not what an older install recorded
    assert "Requires-Dist: zabbix-utils>=2.0" in metadata
    assert requirements() == sorted(requirements())


def test_constraints_pin_the_dependency_closure_to_the_installed_versions():
    import importlib.metadata

    pins = dict(line.split("==") for line in constraints().splitlines())
    assert pins["pydantic"] == importlib.metadata.version("pydantic")
    assert pins["pydantic-core"] == importlib.metadata.version("pydantic-core")  # a dependency's dependency
    assert "pytest" not in pins and "logstack" not in pins


def test_the_venv_name_changes_with_the_servers_python(tmp_path):
    wheel = build_wheel(tmp_path)
    a = venv_name(wheel, Platform((3, 11), "x86_64", (2, 36)))
    b = venv_name(wheel, Platform((3, 12), "x86_64", (2, 36)))
    assert a != b and a.startswith("venv-0.1.0-") and a == venv_name(wheel, Platform((3, 11), "x86_64", (2, 36)))


@pytest.mark.parametrize(
    ("answer", "platform"),
    [
        ("3 11 x86_64 glibc 2.36", Platform((3, 11), "x86_64", (2, 36))),
        ("3 12 aarch64 glibc 2.39.1", Platform((3, 12), "aarch64", (2, 39))),
        ("3 11 x86_64 - -", Platform((3, 11), "x86_64", None)),
    ],
)
def test_the_platform_probe_is_read(answer, platform):
    assert parse_platform(answer) == platform


@given(st.text(max_size=80))
def test_any_probe_answer_is_a_platform_or_a_one_line_error(text):
    try:
        found = parse_platform(text)
    except RuntimeFailure as exc:
        assert "\n" not in str(exc).strip()
    else:
        assert found.python[0] < 1000 and found.machine.isascii()


def test_unicode_digits_are_not_a_version():
    with pytest.raises(RuntimeFailure):
        parse_platform("3 ¹¹ x86_64 glibc 2.36")
