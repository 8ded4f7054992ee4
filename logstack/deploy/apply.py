"""Talking to a machine: inspect what it has, show diffs, apply a plan; and the one deploy loop.

connect -> inspect -> plan -> dry run | apply -> result, for the server and for every host alike.
"""

from __future__ import annotations

import difflib
import hashlib
import posixpath
import re
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from logstack.base.errors import LogstackError, RuntimeFailure
from logstack.base.shell import shell_command
from logstack.connection.base import Connection, FileReader, FileStat, Target, UnreachableError
from logstack.connection.registry import connect
from logstack.connection.targets import known_hosts_path
from logstack.deploy.packages import converge_vector
from logstack.deploy.plan import PENDING, PREV_SUFFIX, Plan, RemoteFile, apply_script, make_plan, rollback_script
from logstack.deploy.result import HostResult
from logstack.render.rendered import RenderedFile
from logstack.site.host_facts import HostFacts, gather, save_facts, vector_problem
from logstack.site.vector_source import VectorSource

if TYPE_CHECKING:
    from logstack.site.inventory import Inventory

# Few processes, whatever the number of files: on a busy target each fork/exec costs more than the bytes.
_INSPECT = r"""
sha256sum -- "$@" 2>/dev/null || true
echo ---
stat -c '%a %U %G %n' -- "$@" 2>/dev/null || true
echo ---
for f in "$@"; do stat -c '%a %U %G %n' -- "${f%/*}"; done 2>/dev/null | sort -u || true
echo ---
if [ -f PENDING ]; then while read -r s; do echo "P $s"; done < PENDING; fi
exit 0
""".replace("PENDING", PENDING)


@dataclass(frozen=True)
class RemoteState:
    """The managed files, their directories and owed restarts as inspection found them on the target."""

    files: dict[str, RemoteFile]
    owed: list[str]
    dirs: dict[str, RemoteFile] = field(default_factory=dict)  # existing directories of managed files


def inspect(conn: Connection, files: list[RenderedFile]) -> RemoteState:
    """Hash, mode and owner of every managed file, plus owed restarts.

    As root this reads through the connection's file reader (SFTP starts no process on the target, and a
    remote command costs several times more); through sudo it falls back to one remote command.
    """
    try:
        with conn.file_reader() as reader:
            if reader is not None:
                return _inspect_files(reader, files)
    except OSError:
        pass  # the reader failed part-way: the shell way works everywhere
    return _inspect_exec(conn, files)


def _id_names(files: FileReader, path: str) -> dict[int, str]:
    with files.open(path) as handle:
        table = handle.read().decode(errors="replace")
    names: dict[int, str] = {}
    for line in table.splitlines():
        parts = line.split(":")
        if len(parts) > 2 and parts[2].isascii() and parts[2].isdigit() and len(parts[2]) <= 10:
            names.setdefault(int(parts[2]), parts[0])
    return names


def _inspect_files(reader: FileReader, files: list[RenderedFile]) -> RemoteState:
    users, groups = _id_names(reader, "/etc/passwd"), _id_names(reader, "/etc/group")
    found: dict[str, RemoteFile] = {}
    for f in files:
        try:
            handle = reader.open(f.path)
        except FileNotFoundError:
            continue
        with handle:
            attrs = handle.stat()
            if attrs.st_mode is None or not stat.S_ISREG(attrs.st_mode):
                continue
            # a size that differs already decides (no digest equals this marker): no read needed
            same_size = attrs.st_size == len(f.content)
            digest = hashlib.sha256(handle.read()).hexdigest() if same_size else f"size:{attrs.st_size}"
        found[f.path] = _remote(attrs, digest, users, groups)
    dirs: dict[str, RemoteFile] = {}
    for directory in sorted({posixpath.dirname(f.path) for f in files}):
        try:
            attrs = reader.stat(directory)
        except FileNotFoundError:
            continue
        if attrs.st_mode is not None and stat.S_ISDIR(attrs.st_mode):
            dirs[directory] = _remote(attrs, None, users, groups)
    owed: list[str] = []
    try:
        with reader.open(PENDING) as handle:
            for line in handle.read().decode(errors="replace").splitlines():
                if line.strip() and line.strip() not in owed:
                    owed.append(line.strip())
    except FileNotFoundError:
        pass
    return RemoteState(found, owed, dirs)


