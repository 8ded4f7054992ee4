"""`logstack analyze` on journal exports: formats, escaping, bad input, exit codes."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, invoke
from tests.journal import entry, write

SAMPLE = ROOT / "examples/journal-sample.json"


def test_sample_export_gives_known_events(runner):
    result = invoke(runner, "analyze", "--journal", SAMPLE, "--format", "json")
    assert result.exit_code == 0, result.output
    events = json.loads(result.stdout)
    assert Counter(e["type"] for e in events) == {
        "ssh_login": 12,
        "sudo": 2,
        "account_change": 2,
        "session": 1,
        "su": 1,
        "ssh_preauth": 1,
        "other": 1,
        "log_gap": 1,
        "brute_force": 1,
    }
    assert not [e for e in events if any(ln["identifier"] == "logstack-heartbeat" for ln in e["lines"])]
    shape = {
        "id",
        "type",
        "outcome",
        "severity",
        "host",
        "machine_id",
        "boot_id",
        "pids",
        "start",
        "end",
        "user",
        "target_user",
        "source_ip",
        "source_port",
        "method",
        "command",
        "reason",
        "flags",
        "tried_users",
        "authentication",
        "continues",
        "lines",
    }
    for event in events:
        assert set(event) == shape
        assert event["outcome"] in {"success", "failure", "info"}
        for line in event["lines"]:
            assert set(line) == {"ts", "identifier", "pid", "message"}
    brute = next(e for e in events if e["type"] == "brute_force")
    assert brute["source_ip"] == "203.0.113.77" and "postgres" in brute["user"]
    # byte-array MESSAGE decoded, invalid UTF-8 replaced
    bob = next(e for e in events if e["user"] == "bob")
    assert bob["command"] == "/usr/bin/cat /srv/\\xff\\xfe"  # bytes kept as \\xNN, not U+FFFD
    jsonl = invoke(runner, "analyze", "--journal", SAMPLE, "--format", "jsonl")
    assert [json.loads(x)["id"] for x in jsonl.stdout.splitlines()] == [e["id"] for e in events]


def test_text_output_has_iso_times_and_blocks(runner):
    result = invoke(runner, "analyze", "--journal", SAMPLE)
    assert result.exit_code == 0
    assert "  DATE: 2026-11-20T08:00:00.000000Z .. 2026-11-20T08:00:00.050000Z" in result.stdout
    assert result.stdout.count("\n" + "-" * 100 + "\n") == 22


def test_stdin_and_fail_on(runner):
    data = SAMPLE.read_text()
    result = runner.invoke(
        __import__("logstack.cli").cli.app, ["analyze", "--journal", "-", "--fail-on", "alert"], input=data
    )
    assert result.exit_code == 1
    clean = runner.invoke(
        __import__("logstack.cli").cli.app, ["analyze", "--journal", "-", "--fail-on", "never"], input=data
    )
    assert clean.exit_code == 0


def test_control_characters_from_log_content_are_escaped(tmp_path: Path, runner):
    path = write(
        tmp_path / "j.json",
        [
            entry(
                "2025-01-01 00:00:00",
                "sshd-session",
                9,
                "Failed password for \x1b]0;pwned\x07root\u202e\r\nfake line from 192.0.2.1 port 2 ssh2",
            ),
        ],
    )
    text = invoke(runner, "analyze", "--journal", path).stdout
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text and "\r" not in text
    assert "\\x1b]0;pwned\\x07root\\u202e\\x0d\\x0afake line" in text
    raw = invoke(runner, "analyze", "--journal", path, "--format", "jsonl").stdout
    assert "\x1b" not in raw and "\u202e" not in raw
    assert json.loads(raw)["user"] == "\x1b]0;pwned\x07root\u202e\r\nfake line"


def test_null_and_binary_fields(tmp_path: Path, runner):
    path = write(
        tmp_path / "j.json",
        [
            entry("2025-01-01 00:00:00", "sshd-session", 9, None),
            entry(
                "2025-01-01 00:00:01",
                "sshd-session",
                10,
                list(b"Failed password for root from 192.0.2.1 port 2 ssh2"),
                _COMM=None,
            ),
            # a field logged twice is printed as a list of its values (strings or byte arrays): the first is read
            entry(
                "2025-01-01 00:00:02",
                "sudo",
                11,
                [list(b"bob : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/id"), "second value"],
                comm="sudo",
                # an identifier as bytes is the identifier (vector v0.57.0 journald.rs decode_array)
                SYSLOG_IDENTIFIER=list(b"sudo"),
            ),
            # an identifier logged twice reaches the senders' filter as the JSON text of its values: not forwarded
            entry(
                "2025-01-01 00:00:03",
                "sudo",
                12,
                "eve : TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/bin/id",
                SYSLOG_IDENTIFIER=["sudo", "sudo"],
            ),
        ],
    )
    result = invoke(runner, "analyze", "--journal", path, "--format", "json")
    assert result.exit_code == 0
    events = json.loads(result.stdout)
    assert [e["type"] for e in events] == ["other", "ssh_login", "sudo"]
    assert (events[2]["user"], events[2]["command"]) == ("bob", "/bin/id")


def test_bad_input_is_one_line_exit_2(tmp_path: Path, runner):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(entry("2025-01-01 00:00:00", "sshd", 1, "x")) + "\n{not json\n")
    result = invoke(runner, "analyze", "--journal", bad)
    assert result.exit_code == 2 and f"{bad}:2: not a JSON object" in result.stderr
    assert result.stderr.count("\n") == 1
    missing = invoke(runner, "analyze", "--journal", tmp_path / "nope.json")
    assert missing.exit_code == 2 and "nope.json" in missing.stderr
    for args in (
        ["--format", "xml"],
        ["--fail-on", "sometimes"],
        ["--since", "the day before"],
        ["--settle", "2 fortnights"],
    ):
        r = invoke(runner, "analyze", "--journal", SAMPLE, *args)
        assert r.exit_code == 2 and r.stderr.startswith("logstack: error:"), (args, r.output)
    no_password = runner.invoke(__import__("logstack.cli").cli.app, ["analyze"], env={"GREPTIMEDB_PASSWORD": None})
    assert no_password.exit_code == 2 and "GREPTIMEDB_PASSWORD" in no_password.stderr


def test_since_filters_journal_time(runner):
    result = invoke(runner, "analyze", "--journal", SAMPLE, "--since", "2026-11-20 08:20:00", "--format", "json")
    events = json.loads(result.stdout)
    assert events and all(e["start"] >= "2026-11-20T08:20:00" for e in events)


def test_since_last_run_on_an_export_reports_once(tmp_path: Path, runner):
    first = invoke(
        runner, "analyze", "--journal", SAMPLE, "--since-last-run", "--data-dir", tmp_path, "--format", "jsonl"
    )
    assert first.exit_code == 0 and len(first.stdout.splitlines()) == 22
    state = list(tmp_path.glob("analyze-*.sqlite"))
    assert len(state) == 1 and oct(state[0].stat().st_mode)[-3:] == "600"
    second = invoke(runner, "analyze", "--journal", SAMPLE, "--since-last-run", "--data-dir", tmp_path)
    assert second.exit_code == 0 and second.stdout == "No events found\n"


def test_export_reads_what_senders_forward(tmp_path: Path, runner, site: Path):
    """A whole host's export: other programs' lines are skipped, however the identifier is spelled."""
    fail = "Failed password for root from 192.0.2.9 port {} ssh2".format
    entries = [
        entry("2025-01-01 00:00:00", "kernel", 0, "Linux version 6.1.0"),
        entry("2025-01-01 00:00:01", "CRON", 700, "pam_unix(cron:session): session opened for user root by (uid=0)"),
        entry("2025-01-01 00:00:02", "systemd-journald", 300, "Journal started"),
        entry("2025-01-01 00:00:03", "systemd-journald", 300, "Suppressed 812 messages from ssh.service"),
        entry("2025-01-01 00:00:04", "myapp", 900, "user admin logged in"),
        entry("2025-01-01 00:00:05", "sshd-session", 1000, fail(4000)),
        entry("2025-01-01 00:00:06", list(b"sshd-session"), 1001, fail(4001), comm="sshd-session"),  # byte-array form
        entry("2025-01-01 00:00:07", "sshd-session", 1002, fail(4002)),
    ]
    text = "".join(json.dumps(e) + "\n" for e in entries)
    # the third failed login spells its identifier with a JSON escape; it must still be read
    plain = '"SYSLOG_IDENTIFIER": "sshd-session", "_PID": "1002"'
    assert plain in text
    text = text.replace(plain, plain.replace("sshd-session", "sshd\\u002dsession"))
    compact = tmp_path / "compact.json"  # journalctl writes no spaces after separators
    compact.write_text("".join(_compact(line) + "\n" for line in text.splitlines()))
    spaced = write_text(tmp_path / "spaced.json", text)
    for path in (compact, spaced):
        events = json.loads(invoke(runner, "analyze", "--journal", path, "--format", "json").stdout)
        assert sorted((e["type"], tuple(e["pids"])) for e in events) == [
            ("log_gap", ("300",)),
            ("ssh_login", ("1000",)),
            ("ssh_login", ("1001",)),
            ("ssh_login", ("1002",)),
        ], path

    # an inventory that forwards `myapp` reads its lines too, and one without journald notices drops them
    spec = yaml.safe_load(site.read_text())
    spec["senders"].update(identifiers=["sshd-session", "myapp"], forward_suppression_notices=False)
    site.write_text(yaml.safe_dump(spec))
    events = json.loads(invoke(runner, "analyze", "--journal", compact, "-i", site, "--format", "json").stdout)
    assert sorted(e["type"] for e in events) == ["other", "ssh_login", "ssh_login", "ssh_login"]
    assert next(e for e in events if e["type"] == "other")["lines"][0]["message"] == "user admin logged in"


def test_skipped_lines_are_still_checked_for_shape(tmp_path: Path, runner):
    path = tmp_path / "j.json"
    good = json.dumps(entry("2025-01-01 00:00:00", "kernel", 0, "fine"), separators=(",", ":"))
    cut = good[: good.index('"_PID"')]  # cut off after its (skippable) identifier
    path.write_text(good + "\n" + cut + "\n")
    result = invoke(runner, "analyze", "--journal", path)
    assert result.exit_code == 2
    assert f"{path}:2: not a JSON object" in result.output


def _compact(line: str) -> str:
    """journalctl's spacing, keeping the escaped identifier as it is."""
    return line.replace('", "', '","').replace('": ', '":').replace('": "', '":"')


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_analyze_loads_no_ssh_or_inventory_code(tmp_path: Path):
    """Commands load on demand: analysis from cron does not pay for paramiko, cryptography or the inventory."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from logstack.cli import main\n"
        f"sys.argv = ['logstack', 'analyze', '--journal', {str(SAMPLE)!r}, '--format', 'jsonl']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "loaded = sorted(m for m in ('paramiko', 'cryptography', 'logstack.site.inventory', 'logstack.deploy.apply') "
        "if m in sys.modules)\n"
        "print('LOADED', loaded, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert len(result.stdout.splitlines()) > 10  # it did analyse the sample
    assert "LOADED []" in result.stderr, result.stderr


@pytest.mark.parametrize("fmt", ["text", "json", "jsonl"])
def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path: Path, fmt):
    import subprocess
    import sys

    lines = [
        entry(
            f"2025-01-01 00:{i // 60:02d}:{i % 60:02d}",
            "sshd-session",
            1000 + i,
            f"Failed password for u{i} from 192.0.2.{i % 250 + 1} port {1000 + i} ssh2",
        )
        for i in range(3000)
    ]
    path = write(tmp_path / "j.json", lines)
    done = subprocess.run(
        f"{sys.executable} -m logstack analyze --journal {path} --format {fmt} | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        executable="/bin/bash",
        env={**os.environ, "LOGSTACK_DEBUG": ""},
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.stderr == "" and len(done.stdout.splitlines()) == 1


def test_since_last_run_on_exports_reads_a_late_line_and_names_what_it_cannot(tmp_path: Path, runner):
    """A merged or late export: a line older than the last run's resume point is still read (recognised
    lines are not reported twice); what lies beyond the horizon is counted on stderr, never dropped silently."""
    now = int(time.time() * 1_000_000)
    minute = 60_000_000
    fail = "Failed password for root from 198.51.100.{} port 4242 ssh2".format
    first = [entry(now - 30 * minute, "sshd-session", 900, fail(1))]
    late = entry(now - 60 * minute, "sshd-session", 901, fail(2))  # before the first run's resume point
    ancient = entry(now - 20 * 24 * 60 * minute, "sshd-session", 902, fail(3))
    args = ("--since-last-run", "--data-dir", tmp_path / "state", "--format", "jsonl")
    one = invoke(runner, "analyze", "--journal", write(tmp_path / "a.json", first), *args)
    assert [json.loads(x)["source_ip"] for x in one.stdout.splitlines()] == ["198.51.100.1"]
    merged = write(tmp_path / "a.json", [ancient, late, *first])  # the same export, grown (its state is the file's)
    two = invoke(runner, "analyze", "--journal", merged, *args)
    assert [json.loads(x)["source_ip"] for x in two.stdout.splitlines()] == ["198.51.100.2"]
    assert "1 lines are older than the 14-day horizon of --since-last-run and were not read" in two.stderr
    three = invoke(runner, "analyze", "--journal", merged, *args)
    assert three.stdout == ""  # each once


def test_text_is_in_time_order_with_a_closing_count_by_severity(runner):
    result = invoke(runner, "analyze", "--journal", SAMPLE)
    dates = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("  DATE:")]
    assert dates == sorted(dates) and len(dates) == 22
    assert result.stdout.splitlines()[-1] == "22 events: 4 alert, 10 failure, 8 info"


def test_a_progress_line_only_on_a_terminal(tmp_path: Path):
    import io

    from logstack.analyze.column_run import counted_lines
    from logstack.commands.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    shown, quiet = Terminal(), io.StringIO()
    for stream in (shown, quiet):
        progress = Progress("analyze export.json", stream, interval=0)
        source = counted_lines(lambda start, end: iter(range(10_000)), progress.update)  # type: ignore[arg-type,return-value]
        assert sum(1 for _ in source(None, None)) == 10_000
        progress.done()
    assert "analyze export.json: 8,192 lines" in shown.getvalue() and shown.getvalue().endswith("\r\x1b[K")
    assert quiet.getvalue() == ""  # a log or a pipe gets nothing


def test_a_json_run_that_fails_midway_leaves_one_document(tmp_path: Path, runner):
    path = tmp_path / "broken.json"
    good = "".join(
        json.dumps(
            entry(
                f"2025-01-01 00:0{i}:00",
                "sshd-session",
                10 + i,
                f"Accepted password for u{i} from 192.0.2.1 port 2 ssh2",
            )
        )
        + "\n"
        for i in range(3)
    )
    path.write_text(good + '{"bad json\n')
    result = invoke(runner, "analyze", "--journal", path, "--format", "json")
    assert result.exit_code == 2
    document = json.loads(result.stdout)  # not a broken array with an error glued on
    assert document["exit"] == 2 and "not a JSON object" in document["error"]


def test_a_long_single_step_shows_its_time_only_on_a_terminal():
    import io
    import time as clock

    from logstack.commands.progress import Ticker

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    shown, quiet = Terminal(), io.StringIO()
    for stream in (shown, quiet):
        with Ticker("backup of vector", stream, interval=0.05):
            clock.sleep(0.3)
    assert "backup of vector: " in shown.getvalue() and shown.getvalue().endswith("\r\x1b[K")
    assert quiet.getvalue() == ""
