"""`init-server`: GreptimeDB and the receiving Vector on the central server, idempotently."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from logstack.base.errors import BadInputError, LogstackError, RuntimeFailure
from logstack.base.shell import shell_command
from logstack.connection.base import Connection
from logstack.connection.targets import receiver_target, server_target
from logstack.deploy.apply import DeployOptions, deploy_machine
from logstack.deploy.result import HostResult
from logstack.integrity.keyring import ensure_keys
from logstack.pki import PKI, SERVER
from logstack.provision.logstack_install import first_run, install_logstack, run_root_script
from logstack.provision.receivers import ensure_receiver_certificates, ensure_vector, receiver_hooks
from logstack.provision.store_schema import Api, create_schema, retention, self_test
from logstack.render.rendered import SERVER_MACHINE, RenderedFile
from logstack.render.site_files import render_site
from logstack.site.inventory import Inventory, ServerSpec
from logstack.site.secrets import Secrets, load_secrets, secrets_path
from logstack.site.topology import probe_address, receiver_key
from logstack.store.greptime import GreptimeHTTP, store_api

GREPTIME_BIN = "/usr/local/bin/greptime"
GREPTIME_HTTP = ("127.0.0.1", 4000)


@dataclass
class ServerResult:
    """What init-server did."""

    steps: list[str] = field(default_factory=list)  # what was changed
    checks: list[str] = field(default_factory=list)  # what was verified
    deploy: HostResult | None = None
    receivers: list[HostResult] = field(default_factory=list)  # the other receiving machines
    changed: bool = False


_ARCH_RE = re.compile(r"[a-z0-9_]{1,32}")

# One script, all of it run as root on the server: a private work directory made atomically by mktemp
# under a parent only root may write, the checksum verified on the very file that is then extracted, the
# binary installed beside its target and renamed over it, the work directory removed whatever happens.
# Data reaches it as arguments ($1 ...), never as shell text.
_INSTALL_SCRIPT = r"""
set -eu
version=$1 asset=$2 expected=$3 url=$4 target=$5
install -d -m 0700 -o root -g root /var/cache/logstack
work=$(mktemp -d /var/cache/logstack/greptime.XXXXXXXX)
trap 'rm -rf -- "$work"' EXIT
cd "$work"
if [ -z "$url" ]; then
    cat > "$asset.tar.gz"
else
    curl -fsSL -o "$asset.tar.gz" -- "$url"
    curl -fsSL -o "$asset.tar.gz.sha256sum" -- "$url.sha256sum"
    expected=$(cut -d' ' -f1 "$asset.tar.gz.sha256sum")
fi
printf '%s  %s\n' "$expected" "$asset.tar.gz" | sha256sum -c --quiet - >/dev/null 2>&1 || {
    echo "logstack: $asset.tar.gz does not match its sha256 ($expected); nothing installed" >&2; exit 4; }
