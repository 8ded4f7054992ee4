"""A real MariaDB server for the tests: the MySQL-protocol stand-in for GreptimeDB's port 4002."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql

from tests.processes import spawn, stop_group

PASSWORD = "analyst-test-password"

# The logs table as the greptime_identity pipeline shapes it: string journald columns + time index.
COLUMNS = (
    "host",
    "logstack_host",
    "message",
    "SYSLOG_IDENTIFIER",
    "_PID",
    "_COMM",
    "_EXE",
    "_BOOT_ID",
    "_MACHINE_ID",
    "_AUDIT_LOGINUID",
    "__CURSOR",
    "__REALTIME_TIMESTAMP",
    "timestamp",
    "source_type",
    "logstack_config",
    "logstack_kid",
    "logstack_signed",
    "logstack_sig",
    "SYSLOG_PID",
    "_UID",
    "cmdb_id",
)


@dataclass
class MariaDB:
    port: int
    socket: Path
    datadir: Path
    process: subprocess.Popen[bytes]
    tls_cert: Path | None = None  # the server's certificate, its own CA (for 127.0.0.1)
    tls_key: Path | None = None

    def admin(self) -> pymysql.connections.Connection:
        return pymysql.connect(unix_socket=str(self.socket), user="root", autocommit=True, charset="utf8mb4")

    def create_logs(self, database: str, table: str = "logs") -> None:
        cols = ",\n".join(f"`{c}` TEXT NULL" for c in COLUMNS)
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
            cur.execute(f"CREATE DATABASE `{database}`")
            cur.execute(
                f"CREATE TABLE `{database}`.`{table}` (`greptime_timestamp` DATETIME(6) NOT NULL,\n{cols},\n"
                "KEY (`greptime_timestamp`)) DEFAULT CHARSET=utf8mb4"
            )
            cur.execute(f"GRANT SELECT ON `{database}`.* TO 'analyst'@'%'")

    def insert(self, database: str, rows: list[dict[str, object]], table: str = "logs") -> None:
        """Insert rows; a field the table lacks becomes a column first, as GreptimeDB's identity pipeline does."""
        if not rows:
            return
        names = ["greptime_timestamp", *COLUMNS]
        extra = sorted({k for row in rows for k in row} - set(names))
        if extra:
            with self.admin() as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
                    (database, table),
                )
                present = {r[0] for r in cur.fetchall()}
                for name in extra:
                    if name not in present:
                        cur.execute(f"ALTER TABLE `{database}`.`{table}` ADD COLUMN `{name}` TEXT NULL")
            names += extra
        sql = (
            f"INSERT INTO `{database}`.`{table}` ({', '.join(f'`{n}`' for n in names)}) "
            f"VALUES ({', '.join(['%s'] * len(names))})"
        )
        with self.admin() as conn, conn.cursor() as cur:
            cur.executemany(sql, [[row.get(n) for n in names] for row in rows])

    def stop(self) -> None:
        stop_group(self.process, timeout=20)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mariadb(base: Path) -> MariaDB:
    if shutil.which("mariadbd") is None and not Path("/usr/sbin/mariadbd").exists():
        raise RuntimeError("mariadb-server is not installed: run bash tests/setup.sh")
    datadir = base / "data"
    sock = base / "mysqld.sock"
    subprocess.run(
        [
            "mariadb-install-db",
            "--no-defaults",
            f"--datadir={datadir}",
            "--user=root",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    port = _free_port()
    # TLS offered, not required: an external store's MySQL endpoint is reached over verified TLS (a
    # certificate for 127.0.0.1 that is its own CA); the other tests connect as before
    from tests.alert_receivers import self_signed

    tls_cert, tls_key = self_signed(base)
    process = spawn(
        [
            "/usr/sbin/mariadbd",
            "--no-defaults",  # first, or mariadbd refuses it
            f"--ssl-cert={tls_cert}",
            f"--ssl-key={tls_key}",
            f"--datadir={datadir}",
            f"--socket={sock}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--user=root",
            # GreptimeDB answers timestamps over MySQL as naive UTC: so does the stand-in
            "--default-time-zone=+00:00",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=64M",
            f"--pid-file={base / 'mysqld.pid'}",
            f"--log-error={base / 'error.log'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            db = MariaDB(port, sock, datadir, process, tls_cert, tls_key)
            with db.admin() as conn, conn.cursor() as cur:
                cur.execute("CREATE USER IF NOT EXISTS 'analyst'@'%%' IDENTIFIED BY %s", (PASSWORD,))
            return db
        except pymysql.MySQLError:
            if process.poll() is not None or time.monotonic() > deadline:
                log = (base / "error.log").read_text() if (base / "error.log").exists() else ""
                stop_group(process)
                raise RuntimeError(f"MariaDB did not start: {log[-2000:]}") from None
            time.sleep(0.2)
