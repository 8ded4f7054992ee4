"""Real sshd test hosts: one sshd per 127.0.0.x address, each in its own mount namespace.

Inside a host's namespace /etc, /var/lib, /var/cache, /var/log, /usr/local/bin, /usr/bin and /opt are
overlays whose upper layers live in the host's temp directory, so the files logstack writes (and apt and
dpkg) are private to that host and visible to the test from outside. `systemctl` is a recording shim: the
only stand-in, since the hosts run no systemd.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests import standins
from tests.processes import spawn, stop_group


@dataclass
class SSHHost:
    name: str
    address: str
    port: int
    base: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def upper(self) -> Path:
        return self.base / "upper"

    def path(self, absolute: str) -> Path:
        """Where a file logstack wrote at `absolute` on this host lives on the test machine."""
        top, _, rest = absolute.lstrip("/").partition("/")
        if absolute.startswith("/usr/local/bin/"):
            return self.upper / "usr_local_bin" / absolute.removeprefix("/usr/local/bin/")
        if absolute.startswith("/var/lib/"):
            return self.upper / "var_lib" / absolute.removeprefix("/var/lib/")
        if absolute.startswith("/usr/bin/"):
            return self.upper / "usr_bin" / absolute.removeprefix("/usr/bin/")
        if absolute.startswith("/opt/"):
            return self.upper / "opt" / absolute.removeprefix("/opt/")
        assert top == "etc", absolute
        return self.upper / "etc" / rest

    @property
    def systemctl_all(self) -> list[str]:
        log = self.base / "systemctl.log"
        return log.read_text().splitlines() if log.exists() else []

    @property
    def systemctl_calls(self) -> list[str]:
        """The calls that change something (queries such as is-active and show left out)."""
        return [c for c in self.systemctl_all if c.split(" ", 1)[0] not in ("is-active", "show")]

    def host_key_line(self) -> str:
        pub = (self.base / "ssh_host_ed25519_key.pub").read_text().split()
        name = self.address if self.port == 22 else f"[{self.address}]:{self.port}"
        return f"{name} {pub[0]} {pub[1]}\n"

    def start(self) -> None:
        Path("/opt").mkdir(exist_ok=True)
        for layer in ("etc", "var_lib", "var_cache", "var_log", "usr_local_bin", "usr_bin", "opt"):
            (self.upper / layer).mkdir(parents=True, exist_ok=True)
            (self.base / "work" / layer).mkdir(parents=True, exist_ok=True)
        mounts = [
            ("/etc", "etc"),
            ("/var/lib", "var_lib"),
            ("/var/cache", "var_cache"),  # apt's caches, logstack's package and install work directories
            ("/var/log", "var_log"),  # apt's and dpkg's logs
            ("/usr/local/bin", "usr_local_bin"),
            ("/usr/bin", "usr_bin"),
            ("/opt", "opt"),
        ]
        script = ["set -e"]
        for target, layer in mounts:
            script.append(
                f"mount -t overlay overlay -o lowerdir={target},upperdir={self.upper / layer},"
                f"workdir={self.base / 'work' / layer} {target}"
            )
        script.append(f"mount --bind {self.base / 'systemctl'} /usr/bin/systemctl")
        # a host of its own has its own root home: the test machine's dotfiles (a shell init that starts
        # processes) would otherwise run in every remote command
        script.append("mount -t tmpfs -o mode=0700 tmpfs /root")
        script.append(f"exec /usr/sbin/sshd -D -e -f {self.base / 'sshd_config'}")
        # A PID namespace too: when unshare ends, its child (sshd, PID 1 there) is killed, and with it every
        # process of the namespace, so no listener or connection outlives the host.
        with (self.base / "sshd.log").open("wb") as log:
            self.process = spawn(
                ["unshare", "-m", "-p", "--kill-child", "--propagation", "private", "sh", "-c", "\n".join(script)],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.address, self.port), timeout=0.5) as sock:
                    if sock.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError(f"sshd for {self.name} did not start: {(self.base / 'sshd.log').read_text()[-1500:]}")

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process)
        self.process = None

    def kill_connections(self) -> None:
        """Kill every per-connection process below this host's sshd (a connection dying mid-deploy)."""
        if self.process is None:
            return
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry.name))
        # unshare forks sh, which execs sshd: the child of process.pid is the listener, its children connections
        stack = [pid for listener in children.get(self.process.pid, []) for pid in children.get(listener, [])]
        while stack:
            pid = stack.pop()
            stack.extend(children.get(pid, []))
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def make_client_key(base: Path) -> Path:
    key = base / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def make_host(
    base: Path,
    name: str,
    address: str,
    client_key: Path,
    port: int = 22,
    systemd: int = 252,
    vector: str | None = "0.57.0",
) -> SSHHost:
    """An sshd test host; `systemd` and `vector` are the versions its stand-ins report (None: no Vector)."""
    base.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / "ssh_host_ed25519_key")], check=True
    )
    # sshd reads a non-root user's keys as that user: keep them where every user can read them
    keys_dir = Path(tempfile.mkdtemp(prefix="logstack-test-keys-", dir="/run"))
    keys_dir.chmod(0o755)
    authorized = keys_dir / "authorized_keys"
    shutil.copy(client_key.with_suffix(".pub"), authorized)
    authorized.chmod(0o644)
    vector_log = base / "vector.log"
    (base / "systemctl").write_text(
        standins.SYSTEMCTL.replace("{log}", str(base / "systemctl.log"))
        .replace("{state}", str(base / "unit"))
        .replace("{vector_log}", str(vector_log))
    )
    (base / "systemctl").chmod(0o755)
    usr_bin = base / "upper" / "usr_bin"
    usr_bin.mkdir(parents=True, exist_ok=True)
    (usr_bin / "journalctl").write_text(
        standins.JOURNALCTL.replace("{systemd}", str(systemd)).replace("{log}", str(vector_log))
    )
    (usr_bin / "journalctl").chmod(0o755)
    if vector is not None:
        (usr_bin / "vector").write_text(standins.VECTOR.replace("{version}", vector))
        (usr_bin / "vector").chmod(0o755)
    (base / "sshd_config").write_text(
        f"ListenAddress {address}:{port}\n"
        f"HostKey {base / 'ssh_host_ed25519_key'}\n"
        f"AuthorizedKeysFile {authorized}\n"
        f"PidFile {base / 'sshd.pid'}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nStrictModes no\nMaxStartups 200\nMaxSessions 100\nLogLevel ERROR\n"
        "Subsystem sftp internal-sftp\n"
    )
    host = SSHHost(name=name, address=address, port=port, base=base)
    host.start()
    return host
