"""Host facts: what a machine runs (distribution, systemd, Vector, architecture, journal storage).

Read over the SSH connection a deployment already has, with one remote command; cached in the site
(`state/facts/<name>.json`) so that `render` (review mode, no network) renders what a deployment would.
What a target prints is input like any other: every value is checked, and an unreadable one is unknown.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from logstack.base.errors import BadInputError
from logstack.base.fsutil import atomic_write
from logstack.base.safe_read import KiB, read_file

if TYPE_CHECKING:
    from logstack.connection.base import Connection

# Vector's journald source refuses `current_boot_only: false` on these systemd versions
# (vector v0.57.0 src/sources/journald.rs, upstream issue 18068): journalctl's --boot=all is broken there.
CURRENT_BOOT_ONLY_SYSTEMD = range(250, 258)
# The oldest Vector that has every option logstack renders: the vector sink's `routing.endpoints` first
# appears in 0.57.0 (option history of the Vector 0.57 reference), and the sink denies unknown fields.
MIN_VECTOR = (0, 57, 0)

FACTS_SCRIPT = r"""
if [ -r /etc/os-release ]; then . /etc/os-release; fi
echo "os_id=${ID:-}"
echo "os_version=${VERSION_ID:-}"
line=$(journalctl --version 2>/dev/null); echo "systemd=${line%%
*}"
line=$(vector --version 2>/dev/null); echo "vector=${line%%
*}"
echo "arch=$(uname -m)"
if [ -d /var/log/journal ]; then echo "journal=persistent"; else echo "journal=volatile"; fi
if command -v apt-get >/dev/null 2>&1; then echo "pkg=apt"; elif command -v dnf >/dev/null 2>&1; then echo "pkg=dnf"; fi
echo "machine_id=$(cat /etc/machine-id 2>/dev/null)"
"""

_WORD_RE = re.compile(r"[A-Za-z0-9._+~-]{1,64}")
_SYSTEMD_RE = re.compile(r"systemd (\d{2,4})\b.*")
_MACHINE_ID_RE = re.compile(r"[0-9a-f]{32}")
_VECTOR_RE = re.compile(r"vector (\d{1,4})\.(\d{1,4})\.(\d{1,4})\b.*")


@dataclass(frozen=True)
class HostFacts:
    """What one machine runs; None where unknown (not read yet, or unreadable)."""

    os_id: str | None = None
    os_version: str | None = None
    systemd: int | None = None
    vector: str | None = None  # "0.57.0"; None: not installed, or unknown
    arch: str | None = None
    journal: str | None = None  # persistent | volatile
    packages: str | None = None  # the package manager: apt | dnf
    machine_id: str | None = None  # /etc/machine-id: what the journal stamps as _MACHINE_ID

    @property
    def current_boot_only(self) -> bool:
        """What the journald source must be told: only `true` builds on systemd 250-257, and an unknown
        systemd gets the value that builds everywhere."""
        return self.systemd is None or self.systemd in CURRENT_BOOT_ONLY_SYSTEMD

    @property
    def vector_version(self) -> tuple[int, int, int] | None:
        if self.vector is None:
            return None
        major, minor, patch = (int(part) for part in self.vector.split("."))
        return major, minor, patch

    def warnings(self) -> list[str]:
        """What the rendered configuration gives up on this machine, in words for the plan."""
        if self.systemd is None:
            return ["systemd version unknown: current_boot_only: true (the value every systemd accepts)"]
        if self.systemd in CURRENT_BOOT_ONLY_SYSTEMD:
            return [
                f"systemd {self.systemd}: current_boot_only: true (Vector refuses false on systemd 250-257); "
                "journal lines of a previous boot not shipped before the reboot are not shipped"
            ]
        return []

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def parse_facts(output: str) -> HostFacts:
    """The facts script's output; anything not in the expected form reads as unknown."""
    raw: dict[str, str] = {}
    for line in output.splitlines()[:20]:
        key, sep, value = line.partition("=")
        if sep and key in {"os_id", "os_version", "systemd", "vector", "arch", "journal", "pkg", "machine_id"}:
            raw[key] = value.strip()
    systemd = _SYSTEMD_RE.fullmatch(raw.get("systemd", ""))
    vector = _VECTOR_RE.fullmatch(raw.get("vector", ""))
    return HostFacts(
        os_id=_word(raw.get("os_id")),
        os_version=_word(raw.get("os_version")),
        systemd=int(systemd.group(1)) if systemd else None,
        vector=".".join(str(int(g)) for g in vector.groups()) if vector else None,
        arch=_word(raw.get("arch")),
        journal=raw.get("journal") if raw.get("journal") in ("persistent", "volatile") else None,
        packages=raw.get("pkg") if raw.get("pkg") in ("apt", "dnf") else None,
        machine_id=raw["machine_id"] if _MACHINE_ID_RE.fullmatch(raw.get("machine_id", "")) else None,
    )


