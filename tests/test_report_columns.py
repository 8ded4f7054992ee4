"""The periodic review from lines in columns (`evidence.report_columns`) against `build_report` line by line:
the same report, rendered, on generated journals with heartbeats, unproven rows, lines outside the period, and
a line the columns refuse (then read one by one)."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest

from logstack.analyze.column_batches import line_batches
from logstack.base.clock import SECOND
from logstack.evidence.report import build_report, render_html, render_markdown
from logstack.evidence.report_columns import build_report_in_columns
from logstack.journal.line import Line, from_journal
from logstack.journal.record import HEARTBEAT_IDENTIFIER
from tests.journal import entry
from tests.test_column_run import _portless, _refused_export
from tests.test_incident_columns import attacked_journal
from tests.test_line_groups import delayed

SAMPLE = Path(__file__).parent.parent / "examples" / "journal-sample.json"


def journal(seed: int, refused: bool) -> list[Line]:
    """Logins, bursts of failures and late rows, with heartbeats (some unproven), rows whose signature failed
    and, if `refused`, a session child naming no port after a login (the columns leave it to the builder)."""
    rng = random.Random(seed)
    lines = delayed(attacked_journal(seed, 150, 40), rng, 30)
    for line in rng.sample(lines, 12):
        line.auth = rng.choice(["unsigned", "bad_signature:web1", "forged_host:db1"])
        line.key = f"{line.key}|{line.auth}"
    first, last = lines[0].ts, lines[-1].ts
    for _ in range(40):
        ts = rng.randint(first - 3600 * SECOND, last + 3600 * SECOND)
        beat = from_journal(entry(ts, HEARTBEAT_IDENTIFIER, 7, "alive", host=rng.choice(["web1", "db1", "h9"])))
        assert beat is not None
        beat.arrival = ts + rng.choice([0, 5 * SECOND, 7200 * SECOND])
        beat.auth = rng.choice([None, None, "unsigned"])
        lines.insert(rng.randrange(len(lines) + 1), beat)
    # what the report lists, or reads the lines of: sudo, su, account changes, a log gap, a forged login
    middle = sorted(line.ts for line in lines)[len(lines) // 2]  # inside the period each test takes
    records = [json.loads(raw) for raw in SAMPLE.read_text().splitlines()]
    shift = middle - int(records[0]["__REALTIME_TIMESTAMP"])
    forged = "Accepted password for x from 203.0.113.99 port 5 ssh2"  # any local user's
    records.append(entry(middle - shift + 9 * SECOND, "sshd", 5, forged, comm="logger", exe="/usr/bin/logger"))
    listed = []
    for record in records:
        record["__REALTIME_TIMESTAMP"] = str(int(record["__REALTIME_TIMESTAMP"]) + shift)
        line = from_journal(record)
        assert line is not None
        listed.append(line)
    at = rng.randrange(len(lines) + 1)
    lines[at:at] = listed
    return _portless(lines, rng, 1) if refused else lines


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("refused", [False, True])
def test_the_report_in_columns_is_the_report_line_by_line(seed, refused):
    lines = journal(seed, refused)
    times = sorted(line.ts for line in lines)
    rng = random.Random(seed)
    since, until = times[rng.randrange(len(times) // 3)], times[-rng.randrange(1, len(times) // 3)]
    period = {"since": since, "until": until, "site": "s", "expected_hosts": ["web1", "quiet"], "silence": 900 * SECOND}
    expected = build_report(copy.deepcopy(lines), **period)
    assert expected.privilege and expected.account_changes and expected.forged  # listed: made objects
    reads = {"lines": 0, "frames": 0}

    def one_by_one() -> list[Line]:
        reads["lines"] += 1
        return copy.deepcopy(lines)

    def in_columns():  # type: ignore[no-untyped-def]
        reads["frames"] += 1
        return line_batches(copy.deepcopy(lines), rng.choice([7, 50, 5000]))

    got = build_report_in_columns(one_by_one, in_columns, **period)
    assert reads == {"lines": int(refused), "frames": 1}
    assert render_markdown(got) == render_markdown(expected)
    assert render_html(got) == render_html(expected)
    assert (got.lines_inside, got.lines_outside, got.source_first, got.source_last) == (
        expected.lines_inside,
        expected.lines_outside,
        expected.source_first,
        expected.source_last,
    )
    assert got.unauthenticated == expected.unauthenticated and got.heartbeat_source
    assert {host: (c.first, c.last, c.heartbeats, c.gaps, c.events) for host, c in got.coverage.items()} == {
        host: (c.first, c.last, c.heartbeats, c.gaps, c.events) for host, c in expected.coverage.items()
    }


@pytest.mark.parametrize("piped", [False, True])
@pytest.mark.parametrize("refused", [False, True])
def test_report_of_an_export_is_the_report_line_by_line(tmp_path, piped, refused):
    """`report --journal FILE` (or `-`, piped) reads the export in columns (its second read, where they refuse,
    the same bytes): the same report, rendered, as `build_report` line by line."""
    import subprocess
    import sys

    from logstack.analyze.export import journal_lines
    from logstack.evidence.report import render_markdown

    path = _refused_export(tmp_path) if refused else SAMPLE
    since, until = "2000-01-01", "2030-01-01"
    markdown = tmp_path / "r.md"
    args = ["report", "--journal", "-" if piped else str(path), "--since", since, "--until", until]
    got = subprocess.run(
        [sys.executable, "-m", "logstack", *args, "-o", str(tmp_path / "r.html"), "--markdown", str(markdown)],
        input=path.read_bytes() if piped else None,
        capture_output=True,
        check=False,
    )
    assert got.returncode == 0, got.stderr
    period = {"since": 946684800 * SECOND, "until": 1893456000 * SECOND}
    expected = build_report(journal_lines(str(path)), **period)
    expected.source = f"journal export {'stdin' if piped else path}"
    made = markdown.read_text()
    assert _undated(made) == _undated(render_markdown(expected))
    assert expected.events and f"{expected.events} events" in got.stdout.decode()


def _undated(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if "logstack" not in line or "Made" not in line]