def _remote(attrs: FileStat, digest: str | None, users: dict[int, str], groups: dict[int, str]) -> RemoteFile:
    """A file or directory as SFTP shows it, owner and group by name (an unknown id stays a number)."""
    return RemoteFile(
        digest,
        stat.S_IMODE(attrs.st_mode or 0),
        users.get(attrs.st_uid, str(attrs.st_uid)) if attrs.st_uid is not None else None,
        groups.get(attrs.st_gid, str(attrs.st_gid)) if attrs.st_gid is not None else None,
    )


def _inspect_exec(conn: Connection, files: list[RenderedFile]) -> RemoteState:
    """One remote command: hash, mode and owner of every managed file, plus owed restarts."""
    paths = [f.path for f in files]
    _, out, _ = conn.run(shell_command(_INSPECT, *paths))
    hashes_part, stats_part, dirs_part, rest = ([*out.decode(errors="replace").split("---\n", 3), "", "", ""])[:4]
    hashes: dict[str, str] = {}
    for line in hashes_part.splitlines():
        digest, _, path = line.partition("  ")
        hashes[path] = digest
    found: dict[str, RemoteFile] = {}
    for mode, owner, group, path in _stat_lines(stats_part):
        if path in hashes:
            found[path] = RemoteFile(hashes[path], mode, owner, group)
    dirs = {path: RemoteFile(None, mode, owner, group) for mode, owner, group, path in _stat_lines(dirs_part)}
    lines = rest.splitlines()
    owed: list[str] = []
    for line in lines:
        if line.startswith("P ") and line[2:].strip() and line[2:].strip() not in owed:
            owed.append(line[2:].strip())
    return RemoteState(found, owed, dirs)


def _stat_lines(text: str) -> list[tuple[int, str, str, str]]:
    """`stat -c '%a %U %G %n'` lines; a line not of that form is passed over."""
    rows = []
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and re.fullmatch(r"[0-7]{1,4}", parts[0]):
            rows.append((int(parts[0], 8), parts[1], parts[2], parts[3]))
    return rows


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
            _, old, _ = conn.run(shell_command('cat -- "$1"', f.path))
        out.extend(
            difflib.unified_diff(
                old.decode(errors="replace").splitlines(keepends=True),
                f.content.decode(errors="replace").splitlines(keepends=True),
                fromfile=f"{f.path} (on {plan.target})" if change.action == "update" else "/dev/null",
                tofile=f"{f.path} (rendered)",
            )
        )
    return out


@dataclass
class ApplyResult:
    """What a run did on one target."""

    uploaded: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    daemon_reload: bool = False
    up: dict[str, str] = field(default_factory=dict)  # service -> restart count once it was active
    failed: str | None = None  # a service that did not come up


def apply(
    conn: Connection, plan: Plan, service_manager: str = "systemctl", wait_up: tuple[str, ...] = (), ticks: int = 150
) -> ApplyResult:
    """Upload and validate every file, then swap, fix permissions, reload and restart: one remote script
    (which then waits until each of `wait_up` is active)."""
    script = apply_script(plan, service_manager, wait_up, ticks)
    status, out, err = conn.run("sh -s", stdin=script.encode(), check=False)
    if status != 0:
        lines = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()]
        reason = next((ln[len("logstack: ") :] for ln in reversed(lines) if ln.startswith("logstack: ")), None)
        raise RuntimeFailure(f"{plan.target}: {reason or (lines[-1] if lines else f'deployment failed ({status})')}")
    result = ApplyResult(
        uploaded=[c.file.path for c in plan.uploads],
        restarted=list(plan.restart),
        daemon_reload=plan.daemon_reload,
    )
    for line in out.decode(errors="replace").splitlines():
        word, _, rest = line.partition(" ")
        service, _, count = rest.partition(" ")
        if word == "up":
            result.up[service] = count
        elif word == "failed":
            result.failed = service
    return result


