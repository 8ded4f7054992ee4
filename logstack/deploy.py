"""Plan, then apply: bring one machine's files to the rendered manifest over SSH.

Each file is uploaded to a temp file in its target directory with its final owner and mode, validated
where a validator exists, and renamed over the old one only when every upload of the run succeeded; a
connection that dies leaves each target file old or new, never partial. Services restart only when one
of their files changed; a restart owed by a run that died after the swap is recorded on the target and
done by the next run.
"""

from __future__ import annotations

import difflib
import posixpath
import shlex
from dataclasses import dataclass, field
from typing import Literal

from logstack.errors import RuntimeFailure
from logstack.render import RenderedFile
from logstack.ssh import Connection

Action = Literal["create", "update", "fix", "unchanged"]
PENDING = "/var/lib/logstack/pending-restarts"
TMP_PREFIX = ".logstack-tmp-"
_UNIT_SUFFIXES = (".service", ".timer", ".socket", ".path", ".target")


@dataclass(frozen=True)
class RemoteFile:
    """A file as found on the target (sha256 None: missing)."""

    sha256: str | None = None
    mode: int | None = None
    owner: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class FileChange:
    """What the plan does to one file."""

    file: RenderedFile
    action: Action
    remote: RemoteFile

    @property
    def describe(self) -> str:
        if self.action == "fix":
            have = f"{self.remote.owner}:{self.remote.group} {self.remote.mode:04o}" if self.remote.mode else "?"
            return f"fix     {self.file.path} ({have} -> {self.file.owner}:{self.file.group} {self.file.mode:04o})"
        note = " (secret, diff hidden)" if self.file.secret and self.action == "update" else ""
        return f"{self.action:<7} {self.file.path}{note}"


@dataclass(frozen=True)
class Plan:
    """Everything a run will do on one target."""

    target: str
    changes: list[FileChange]
    restart: list[str]
    daemon_reload: bool
    owed: list[str] = field(default_factory=list)  # restarts a died run left behind

    @property
    def uploads(self) -> list[FileChange]:
        return [c for c in self.changes if c.action in ("create", "update")]

    @property
    def changed(self) -> bool:
        return bool(self.uploads or self.restart or self.daemon_reload or any(c.action == "fix" for c in self.changes))

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for change in self.changes:
            counts[change.action] = counts.get(change.action, 0) + 1
        parts = [
            f"{counts[a]} to {a}" if a != "unchanged" else f"{counts[a]} unchanged"
            for a in ("create", "update", "fix", "unchanged")
            if counts.get(a)
        ]
        if self.restart:
            parts.append("restart " + ", ".join(self.restart))
        if self.daemon_reload:
            parts.append("daemon-reload")
        return "; ".join(parts) or "nothing to do"


def make_plan(
    target: str, files: list[RenderedFile], remote: dict[str, RemoteFile], owed: list[str] | None = None
) -> Plan:
    """Compare rendered files with what the target has (pure: table-driven tests cover it)."""
    changes: list[FileChange] = []
    restart: list[str] = []
    reload = False
    for f in sorted(files, key=lambda f: f.path):
        have = remote.get(f.path, RemoteFile())
        if have.sha256 is None:
            action: Action = "create"
        elif have.sha256 != f.sha256:
            action = "update"
        elif (have.mode, have.owner, have.group) != (f.mode, f.owner, f.group):
            action = "fix"
        else:
            action = "unchanged"
        changes.append(FileChange(f, action, have))
        if action in ("create", "update"):
            if f.service and f.service not in restart:
                restart.append(f.service)
            reload = reload or f.unit
    for service in owed or []:
        if service == "daemon-reload":
            reload = True
        elif service not in restart:
            restart.append(service)
    return Plan(target, changes, restart, reload, list(owed or []))


# -- talking to the target --------------------------------------------------------------------------

_INSPECT = r"""
for p in "$@"; do
  if [ -f "$p" ]; then
    s=$(sha256sum < "$p") && m=$(stat -c '%a %U %G' "$p") && printf 'F %s %s\n' "${s%% *}" "$m"
  else
    echo M
  fi
  d=$(dirname "$p")
  [ -d "$d" ] && find "$d" -maxdepth 1 -name '.logstack-tmp-*' -mmin +10 -delete 2>/dev/null
done
if [ -f PENDING ]; then sed 's/^/P /' PENDING; fi
command -v vector >/dev/null 2>&1 && echo V
command -v systemd-analyze >/dev/null 2>&1 && echo S
exit 0
""".replace("PENDING", PENDING)


@dataclass(frozen=True)
class TargetFacts:
    """What inspection found on the target."""

    files: dict[str, RemoteFile]
    owed: list[str]
    has_vector: bool
    has_systemd_analyze: bool


def inspect(conn: Connection, files: list[RenderedFile]) -> TargetFacts:
    """One remote command: hash, mode and owner of every managed file, plus owed restarts."""
    paths = [f.path for f in files]
    cmd = "sh -c " + shlex.quote(_INSPECT) + " sh " + " ".join(shlex.quote(p) for p in paths)
    _, out, _ = conn.run(cmd)
    lines = out.decode(errors="replace").splitlines()
    found: dict[str, RemoteFile] = {}
    owed: list[str] = []
    index = 0
    for line in lines:
        if line.startswith(("F ", "M")) and index < len(paths):
            if line.startswith("F "):
                _, sha, mode, owner, group = line.split(" ", 4)
                found[paths[index]] = RemoteFile(sha, int(mode, 8), owner, group)
            index += 1
        elif line.startswith("P "):
            owed.extend(s for s in line[2:].split() if s not in owed)
    return TargetFacts(found, owed, "V" in lines, "S" in lines)


