"""logstack on the server: the operator's version in its own venv under /opt/logstack, from uploaded wheels.

The scheduled units run /usr/local/bin/logstack; this puts it there and keeps it at the operator's code.
A venv is named by the digest of logstack's wheel (same code, same name), built beside the live one and
switched to by renaming a link, so a timer run never sees a half-installed logstack.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import logstack
from logstack.base.errors import RuntimeFailure
from logstack.base.safe_read import MiB, read_file
from logstack.base.shell import shell_command
from logstack.connection.base import Connection
from logstack.provision.wheelhouse import (
    PROBE,
    Platform,
    build_wheel,
    cache_dir,
    constraints,
    download_dependencies,
    parse_platform,
    wheel_names,
)

BASE = "/opt/logstack"
LINK = "/usr/local/bin/logstack"

# What the server has: its Python (the probe's line) and the venv the `current` link names.
_FACTS_SCRIPT = r"""
set -u
cd /
command -v python3 >/dev/null 2>&1 || { echo "no-python"; exit 0; }
python3 -I -c "$1" || { echo "python-failed"; exit 0; }
current=$(readlink -- "$2/current" 2>/dev/null || true)
# current only when complete and still able to run (a Python upgrade breaks a venv)
if [ -n "$current" ] && [ -f "$2/$current/.complete" ] && "$2/$current/bin/logstack" --version >/dev/null 2>&1
then echo "$current"; else echo "-"; fi
"""

# Run as root. The wheels arrive as a tar on stdin into a fresh private directory; the venv is built at its
# final path (its scripts name it) and marked complete last; then `current` and the command link are
# switched by rename. /opt/logstack is root's: a local user who could write there could change what runs.
_INSTALL_SCRIPT = r"""
set -eu
base=$1 name=$2 wheel=$3 link=$4
umask 022
cd /
[ ! -L "$base" ] || { echo "logstack: $base is a symbolic link; nothing installed" >&2; exit 4; }
install -d -m 0755 -o root -g root -- "$base"
[ "$(stat -c %u -- "$base")" = 0 ] || { echo "logstack: $base is not owned by root" >&2; exit 4; }
work=$(mktemp -d "$base/.upload.XXXXXXXX")
trap 'rm -rf -- "$work"' EXIT
tar -xf - -C "$work" --no-same-owner --no-same-permissions
venv=$base/$name
rm -rf -- "$venv"
python3 -I -m venv --without-pip -- "$venv"
pip=$(find "$work" -maxdepth 1 -name 'pip-*.whl' | head -n 1)
[ -n "$pip" ] || { echo "logstack: no pip wheel was uploaded" >&2; exit 4; }
# pip runs from its own wheel (supported: python pip.whl/pip install ...); no index is ever asked
"$venv/bin/python" "$pip/pip" install --quiet --no-index --no-cache-dir --disable-pip-version-check \
    --find-links "$work" -c "$work/constraints.txt" -- "$work/$wheel" >"$work/pip.log" 2>&1 || {
    tail -n 3 "$work/pip.log" >&2; rm -rf -- "$venv"; exit 5; }
"$venv/bin/logstack" --version >/dev/null
touch -- "$venv/.complete"
previous=$(readlink -- "$base/current" 2>/dev/null || true)
ln -sfn -- "$name" "$base/current.new" && mv -fT -- "$base/current.new" "$base/current"
ln -sfn -- "$base/current/bin/logstack" "$link.new" && mv -fT -- "$link.new" "$link"
# the venv a running timer may still use stays; older ones go
for old in "$base"/venv-*; do
    [ -e "$old" ] || continue
    case "${old##*/}" in "$name"|"$previous") ;; *) rm -rf -- "$old" ;; esac
