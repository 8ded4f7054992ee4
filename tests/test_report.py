"""`logstack report`: known counts from a fixture week, a self-contained page, a real browser render."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from tests.chromium import screenshot
from tests.conftest import invoke
from tests.journal import write
from tests.report_fixture import ACCOUNT_CHANGES, FAILED, FORGED, GAP_HOST, SUCCESSFUL, SUDO, week


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    return write(tmp_path_factory.mktemp("week") / "week.json", week())


def _report(runner, export: Path, out: Path, *extra: str):
    result = invoke(
        runner,
        "report",
        "--journal",
        export,
        "--since",
        "2026-11-16",
        "--until",
        "2026-11-23",
        "-o",
        out / "report.html",
        "--markdown",
        out / "report.md",
        *extra,
    )
    assert result.exit_code == 0, result.output
    return (out / "report.html").read_text(), (out / "report.md").read_text()


def test_report_counts(runner, export, tmp_path):
    page, md = _report(runner, export, tmp_path)
    summary = md.split("| Forged entries |", 1)[1].split("\n")[2]
    assert summary == f"| 3 | {SUCCESSFUL} | {FAILED} | 1 | {SUDO} | {ACCOUNT_CHANGES} | {FORGED} |"
    assert "| `alice` | `web1` | 7 |" in md and "| `bob` | `db1` | 7 |" in md
    assert "| `carol` | `web2` | 7 |" in md
    assert "`203.0.113.99` (9)" in md  # log content readable as written, in code spans
    assert "`9 failed login attempts from 203.0.113.99`" in md
    assert "`backup` `user created`" in md and "`backup` `added to group sudo`" in md
    assert "claims `sshd`: `Accepted password for root from 10.9.9.9 port 1 ssh2`" in md
    # coverage: web2's four silent hours are the one heartbeat gap of the week
    rows = {line.split(" | ")[0].strip("|` "): line for line in md.splitlines() if line.startswith("| `web")}
    assert rows[GAP_HOST].split(" | ")[3] == "1" and rows["web1"].split(" | ")[3] == "0"
    assert "2026-11-20 05:59:00 – 2026-11-20 10:00:00" in page
    # the per-day chart has a bar per day with the day's counts
    assert page.count("successful</title>") == 7 and "2026-11-18: 10 failed" in page


def test_report_is_self_contained(runner, export, tmp_path):
    page, _ = _report(runner, export, tmp_path)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert not re.search(r"""(src|href)\s*=""", page)
    assert not re.search(r"url\(", page)
    external = [u for u in re.findall(r"https?://[^\s\"'<]+", page) if u != "http://www.w3.org/2000/svg"]
    assert external == []
    assert "@media print" in page


def test_log_content_cannot_inject_markup(runner, tmp_path):
    from tests.journal import entry

    path = write(
        tmp_path / "evil.json",
        [
            entry(
                "2026-11-16 10:00:00",
                "sshd-session",
                7,
                "Failed password for <script>alert(1)</script>\x1b[2J from 192.0.2.1 port 2 ssh2",
            ),
        ],
    )
    page, md = _report(runner, path, tmp_path)
    assert "<script>" not in page and "\x1b" not in page and "\x1b" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\x1b[2J" in page
    assert "| `<script>alert(1)</script>\\x1b[2J` |" in md  # a code span: shown, never markup
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    assert not any(t.type.startswith("html") for t in tokens)


def test_markdown_report_creates_no_link_from_log_content(runner, tmp_path):
    from markdown_it import MarkdownIt

    from tests.journal import entry

    names = [
        "![x](https://attacker.example/beacon.png)",
        "[click](javascript:alert(1))",
        "<img src=https://attacker.example/b.png>",
        "https://attacker.example/x",
        "www.attacker.example",
        "<https://attacker.example>",
        "a|b`c`*d*_e_",
    ]
    path = write(
        tmp_path / "evil.json",
        [
            entry(
                f"2026-11-16 10:0{i}:00", "sshd-session", 7 + i, f"Accepted password for {n} from 192.0.2.1 port 2 ssh2"
            )
            for i, n in enumerate(names)
        ],
    )
    _, md = _report(runner, path, tmp_path)
    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    kinds = set()
    stack = list(tokens)
    while stack:
        token = stack.pop()
        kinds.add(token.type)
        stack.extend(token.children or [])
    assert not kinds & {"link_open", "image", "html_inline", "html_block", "em_open", "strong_open"}
    # every name is one code span, shown as written (GFM's autolinks are not recognised inside code spans)
    shown = [t.content for t in _walk(tokens) if t.type == "code_inline"]
    in_spans = [n for n in names if any(n in c or n.replace("|", "\\|") in c for c in shown)]
    assert len(in_spans) >= 4, in_spans  # a name the classifier does not take as a user is not shown
    outside = "".join(t.content for t in _walk(tokens) if t.type == "text")
    assert "attacker" not in outside and "javascript" not in outside


def test_report_renders_in_chromium(runner, export, tmp_path):
    _report(runner, export, tmp_path)
    png = tmp_path / "report.png"
    result = screenshot(tmp_path / "report.html", png, 1200, 1600, tmp_path / "profile")
    assert png.is_file(), result.stderr[-2000:]
    image = Image.open(png).convert("RGB")
    assert image.size == (1200, 1600)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, bars and the heat map, not a blank page
    reds = sum(n for n, (r, g, b) in colours if r > 150 and g < 80 and b < 80)
    assert reds > 500  # the failed-login bars are drawn


def test_bad_period_is_exit_2(runner, export, tmp_path):
    r = invoke(
        runner,
        "report",
        "--journal",
        export,
        "--since",
        "2026-11-20",
        "--until",
        "2026-11-19",
        "-o",
        tmp_path / "x.html",
    )
    assert r.exit_code == 2 and "--until must be after --since" in r.stderr
    r = invoke(runner, "report", "--journal", export, "--since", "last tuesday", "-o", tmp_path / "x.html")
    assert r.exit_code == 2 and "--since" in r.stderr


def test_report_from_the_database_matches_the_export(runner, export, mariadb, tmp_path):
    from logstack.cli import app
    from tests.mariadb import PASSWORD
    from tests.report_fixture import week
    from tests.test_analyze_db import to_row

    entries = week()
    mariadb.create_logs("reportdb")
    rows = [to_row(e, int(e["__REALTIME_TIMESTAMP"]) + 2_000_000) for e in entries]
    for row, e in zip(rows, entries, strict=True):
        row["logstack_host"] = e["_HOSTNAME"]
    mariadb.insert("reportdb", rows)
    result = runner.invoke(
        app,
        [
            "report",
            "--db-port",
            str(mariadb.port),
            "--db-name",
            "reportdb",
            "--since",
            "2026-11-16",
            "--until",
            "2026-11-23",
            "-o",
            str(tmp_path / "db.html"),
            "--markdown",
            str(tmp_path / "db.md"),
        ],
        env={"GREPTIMEDB_PASSWORD": PASSWORD},
    )
    assert result.exit_code == 0, result.output
    (tmp_path / "file").mkdir()
    _, from_file = _report(runner, export, tmp_path / "file")
    assert _body((tmp_path / "db.md").read_text()) == _body(from_file)  # the header names each source


def test_coverage_believes_only_heartbeats_their_host_signed():
    from dataclasses import replace

    from logstack.evidence.report import build_report, render_markdown
    from logstack.journal.line import from_journal
    from tests.journal import at, entry

    start = at("2026-11-20 00:00:00")
    hour = 3600 * 1_000_000
    beats = [
        from_journal(
            {
                **entry(start + i * 600_000_000, "logstack-heartbeat", 1, "heartbeat", host="beta"),
                "logstack_host": "beta",
            }
        )
        for i in range(18)  # every 10 minutes for 3 hours
    ]
    # another host's key signed beta's heartbeats for those hours: the store marks them, coverage ignores them
    forged = [replace(line, auth="forged_host:alpha") for line in beats]
    data = build_report(forged, start, start + 3 * hour, expected_hosts=["beta"], verified=True)
    assert data.coverage["beta"].heartbeats == 0 and data.coverage["beta"].last_heartbeat is None
    genuine = build_report(beats, start, start + 3 * hour, expected_hosts=["beta"], verified=True)
    assert genuine.coverage["beta"].heartbeats == 18
    # a host the inventory does not name, that sent only heartbeats: listed with them, not left out
    unnamed = build_report(beats, start, start + 3 * hour, verified=True)
    assert unnamed.hosts == ["beta"] and unnamed.coverage["beta"].heartbeats == 18
    assert "beta" in render_markdown(unnamed)


def _walk(tokens):
    stack = list(tokens)
    while stack:
        token = stack.pop()
        yield token
        stack.extend(token.children or [])


def _body(md: str) -> str:
    return md.split("| Hosts |", 1)[1]


def test_the_header_says_when_for_which_site_from_what_by_which_version(runner, export, tmp_path):
    from logstack import __version__

    page, md = _report(runner, export, tmp_path)
    head = md.split("| Hosts |", 1)[0]
    assert f"by logstack {__version__}" in head and "Made 20" in head
    assert f"Source: `journal export {export}`, holding lines from 2026-11-16 00:00:00" in head
    assert f"by logstack {__version__}" in page and "Source: journal export" in page


def test_a_period_that_misses_the_source_says_so(runner, tmp_path):
    sample = Path(__file__).resolve().parents[1] / "examples" / "journal-sample.json"
    out = tmp_path / "r.html"
    result = invoke(runner, "report", "--journal", sample, "-o", out, "--markdown", tmp_path / "r.md")
    assert result.exit_code == 0
    assert "no line from" in result.stderr and "holds lines from 2026-11-20T08:00:00" in result.stderr
    assert 'this is not "nothing happened"' in (tmp_path / "r.md").read_text()
    assert "this is not &#34;nothing happened&#34;" in out.read_text() or "nothing happened" in out.read_text()
    inside = invoke(runner, "report", "--journal", sample, "-o", out, "--since", "2026-11-20", "--until", "2026-11-21")
    assert "no line from" not in inside.stderr and "22 events" in inside.stdout


def test_a_quiet_week_with_heartbeats_is_not_called_empty(runner, tmp_path):
    """Heartbeats in the period show the hosts were there: no warning, however old the source's first line."""
    from tests.journal import entry

    lines = [entry("2026-10-01 00:00:00", "sshd-session", 5, "Accepted password for a from 192.0.2.1 port 2 ssh2")]
    lines += [entry(f"2026-11-16 {h:02d}:00:00", "logstack-heartbeat", 1, "heartbeat") for h in range(24)]
    path = write(tmp_path / "quiet.json", lines)
    result = invoke(
        runner, "report", "--journal", path, "-o", tmp_path / "r.html", "--since", "2026-11-16", "--until", "2026-11-17"
    )
    assert result.exit_code == 0 and "no line from" not in result.stderr