def diffs(conn: Connection, plan: Plan) -> list[str]:
    """Unified diffs of non-secret updates; secrets show as 'changed (secret, diff hidden)'."""
    out: list[str] = []
    for change in plan.uploads:
        f = change.file
        if f.secret:
            out.append(f"--- {f.path}: changed (secret, diff hidden)\n")
            continue
        old = b""
        if change.action == "update":
            _, old, _ = conn.run("cat " + shlex.quote(f.path))
        out.extend(
            difflib.unified_diff(
                old.decode(errors="replace").splitlines(keepends=True),
                f.content.decode(errors="replace").splitlines(keepends=True),
                fromfile=f"{f.path} (on {plan.target})" if change.action == "update" else "/dev/null",
                tofile=f"{f.path} (rendered)",
            )
        )
    return out


def _upload(conn: Connection, f: RenderedFile) -> str:
    directory = posixpath.dirname(f.path)
    suffix = posixpath.splitext(f.path)[1] if f.path.endswith((".yaml", *_UNIT_SUFFIXES)) else ""
    suffix_arg = shlex.quote(suffix) if suffix else "''"
    script = (
        f'set -e; umask 077; d={shlex.quote(directory)}; mkdir -p "$d"; '
        f't=$(mktemp --suffix={suffix_arg} "$d/{TMP_PREFIX}XXXXXX"); '
        f'cat > "$t"; chown {shlex.quote(f.owner)}:{shlex.quote(f.group)} "$t"; chmod {f.mode:04o} "$t"; '
        'echo "$t"'
    )
    _, out, _ = conn.run(script, stdin=f.content)
    return out.decode().strip().splitlines()[-1]


def _validate(conn: Connection, f: RenderedFile, temp: str, facts: TargetFacts) -> str | None:
    """An error message when a validator rejects the uploaded file, else None."""
    if f.path.endswith("/vector.yaml") and facts.has_vector:
        status, out, err = conn.run(f"vector validate --no-environment {shlex.quote(temp)}", check=False)
        if status != 0:
            detail = (err or out).decode(errors="replace").strip()
            return f"vector validate rejected {f.path}: {detail[-300:]}"
    if f.path.endswith(_UNIT_SUFFIXES) and facts.has_systemd_analyze:
        status, out, err = conn.run(f"systemd-analyze verify {shlex.quote(temp)}", check=False)
        problems = [
            line
            for line in (err + out).decode(errors="replace").splitlines()
            # a binary the same run installs may not exist yet: systemd itself accepts such a unit
            if line.strip() and "is not executable: No such file or directory" not in line
        ]
        if (status != 0 and problems) or any("Unknown key" in p or "Invalid" in p for p in problems):
            return f"systemd-analyze rejected {f.path}: " + "; ".join(problems)[-300:]
    return None


@dataclass
class ApplyResult:
    """What a run did on one target."""

    uploaded: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    daemon_reload: bool = False


def apply(conn: Connection, plan: Plan, facts: TargetFacts, service_manager: str = "systemctl") -> ApplyResult:
    """Upload, validate, swap, fix permissions, reload and restart, in that order."""
    result = ApplyResult()
    temps: list[tuple[str, str]] = []
    try:
        for change in plan.uploads:
            temp = _upload(conn, change.file)
            temps.append((temp, change.file.path))
            problem = _validate(conn, change.file, temp, facts)
            if problem:
                raise RuntimeFailure(f"{plan.target}: {problem}")
    except BaseException:
        if temps:
            conn.run("rm -f " + " ".join(shlex.quote(t) for t, _ in temps), check=False)
        raise
    owed = list(plan.restart) + (["daemon-reload"] if plan.daemon_reload else [])
    if owed:
        # Recorded before the swap: if the run dies now, the next run still restarts.
        conn.run(
            f"mkdir -p {posixpath.dirname(PENDING)} && printf '%s\\n' {' '.join(map(shlex.quote, owed))} > {PENDING}"
        )
    if temps:
        conn.run(" && ".join(f"mv -f {shlex.quote(t)} {shlex.quote(p)}" for t, p in temps))
        result.uploaded = [p for _, p in temps]
    fixes = [c.file for c in plan.changes if c.action == "fix"]
    if fixes:
        conn.run(
            " && ".join(
                f"chown {shlex.quote(f.owner)}:{shlex.quote(f.group)} {shlex.quote(f.path)} && "
                f"chmod {f.mode:04o} {shlex.quote(f.path)}"
                for f in fixes
            )
        )
    manager = shlex.quote(service_manager)
    if plan.daemon_reload:
        conn.run(f"{manager} daemon-reload")
        result.daemon_reload = True
    for service in plan.restart:
        conn.run(f"{manager} enable {shlex.quote(service)} && {manager} restart {shlex.quote(service)}")
        result.restarted.append(service)
    if owed or plan.owed:
        conn.run(f"rm -f {PENDING}")
    return result
