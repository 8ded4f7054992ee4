"""`init-server`: GreptimeDB and the receiving Vector on the central server, idempotently."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from logstack.deploy import DeployOptions, deploy_machine
from logstack.errors import BadInputError, RuntimeFailure
from logstack.files import RenderedFile
from logstack.greptime import GreptimeHTTP
from logstack.inventory import Inventory
from logstack.pki import PKI, SERVER
from logstack.render import render_site
from logstack.secrets_store import Secrets, load_secrets, secrets_path
from logstack.shell import shell_command
from logstack.ssh import Connection
from logstack.targets import HostResult, known_hosts_path, server_target

GREPTIME_BIN = "/usr/local/bin/greptime"
GREPTIME_HTTP = ("127.0.0.1", 4000)
VECTOR_APT = (
    "install -d -m 0755 /usr/share/keyrings && "
    "curl -fsSL https://keys.datadoghq.com/DATADOG_APT_KEY_CURRENT.public | "
    "gpg --dearmor --yes -o /usr/share/keyrings/datadog-archive-keyring.gpg && "
    "echo 'deb [signed-by=/usr/share/keyrings/datadog-archive-keyring.gpg] https://apt.vector.dev/ stable vector-0' "
    "> /etc/apt/sources.list.d/vector.list && apt-get update -qq && "
    "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq vector"
)
VECTOR_INSTRUCTIONS = (
    "Vector is not installed on the server. Install it from its signed apt repository, then run init-server "
    "again: curl -fsSL https://keys.datadoghq.com/DATADOG_APT_KEY_CURRENT.public | gpg --dearmor -o "
    "/usr/share/keyrings/datadog-archive-keyring.gpg; echo 'deb [signed-by=/usr/share/keyrings/"
    "datadog-archive-keyring.gpg] https://apt.vector.dev/ stable vector-0' > /etc/apt/sources.list.d/vector.list; "
    "apt-get update && apt-get install vector"
)


@dataclass
class ServerResult:
    """What init-server did."""

    steps: list[str] = field(default_factory=list)
    deploy: HostResult | None = None
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
    status, _, err = conn.run(
        shell_command(_INSTALL_SCRIPT, version, asset, expected, url, GREPTIME_BIN),
        stdin=data,
        check=False,
        timeout=900,
    )
    if status != 0:
        detail = err.decode(errors="replace").strip().splitlines()
        raise RuntimeFailure(f"server: installing GreptimeDB failed: {detail[-1] if detail else f'exit {status}'}")
    return True


def ensure_vector(conn: Connection, no_install: bool) -> bool:
    status, _, _ = conn.run("command -v vector", check=False)
    if status == 0:
        return False
    if no_install:
        raise RuntimeFailure(f"server: {VECTOR_INSTRUCTIONS}")
    conn.run(VECTOR_APT, timeout=900)
    return True


_PREPARE_SCRIPT = r"""
set -eu
data=$1
refuse() { echo "logstack: $1; the data directory $data is not created" >&2; exit 4; }
# Every directory above the data directory must be root's and writable by root alone, and none a link:
# otherwise a local user could swap a parent and have install -d hand another directory to greptime.
[ ! -L "$data" ] || refuse "$data is a symbolic link"
parent=${data%/*}
while [ -n "$parent" ]; do
    if [ -e "$parent" ]; then
        [ ! -L "$parent" ] || refuse "$parent is a symbolic link"
        [ "$(stat -c %u -- "$parent")" = 0 ] || refuse "$parent is not owned by root"
        [ $((0$(stat -c %a -- "$parent") & 022)) = 0 ] || refuse "$parent is writable by others than root"
    fi
    parent=${parent%/*}
done
id -u greptime >/dev/null 2>&1 || useradd --system --user-group --no-create-home \
    --home-dir "$data" --shell /usr/sbin/nologin greptime
install -d -o greptime -g greptime -m 0750 -- "$data" "$data/wal" "$data/logs"
install -d -m 0755 /etc/greptime /etc/logstack
"""


def prepare_system(conn: Connection, data_dir: str) -> None:
    conn.run(shell_command(_PREPARE_SCRIPT, data_dir))


def schema_statements(schema_sql: str) -> list[str]:
    """The rendered schema.sql as single statements (comments dropped)."""
    body = "\n".join(line for line in schema_sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def ensure_server_certificate(inventory: Inventory, pki: PKI, passphrase: bytes | None) -> bool:
    """Issue the server certificate when it is missing or its names no longer match the inventory."""
    server = inventory.server
    wanted = [server.fqdn, *(d for d in server.dns_names if d != server.fqdn), *server.ip_addresses]
    current = pki.registry.current(SERVER)
    if current is None or current.sans != wanted or pki.cert_pem(SERVER) is None or pki.key_pem(SERVER) is None:
        pki.issue_server(inventory, passphrase)
        return True
    return False


def init_server(
    inventory: Inventory,
    *,
    dry_run: bool = False,
    accept_new: bool = False,
    no_install: bool = False,
    greptime_tarball: Path | None = None,
    passphrase: bytes | None = None,
    verify_timeout: float = 30.0,
) -> ServerResult:
    """Install and configure GreptimeDB and the receiving Vector; a second run changes nothing."""
    result = ServerResult()
    secrets: Secrets = load_secrets(secrets_path(inventory.site_dir))
    pki = PKI.for_inventory(inventory)
    if not dry_run:
        _, created = pki.ensure_ca(passphrase)
        if created:
            result.steps.append("created the site CA")
        if ensure_server_certificate(inventory, pki, passphrase):
            result.steps.append("issued the server certificate")
    files = render_site(inventory, secrets=secrets, pki=pki, include_keys=True, hosts=[], server=True)
    server = inventory.server

    def install(conn: Connection) -> None:
        if server.manage_packages and install_greptime(conn, server.greptimedb_version, greptime_tarball):
            result.steps.append(f"installed GreptimeDB {server.greptimedb_version}")
        prepare_system(conn, server.data_dir)
        if server.manage_packages and ensure_vector(conn, no_install):
            result.steps.append("installed Vector from its apt repository")

    def check(conn: Connection, deployed: HostResult) -> None:
        assert deployed.plan is not None
        if deployed.plan.changed:
            result.steps.append(deployed.plan.summary())
        deployed.reason = deployed.plan.summary()
        create_schema(conn, secrets, files)
        listen = server.listen_address if server.listen_address not in ("0.0.0.0", "::") else "127.0.0.1"
        conn.open_forward(listen, server.vector_port).close()
        result.steps.append(f"GreptimeDB healthy; Vector listening on {listen}:{server.vector_port}")

    options = DeployOptions(
        known_hosts=known_hosts_path(inventory),
        site_dir=inventory.site_dir,
        dry_run=dry_run,
        accept_new=accept_new,
        service_manager=inventory.spec.service_manager,
        verify_timeout=verify_timeout,
        secrets=tuple(secrets.db_passwords.values()),
    )
    result.deploy = deploy_machine(server_target(inventory), lambda facts: files, options, before=install, after=check)
    if result.deploy.error is not None:
        raise result.deploy.error
    result.changed = any(not s.startswith("GreptimeDB healthy") for s in result.steps)
    return result


def create_schema(conn: Connection, secrets: Secrets, files: list[RenderedFile]) -> None:
    """Wait for GreptimeDB and run the rendered schema.sql through its HTTP API, as `admin`."""
    api = GreptimeHTTP(conn, "admin", secrets.db_password("admin"))
    api.wait_healthy()
    schema = next(f for f in files if f.path == "/etc/logstack/schema.sql").content.decode()
    for statement in schema_statements(schema):
        api.sql(statement)
