"""GreptimeDB as logstack reaches it: the HTTP SQL API and the MySQL port on the server's loopback, through
SSH port forwards, and the database settings analysis and status share.

GreptimeDB's HTTP port has no TLS and unauthenticated endpoints, so it stays on the server's loopback;
logstack reaches it through the SSH connection it already has.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from logstack.base.ca_bundle import read_bundle, resolve
from logstack.base.clock import duration_seconds
from logstack.base.deadline import within_exchange
from logstack.base.errors import BadInputError, LogstackError, RuntimeFailure
from logstack.base.safe_read import KiB, read_file
from logstack.base.validation import https_url

if TYPE_CHECKING:
    from logstack.connection.base import Connection
    from logstack.site.inventory import Inventory

GREPTIME_HTTP = ("127.0.0.1", 4000)
MAX_ANSWER = 16 * 1024 * 1024  # what logstack reads of one HTTP answer from the server
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True)
class DatabaseConfig:
    """How to reach GreptimeDB's MySQL port."""

    host: str = "127.0.0.1"
    port: int = 4002
    user: str = "analyst"
    password: str = ""
    database: str = "vector"
    table: str = "logs"
    tls: bool = False  # verified TLS to the MySQL port (an external store)
    tls_ca: str | None = None  # the CA to verify with (default: the system's trust store)
    http: str | None = None  # the HTTP endpoint the rows are read over as Arrow (`arrow_http`), if any

    def __post_init__(self) -> None:
        for label, value in (("--db-name", self.database), ("--table", self.table)):
            if not _NAME_RE.fullmatch(value):
                raise BadInputError(f"{label}: {value!r} is not a plain SQL name")

    @property
    def label(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.database}.{self.table}"