mkdir extracted
tar -xzf "$asset.tar.gz" -C extracted --no-same-owner
binary=$(find extracted -type f -name greptime | head -n 1)
[ -n "$binary" ] || { echo "logstack: $asset.tar.gz holds no greptime binary" >&2; exit 4; }
install -m 0755 -o root -g root "$binary" "$target.new"
mv -f "$target.new" "$target"
"""


def greptime_asset(version: str, arch: str) -> str:
    return f"greptime-linux-{arch}-{version}"


def _arch(conn: Connection) -> str:
    _, out, _ = conn.run("uname -m")
    machine = out.decode(errors="replace").strip()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    if not _ARCH_RE.fullmatch(arch):
        raise RuntimeFailure(f"server: unexpected machine architecture {machine[:40]!r} from uname -m")
    return arch


def _installed_version(conn: Connection) -> str | None:
    status, out, _ = conn.run(shell_command('"$1" --version 2>&1', GREPTIME_BIN), check=False)
    return out.decode(errors="replace") if status == 0 else None


def read_checksum_file(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: cannot read checksum file: {getattr(exc, 'strerror', None) or exc}") from None
    if not text or not re.fullmatch(r"[0-9A-Fa-f]{64}", text[0]):
        raise BadInputError(f"{path}: not a .sha256sum file")
    return text[0].lower()


def install_greptime(conn: Connection, version: str, tarball: Path | None) -> bool:
    """Install the pinned GreptimeDB; a checksum mismatch aborts before anything is installed."""
    current = _installed_version(conn)
    if current is not None and version.lstrip("v") in current:
        return False
    asset = greptime_asset(version, _arch(conn))
    data: bytes | None = None
    url = expected = ""
    if tarball is not None:
        checksum_file = Path(f"{tarball}.sha256sum")
        expected = read_checksum_file(checksum_file)
        try:
            data = tarball.read_bytes()
        except OSError as exc:
            raise BadInputError(f"{tarball}: cannot read: {exc.strerror}") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise RuntimeFailure(
                f"{tarball}: sha256 {actual} does not match {checksum_file} ({expected}); nothing installed"
            )
    else:
        url = f"https://github.com/GreptimeTeam/greptimedb/releases/download/{version}/{asset}.tar.gz"
    run_root_script(
        conn, "installing GreptimeDB", _INSTALL_SCRIPT, version, asset, expected, url, GREPTIME_BIN, stdin=data
    )
    return True


_PREPARE_SCRIPT = r"""
set -eu
refuse() { echo "logstack: $1; $2 is not created" >&2; exit 4; }
# Every directory above the data (and backup) directory must be root's and writable by root alone, and
# none a link: otherwise a local user could swap a parent and have install -d hand another directory to
# greptime.
for dir in "$@"; do
    [ ! -L "$dir" ] || refuse "$dir is a symbolic link" "$dir"
    parent=${dir%/*}
    while [ -n "$parent" ]; do
        if [ -e "$parent" ]; then
            [ ! -L "$parent" ] || refuse "$parent is a symbolic link" "$dir"
            [ "$(stat -c %u -- "$parent")" = 0 ] || refuse "$parent is not owned by root" "$dir"
            [ $((0$(stat -c %a -- "$parent") & 022)) = 0 ] || refuse "$parent is writable by others than root" "$dir"
        fi
        parent=${parent%/*}
    done
done
data=$1
id -u greptime >/dev/null 2>&1 || useradd --system --user-group --no-create-home \
    --home-dir "$data" --shell /usr/sbin/nologin greptime
install -d -o greptime -g greptime -m 0750 -- "$data" "$data/wal" "$data/logs"
if [ $# -ge 2 ]; then
    # an existing backup directory must be greptime's already: install -d would hand over anything else
    if [ -e "$2" ] && [ "$(stat -c %U -- "$2")" != greptime ]; then
        refuse "$2 exists and is not the greptime user's (chown it, or name a new directory)" "$2"
    fi
    install -d -o greptime -g greptime -m 0750 -- "$2"
fi
install -d -m 0755 /etc/greptime /etc/logstack
"""


def prepare_system(conn: Connection, data_dir: str, backup_dir: str | None = None) -> None:
    conn.run(shell_command(_PREPARE_SCRIPT, data_dir, *([backup_dir] if backup_dir else [])))


def ensure_server_certificate(inventory: Inventory, pki: PKI, passphrase: bytes | None) -> bool:
    """Issue the server certificate when it is missing or its names no longer match the inventory."""
    if pki.holds_current(SERVER, inventory.server):
        return False
    pki.issue_server(inventory, passphrase)
    return True


@dataclass
class _ServerRun:
    """One init-server run on the server: what it installs before the files, and checks after them."""

    inventory: Inventory
    secrets: Secrets
    files: list[RenderedFile]
    result: ServerResult
    dry_run: bool
    no_install: bool
    greptime_tarball: Path | None
    wheels: Path | None
    fresh: list[str] = field(default_factory=list)
    packages: Path | None = None  # Vector package files (`logstack packages`) instead of the repository

    def install(self, conn: Connection) -> None:
        server, steps = self.inventory.server, self.result.steps
        if server.store.type == "standalone":
            if server.manage_packages and install_greptime(conn, server.greptimedb_version, self.greptime_tarball):
                steps.append(f"installed GreptimeDB {server.greptimedb_version}")
            backups = server.backup.directory if server.backup and not server.backup.s3 else None
            prepare_system(conn, server.data_dir, backups)
        else:
            conn.run("install -d -m 0755 /etc/logstack")
        packages = self.packages
        if server.manage_packages and (
            done := ensure_vector(conn, "server", self.inventory, self.no_install, packages)
        ):
            steps.append(done)
        installed = install_logstack(conn, self.wheels, dry_run=False)
        if installed:
            steps.append(installed)
            self.fresh.append(installed)

    def check(self, conn: Connection, deployed: HostResult) -> None:
        assert deployed.plan is not None
        server, result = self.inventory.server, self.result

        def api_as(user: str) -> GreptimeHTTP:
            return store_api(conn, self.inventory, user, self.secrets.db_password(user))

        if self.dry_run:
            result.steps += _planned(conn, api_as, server, self.wheels)
            return
        if deployed.plan.changed:
            result.steps.append(deployed.plan.summary())
        deployed.reason = deployed.plan.summary()
        result.steps += create_schema(api_as, self.files, server)
        result.checks.append(self_test(api_as, server))
        result.checks.append(_vector_listening(conn, server))
        if self.fresh or deployed.plan.changed:  # a new logstack or new units: the timer's next run is checked now
            result.checks.append(first_run(conn, self.inventory.spec.service_manager))


def init_server(
    inventory: Inventory,
    *,
    dry_run: bool = False,
    accept_new: bool = False,
    no_install: bool = False,
    greptime_tarball: Path | None = None,
    passphrase: bytes | None = None,
    verify_timeout: float = 30.0,
    wheels: Path | None = None,
    packages: Path | None = None,
) -> ServerResult:
    """Install and configure the store and the receivers; a second run changes nothing."""
    result = ServerResult()
    secrets: Secrets = load_secrets(secrets_path(inventory.site_dir))
    pki = PKI.for_inventory(inventory)
    if not dry_run:
        result.steps += _ensure_pki(inventory, pki, passphrase)
        result.steps += ensure_receiver_certificates(inventory, pki, passphrase)
    ensure_keys(inventory.site_dir, [], dt.datetime.now(dt.UTC))  # the seal key the analysis timer seals with
    rendered = render_site(inventory, secrets=secrets, pki=pki, include_keys=True, hosts=[], server=True)
    files = [f for f in rendered if f.machine == SERVER_MACHINE]
    run = _ServerRun(
        inventory, secrets, files, result, dry_run, no_install, greptime_tarball, wheels, packages=packages
    )
    options = DeployOptions.for_site(
        inventory,
        dry_run=dry_run,
        accept_new=accept_new,
        verify_timeout=verify_timeout,
        secrets=(
            *secrets.db_passwords.values(),
            *(v for entry in secrets.alerts.values() for v in entry.values()),
            *secrets.store.values(),
            *secrets.backup.values(),
        ),
        packages_dir=packages,
    )
    target = server_target(inventory)
    result.deploy = deploy_machine(target, lambda facts: files, options, before=run.install, after=run.check)
    # every other receiver, each on its own: one that fails never stops the others
    result.receivers = deploy_receivers(inventory, rendered, options, no_install)
    if result.deploy.error is not None:
        raise result.deploy.error
    result.changed = bool(result.steps)
    return result


def _vector_listening(conn: Connection, server: ServerSpec) -> str:
    listen = probe_address(server.listen_address)
    conn.open_forward(listen, server.vector_port).close()
    return f"GreptimeDB healthy; Vector listening on {listen}:{server.vector_port}"


def _ensure_pki(inventory: Inventory, pki: PKI, passphrase: bytes | None) -> list[str]:
    steps = []
    if pki.ensure_ca(passphrase)[1]:
        steps.append("created the site CA")
    if ensure_server_certificate(inventory, pki, passphrase):
        steps.append("issued the server certificate")
    return steps


def _planned(conn: Connection, api_as: Api, server: ServerSpec, wheels: Path | None) -> list[str]:
    """What a run would change in the database (when it can be read already) and in logstack's install."""
    steps: list[str] = []
    with contextlib.suppress(LogstackError):
        steps += retention(api_as("admin"), server, False)
    planned = install_logstack(conn, wheels, dry_run=True)
    return [*steps, planned] if planned else steps


def deploy_receivers(
    inventory: Inventory, rendered: list[RenderedFile], options: DeployOptions, no_install: bool
) -> list[HostResult]:
    """Each receiver: Vector present, its files deployed, Vector restarted and checked, as on the server."""
    results = []
    for spec in inventory.server.receivers:
        files = [f for f in rendered if f.machine == receiver_key(spec.name)]
        install, listening = receiver_hooks(inventory, spec, options.dry_run, no_install, options.packages_dir)
        results.append(
            deploy_machine(receiver_target(spec), lambda facts, f=files: f, options, before=install, after=listening)
        )
    return results
