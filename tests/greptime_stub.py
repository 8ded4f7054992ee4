"""The HTTP stand-in of a site: GreptimeDB's HTTP API (GreptimeDB cannot run here), recording every request; its
queries in Arrow are answered by tests/greptime_arrow.py's `arrow_answer`.

It answers the statements logstack sends as GreptimeDB v1.1.4 does, and nothing more:
- POST /v1/sql answers `{"output": [...]}`, or an error `{"code", "error"}` with HTTP 400 for
  InvalidArguments (src/servers/src/http/result/error_result.rs, src/servers/src/error.rs);
- CREATE DATABASE IF NOT EXISTS ignores its options when the database exists
  (src/operator/src/statement/ddl.rs); ALTER DATABASE ... SET 'ttl'='...' changes it
  (src/sql/src/parsers/alter_parser.rs);
- information_schema.schemata shows options as `'ttl'='<humantime>'` plus a newline
  (src/common/meta/src/key/schema_name.rs, src/common/time/src/ttl.rs);
- the statements of backups and restores, as tests/greptime_copy.py describes;
- DELETE on an append-mode table: 1004 "Invalid request to region, reason: DELETE is not allowed under
  append mode" (src/mito2/src/worker/handle_write.rs; tests/cases/standalone/common/insert/append_mode.result).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from tests.greptime_copy import copy_answer

# humantime's units and its Display order (years, months, days, h, m, s)
_UNITS = {
    **dict.fromkeys(("y", "year", "years"), 31_557_600),
    **dict.fromkeys(("M", "month", "months"), 2_630_016),
    **dict.fromkeys(("w", "week", "weeks"), 604_800),
    **dict.fromkeys(("d", "day", "days"), 86_400),
    **dict.fromkeys(("h", "hour", "hours"), 3600),
    **dict.fromkeys(("m", "min", "minutes"), 60),
    "s": 1,
}


def humantime(text: str) -> str:
    """A TTL as GreptimeDB shows it: parsed, then formatted by humantime."""
    seconds = sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)\s*([A-Za-z]+)", text))
    parts = []
    for size, one, many in ((31_557_600, "year", "years"), (2_630_016, "month", "months"), (86_400, "day", "days")):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{one if count == 1 else many}")
    for size, unit in ((3600, "h"), (60, "m"), (1, "s")):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts) or "0s"


class FakeGreptime(BaseHTTPRequestHandler):
    """Records what logstack sends to GreptimeDB's HTTP API and answers like GreptimeDB."""

    requests: ClassVar[list[tuple[str, str, str | None, str | None]]] = []
    databases: ClassVar[dict[str, str]] = {}  # name -> ttl as shown
    tables: ClassVar[set[str]] = set()
    append_tables: ClassVar[set[str]] = set()
    rows: ClassVar[list[str]] = []  # the WHERE-able text of inserted rows
    table_rows: ClassVar[dict[str, list[str]]] = {}  # `db`.`table` -> its rows' text, in insert order
    creates: ClassVar[dict[str, str]] = {}
    current_db: ClassVar[str] = "public"
    mysql_port: ClassVar[int | None] = None  # the MariaDB whose rows `format=arrow` queries answer with
    denied: ClassVar[set[str]] = set()  # users who may only read  # `db`.`table` -> the CREATE TABLE it was made with
    lock = threading.Lock()

    def do_GET(self) -> None:
        self.requests.append(("GET", self.path, self.headers.get("Authorization"), None))
        self._reply(200, {})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        sql = urllib.parse.parse_qs(body).get("sql", [None])[0]
        self.requests.append(("POST", self.path, self.headers.get("Authorization"), sql))
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        user = ""
        with contextlib.suppress(ValueError, IndexError):
            user = base64.b64decode(self.headers.get("Authorization", "").split()[1]).decode().split(":")[0]
        if query.get("format") == ["arrow"]:
            self._arrow(query.get("db", ["public"])[0], sql or "")
            return
        with self.lock:
            FakeGreptime.current_db = query.get("db", ["public"])[0]  # the statement's default database
            if user in self.denied and not (sql or "").lstrip().upper().startswith(("SELECT", "SHOW")):
                # a user without write rights: 403, StatusCode::PermissionDenied (v1.1.4 src/auth/src/error.rs,
                # src/servers/src/error.rs status_code_to_http_status)
                answer = {"code": 7006, "error": "User is not authorized to perform this action"}
                self._reply(403, answer)
                return
            status, answer = self._answer(sql or "")
        self._reply(status, answer)

    def _answer(self, sql: str) -> tuple[int, dict]:
        if m := re.match(r"CREATE DATABASE IF NOT EXISTS `(\w+)` WITH \(ttl = '([^']*)'\)", sql):
            self.databases.setdefault(m[1], humantime(m[2]))
        elif m := re.match(r"ALTER DATABASE `(\w+)` SET 'ttl'='([^']*)'", sql):
            self.databases[m[1]] = humantime(m[2])
            return 200, {"output": [{"affectedrows": 0}]}
        elif m := re.match(r"SELECT options FROM information_schema.schemata WHERE schema_name = '(\w+)'", sql):
            found = [[f"'ttl'='{self.databases[m[1]]}'\n"]] if m[1] in self.databases else []
            return 200, {"output": [{"records": {"rows": found, "total_rows": len(found)}}]}
        elif m := re.match(r"CREATE DATABASE IF NOT EXISTS `(\w+)`$", sql):
            self.databases.setdefault(m[1], "forever")
        elif m := re.match(r"CREATE TABLE IF NOT EXISTS (`\w+`\.`\w+`)", sql):
            if m[1] not in self.tables:  # IF NOT EXISTS: an existing table keeps what it was
                self.tables.add(m[1])
                self.creates[m[1]] = sql
                if "append_mode = 'true'" in sql:
                    self.append_tables.add(m[1])
        elif m := re.match(r"INSERT INTO (`\w+`\.`\w+`) \(.*\) VALUES \((.*)\)", sql, re.S):
            self.rows.append(m[2])
            self.table_rows.setdefault(m[1], []).append(m[2])
        elif answer := copy_answer(self, sql, self.current_db):
            return answer
        elif m := re.match(
            r"SELECT count\(\*\) FROM `\w+`\.`\w+` "
            r"WHERE `logstack_host` = '([^']*)' AND `greptime_timestamp` = '([^']*)'",
            sql,
        ):
            count = sum(1 for row in self.rows if f"'{m[1]}'" in row and f"'{m[2]}'" in row)
            return 200, {"output": [{"records": {"rows": [[count]], "total_rows": 1}}]}
        elif (m := re.match(r"DELETE FROM (`\w+`\.`\w+`)", sql)) and m[1] in self.append_tables:
            reason = "Invalid request to region, reason: DELETE is not allowed under append mode"
            return 400, {"code": 1004, "error": reason, "execution_time_ms": 1}
        return 200, {"output": [{"affectedrows": 1}], "execution_time_ms": 1}

    def _arrow(self, db: str, sql: str) -> None:
        """A query answered in Arrow (tests/greptime_arrow.py), its rows MariaDB's (`mysql_port`), its columns
        typed as the CREATE TABLE logstack sent made them; a table never created: 4001 TableNotFound, HTTP 400
        (v1.1.4 src/servers/src/error.rs status_code_to_http_status)."""
        from tests.greptime_arrow import arrow_answer, reply, schema_types

        table = re.search(r" FROM `(\w+)`", sql)
        create = self.creates.get(f"`{db}`.`{table[1]}`") if table else None
        if create is None or self.mysql_port is None:
            error = {"code": 4001, "error": f"Table not found: {table[1] if table else sql[:40]}"}
            return self._reply(400, error)
        reply(self, *arrow_answer(self, sql, self.mysql_port, schema_types(create, table[1])))

    def _reply(self, status: int, answer: dict) -> None:
        _send(self, status, "application/json", json.dumps(answer).encode())

    def log_message(self, *args: object) -> None:
        pass


