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
- the server ends a request after its `[http] timeout` unless the request's `x-greptime-timeout` says otherwise
  (src/servers/src/http/timeout.rs): logstack names its own read timeout, as the MySQL port has no such limit;
- STRING columns are Arrow Utf8 and TIMESTAMP(9) is Timestamp(Nanosecond, no zone)
  (src/datatypes/src/types/string_type.rs, timestamp_type.rs `as_arrow_type`).
"""

from __future__ import annotations

import datetime as dt
import http.client
import io
import json
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from logstack.base.deadline import DeadlineExceeded
from logstack.base.errors import BadInputError, RuntimeFailure
from logstack.base.redaction import scrub
from logstack.base.validation import s3_endpoint
from logstack.store.arrow_ipc import NotArrow, check_stream
from logstack.store.greptime import basic_auth, http_exchange

if TYPE_CHECKING:
    import polars as pl

MAX_ANSWER = 1 << 30  # one page's answer: 5000 rows of messages as long as the journal keeps (48 KB) fit


def http_endpoint(value: str) -> str:
    """An endpoint `--db-http` accepts: https://host[:port], or http:// on loopback (the password goes in
    every request), without a path, query or fragment."""
    shown = repr(value[:80]) if "@" not in value else "an endpoint with a user or password in it"  # not repeated
    try:
        if "?" in value or "#" in value:
            raise ValueError("an endpoint is scheme, host and port only, without a query or fragment")
        return s3_endpoint(value)
    except ValueError as exc:
        raise BadInputError(f"--db-http: {shown}: {exc}") from None


@dataclass(frozen=True)
class ArrowSQL:
    """One store's HTTP SQL API: `select` runs a query and gives its answer as a DataFrame."""

    endpoint: str  # as `http_endpoint` accepts it
    user: str
    password: str
    database: str
    tls: ssl.SSLContext | None  # an https:// endpoint's: what verifies it (None: http://)
    label: str  # names the store in errors
    timeout: float = 300.0  # a whole exchange (a page's query and answer)

    def select(self, sql: str, rows: int) -> pl.DataFrame:
        """The rows of one query that asks for at most `rows` (its columns as the store types them);
        `arrow_ipc.OtherColumns` when a column's type is not one read here."""
        status, content_type, body = self._post(sql)
        if status != 200:
            said = _error_text(body, (self.password, self.user + ":" + self.password))
            raise RuntimeFailure(f"database {self.label}: GreptimeDB HTTP {status}: {said}")
        if content_type != "application/arrow":
            raise RuntimeFailure(f"database {self.label}: GreptimeDB answered {content_type[:60]!r}, not Arrow")
        return decode(body, rows, self.label)

    def page(self, sql: str, params: tuple[Any, ...]) -> tuple[pl.DataFrame, int, dt.datetime | None]:
        """One keyset page: `sql` with `params` (times, then the row limit) written in; its rows, their count and
        the newest ingest time to the microsecond, as the MySQL port gives it (GreptimeDB keeps nanoseconds)."""
        import polars as pl

        literals = tuple(time_literal(p) if isinstance(p, dt.datetime) else str(int(p)) for p in params)
        table = self.select(sql % literals, params[-1])  # a time with a zone is refused there (`check_stream`)
        times = table.get_column("greptime_timestamp", default=None)
        if times is None or not isinstance(times.dtype, pl.Datetime):  # an answer of no rows names it too
            kind = "missing" if times is None else times.dtype
            raise RuntimeFailure(f"database {self.label}: greptime_timestamp came as {kind}, not a time")
        if times.null_count():  # GreptimeDB's time index holds no nulls
            raise RuntimeFailure(f"database {self.label}: greptime_timestamp came without a time")
        return table, len(table), times.cast(pl.Datetime("us"))[-1] if len(table) else None

    def _post(self, sql: str) -> tuple[int, str, bytes]:
        parts = urllib.parse.urlsplit(self.endpoint)
        address = (parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
        path = "/v1/sql?" + urllib.parse.urlencode({"db": self.database, "format": "arrow"})
        headers = {
            "Authorization": basic_auth(self.user, self.password),
            "Content-Type": "application/x-www-form-urlencoded",
            "x-greptime-timezone": "+00:00",
            # the server's own limit (standalone.toml's [http] timeout, 30 s) would end a slow page that the MySQL
            # port, which has none, reads: a request names its own (v1.1.4 src/servers/src/http/timeout.rs)
            "x-greptime-timeout": f"{max(1, int(self.timeout))}s",
        }
        request = ("POST", path, urllib.parse.urlencode({"sql": sql}).encode(), headers)
        try:
            status, kind, body = http_exchange(address, self.tls, self.timeout, request, MAX_ANSWER + 1)
        except DeadlineExceeded:
            raise RuntimeFailure(f"database {self.label}: GreptimeDB HTTP: no answer in {self.timeout:g} s") from None
        except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
            raise RuntimeFailure(f"database {self.label}: GreptimeDB HTTP: {exc or type(exc).__name__}") from None
        if len(body) > MAX_ANSWER:
            raise RuntimeFailure(f"database {self.label}: an answer of more than {MAX_ANSWER >> 20} MiB")
        return status, kind, body


def decode(body: bytes, rows: int, label: str) -> pl.DataFrame:
    """An Arrow answer of at most `rows` rows as a DataFrame, checked before polars makes it (`check_stream`);
    RuntimeFailure naming the store (`label`) if it does not read."""
    import polars as pl

    try:
        check_stream(body, rows)
    except NotArrow as exc:
        raise RuntimeFailure(f"database {label}: an Arrow answer that does not read: {exc}") from None
    try:
        return pl.read_ipc_stream(io.BytesIO(body))
    except (Exception, pl.exceptions.PanicException) as exc:  # a panic is a BaseException
        why = " ".join(str(exc).split())[:200]
        raise RuntimeFailure(f"database {label}: an Arrow answer that does not read: {why}") from None


def _error_text(body: bytes, secrets: tuple[str, ...]) -> str:
    """GreptimeDB's message from an error answer (or the start of whatever came), on one line, without the
    secrets (scrubbed as the store wrote them, and as a URL or JSON would quote them, before the text is folded
    or cut: a secret cut in two, or its spaces folded, would no longer be found)."""
    try:
        answer = json.loads(body)
        text = str(answer["error"]) if isinstance(answer, dict) and "error" in answer else body[:65536].decode()
    except (ValueError, UnicodeDecodeError):
        text = body[:65536].decode("utf-8", errors="replace")
    quoted = [form for s in secrets for form in (s, urllib.parse.quote(s, safe=""), json.dumps(s)[1:-1])]
    text = scrub(text, tuple(quoted))
    return " ".join(text.split())[:300] or "no message"


def time_literal(value: dt.datetime) -> str:
    """A naive UTC time as a statement's text (read as UTC: the query's zone is +00:00), to the microsecond."""
    return "'" + value.isoformat(sep=" ", timespec="microseconds") + "'"  # strftime writes year 50 as `50`
