"""The wheels a server installs logstack from: logstack's own, built from the code running now, and its
dependencies at the versions the operator runs, for the server's Python and platform.

The server needs no package index: everything it installs is uploaded. logstack's wheel is built here from
the installed package rather than downloaded, so the server runs exactly the operator's code (an editable
checkout included); the dependencies come from pip (`pip download`), pinned to the operator's versions.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import logstack
from logstack.base.errors import BadInputError, RuntimeFailure
from logstack.base.package_data import package_data

_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip times: the same code gives the same wheel, byte for byte
_WHEEL_RE = re.compile(r"[A-Za-z0-9_.+-]+\.whl")


@dataclass(frozen=True)
class Platform:
    """What a machine's Python installs: its version and the platforms its wheels may be built for."""

    python: tuple[int, int]
    machine: str
    glibc: tuple[int, int] | None

    def describe(self) -> str:
        libc = f", glibc {self.glibc[0]}.{self.glibc[1]}" if self.glibc else ""
        return f"Python {self.python[0]}.{self.python[1]} on {self.machine}{libc}"

    def pip_args(self) -> list[str]:
        """`pip download` options selecting binary wheels for this platform."""
        version = f"{self.python[0]}{self.python[1]}"
        args = ["--only-binary=:all:", "--python-version", version, "--implementation", "cp", "--abi", f"cp{version}"]
        args += ["--abi", "abi3", "--abi", "none"]
        platforms = [f"linux_{self.machine}"]
        if self.glibc is not None and self.glibc[0] == 2:
            platforms += [f"manylinux_2_{minor}_{self.machine}" for minor in range(5, self.glibc[1] + 1)]
            platforms += [
                f"manylinux2014_{self.machine}",
                f"manylinux2010_{self.machine}",
                f"manylinux1_{self.machine}",
            ]
        for tag in platforms:
            args += ["--platform", tag]
        return args


# Run on the server with its python3: one line, parsed by `parse_platform`.
PROBE = (
    "import platform, sys; v = sys.version_info; libc = platform.libc_ver(); "
    "print(v[0], v[1], platform.machine(), libc[0] or '-', libc[1] or '-')"
)


def parse_platform(text: str) -> Platform:
    """The probe's answer; anything else is a one-line error."""
    parts = text.split()
    if (
        len(parts) != 5
        or not (re.fullmatch(r"[0-9]{1,3}", parts[0]) and re.fullmatch(r"[0-9]{1,3}", parts[1]))
        or not re.fullmatch(r"[a-z0-9_]{1,32}", parts[2])
    ):
        raise RuntimeFailure(f"server: unexpected answer from python3 {text[:80]!r}")
    return Platform(python=(int(parts[0]), int(parts[1])), machine=parts[2], glibc=_glibc(parts[3], parts[4]))


def local_platform() -> Platform:
    """The machine logstack runs on."""
    import platform

    libc, version = platform.libc_ver()
    return Platform(python=sys.version_info[:2], machine=platform.machine(), glibc=_glibc(libc, version))


def _glibc(libc: str, version: str) -> tuple[int, int] | None:
    """(major, minor) of a glibc as platform.libc_ver() names it; None for another C library."""
    match = re.fullmatch(r"([0-9]{1,3})\.([0-9]{1,3})(?:\.[0-9]+)?", version or "")
    return (int(match.group(1)), int(match.group(2))) if libc == "glibc" and match else None


def _package_files() -> list[tuple[str, bytes]]:
    """Every file of the logstack package, templates and example included, as (archive name, content)."""
    root = Path(logstack.__file__).resolve().parent
    found: dict[str, bytes] = {}
    for base, target in ((root, "logstack"), (package_data("templates"), "logstack/templates")):
        for dirpath, dirs, names in os.walk(base):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not (base == root and d == "templates"))
            for name in sorted(names):
                if name.endswith((".pyc", ".pyo")):
                    continue
                path = Path(dirpath) / name
                found[f"{target}/{path.relative_to(base).as_posix()}"] = path.read_bytes()
    found["logstack/inventory.example.yaml"] = package_data("inventory.example.yaml").read_bytes()
    return sorted(found.items())