# Services whose process must come up and stay up after a restart (timers and one-shot loaders have none).
VERIFIED_SERVICES = ("vector", "greptime")
_PEM_KEY_RE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)


@dataclass(frozen=True)
class DeployOptions:
    """How one deployment run goes, for every machine of it."""

    known_hosts: Path
    site_dir: Path
    dry_run: bool = False
    accept_new: bool = False
    service_manager: str = "systemctl"
    verify_timeout: float = 30.0  # seconds a restarted service has to come up; 0: not verified
    verify_settle: float = 1.0  # seconds it must then stay up
    needs_vector: bool = True  # the files configure Vector: its version must run them
    slots: threading.Semaphore | None = None  # bounds the machines worked on at once (--forks)
    secrets: tuple[str, ...] = ()  # scrubbed from any log shown
    vector: VectorSource | None = None  # set: Vector is installed or upgraded to its pinned version first
    packages_dir: Path | None = None  # package files uploaded instead of the repository (air-gapped sites)

    @classmethod
    def for_site(cls, inventory: Inventory, **choices: Any) -> DeployOptions:
        """The site's known_hosts, state directory and service manager, with the run's own choices."""
        return cls(
            known_hosts=known_hosts_path(inventory),
            site_dir=inventory.site_dir,
            service_manager=inventory.spec.service_manager,
            **choices,
        )


def deploy_machine(
    target: Target,
    render: Callable[[HostFacts], list[RenderedFile]],
    options: DeployOptions,
    *,
    before: Callable[[Connection], None] | None = None,
    after: Callable[[Connection, HostResult], None] | None = None,
) -> HostResult:
    """connect -> facts -> render -> inspect -> plan -> dry run | apply -> verify -> result, for one machine.

    Never raises for the machine's problems: they are its result. `before` runs ahead of reading the facts
    (installing what the files need; not in a dry run), `after` once the files are in place (in a dry run
    too, to look without changing). With `options.slots` the work holds a slot, and waiting for restarted
    services to settle does not.
    """
    slot = _Slot(options.slots)
    try:
        with connect(target, options.known_hosts, accept_new=options.accept_new) as conn:
            if before is not None and not options.dry_run:
                before(conn)
            facts, package_note = _vector_package(conn, target.name, options)
            problem = vector_problem(target.name, facts) if options.needs_vector else None
            if problem is not None:
                return HostResult(target.name, "failed", problem, facts=facts)
            files = render(facts)
            found = inspect(conn, files)
            plan = make_plan(target.name, files, found.files, found.owed, found.dirs)
            warnings = facts.warnings() if any(f.path == "/etc/vector/vector.yaml" for f in files) else []
            warnings += [package_note] if package_note else []
            state = "changed" if plan.changed else "ok"
            if options.dry_run:
                result = HostResult(
                    target.name, state, "dry run", plan, diffs(conn, plan), facts=facts, warnings=warnings
                )
            else:
                if plan.changed:
                    _apply_and_verify(conn, plan, options, slot)
                summary = plan.summary() if plan.changed else ""
                result = HostResult(target.name, state, summary, plan, facts=facts, warnings=warnings)
            if after is not None:
                after(conn, result)
            return result
    except UnreachableError as exc:
        return HostResult(target.name, "unreachable", str(exc), error=exc)
    except LogstackError as exc:
        return HostResult(target.name, "failed", str(exc), error=exc)
    except (ValueError, IndexError, KeyError, TypeError, OverflowError, UnicodeError) as exc:
        # what a target answers is input: an answer logstack cannot read fails this machine, not the run
        reason = f"{target.name}: unreadable answer from the machine ({type(exc).__name__}: {exc})"
        return HostResult(target.name, "failed", reason, error=RuntimeFailure(reason))
    finally:
        slot.release()