def _word(value: str | None) -> str | None:
    return value if value and _WORD_RE.fullmatch(value) else None


def gather(conn: Connection) -> HostFacts:
    """Read a machine's facts with one remote command."""
    from logstack.base.shell import shell_command

    _, out, _ = conn.run(shell_command(FACTS_SCRIPT), check=False)
    return parse_facts(out.decode("utf-8", errors="replace"))


def facts_path(site_dir: Path, name: str) -> Path:
    return site_dir / "state" / "facts" / f"{name}.json"


def save_facts(site_dir: Path, name: str, facts: HostFacts) -> None:
    """Cache a machine's facts in the site (deterministic JSON, so unchanged facts rewrite nothing)."""
    path = facts_path(site_dir, name)
    text = json.dumps(facts.as_dict(), indent=2, sort_keys=True) + "\n"
    try:  # a FIFO, a device or a link in its place is replaced, never read
        if read_file(path, "facts cache", 64 * KiB) == text.encode():
            return
    except (FileNotFoundError, BadInputError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text, mode=0o644)


def load_facts(site_dir: Path, name: str) -> HostFacts | None:
    """The cached facts of a machine, or None when it was never read."""
    path = facts_path(site_dir, name)
    try:
        data = json.loads(read_file(path, "facts cache", 64 * KiB))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path}: unreadable facts cache ({exc}); delete it to read the facts again") from None
    except RecursionError:
        raise BadInputError(f"{path}: not a facts cache; delete it to read the facts again") from None
    if (
        not isinstance(data, dict)
        or set(data) - {f.name for f in fields(HostFacts)}
        or not all(
            v is None or (isinstance(v, str) and _WORD_RE.fullmatch(v)) or (type(v) is int and 0 <= v < 10_000)
            for v in data.values()
        )
    ):
        raise BadInputError(f"{path}: not a facts cache; delete it to read the facts again")
    # the cache goes through the same checks as a live read
    lines = (f"{_SCRIPT_KEYS.get(k, k)}={_as_script_value(k, v)}" for k, v in data.items() if v is not None)
    return parse_facts("\n".join(lines))


_SCRIPT_KEYS = {"packages": "pkg"}  # the cache's field names where the facts script prints another


def _as_script_value(key: str, value: object) -> str:
    if key == "systemd":
        return f"systemd {value}"
    if key == "vector":
        return f"vector {value}"
    return str(value)


def vector_problem(name: str, facts: HostFacts) -> str | None:
    """Why the rendered configuration cannot run on this machine's Vector, with the fix; None when it can."""
    version = facts.vector_version
    needed = ".".join(map(str, MIN_VECTOR))
    if version is None:
        return (
            f"{name}: Vector is not installed (or `vector --version` is unreadable); install Vector {needed} "
            "or newer from its signed repository (apt.vector.dev / yum.vector.dev), then enroll again"
        )
    if version < MIN_VECTOR:
        return (
            f"{name}: Vector {facts.vector} is older than {needed}, which the rendered configuration needs "
            f"(the vector sink's routing.endpoints); upgrade Vector to {needed} or newer, then enroll again"
        )
    return None
