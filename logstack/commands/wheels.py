"""`logstack wheels`: the wheels init-server uploads, collected on a machine that reaches a package index."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from logstack.provision.wheelhouse import Platform, build_wheel, download_dependencies, local_platform, wheel_names


def wheels(
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory to fill (created; kept wheels reused).")],
    python: Annotated[
        str | None, typer.Option("--python", help="The server's Python as 3.11 (default: this one's).")
    ] = None,
    machine: Annotated[
        str | None, typer.Option("--machine", help="The server's `uname -m` (default: this one's).")
    ] = None,
    glibc: Annotated[
        str | None, typer.Option("--glibc", help="The server's glibc as 2.36 (default: this one's).")
    ] = None,
) -> None:
    """Download logstack's dependencies for a server without a package index (then: init-server --wheels DIR)."""
    here = local_platform()
    target = Platform(
        python=_pair(python, "--python") if python else here.python,
        machine=machine or here.machine,
        glibc=_pair(glibc, "--glibc") if glibc else here.glibc,
    )
    with tempfile.TemporaryDirectory(prefix="logstack-wheel-") as tmp:
        download_dependencies(build_wheel(Path(tmp)), target, output, offline=False)
    typer.echo(f"{len(wheel_names(output))} wheels for {target.describe()} in {output}")


def _pair(text: str, option: str) -> tuple[int, int]:
    from logstack.base.errors import BadInputError

    parts = text.split(".")
    if len(parts) != 2 or not all(p.isdigit() and len(p) <= 3 for p in parts):
        raise BadInputError(f"{option} must look like 3.11, not {text[:20]!r}")
    return int(parts[0]), int(parts[1])
