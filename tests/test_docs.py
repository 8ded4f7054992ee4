"""The README's promises hold: two set-up commands, CI runs the test one, the package ships its data."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT, invoke


def _setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, re.S)]


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    commands = _setup_commands()
    assert len(commands) == 2
    install, test = commands
    assert install == "pip install . && logstack render -i inventory.example.yaml -o review/"
    assert test in (ROOT / ".ci/run").read_text().splitlines()


def test_readme_render_command_works(tmp_path: Path, runner, monkeypatch):
    monkeypatch.chdir(tmp_path)
    render = _setup_commands()[0].split("&& logstack ", 1)[1].split()
    args = [str(ROOT / a) if a.endswith(".yaml") else a for a in render]
    result = invoke(runner, *args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "review/manifest.json").is_file()


def test_readme_exit_codes_match_status_module():
    from logstack.base.exit_codes import ExitStatus

    readme = (ROOT / "README.md").read_text()
    for status in ExitStatus:
        assert f"| {int(status)} |" in readme


def test_wheel_ships_templates_and_example(tmp_path: Path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(tmp_path.glob("logstack-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    templates = {p.relative_to(ROOT).as_posix() for p in (ROOT / "templates").rglob("*.j2")}
    for rel in templates:
        assert f"logstack/{rel}" in names
    assert "logstack/inventory.example.yaml" in names


def test_readme_json_shape_matches_real_output(runner):
    import json

    readme = (ROOT / "README.md").read_text()
    block = readme.split("JSON shape", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    documented = json.loads(block.replace("…", ""))
    real = json.loads(
        invoke(runner, "analyze", "--journal", ROOT / "examples/journal-sample.json", "--format", "json").stdout
    )[0]
    assert set(documented) == set(real)
    assert set(documented["lines"][0]) == set(real["lines"][0])


def test_readme_coverage_table_is_made_from_the_message_table():
    from logstack.classify.messages import load_table
    from tests.coverage_table import coverage, readme_with

    readme = (ROOT / "README.md").read_text()
    assert readme_with(coverage(load_table()), readme) == readme, "run `python3 -m tests.coverage_table`"
