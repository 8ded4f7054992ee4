"""Regenerate docs/report.png: `logstack report` on the fixture week, rendered by headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from typer.testing import CliRunner  # noqa: E402

from logstack.cli import app  # noqa: E402
from tests.journal import write  # noqa: E402
from tests.report_fixture import week  # noqa: E402


def main() -> None:
    browser = shutil.which("chromium") or sys.exit("chromium is not installed (bash tests/setup.sh)")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        export = write(tmp / "week.json", week())
        page = tmp / "report.html"
        result = CliRunner().invoke(
            app, ["report", "--journal", str(export), "--since", "2026-11-16", "--until", "2026-11-23", "-o", str(page)]
        )
        if result.exit_code != 0:
            sys.exit(result.output)
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                f"--user-data-dir={tmp / 'profile'}",
                f"--screenshot={ROOT / 'docs/report.png'}",
                "--window-size=1100,1400",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    print(f"wrote {ROOT / 'docs/report.png'}")


if __name__ == "__main__":
    main()
