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


def test_exit_codes_page_matches_status_module():
    from logstack.base.exit_codes import ExitStatus

    readme = (ROOT / "docs" / "exit-codes.md").read_text()
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


def test_documented_json_shape_matches_real_output(runner):
    import json

    readme = (ROOT / "docs" / "analysis.md").read_text()
    block = readme.split("JSON shape", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    documented = json.loads(block.replace("…", ""))
    real = json.loads(
        invoke(runner, "analyze", "--journal", ROOT / "examples/journal-sample.json", "--format", "json").stdout
    )[0]
    assert set(documented) == set(real)
    assert set(documented["lines"][0]) == set(real["lines"][0])


def test_coverage_table_is_made_from_the_message_table():
    from logstack.classify.messages import load_table
    from tests.coverage_table import coverage, readme_with

    page = (ROOT / "docs" / "analysis.md").read_text()
    assert readme_with(coverage(load_table()), page) == page, "run `python3 -m tests.coverage_table`"


def test_the_rendered_files_table_is_made_from_the_file_table():
    from tests.rendered_table import PAGE, page_with, rendered_table

    page = PAGE.read_text()
    assert page_with(rendered_table(), page) == page, "run `python3 -m tests.rendered_table`"


def test_the_readme_is_short_and_links_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"](docs/{page.name})" in readme, page.name


def _documented_command_lines() -> list[tuple[str, str]]:
    """Every `logstack …` command line the README and docs show (code blocks and inline code)."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        blocks, prose, fence = [], [], None
        for line in text.splitlines():
            if line.startswith("```"):
                fence = None if fence is not None else line[3:].strip()
            elif fence is None:
                prose.append(line)
            elif fence in ("", "sh", "bash", "console"):  # not ```text: what a command printed
                blocks.append(line)
        spans = [m.group(2) for line in prose for m in re.finditer(r"(`+)(.+?)\1", line)]
        snippets = ["\n".join(blocks), *spans]
        for snippet in snippets:
            for line in snippet.splitlines():
                line = line.split(" #", 1)[0].strip()
                at = line.find("logstack ")
                if at >= 0 and (at == 0 or line[at - 1] in " =;|&($"):
                    found.append((path.name, line[at:]))
    return found


def test_every_command_and_option_the_docs_name_exists():
    import shlex

    import typer.main

    from logstack.cli import app

    root = typer.main.get_command(app)
    ctx = root.make_context("logstack", ["-h"], resilient_parsing=True)
    checked = 0
    for page, line in _documented_command_lines():
        try:
            words = shlex.split(line.replace("…", ""))
        except ValueError:
            words = line.split()
        if len(words) < 2 or not re.fullmatch(r"[a-z][a-z-]*", words[1]) or words[1] in ("stack", "site"):
            continue
        command = root.get_command(ctx, words[1])
        assert command is not None, f"{page}: `{line}`: no command {words[1]!r}"
        rest = words[2:]
        if getattr(command, "commands", None) and rest and not rest[0].startswith("-"):
            sub = command.commands.get(rest[0])
            assert sub is not None, f"{page}: `{line}`: no command {words[1]} {rest[0]!r}"
            command, rest = sub, rest[1:]
        names = {o for p in command.params for o in (*p.opts, *getattr(p, "secondary_opts", []))} | {"-h", "--help"}
        for word in rest:
            option = word.split("=", 1)[0]
            if re.fullmatch(r"--?[a-z][a-z-]*", option):
                assert option in names, f"{page}: `{line}`: {words[1]} has no option {option}"
        checked += 1
    assert checked >= 40
