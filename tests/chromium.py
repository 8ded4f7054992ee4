"""Headless Chromium screenshots of rendered pages (the browser a reviewer would use)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def screenshot(page: Path, png: Path, width: int, height: int, profile: Path) -> subprocess.CompletedProcess[str]:
    """Render `page` into `png`; background networking off, so nothing is fetched."""
    browser = shutil.which("chromium")
    if browser is None:
        raise RuntimeError("chromium is not installed: run bash tests/setup.sh")
    return subprocess.run(
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
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            f"--window-size={width},{height}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
