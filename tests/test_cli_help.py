"""Help as Typer/Click users know it: -h, standard metavars, a help line on every option and a description on
every command, choices shown, one error style, "did you mean", and shell completion from the top level."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from logstack.cli import app
from tests.conftest import invoke


def _commands():
    import typer.main

    root = typer.main.get_command(app)
    ctx = root.make_context("logstack", ["-h"], resilient_parsing=True)
    out = []
    for name in root.list_commands(ctx):
        command = root.get_command(ctx, name)
        out.append((name, command))
        for sub, inner in getattr(command, "commands", {}).items():
            out.append((f"{name} {sub}", inner))
    return out


COMMANDS = _commands()


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_every_command_has_a_description_and_every_option_a_help_line(name, command):
    assert (command.help or command.short_help or "").strip(), f"{name}: no description"
    for param in command.params:
        if getattr(param, "hidden", False) or param.param_type_name != "option":
            continue
        assert (param.help or "").strip(), f"{name} {param.opts[0]}: no help"


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_help_uses_standard_metavars_and_h(runner, name, command):
    result = invoke(runner, *name.split(), "-h")
    assert result.exit_code == 0, result.output
    text = result.output
    for odd in ("<bool>", "<str>", "<int", "<path>", "<float", "list[", "{directory}", "<list"):
        assert odd not in text, f"{name}: {odd}"


def test_enumerated_options_show_their_choices(runner, monkeypatch):
    import typer.rich_utils

    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 200)  # the choices on one line

    def shown(*args: str) -> str:
        return runner.invoke(app, [*args, "-h"], env={"COLUMNS": "200"}).output

    assert "[text|json|jsonl]" in shown("analyze")
    assert "[never|info|failure|alert]" in shown("analyze")
    for command in (("status",), ("facts",), ("certs", "list"), ("certs", "check"), ("verify",), ("alerts", "backlog")):
        assert "[text|json]" in shown(*command), command


def test_a_mistyped_command_gets_a_suggestion_in_one_line(runner):
    result = invoke(runner, "rendr")
    assert result.exit_code == 2
    assert result.stderr == "logstack: error: no such command 'rendr' (did you mean `render`?)\n"
    wrong = invoke(runner, "analyze", "--format", "xml", "--journal", "x")
    assert wrong.exit_code == 2 and wrong.stderr.startswith("logstack: error: analyze: ")
    assert wrong.stderr.count("\n") == 1 and "xml" in wrong.stderr


def _logstack_on_path(tmp_path: Path) -> dict[str, str]:
    """A `logstack` that runs this checkout, first on PATH, as the completion script calls it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "logstack"
    root = Path(__file__).resolve().parents[1]
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{root}" exec "{sys.executable}" -m logstack "$@"\n')
    wrapper.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_commands_and_options_from_the_top_level(tmp_path):
    env = _logstack_on_path(tmp_path)
    script = subprocess.run(
        ["logstack"], env={**env, "_LOGSTACK_COMPLETE": "source_bash"}, capture_output=True, text=True, check=True
    ).stdout
    assert "not supported" not in script
    (tmp_path / "completion.bash").write_text(script)

    def complete(*words: str) -> list[str]:
        program = (
            f"source {tmp_path / 'completion.bash'}\n"
            f"COMP_WORDS=({' '.join(words)}); COMP_CWORD={len(words) - 1}\n"
            '_logstack_completion logstack\nprintf "%s\\n" "${COMPREPLY[@]}"\n'
        )
        run = subprocess.run(["bash", "-c", program], env=env, capture_output=True, text=True, timeout=60)
        return run.stdout.split()

    assert complete("logstack", "ren") == ["render"]
    assert complete("logstack", "analyze", "--fo") == ["--format"]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_get_a_completion_script(tmp_path, shell):
    env = _logstack_on_path(tmp_path)
    run = subprocess.run(
        ["logstack"], env={**env, "_LOGSTACK_COMPLETE": f"source_{shell}"}, capture_output=True, text=True
    )
    assert run.returncode == 0 and "_LOGSTACK_COMPLETE" in run.stdout and "not supported" not in run.stdout


def test_status_in_json_mode_prints_a_document_when_the_server_is_unreachable(tmp_path, runner):
    """Monitoring reads stdout: a run that cannot reach the server still gives it one JSON document."""
    import json
    import socket

    from tests.conftest import EXAMPLE

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    site = tmp_path / "site"
    assert invoke(runner, "init", site).exit_code == 0
    text = EXAMPLE.read_text().replace("  address: 192.0.2.10\n", "  address: 127.0.0.1\n", 1)
    text = text.replace("    port: 22           # SSH port", f"    port: {closed}", 1)
    (site / "inventory.yaml").write_text(text)
    result = invoke(runner, "status", "-i", site / "inventory.yaml", "--format", "json")
    assert result.exit_code in (1, 3), result.output
    document = json.loads(result.stdout)
    assert document.get("error") or document.get("problems") or document.get("server", {}).get("problems")


def test_completion_is_offered_once_at_the_top_level(runner):
    assert "--install-completion" in invoke(runner, "-h").output
    for group in ("ca", "certs", "alerts"):
        assert "--install-completion" not in invoke(runner, group, "-h").output, group


def test_top_level_mistakes_get_the_same_one_line(runner):
    import json

    bogus = invoke(runner, "--bogus")
    assert bogus.exit_code == 2 and bogus.stderr == "logstack: error: No such option: --bogus\n"
    misplaced = invoke(runner, "--format", "json", "analyze")
    assert misplaced.exit_code == 2 and json.loads(misplaced.stdout)["exit"] == 2
    bare = invoke(runner)
    assert bare.exit_code == 2 and "Usage:" in bare.output and "logstack: error" not in bare.output
