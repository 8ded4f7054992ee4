"""Queries over GreptimeDB's HTTP SQL API, answered in Arrow IPC: the rows arrive as columns, decoded by polars
(Rust), not value by value in Python as the MySQL protocol's are.

What GreptimeDB v1.1.4 does, and all this relies on:
- `POST /v1/sql?db=DB&format=arrow` with the statement as the form field `sql` (src/servers/src/http/handler.rs
  `sql`, `SqlQuery`); the user's password as HTTP Basic authentication, as on every HTTP endpoint;
- a query's answer is one Arrow IPC *stream* (schema, record batches, end), the whole result in one body,
  uncompressed unless asked, `Content-Type: application/arrow` (src/servers/src/http/result/arrow_result.rs);
- a failed statement answers JSON `{"code", "error", "execution_time_ms"}` with an HTTP error status
  (src/servers/src/http/result/error_result.rs);
- a time written as text in a statement is read in the query's time zone, which the `x-greptime-timezone`
  header sets (src/query/src/optimizer/type_conversion.rs `string_to_timestamp_ms`,
  src/servers/src/http/authorize.rs `extract_timezone`): logstack sends +00:00, as the MySQL reader sets its
  session's zone;
- STRING columns are Arrow Utf8 and TIMESTAMP(9) is Timestamp(Nanosecond, no zone)
  (src/datatypes/src/types/string_type.rs, timestamp_type.rs `as_arrow_type`).
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import io
import json
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from logstack.base.deadline import DeadlineExceeded, within_exchange
from logstack.base.errors import BadInputError, RuntimeFailure
from logstack.base.validation import s3_endpoint

if TYPE_CHECKING:
    import polars as pl

MAX_ANSWER = 1 << 30  # one page's answer: 5000 rows of messages as long as the journal keeps (48 KB) fit


def http_endpoint(value: str) -> str:
    """An endpoint `--db-http` accepts: https://host[:port], or http:// on loopback (the password goes in
    every request), without a path."""
    try:
        return s3_endpoint(value)
    except ValueError as exc:
        raise BadInputError(f"--db-http: {value[:80]!r}: {exc}") from None


@dataclass(frozen=True)
class ArrowSQL:
    """One store's HTTP SQL API: `select` runs a query and gives its answer as a DataFrame."""

    endpoint: str  # as `http_endpoint` accepts it
    user: str
    password: str
    database: str
    tls: ssl.SSLContext | None  # verifies an https:// endpoint
    label: str  # names the store in errors
    timeout: float = 300.0  # a whole exchange (a page's query and answer)

    def select(self, sql: str) -> pl.DataFrame:
        """The rows of one query (its columns as the store types them)."""
        import polars as pl

        status, content_type, body = self._post(sql)
        if status != 200:
            raise RuntimeFailure(f"database {self.label}: GreptimeDB HTTP {status}: {_error_text(body)}")
        if content_type != "application/arrow":
            raise RuntimeFailure(f"database {self.label}: GreptimeDB answered {content_type[:60]!r}, not Arrow")
        try:
            return pl.read_ipc_stream(io.BytesIO(body))
        except Exception as exc:  # polars' errors have no common base that names a bad stream
            raise RuntimeFailure(f"database {self.label}: an Arrow answer that does not read: {exc}"[:300]) from None

    def _post(self, sql: str) -> tuple[int, str, bytes]:
        parts = urllib.parse.urlsplit(self.endpoint)
        host, port = parts.hostname or "", parts.port
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(host, port or 443, timeout=self.timeout, context=self.tls)
        else:
            conn = http.client.HTTPConnection(host, port or 80, timeout=self.timeout)
        path = "/v1/sql?" + urllib.parse.urlencode({"db": self.database, "format": "arrow"})
        secret = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        headers = {
            "Authorization": f"Basic {secret}",
            "Content-Type": "application/x-www-form-urlencoded",
            "x-greptime-timezone": "+00:00",
        }

        def exchange() -> tuple[int, str, bytes]:
            conn.request("POST", path, body=urllib.parse.urlencode({"sql": sql}).encode(), headers=headers)
            answer = conn.getresponse()
            body = answer.read(MAX_ANSWER + 1)
            if len(body) > MAX_ANSWER:
                raise RuntimeFailure(f"database {self.label}: an answer of more than {MAX_ANSWER >> 20} MiB")
            kind = (answer.getheader("Content-Type") or "").split(";")[0].strip().lower()
            return answer.status, kind, body

        try:
            return within_exchange(self.timeout, conn, exchange)
        except DeadlineExceeded:
            raise RuntimeFailure(f"database {self.label}: GreptimeDB HTTP: no answer in {self.timeout:g} s") from None
        except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
            raise RuntimeFailure(f"database {self.label}: GreptimeDB HTTP: {exc or type(exc).__name__}") from None


def _error_text(body: bytes) -> str:
    """GreptimeDB's message from an error answer (or the start of whatever came), on one line."""
    try:
        answer = json.loads(body)
        text = str(answer["error"]) if isinstance(answer, dict) and "error" in answer else body[:300].decode()
    except (ValueError, UnicodeDecodeError):
        text = body[:300].decode("utf-8", errors="replace")
    return " ".join(text.split())[:300] or "no message"


def time_literal(value: dt.datetime) -> str:
    """A naive UTC time as a statement's text (read as UTC: the query's zone is +00:00), to the microsecond."""
    return "'" + value.strftime("%Y-%m-%d %H:%M:%S.%f") + "'"