done
"""


@dataclass(frozen=True)
class InstallState:
    """The server's logstack against the operator's."""

    platform: Platform
    installed: str | None  # venv name, e.g. venv-0.1.0-1a2b3c4d5e6f
    wanted: str

    @property
    def current(self) -> bool:
        return self.installed == self.wanted

    def describe(self) -> str:
        if self.current:
            return f"logstack {self.wanted.removeprefix('venv-')} is current on the server"
        was = self.installed.removeprefix("venv-") if self.installed else "none"
        return f"logstack {self.wanted.removeprefix('venv-')} for the server (installed: {was})"


def venv_name(wheel: Path, platform: Platform) -> str:
    """The venv of this exact code, dependency versions and server Python: version plus their digest."""
    digest = hashlib.sha256(wheel.read_bytes())
    digest.update(constraints().encode())
    digest.update(platform.describe().encode())
    return f"venv-{logstack.__version__}-{digest.hexdigest()[:12]}"


def server_state(conn: Connection, wheel: Path) -> InstallState:
    """What the server runs now and what it should run; python3 3.11 or newer is required."""
    _, out, _ = conn.run(shell_command(_FACTS_SCRIPT, PROBE, BASE))
    lines = out.decode(errors="replace").splitlines()
    if not lines or lines[0] == "no-python":
        raise RuntimeFailure("server: python3 is not installed; logstack needs Python 3.11 or newer there")
    if lines[0] == "python-failed" or len(lines) < 2:
        raise RuntimeFailure("server: python3 did not run; logstack needs a working Python 3.11 or newer there")
    platform = parse_platform(lines[0])
    if platform.python < (3, 11):
        raise RuntimeFailure(f"server: {platform.describe()}; logstack needs Python 3.11 or newer there")
    installed = lines[1] if lines[1] != "-" else None
    return InstallState(platform=platform, installed=installed, wanted=venv_name(wheel, platform))


def install_logstack(conn: Connection, wheels: Path | None, dry_run: bool) -> str | None:
    """Bring the server's logstack to the operator's code; returns what changed (or would), else None.

    `wheels`: a directory holding the dependencies' wheels (an operator without an index); without it they
    are downloaded once per server platform into the user's cache."""
    with tempfile.TemporaryDirectory(prefix="logstack-wheel-") as tmp:
        wheel = build_wheel(Path(tmp))
        state = server_state(conn, wheel)
        if state.current:
            return None
        if dry_run:
            return "would install " + state.describe()
        source = wheels if wheels is not None else cache_dir(state.platform)
        download_dependencies(wheel, state.platform, source, offline=wheels is not None)
        pins = Path(tmp) / "constraints.txt"  # the operator's versions, whatever else the cache holds
        pins.write_text(constraints())
        archive = _tar([source / name for name in wheel_names(source)] + [wheel, pins])
        run_root_script(
            conn, "installing logstack", _INSTALL_SCRIPT, BASE, state.wanted, wheel.name, LINK, stdin=archive
        )
    return "installed " + state.describe()


def run_root_script(conn: Connection, what: str, script: str, *args: str, stdin: bytes | None = None) -> None:
    """One install script as root, its arguments never shell text; a failure names its last error line."""
    status, _, err = conn.run(shell_command(script, *args), stdin=stdin, check=False, timeout=900)
    if status != 0:
        detail = err.decode(errors="replace").strip().splitlines()
        raise RuntimeFailure(f"server: {what} failed: {detail[-1] if detail else f'exit {status}'}")


def _tar(paths: list[Path]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in paths:
            # a link is read through and sent as the file it names: the server gets regular files only
            data = read_file(path, "wheel", 512 * MiB, follow_links=True)
            info = tarfile.TarInfo(path.name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


ANALYZE_SERVICE = "logstack-analyze.service"


def first_run(conn: Connection, service_manager: str, unit: str = ANALYZE_SERVICE) -> str:
    """Run the timer's service once and read how it ended: `systemctl start` waits for a oneshot service to
    finish, and `Result`/`ExecMainStatus` tell how its process exited (systemd src/core/service.c,
    service_result_to_string: "success", "exit-code", ...). Exit 1 is analysis finding events at --fail-on."""
    conn.run(shell_command('"$1" start "$2" >/dev/null 2>&1 || true', service_manager, unit), check=False)
    _, out, _ = conn.run(
        shell_command('"$1" show -p Result -p ExecMainStatus "$2"', service_manager, unit), check=False, timeout=30
    )
    shown = dict(line.split("=", 1) for line in out.decode(errors="replace").splitlines() if "=" in line)
    result, status = shown.get("Result", "?"), shown.get("ExecMainStatus", "?")
    # 1 is analysis finding events at its --fail-on level; a defect exits 70 (logstack/cli.py), never 1
    if result == "success" or status == "1":
        found = " (it reported events at its --fail-on level)" if status == "1" else ""
        return f"{unit}: the first scheduled run succeeded{found}"
    hint = " (203: /usr/local/bin/logstack could not be run)" if status == "203" else ""
    raise RuntimeFailure(
        f"server: the first run of {unit} failed: Result={result[:40]}, exit status {status[:12]}{hint}; "
        f"see journalctl -u {unit}"
    )