def _reset() -> None:
    """A fresh stand-in: no databases, tables, rows or requests."""
    FakeGreptime.requests = []
    FakeGreptime.databases = {}
    FakeGreptime.tables = set()
    FakeGreptime.append_tables = set()
    FakeGreptime.rows = []
    FakeGreptime.table_rows = {}
    FakeGreptime.creates = {}


@pytest.fixture
def greptime_api():
    _reset()
    with _serving(FakeGreptime, 4000, "the GreptimeDB stand-in"):
        yield FakeGreptime.requests


@contextlib.contextmanager
def external_greptime(cert: str, key: str, mysql_port: int) -> Iterator[tuple[int, list]]:
    """The same stand-in as an external store's frontend: HTTPS on a free port of 127.0.0.1 (a cluster's
    frontend answers as standalone does: v1.1.4 builds both with frontend::server::Services), its rows those
    of the MariaDB on `mysql_port` (its MySQL port)."""
    import ssl

    _reset()
    FakeGreptime.mysql_port = mysql_port
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGreptime)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], FakeGreptime.requests
    finally:
        server.shutdown()
        server.server_close()


class FakeExporter(BaseHTTPRequestHandler):
    """Vector's prometheus_exporter: GET /metrics answers the exposition text, anything else 404
    (vector v0.57.0 src/sinks/prometheus/exporter.rs)."""

    text: ClassVar[str] = ""

    def do_GET(self) -> None:
        found = self.path == "/metrics"
        _send(self, 200 if found else 404, "text/plain; version=0.0.4", self.text.encode() if found else b"")

    def log_message(self, *args: object) -> None:
        pass


