"""Headless Chromium screenshots of rendered pages (the browser a reviewer would use)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.processes import spawn, stop_group


def screenshot(page: Path, png: Path, width: int, height: int, profile: Path) -> subprocess.CompletedProcess[str]:
    """Render `page` into `png`; background networking off, so nothing is fetched."""
    browser = shutil.which("chromium")
    if browser is None:
        raise RuntimeError("chromium is not installed: run bash tests/setup.sh")
    process = spawn(
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
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:  # the browser forks zygote, GPU and renderer processes: its whole session ends with it
        out, err = process.communicate(timeout=120)
    finally:
        stop_group(process)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)
