"""Plans: what one machine needs, compared with what it has, and the script that makes it so.

Pure: no SSH, no rendering; table-driven tests cover it. Each file is uploaded to a temp file in its target
directory with its final owner and mode, validated where a validator exists, and renamed over the old one
only when every upload of the run succeeded; a connection that dies leaves each target file old or new,
never partial. Services restart only when one of their files changed; a restart owed by a run that died
after the swap is recorded on the target and done by the next run.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field
from typing import Literal

from logstack.render.rendered import RenderedFile

# Root's record of what a deployment owes; not /var/lib/logstack, which the analysis service's
# DynamicUser= owns (StateDirectory=logstack).
PENDING = "/var/lib/logstack-deploy/pending-restarts"
TMP_PREFIX = ".logstack-tmp-"
PREV_SUFFIX = ".logstack-prev"  # the file a run replaced, kept until the service is verified
_UNIT_SUFFIXES = (".service", ".timer", ".socket", ".path", ".target")

Action = Literal["create", "update", "fix", "unchanged"]


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
    dir_fixes: list[FileChange] = field(default_factory=list)  # directories the services could not read

    @property
    def uploads(self) -> list[FileChange]:
        return [c for c in self.changes if c.action in ("create", "update")]

    @property
    def changed(self) -> bool:
        return bool(
            self.uploads
            or self.restart
            or self.daemon_reload
            or self.dir_fixes
            or any(c.action == "fix" for c in self.changes)
        )

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
        if self.dir_fixes:
            parts.append(f"{len(self.dir_fixes)} director{'y' if len(self.dir_fixes) == 1 else 'ies'} to fix")
        if self.daemon_reload:
            parts.append("daemon-reload")
        return "; ".join(parts) or "nothing to do"


# Directories holding managed files: root's, and readable by the services' own users (a directory a run
# creates under the apply script's umask 077 would be 0700, and Vector, user `vector`, could not reach
# its certificates). Modes that grant more than this are left alone only if nobody else may write.
DIR_OWNER = ("root", "root")
DIR_MODE = 0o755


def directory_ok(have: RemoteFile) -> bool:
    """True when a directory is root's, writable by root alone, and searchable and readable by all."""
    mode = have.mode or 0
    return have.owner == DIR_OWNER[0] and mode & 0o022 == 0 and mode & 0o005 == 0o005