def rendered_exporter(inventory: Path, machine: str = "server") -> tuple[str, int]:
    """The address the receiving machine's rendered Vector config serves its metrics at: a config without a
    prometheus_exporter sink fed by an internal_metrics source fails here."""
    from logstack.render.site_files import render_site
    from logstack.site.inventory import load_inventory

    (config,) = [
        yaml.safe_load(f.content)
        for f in render_site(load_inventory(inventory), hosts=[])
        if f.machine == machine and f.path == "/etc/vector/vector.yaml"
    ]
    exporters = [s for s in config["sinks"].values() if s["type"] == "prometheus_exporter"]
    assert len(exporters) == 1, f"{machine}: the receiver config renders no metrics exporter"
    (source,) = exporters[0]["inputs"]
    assert config["sources"][source]["type"] == "internal_metrics", "the exporter is not fed Vector's own metrics"
    host, _, port = exporters[0]["address"].rpartition(":")
    return host, int(port)


class MetricsStandIn:
    """Vector's exporter as the rendered receiver config places it: `start(inventory)` serves there."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self.stack = stack

    @property
    def text(self) -> str:
        return FakeExporter.text

    @text.setter
    def text(self, value: str) -> None:
        FakeExporter.text = value

    def start(self, inventory: Path) -> tuple[str, int]:
        host, port = rendered_exporter(inventory)
        assert host == "127.0.0.1", f"the exporter listens on {host}, not on loopback only"
        self.stack.enter_context(_serving(FakeExporter, port, "the Vector metrics stand-in"))
        return host, port


@pytest.fixture
def vector_metrics():
    """A stand-in for the receiver's exporter; set `.text` to what it serves, `start(inventory)` it."""
    FakeExporter.text = ""
    with contextlib.ExitStack() as stack:
        yield MetricsStandIn(stack)


def _send(handler: BaseHTTPRequestHandler, status: int, kind: str, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", kind)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@contextlib.contextmanager
def _serving(handler: type[BaseHTTPRequestHandler], port: int, what: str) -> Iterator[None]:
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        pytest.fail(f"127.0.0.1:{port} is taken ({exc}); {what} needs it")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
