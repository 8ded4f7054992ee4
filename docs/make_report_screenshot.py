"""Regenerate docs/report.png: `logstack report` on the fixture week, rendered by headless Chromium."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from typer.testing import CliRunner  # noqa: E402

from logstack.cli import app  # noqa: E402
from tests.chromium import screenshot  # noqa: E402
from tests.journal import write  # noqa: E402
from tests.report_fixture import week  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        export = write(tmp / "week.json", week())
        page = tmp / "report.html"
        result = CliRunner().invoke(
            app, ["report", "--journal", str(export), "--since", "2026-11-16", "--until", "2026-11-23", "-o", str(page)]
        )
        if result.exit_code != 0:
            sys.exit(result.output)
        result = screenshot(page, ROOT / "docs/report.png", 1100, 1400, tmp / "profile")
        if result.returncode != 0:
            sys.exit(result.stderr[-2000:])
    print(f"wrote {ROOT / 'docs/report.png'}")


if __name__ == "__main__":
    main()