def requirements() -> list[str]:
    """logstack's runtime requirements: from pyproject.toml when running from a checkout (installed
    metadata may be older than the code), else as the installed metadata states them (extras left out)."""
    pyproject = Path(logstack.__file__).resolve().parent.parent / "pyproject.toml"
    if pyproject.is_file():
        import tomllib

        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        if project.get("name") == "logstack":
            return sorted(project.get("dependencies", []))
    try:
        stated = importlib.metadata.requires("logstack") or []
    except importlib.metadata.PackageNotFoundError:
        raise BadInputError("logstack is not installed as a package (pip install .); cannot build its wheel") from None
    return sorted(r for r in stated if "extra ==" not in r)


def build_wheel(out: Path) -> Path:
    """logstack's own wheel from the code running now; deterministic, so its digest names the code."""
    version = logstack.__version__
    dist = f"logstack-{version}.dist-info"
    metadata = "Metadata-Version: 2.1\nName: logstack\nVersion: " + version + "\nRequires-Python: >=3.11\n"
    metadata += "".join(f"Requires-Dist: {req}\n" for req in requirements())
    entries = [
        *_package_files(),
        (f"{dist}/METADATA", metadata.encode()),
        (f"{dist}/WHEEL", b"Wheel-Version: 1.0\nGenerator: logstack\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{dist}/entry_points.txt", b"[console_scripts]\nlogstack = logstack.cli:main\n"),
    ]
    record = io.StringIO()
    for name, content in entries:
        digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
        record.write(f"{name},sha256={digest},{len(content)}\n")
    record.write(f"{dist}/RECORD,,\n")
    entries.append((f"{dist}/RECORD", record.getvalue().encode()))
    path = out / f"logstack-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return path


def constraints() -> str:
    """The operator's versions of logstack's dependencies and theirs (the closure, markers aside): the
    server gets the same ones."""
    pins: dict[str, str] = {}
    todo = [_name(req) for req in requirements()]
    while todo:
        name = todo.pop()
        if name in pins:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here (a marker excluded it): pip picks it for the server
        pins[name] = dist.version
        todo += [_name(req) for req in dist.requires or [] if "extra ==" not in req and "extra==" not in req]
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


def _name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else ""


def download_dependencies(wheel: Path, target: Platform, into: Path, offline: bool) -> None:
    """The wheels `wheel` needs on `target`, and pip itself, into `into` (kept there for the next run)."""
    into.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="logstack-wheels-") as tmp:
        pins = Path(tmp) / "constraints.txt"
        pins.write_text(constraints())
        pip_version = importlib.metadata.version("pip")
        command = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "-d", str(into)]
        command += ["--find-links", str(into), "-c", str(pins), *target.pip_args()]
        if offline:
            command.append("--no-index")
        command += [str(wheel), f"pip=={pip_version}"]
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=1800)
    if done.returncode != 0:
        last = [line for line in done.stderr.splitlines() if line.strip()]
        where = "the given wheel directory" if offline else "the package index"
        raise RuntimeFailure(
            f"cannot collect logstack's dependencies for {target.describe()} from {where}: "
            f"{last[-1] if last else f'pip exit {done.returncode}'}"
        )
    (into / wheel.name).unlink(missing_ok=True)  # pip copies the local wheel too: it is uploaded from `wheel`


def wheel_names(directory: Path) -> list[str]:
    """The wheel files in a directory, sorted; other files are not uploaded."""
    return sorted(p.name for p in directory.iterdir() if p.is_file() and _WHEEL_RE.fullmatch(p.name))


def cache_dir(target: Platform) -> Path:
    """Where downloaded wheels are kept between runs, per target platform."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "logstack" / "wheels"
    glibc = f"glibc{target.glibc[0]}.{target.glibc[1]}" if target.glibc else "nolibc"
    return base / f"cp{target.python[0]}{target.python[1]}-{target.machine}-{glibc}"