def _vector_package(conn: Connection, name: str, options: DeployOptions) -> tuple[HostFacts, str | None]:
    """The machine's facts, cached as they are, once Vector is the pinned version (a dry run: the facts it
    would then have, cached as they are now), and what was or would be done."""
    facts = gather(conn)
    save_facts(options.site_dir, name, facts)
    if options.vector is None or not options.needs_vector:
        return facts, None
    after, note = converge_vector(
        conn, name, facts, options.vector, options.service_manager,
        dry_run=options.dry_run, packages_dir=options.packages_dir,
    )  # fmt: skip
    if note is not None and not options.dry_run:
        save_facts(options.site_dir, name, after)
    return after, note


class _Slot:
    """One of the --forks slots, held while a machine is worked on."""

    def __init__(self, slots: threading.Semaphore | None) -> None:
        self.slots = slots
        self.held = slots is not None and slots.acquire()

    def release(self) -> None:
        if self.held and self.slots is not None:
            self.slots.release()
            self.held = False


def _apply_and_verify(conn: Connection, plan: Plan, options: DeployOptions, slot: _Slot) -> None:
    """Apply the plan; the restarted services must come up, then stay up (else the previous files return)."""
    verified = tuple(s for s in plan.restart if s in VERIFIED_SERVICES and options.verify_timeout > 0)
    applied = apply(conn, plan, options.service_manager, verified, int(options.verify_timeout / 0.2))
    missing = [s for s in verified if s not in applied.up]
    if applied.failed or missing:
        _roll_back(conn, plan, applied.failed or missing[0], options)
    slot.release()  # settling is waiting, not work: let another machine go
    _settle_or_roll_back(conn, plan, {s: applied.up[s] for s in verified}, options)


# After the settle time: each service still active with the same restart count ("service=count" ...), then
# the copies of the files the run replaced are dropped (the paths after "--").
_STILL_UP = r"""
manager=$1; shift
while [ "$#" -gt 0 ] && [ "$1" != -- ]; do
    service=${1%%=*} count=${1#*=}; shift
    [ "$("$manager" is-active "$service")" = active ] || { echo "failed $service"; exit 0; }
    [ "$("$manager" show -p NRestarts --value "$service")" = "$count" ] || { echo "failed $service"; exit 0; }
done
[ "$#" -gt 0 ] && shift
rm -f -- "$@"
echo ok
"""


def _settle_or_roll_back(conn: Connection, plan: Plan, counts: dict[str, str], options: DeployOptions) -> None:
    """A service that came up must stay up for the settle time; then the copies of replaced files go."""
    if counts:
        time.sleep(options.verify_settle)
    pairs = [f"{service}={count}" for service, count in counts.items()]
    copies = [c.file.path + PREV_SUFFIX for c in plan.uploads]
    out = _run_text(conn, _STILL_UP, options.service_manager, *pairs, "--", *copies)
    if out != "ok":
        _roll_back(conn, plan, out.partition(" ")[2] or next(iter(counts), "vector"), options)


def _roll_back(conn: Connection, plan: Plan, failed: str, options: DeployOptions) -> NoReturn:
    log = _service_log(conn, failed, options.secrets)
    conn.run("sh -s", stdin=rollback_script(plan, options.service_manager).encode(), check=False)
    raise RuntimeFailure(
        f"{plan.target}: {failed} did not stay up with the new files; the previous files are back "
        f"and {failed} was restarted. Its last lines: {log}"
    )


def _run_text(conn: Connection, script: str, *args: str) -> str:
    _, out, _ = conn.run(shell_command(script, *args), check=False)
    return out.decode(errors="replace").strip()


def _service_log(conn: Connection, service: str, secrets: tuple[str, ...]) -> str:
    """The service's last log lines, one line, with every secret the site knows taken out."""
    text = _run_text(conn, 'journalctl -u "$1" -n 20 --no-pager -o cat 2>&1', service)
    text = _PEM_KEY_RE.sub("<private key>", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<secret>")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-5:]) or "(no log lines)"