def make_plan(
    target: str,
    files: list[RenderedFile],
    remote: dict[str, RemoteFile],
    owed: list[str] | None = None,
    dirs: dict[str, RemoteFile] | None = None,
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
    # Only restarts this plan could owe are honoured: the record on the target is text anyone with
    # write access there could have put anything in (an option such as --now, an unrelated unit).
    ours = {f.service for f in files if f.service}
    owed = [s for s in owed or [] if s == "daemon-reload" or s in ours]
    for service in owed:
        if service == "daemon-reload":
            reload = True
        elif service not in restart:
            restart.append(service)
    dir_fixes = [
        FileChange(RenderedFile(target, path, b"", DIR_OWNER[0], DIR_OWNER[1], DIR_MODE, None, False), "fix", have)
        for path, have in sorted((dirs or {}).items())
        if have.mode is not None and not directory_ok(have)
    ]
    return Plan(target, changes, restart, reload, owed, dir_fixes)


def _q(value: str) -> str:
    return shlex.quote(value)


def _write_lines(index: int, f: RenderedFile) -> list[str]:
    """Shell lines writing one file to a fresh temp name beside its target."""
    directory = posixpath.dirname(f.path)
    suffix = posixpath.splitext(f.path)[1] if f.path.endswith((".yaml", ".nft", *_UNIT_SUFFIXES)) else ""
    var = f"T{index}"
    return [
        f"{var}={_q(directory)}/{TMP_PREFIX}$$-{index}{suffix}",
        f'TMPS="$TMPS ${var}"',
        # printf is a shell builtin: the content never meets an argv limit and costs no process
        f'printf %s {_q(f.content.decode("utf-8"))} > "${var}"',
    ]


def _vector_lines(index: int, f: RenderedFile, temps: dict[str, str]) -> list[str]:
    """Vector builds the new configuration, as its own user, with the certificates and key of this run.

    `validate --skip-healthchecks` builds every component (vector v0.57.0 src/validate.rs; --no-environment
    would build none): TLS files are opened, the journald source checks the systemd version. A copy of the
    configuration points at this run's temp TLS files, which are not under their names yet.
    """
    var, copy = f"T{index}", f"V{index}"
    substitutions = " ".join(
        f"-e 's#{re.escape(path)}#'\"${temp}\"'#g'"
        for path, temp in sorted(temps.items())
        if path.startswith("/etc/vector/tls/")
    )
    return [
        "if command -v vector >/dev/null 2>&1 && id -u vector >/dev/null 2>&1; then",
        f'  {copy}="$(dirname "${var}")/{TMP_PREFIX}$$-v{index}.yaml"; TMPS="$TMPS ${copy}"',
        f'  sed {substitutions or "-e s/^//"} "${var}" > "${copy}"',
        f'  chown root:vector "${copy}" && chmod 0640 "${copy}"',
        '  if command -v runuser >/dev/null 2>&1; then check="runuser -u vector -- vector"; else check=vector; fi',
        f'  out=$($check validate --skip-healthchecks "${copy}" 2>&1) || fail "Vector cannot build {f.path}: '
        '$(printf %s "$out" | tail -n 3 | tr "\\n" " ")"',
        f'  rm -f "${copy}"',
        "fi",
    ]


def _validate_lines(index: int, f: RenderedFile, temps: dict[str, str]) -> list[str]:
    """Shell lines running the validator that exists on the target for this kind of file."""
    var = f"T{index}"
    lines = []
    if f.path.endswith("/vector.yaml"):
        lines += _vector_lines(index, f, temps)
    if f.path.endswith(".nft"):
        lines.append(
            f'if command -v nft >/dev/null 2>&1; then out=$(nft -c -f "${var}" 2>&1) || '
            f'fail "nft rejected {f.path}: $(printf %s "$out" | tail -n 3 | tr "\\n" " ")"; fi'
        )
    if f.path.endswith(_UNIT_SUFFIXES):
        # A binary the same run installs may not exist yet: systemd itself accepts such a unit.
        lines.append(
            "if command -v systemd-analyze >/dev/null 2>&1; then "
            f'st=0; out=$(systemd-analyze verify "${var}" 2>&1) || st=$?; '
            'probs=$(printf "%s\\n" "$out" | grep -v "is not executable: No such file or directory" | grep . || true); '
            'if { [ $st -ne 0 ] && [ -n "$probs" ]; } || printf "%s" "$probs" | grep -q -e "Unknown key" -e "Invalid"; '
            f'then fail "systemd-analyze rejected {f.path}: $(printf %s "$probs" | tr "\\n" " ")"; fi; fi'
        )
    return lines


def _staging_lines(uploads: list[FileChange]) -> list[str]:
    """Every upload written to a temp file beside its target, owned and moded, then validated."""
    lines: list[str] = []
    for index, change in enumerate(uploads):
        lines += _write_lines(index, change.file)
    # Owner and mode are set before validation and long before the rename: the final name never
    # shows a file with other permissions. Grouped, so a run costs a few processes, not a few per file.
    by_owner: dict[str, list[int]] = {}
    by_mode: dict[int, list[int]] = {}
    for index, change in enumerate(uploads):
        by_owner.setdefault(f"{change.file.owner}:{change.file.group}", []).append(index)
        by_mode.setdefault(change.file.mode, []).append(index)
    for owner, indexes in by_owner.items():
        lines.append(f"chown {_q(owner)} " + " ".join(f'"$T{i}"' for i in indexes))
    for mode, indexes in by_mode.items():
        lines.append(f"chmod {mode:04o} " + " ".join(f'"$T{i}"' for i in indexes))
    temps = {change.file.path: f"T{index}" for index, change in enumerate(uploads)}
    for index, change in enumerate(uploads):
        lines += _validate_lines(index, change.file, temps)
    return lines


def apply_script(
    plan: Plan, service_manager: str = "systemctl", wait_up: tuple[str, ...] = (), ticks: int = 150
) -> str:
    """The whole run as one shell script: write, own and validate all, record owed restarts, swap, restart.

    One remote command per target: session set-up, not bytes, dominates the cost of a deployment.
    """
    lines = [
        "umask 077",
        "TMPS=''",
        'fail() { [ -n "$TMPS" ] && rm -f $TMPS; echo "logstack: $1" >&2; exit 3; }',
        "trap 'fail \"interrupted\"' HUP INT TERM",
        "set -eC",  # -C: a temp name that exists already is an error, never overwritten
    ]
    uploads = plan.uploads
    dirs = sorted({posixpath.dirname(c.file.path) for c in uploads})
    if dirs:
        quoted = " ".join(_q(d) for d in dirs)
        # new directories must be searchable by the services' users, whatever the umask of the files
        lines.append(f"(umask 022 && mkdir -p {quoted})")
        # temp files a killed run left behind
        lines.append(f"find {quoted} -maxdepth 1 -name '{TMP_PREFIX}*' -mmin +10 -delete 2>/dev/null || true")
    # before anything is validated in them: Vector validates as its own user
    for change in plan.dir_fixes:
        path, owner = _q(change.file.path), f"{change.file.owner}:{change.file.group}"
        lines.append(f"chown {_q(owner)} {path} && chmod {change.file.mode:04o} {path}")
        # what others could put in it while it was theirs is not logstack's: never written through
        lines.append(
            f"find {path} -maxdepth 1 \\( -name '{TMP_PREFIX}*' -o -name '*{PREV_SUFFIX}' \\) -exec rm -f {{}} +"
        )
    lines += _staging_lines(uploads)
    owed = list(plan.restart) + (["daemon-reload"] if plan.daemon_reload else [])
    if owed:
        # Recorded before the swap: if the run dies now, the next run still restarts.
        lines.append(f"mkdir -p {posixpath.dirname(PENDING)} && printf '%s\\n' {' '.join(map(_q, owed))} >| {PENDING}")
    for index, change in enumerate(uploads):
        # the file this run replaces is kept until the service is verified (a new file has no copy)
        final, prev = _q(change.file.path), _q(change.file.path + PREV_SUFFIX)
        # only a regular file is kept, in a copy made afresh (rm -f removes a planted link, never its target)
        lines.append(f"rm -f -- {prev}; if [ -f {final} ] && [ ! -L {final} ]; then cp -p -- {final} {prev}; fi")
        lines.append(f'mv -f "$T{index}" {final}')
    for change in plan.changes:
        if change.action == "fix":
            f = change.file
            lines.append(f"chown {_q(f.owner)}:{_q(f.group)} {_q(f.path)} && chmod {f.mode:04o} {_q(f.path)}")
    manager = _q(service_manager)
    if plan.daemon_reload:
        lines.append(f"{manager} daemon-reload")
    for service in plan.restart:
        lines.append(f"{manager} enable {_q(service)}")  # each on its own line: set -e stops at either
        lines.append(f"{manager} restart {_q(service)}")
    if owed or plan.owed:
        lines.append(f"rm -f {PENDING}")
    lines += _wait_up_lines(manager, wait_up, ticks)
    return "\n".join(lines) + "\n"


def _wait_up_lines(manager: str, services: tuple[str, ...], ticks: int) -> list[str]:
    """Each service must be active (polled every 0.2 s, `ticks` times at most): its restart count is printed
    for the settle check, or `failed SERVICE` ends the script."""
    lines = []
    for service in services:
        svc = _q(service)
        lines += [
            "waited=0",
            f'while state=$({manager} is-active {svc}); [ "$state" != active ]; do',
            f'  if [ "$state" = failed ] || [ "$waited" -ge {ticks} ]; then echo "failed {service}"; exit 0; fi',
            "  sleep 0.2; waited=$((waited + 1))",
            "done",
            f'echo "up {service} $({manager} show -p NRestarts --value {svc})"',
        ]
    return lines


def rollback_script(plan: Plan, service_manager: str = "systemctl") -> str:
    """Put back what this plan's run replaced (and remove what it created), then restart as before."""
    lines = ["set -u"]
    for change in plan.uploads:
        final, prev = _q(change.file.path), _q(change.file.path + PREV_SUFFIX)
        lines.append(f"if [ -f {prev} ] && [ ! -L {prev} ]; then mv -f -- {prev} {final}; else rm -f -- {final}; fi")
    manager = _q(service_manager)
    if plan.daemon_reload:
        lines.append(f"{manager} daemon-reload")
    for service in plan.restart:
        lines.append(f"{manager} restart {_q(service)} || true")
    return "\n".join(lines) + "\n"
