"""SSH connections with strict host-key checking (paramiko)."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paramiko

from logstack.base import validation
from logstack.base.errors import BadInputError, LogstackError, RuntimeFailure
from logstack.connection.base import CONNECT_TIMEOUT, MAX_OUTPUT, Connection, HostKeyError, Target, UnreachableError

_known_hosts_lock = threading.Lock()


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style SHA256 fingerprint."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_name(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


def _append_known_host(known_hosts: Path, name: str, key: paramiko.PKey) -> None:
    """Pin `name key` as an OpenSSH known_hosts line (parallel enrolls share the file)."""
    with _known_hosts_lock:
        known_hosts.parent.mkdir(parents=True, exist_ok=True)
        with known_hosts.open("a", encoding="utf-8") as handle:
            handle.write(f"{name} {key.get_name()} {key.get_base64()}\n")


class _Policy(paramiko.MissingHostKeyPolicy):
    def __init__(self, target_name: str, known_hosts: Path, accept_new: bool) -> None:
        self.target_name = target_name
        self.known_hosts = known_hosts
        self.accept_new = accept_new

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if not self.accept_new:
            raise HostKeyError(
                f"{self.target_name}: unknown host key {key.get_name()} {fingerprint(key)} for {hostname}; "
                f"check it, then run `logstack trust-host {self.target_name}` (or pass --accept-new on first contact)"
            )
        _append_known_host(self.known_hosts, hostname, key)
        client.get_host_keys().add(hostname, key.get_name(), key)


def _port(value: object, what: str) -> int:
    """A TCP port from the inventory or ~/.ssh/config; anything else is this host's error, not a crash."""
    text = str(value).strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 5 and 1 <= int(text) <= 65535):
        raise BadInputError(f"{what} {text[:40]!r} is not a number from 1 to 65535")
    return int(text)


def parse_jump(spec: str, name: str) -> tuple[str | None, str, int | None]:
    """The first hop of a ProxyJump value as (user, host, port); a bad one is this host's error."""
    try:
        return validation.parse_jump(spec)
    except ValueError as exc:
        raise BadInputError(f"{name}: ProxyJump {exc}") from None


def resolve(target: Target) -> dict[str, Any]:
    """Connection parameters: inventory values first, then ~/.ssh/config, then ssh defaults."""
    config_path = Path(os.environ.get("LOGSTACK_SSH_CONFIG", "~/.ssh/config")).expanduser()
    conf: dict[str, Any] = {}
    if config_path.is_file():
        ssh_config = paramiko.SSHConfig.from_path(str(config_path))
        conf = dict(ssh_config.lookup(target.address))
    identity = [target.key] if target.key else list(conf.get("identityfile", []))
    return {
        "hostname": conf.get("hostname", target.address),
        "port": _port(target.port or conf.get("port", 22), f"{target.name}: port"),
        "username": target.user or conf.get("user") or os.environ.get("USER", "root"),
        "key_filenames": [str(Path(k).expanduser()) for k in identity],
        "proxy_jump": target.proxy_jump or conf.get("proxyjump"),
    }


class SSHConnection(Connection):
    """An open SSH connection to one target; `run` executes as root (through `sudo -n` when needed)."""

    def __init__(
        self, target: Target, client: paramiko.SSHClient, jump: paramiko.SSHClient | None, username: str
    ) -> None:
        self.target = target
        self.client = client
        self.jump = jump
        self._username = username

    @property
    def username(self) -> str:
        return self._username

    @property
    def needs_sudo(self) -> bool:
        return self._username != "root"

    def close(self) -> None:
        self.client.close()
        if self.jump is not None:
            self.jump.close()

    @contextmanager
    def file_reader(self) -> Iterator[paramiko.SFTPClient | None]:
        """SFTP as root (it starts no process on the target); None through sudo or without an SFTP subsystem."""
        if self.needs_sudo:
            yield None
            return
        try:
            sftp = self.client.open_sftp()
        except (OSError, paramiko.SSHException):
            yield None
            return
        try:
            yield sftp
        except paramiko.SSHException as exc:  # a channel that broke mid-read: callers know OSError only
            raise OSError(str(exc)) from None
        finally:
            sftp.close()

    def run(
        self, command: str, stdin: bytes | None = None, check: bool = True, timeout: float = 120.0
    ) -> tuple[int, bytes, bytes]:
        """Run a shell command as root; returns (exit status, stdout, stderr)."""
        command = self.sudo_command(command)
        try:
            stdin_f, stdout_f, stderr_f = self.client.exec_command(command, timeout=timeout)
            if stdin is not None:
                stdin_f.write(stdin)
                stdin_f.flush()
            stdin_f.channel.shutdown_write()
            # paramiko buffers stderr separately: no deadlock; a target cannot make logstack read for ever
            out = stdout_f.read(MAX_OUTPUT + 1)
            err = stderr_f.read(MAX_OUTPUT + 1)
            if len(out) > MAX_OUTPUT or len(err) > MAX_OUTPUT:
                raise RuntimeFailure(f"{self.target.name}: a remote command printed more than {MAX_OUTPUT} bytes")
            status = stdout_f.channel.recv_exit_status()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise RuntimeFailure(f"{self.target.name}: SSH command failed: {exc}") from None
        self.checked(command, status, err, check)
        return status, out, err

    def open_forward(self, host: str, port: int, timeout: float = 10.0) -> paramiko.Channel:
        """A direct-tcpip channel to host:port as seen from the target (an SSH port forward)."""
        try:
            return self.client.get_transport().open_channel(  # type: ignore[union-attr]
                "direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=timeout
            )
        except (paramiko.SSHException, OSError) as exc:
            raise RuntimeFailure(f"{self.target.name}: cannot reach {host}:{port} through SSH: {exc}") from None


