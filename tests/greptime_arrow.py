"""GreptimeDB's HTTP SQL API answering in Arrow (GreptimeDB cannot run here), over MariaDB: `arrow_answer`, which
the site's HTTP stand-in (tests/greptime_stub.py) gives too, and `ArrowStandIn`, the same answers on a port of
its own for tests that set up no site.

It does what GreptimeDB v1.1.4 does for `logstack analyze --db-http`, and nothing more:
- only `POST /v1/sql` with `db` and `format=arrow` in the query and the statement in the form field `sql`
  (src/servers/src/http/handler.rs `sql`, `SqlQuery`); the user and password of HTTP Basic authentication are
  the database's own (here: MariaDB's);
- the answer is one Arrow IPC stream, `Content-Type: application/arrow`, `x-greptime-format: arrow`, written
  in record batches (src/servers/src/http/result/arrow_result.rs `write_arrow_bytes`);
- columns are typed as the rendered schema.sql declares them: STRING is Utf8, TIMESTAMP(n) a Timestamp of that
  precision without a zone (src/datatypes/src/types/string_type.rs, timestamp_type.rs); a column the schema does
  not name is a string (what the identity pipeline adds);
- a failed statement: `{"code", "error", "execution_time_ms"}` with HTTP 400 (error_result.rs);
- the query's time zone from `x-greptime-timezone` (src/servers/src/http/authorize.rs `extract_timezone`).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pyarrow as pa
import pymysql

BATCH = 4096  # rows a record batch holds (GreptimeDB's scans give several)
_UNITS = {"0": "s", "3": "ms", "6": "us", "9": "ns"}


def schema_types(schema_sql: str, table: str) -> dict[str, pa.DataType]:
    """The Arrow type of each column of `table` as the rendered schema.sql creates it."""
    found = re.search(rf"CREATE TABLE IF NOT EXISTS `[^`]+`\.`{re.escape(table)}` \((.*?)\n\) ENGINE", schema_sql, re.S)
    assert found is not None, f"schema.sql creates no table {table}"
    types: dict[str, pa.DataType] = {}
    for name, kind in re.findall(r"^\s*`([^`]+)` ([A-Z]+(?:\(\d\))?)", found.group(1), re.M):
        if kind.startswith("TIMESTAMP"):
            types[name] = pa.timestamp(_UNITS[kind[10:11] or "3"])
        elif kind == "STRING":
            types[name] = pa.utf8()
        elif kind == "BIGINT":
            types[name] = pa.int64()
        else:
            raise AssertionError(f"the stand-in knows no {kind}")
    return types


class ArrowStandIn:
    """The HTTP API on (host, port), its rows MariaDB's on `mysql_port`; `requests` holds (path, headers, sql)."""

    def __init__(
        self, host: str, port: int, mysql_port: int, types: dict[str, pa.DataType], replay: bool = False
    ) -> None:
        self.requests: list[tuple[str, dict[str, str], str]] = []
        self.types = types
        # replay: an answer given once is given again from memory (bench/: what logstack spends reading it,
        # without the stand-in's own time, which is MariaDB's and Python's, not GreptimeDB's)
        self.answers: dict[tuple[str, str], tuple[int, bytes, str]] | None = {} if replay else None
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                stand_in.answer(self, mysql_port, body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, handler: BaseHTTPRequestHandler, mysql_port: int, body: str) -> None:
        sql = dict(urllib.parse.parse_qsl(body)).get("sql", "")
        self.requests.append((handler.path, dict(handler.headers.items()), sql))
        if self.answers is None:
            return reply(handler, *arrow_answer(handler, sql, mysql_port, self.types))
        key = (handler.path, sql)
        if key not in self.answers:
            self.answers[key] = arrow_answer(handler, sql, mysql_port, self.types)
        reply(handler, *self.answers[key])


def arrow_answer(
    handler: BaseHTTPRequestHandler, sql: str, mysql_port: int, types: dict[str, pa.DataType]
) -> tuple[int, bytes, str]:
    """GreptimeDB's answer to `POST /v1/sql?format=arrow` (status, body, content type), the statement run by
    MariaDB as the request's user."""
    url = urllib.parse.urlsplit(handler.path)
    query = dict(urllib.parse.parse_qsl(url.query))
    if url.path != "/v1/sql" or query.get("format") != "arrow":
        return 400, _error(1004, "the stand-in answers only POST /v1/sql?format=arrow"), "application/json"
    user, password = _basic(handler.headers.get("Authorization", ""))
    try:
        conn = pymysql.connect(
            host="127.0.0.1", port=mysql_port, user=user, password=password, database=query.get("db")
        )
    except pymysql.MySQLError as exc:
        return 401, _error(7000, str(exc)), "application/json"
    try:
        with conn, conn.cursor() as cur:
            zone = handler.headers.get("x-greptime-timezone")
            if zone:
                cur.execute("SET time_zone = %s", (zone,))
            cur.execute(sql)
            names = [d[0] for d in cur.description or ()]
            rows = cur.fetchall()
    except pymysql.MySQLError as exc:
        return 400, _error(1004, str(exc)), "application/json"
    return 200, arrow_stream(names, list(rows), types), "application/arrow"


def arrow_stream(names: list[str], rows: list[tuple[Any, ...]], types: dict[str, pa.DataType]) -> bytes:
    """The rows as GreptimeDB writes them: one IPC stream, BATCH rows a record batch."""
    fields = [pa.field(n, types.get(n, pa.utf8()), nullable=n != "greptime_timestamp") for n in names]
    schema = pa.schema(fields)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, schema) as writer:
        for at in range(0, len(rows), BATCH):
            part = rows[at : at + BATCH]
            columns = [[row[i] for row in part] for i in range(len(names))]
            writer.write_batch(pa.record_batch(columns, schema=schema))
    return sink.getvalue()


def _basic(header: str) -> tuple[str, str]:
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        scheme, value = header.split(" ", 1)
        if scheme.lower() == "basic":
            user, _, password = base64.b64decode(value).decode().partition(":")
            return user, password
    return "", ""


def _error(code: int, message: str) -> bytes:
    return json.dumps({"code": code, "error": message, "execution_time_ms": 0}).encode()


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes, kind: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", kind)
    if kind == "application/arrow":
        handler.send_header("x-greptime-format", "arrow")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@contextlib.contextmanager
def arrow_stand_in(
    host: str, port: int, mysql_port: int, types: dict[str, pa.DataType], replay: bool = False
) -> Iterator[ArrowStandIn]:
    stand_in = ArrowStandIn(host, port, mysql_port, types, replay)
    try:
        yield stand_in
    finally:
        stand_in.close()