def http_over_ssh(
    conn: Connection,
    address: tuple[str, int],
    method: str,
    path: str,
    body: bytes | None = None,
    headers: list[str] | None = None,
) -> tuple[int, bytes]:
    """One HTTP/1.0 request to `address` as the server sees it, through a fresh SSH forward."""
    channel = conn.open_forward(*address)
    head = [f"{method} {path} HTTP/1.0", f"Host: {address[0]}:{address[1]}", *(headers or []), "Connection: close"]
    if body is not None:
        head += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}"]
    chunks = []
    try:
        channel.settimeout(30)
        channel.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + (body or b""))
        size = 0
        while chunk := channel.recv(65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_ANSWER:
                raise RuntimeFailure(f"server: HTTP {address[1]}{path}: answer larger than {MAX_ANSWER} bytes")
    except OSError as exc:
        raise RuntimeFailure(f"server: HTTP {address[1]}{path}: {exc}") from None
    finally:
        channel.close()
    header, _, payload = b"".join(chunks).partition(b"\r\n\r\n")
    try:
        status = int(header.split(b" ", 2)[1])
    except (IndexError, ValueError):
        raise RuntimeFailure(f"server: HTTP {address[1]}{path}: no HTTP response") from None
    return status, payload


class GreptimeHTTP:
    """GreptimeDB's HTTP API on the server's loopback, reached through an SSH port forward."""

    def __init__(self, conn: Connection, user: str, password: str) -> None:
        self.conn = conn
        self.auth = basic_auth(user, password)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """One HTTP/1.0 request over a fresh forward; the response is read to EOF."""
        return http_over_ssh(self.conn, GREPTIME_HTTP, method, path, body, [f"Authorization: {self.auth}"])

    def wait_healthy(self, seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        last = ""
        while True:
            try:
                status, _body = self.request("GET", "/health")
                if status == 200:
                    return
                last = f"HTTP {status}"
            except RuntimeFailure as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise RuntimeFailure(f"server: GreptimeDB /health did not answer: {last}")
            time.sleep(1)

    def sql(self, statement: str, db: str | None = None) -> Any:
        """Run one statement; its JSON answer, or a RuntimeFailure with GreptimeDB's message."""
        status, answer = self.try_sql(statement, db)
        if status != 200:
            detail = str(answer.get("error", answer) if isinstance(answer, dict) else answer)[:300]
            raise RuntimeFailure(f"server: GreptimeDB rejected SQL ({status}): {detail}")
        return answer

    def try_sql(self, statement: str, db: str | None = None) -> tuple[int, Any]:
        """(HTTP status, JSON answer) of one statement: `{"output": [...]}` or `{"code": ..., "error": ...}`
        (v1.1.4 src/servers/src/http/result/error_result.rs)."""
        path = "/v1/sql" + (f"?db={urllib.parse.quote(db)}" if db else "")
        status, body = self.request("POST", path, urllib.parse.urlencode({"sql": statement}).encode())
        try:
            return status, json.loads(body or b"{}")
        except ValueError:
            raise RuntimeFailure(f"server: GreptimeDB answered SQL with non-JSON ({status})") from None

    def rows(self, statement: str) -> list[list[Any]]:
        """The rows of a query's first result."""
        answer = self.sql(statement)
        try:
            return list(answer["output"][0]["records"]["rows"])
        except (KeyError, IndexError, TypeError):
            raise RuntimeFailure("server: GreptimeDB answered a query without rows") from None


class DirectGreptimeHTTP(GreptimeHTTP):
    """The same API, reached directly: by logstack on the server itself (the backup timer, on loopback), or
    an external store's endpoint over verified TLS (`tls`: the context to verify it with)."""

    def __init__(
        self, host: str, port: int, user: str, password: str, tls: ssl.SSLContext | None = None, timeout: float = 30
    ) -> None:
        self.address = (host, port)
        self.tls = tls
        self.timeout = timeout  # a store that accepts and never answers cannot hold a command for ever
        self.auth = basic_auth(user, password)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        import http.client

        headers = {"Authorization": self.auth}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            status, _, answer = http_exchange(self.address, self.tls, self.timeout, (method, path, body, headers))
        except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
            raise RuntimeFailure(f"GreptimeDB at {self.address[0]}:{self.address[1]}: {exc}") from None
        return status, answer


def basic_auth(user: str, password: str) -> str:
    """The Authorization header of HTTP Basic authentication."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def http_exchange(
    address: tuple[str, int],
    tls: ssl.SSLContext | None,
    timeout: float,
    request: tuple[str, str, bytes | None, dict[str, str]],
    limit: int = 64 << 20,
) -> tuple[int, str, bytes]:
    """One request (method, path, body, headers) on a fresh connection (`tls`: over TLS verified with it), the
    whole exchange within `timeout`, not each read: its status, content type (lower case, without parameters)
    and at most `limit` bytes of its body. Its failures (OSError, DeadlineExceeded among them, http.client's,
    ssl's) are the caller's to name."""
    import http.client

    conn: http.client.HTTPConnection
    if tls is not None:
        conn = http.client.HTTPSConnection(*address, timeout=timeout, context=tls)
    else:
        conn = http.client.HTTPConnection(*address, timeout=timeout)
    method, path, body, headers = request

    def exchange() -> tuple[int, str, bytes]:
        conn.request(method, path, body=body, headers=headers)
        answer = conn.getresponse()
        kind = (answer.getheader("Content-Type") or "").split(";")[0].strip().lower()
        return answer.status, kind, answer.read(limit)

    return within_exchange(timeout, conn, exchange)


# humantime's units (GreptimeDB formats and parses TTLs with it: v1.1.4 src/common/time/src/ttl.rs)
def ttl_seconds(text: str) -> float | None:
    """A TTL as seconds (None: forever), whether written as in the inventory or as GreptimeDB shows it."""
    text = text.strip()
    if text in ("", "forever"):
        return None
    if text == "instant":
        return 0.0
    total = duration_seconds(text)
    if total is None:
        raise RuntimeFailure(f"server: cannot read the retention {text!r}")
    return total


class PortForward:
    """A local TCP port that tunnels each connection to host:port on the target (like ssh -L)."""

    def __init__(self, conn: Connection, host: str, port: int) -> None:
        self.conn, self.host, self.port = conn, host, port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.local_port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                channel = self.conn.open_forward(self.host, self.port)
            except LogstackError:
                client.close()
                continue
            for src, dst in ((client, channel), (channel, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: Any, dst: Any) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except (OSError, EOFError):  # paramiko raises EOFError once its transport has ended
            pass
        finally:
            for end in (src, dst):
                with contextlib.suppress(OSError, EOFError):
                    end.close()

    def close(self) -> None:
        self.listener.close()


PASSWORD_VARIABLE = "GREPTIMEDB_PASSWORD"  # the store's password, where no password file is given


def read_password(password_file: Path | None) -> str:
    if password_file is not None:
        try:
            raw = read_file(password_file, "password file", 64 * KiB, follow_links=True)
            return raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise BadInputError(f"{password_file}: password file: not UTF-8 text") from None
        except OSError as exc:
            raise BadInputError(f"{password_file}: cannot read password file: {exc.strerror}") from None
    value = os.environ.get(PASSWORD_VARIABLE)
    if value is None:
        raise BadInputError("set GREPTIMEDB_PASSWORD or pass --db-password-file (or use --journal FILE)")
    return value


def database_config(
    inv: Inventory | None,
    host: str | None,
    port: int | None,
    user: str | None,
    name: str | None,
    table: str | None,
    password_file: Path | None,
    tls: bool = False,
    tls_ca: Path | None = None,
) -> DatabaseConfig:
    """Connection settings from flags, then the inventory (an external store: its MySQL endpoint over TLS),
    then the defaults (127.0.0.1:4002, analyst, read-only)."""
    if inv is not None and inv.server.store.type == "external" and host is None:
        tls, ca = True, str(tls_ca) if tls_ca is not None else store_ca(inv)
    else:
        ca = str(tls_ca) if tls_ca is not None else None
    host, port = store_address(inv, host, port)
    return DatabaseConfig(
        host=host,
        port=port,
        user=user or "analyst",
        password=read_password(password_file),
        database=name or (inv.server.database if inv else "vector"),
        table=table or (inv.server.table if inv else "logs"),
        tls=tls or ca is not None,
        tls_ca=ca,
    )


def store_address(inv: Inventory | None, host: str | None, port: int | None) -> tuple[str, int]:
    """The MySQL endpoint the options and the inventory name (as database_config resolves it)."""
    external = inv.server.store if inv is not None and inv.server.store.type == "external" else None
    if external is not None and host is None:
        return external.mysql_host, port or external.mysql_port
    return host or "127.0.0.1", port or 4002


def store_ca(inventory: Inventory) -> str | None:
    """The external store's CA file on this machine (relative paths are the site's), if one is named."""
    ca_file = inventory.server.store.ca_file
    return str(resolve(str(ca_file), inventory.site_dir)) if ca_file else None


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Verified TLS (the system's trust store, or the certificates of `ca_file`); a file that is not a CA
    bundle is a one-line error."""
    if ca_file is None:
        return ssl.create_default_context()
    bundle = read_bundle(Path(ca_file), "the store's CA")
    try:
        return ssl.create_default_context(cadata=bundle.decode("ascii"))
    except ssl.SSLError as exc:
        raise BadInputError(f"{ca_file}: cannot use the store's CA: {exc}") from None


@contextlib.contextmanager
def site_database(conn: Connection, inventory: Inventory, password: str, db_port: int) -> Iterator[DatabaseConfig]:
    """The site's store as `analyst`: a standalone one through the server's SSH forward, an external one
    directly over TLS."""
    store = inventory.server.store
    if store.type == "external":
        settings = database_settings(inventory, store.mysql_port, password)
        yield replace(settings, host=store.mysql_host, tls=True, tls_ca=store_ca(inventory))
        return
    forward = PortForward(conn, "127.0.0.1", db_port)
    try:
        yield database_settings(inventory, forward.local_port, password)
    finally:
        forward.close()


def store_api(conn: Connection, inventory: Inventory, user: str, password: str) -> GreptimeHTTP:
    """The store's HTTP API as `user`: on the server's loopback through SSH, or the external endpoint."""
    store = inventory.server.store
    if store.type != "external":
        return GreptimeHTTP(conn, user, password)
    return endpoint_api(store.http_endpoint, store_ca(inventory), user, password, timeout=30)


def database_settings(inventory: Inventory, port: int, password: str) -> DatabaseConfig:
    """The site's database, as `analyst`, through a local forward on `port`."""
    return DatabaseConfig(
        host="127.0.0.1",
        port=port,
        user="analyst",
        password=password,
        database=inventory.server.database,
        table=inventory.server.table,
    )


def store_http(
    endpoint: str | None, ca_file: Path | None, host: str, port: int, user: str, password: str
) -> DirectGreptimeHTTP:
    """The store's API for a long statement (a COPY: an hour): an external store's https endpoint, verified,
    or GreptimeDB on this machine."""
    if endpoint is None:
        return DirectGreptimeHTTP(host, port, user, password, timeout=3600)
    try:
        https_url(endpoint)
    except ValueError as exc:
        raise BadInputError(f"--store-endpoint: {exc}") from None
    return endpoint_api(endpoint, str(ca_file) if ca_file else None, user, password, timeout=3600)


def endpoint_api(endpoint: str, ca_file: str | None, user: str, password: str, timeout: float) -> DirectGreptimeHTTP:
    """An external store's https API, its certificate verified (`ca_file`, else the system's trust store)."""
    parts = urllib.parse.urlsplit(endpoint)
    return DirectGreptimeHTTP(str(parts.hostname), parts.port or 443, user, password, tls_context(ca_file), timeout)