def _load_host_keys(client: paramiko.SSHClient, known_hosts: Path) -> None:
    if known_hosts.exists():
        try:
            client.load_host_keys(str(known_hosts))
        except (OSError, paramiko.SSHException) as exc:
            raise HostKeyError(f"{known_hosts}: unreadable known_hosts file: {exc}") from None


def _connect_jump(
    target: Target, params: dict[str, Any], known_hosts: Path, accept_new: bool, timeout: float, retries: int
) -> SSHConnection:
    """The connection to the first ProxyJump hop."""
    user, host, port = parse_jump(str(params["proxy_jump"]), target.name)
    # The bastion gets the target's identity unless ~/.ssh/config names one for it.
    jump = Target(
        name=f"{target.name} (jump {host})",
        address=host,
        port=port,
        user=user,
        key=target.key or (params["key_filenames"][0] if params["key_filenames"] else None),
    )
    return open_ssh(jump, known_hosts, accept_new, timeout, retries)


def _changed_key(target: Target, exc: paramiko.BadHostKeyException, known_hosts: Path) -> HostKeyError:
    return HostKeyError(
        f"{target.name}: HOST KEY CHANGED for {exc.hostname}: expected {fingerprint(exc.expected_key)}, "
        f"got {fingerprint(exc.key)}. Refusing to connect: this may be an attack. If the host was "
        f"reinstalled, remove its line from {known_hosts} and run `logstack trust-host {target.name}`"
    )


def open_ssh(target: Target, known_hosts: Path, accept_new: bool, timeout: float, retries: int) -> SSHConnection:
    """Open a connection with strict host-key checking; unknown and changed keys are refused."""
    params = resolve(target)
    jump_client: paramiko.SSHClient | None = None
    sock: Any = None
    if params["proxy_jump"]:
        jump_conn = _connect_jump(target, params, known_hosts, accept_new, timeout, retries)
        jump_client = jump_conn.client
        sock = jump_conn.open_forward(params["hostname"], params["port"], timeout)
    last: Exception | None = None
    for attempt in range(retries + 1):
        client = paramiko.SSHClient()
        _load_host_keys(client, known_hosts)
        client.set_missing_host_key_policy(_Policy(target.name, known_hosts, accept_new))
        try:
            client.connect(
                params["hostname"],
                port=params["port"],
                username=params["username"],
                key_filename=params["key_filenames"] or None,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                sock=sock,
                allow_agent=True,
                look_for_keys=not params["key_filenames"],
            )
            return SSHConnection(target, client, jump_client, params["username"])
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise _changed_key(target, exc, known_hosts) from None
        except LogstackError:
            client.close()
            raise
        except paramiko.AuthenticationException as exc:
            client.close()
            raise RuntimeFailure(f"{target.name}: SSH authentication failed as {params['username']}: {exc}") from None
        except (TimeoutError, OSError, paramiko.SSHException, EOFError) as exc:
            client.close()
            if "authentication" in str(exc).lower():  # e.g. no key offered: not a network problem
                raise RuntimeFailure(
                    f"{target.name}: SSH authentication failed as {params['username']}: {exc}"
                ) from None
            last = exc
            if sock is not None or attempt == retries:
                break
            time.sleep(0.5 * (attempt + 1))
    raise UnreachableError(
        f"{target.name}: unreachable at {params['hostname']}:{params['port']}: {last or 'connection failed'}"
    )


def scan_host_key(target: Target, timeout: float = CONNECT_TIMEOUT) -> tuple[str, paramiko.PKey]:
    """Fetch the host key a target presents (for `trust-host`); returns (known_hosts name, key)."""
    params = resolve(target)
    try:
        sock = socket.create_connection((params["hostname"], params["port"]), timeout=timeout)
    except OSError as exc:
        raise UnreachableError(f"{target.name}: unreachable at {params['hostname']}:{params['port']}: {exc}") from None
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
    except (paramiko.SSHException, EOFError) as exc:
        raise RuntimeFailure(f"{target.name}: SSH handshake failed: {exc}") from None
    finally:
        transport.close()
    return known_hosts_name(params["hostname"], params["port"]), key


def pin_host_key(known_hosts: Path, name: str, key: paramiko.PKey) -> bool:
    """Add `name key` to known_hosts; False when it is already there. A different key is refused."""
    keys = paramiko.HostKeys()
    if known_hosts.exists():
        keys.load(str(known_hosts))
    existing = keys.lookup(name)
    if existing is not None and key.get_name() in existing:
        if existing[key.get_name()].asbytes() == key.asbytes():
            return False
        raise HostKeyError(
            f"{name}: {known_hosts} already pins a different {key.get_name()} key; "
            "remove that line first if the host was really reinstalled"
        )
    _append_known_host(known_hosts, name, key)
    return True
