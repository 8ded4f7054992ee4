"""The rows read over GreptimeDB's HTTP API as Arrow (`analyze --db-http`) against the same rows read over MySQL:
the same lines, pages and keyset bounds, the same events; errors of the endpoint in one line. The stand-in
(tests/greptime_arrow.py) types its columns as the rendered schema.sql declares them."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import hmac
import io
import json
import re
import socket
from http.server import BaseHTTPRequestHandler

import polars as pl
import pyarrow as pa
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from logstack.base.errors import RuntimeFailure
from logstack.cli import app
from logstack.integrity.keyring import KeyRing
from logstack.integrity.signatures import Verifier, canonical
from logstack.render.site_files import render_site
from logstack.site.inventory import load_inventory
from logstack.store.arrow_http import decode, time_literal
from logstack.store.arrow_ipc import NotArrow, OtherColumns, check_stream
from logstack.store.greptime import DatabaseConfig
from logstack.store.reader import DatabaseSource
from tests.conftest import EXAMPLE
from tests.greptime_arrow import arrow_stand_in, schema_types
from tests.http_servers import on_free_port
from tests.mariadb import PASSWORD

RING = KeyRing(seal_key=b"s" * 32)
KEY = RING.mint("web1", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
BASE = dt.datetime(2026, 3, 1, 12, 0, 0)
FIXTURE = [HealthCheck.function_scoped_fixture]  # the fixtures are the module's: one store for every example


def _rendered(path: str, inventory=EXAMPLE) -> str:
    files = render_site(load_inventory(inventory))
    return next(f for f in files if f.path == path and f.machine == "server").content.decode()


@pytest.fixture(scope="module")
def stand_in(mariadb):
    types = schema_types(_rendered("/etc/logstack/schema.sql"), "logs")
    with arrow_stand_in("127.0.0.1", 0, mariadb.port, types) as served:
        yield served


def _endpoint(served) -> str:
    return f"http://127.0.0.1:{served.server.server_address[1]}"


def _row(n: int, stamp: dt.datetime, pid: int, copy_of: int | None = None, signed: bool = False) -> dict:
    entry = n if copy_of is None else copy_of
    row = {
        "greptime_timestamp": stamp,
        "__REALTIME_TIMESTAMP": str(1772366400000000 + entry * 1000),
        "__CURSOR": f"s=1;i={entry}",
        "message": f"Failed password for root from 203.0.113.{entry % 250} port {40000 + entry} ssh2",
        "host": "web1",
        "_MACHINE_ID": "m1",
        "_BOOT_ID": "b1",
        "_PID": str(pid),
        "SYSLOG_IDENTIFIER": "sshd",
        "_COMM": "sshd",
        "_EXE": "/usr/sbin/sshd",
    }
    if signed:
        row.update(logstack_host="web1", logstack_kid=KEY.kid, logstack_signed="")
        row["logstack_sig"] = hmac.new(KEY.key, canonical(row), "sha256").hexdigest() if n % 5 else "0" * 64
    return row


def _stream(table: pa.Table, chunk: int = 3, **options) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(**options)) as writer:
        writer.write_table(table, max_chunksize=chunk)
    return sink.getvalue()


@st.composite
def stored(draw: st.DrawFn) -> list[dict]:
    """Rows as a store holds them: ingest times from a few (pages end inside a run of one time), copies of
    earlier rows (a sender's retry) at the same or a later time, signed or not."""
    signed = draw(st.booleans())
    rows = []
    for n in range(draw(st.integers(0, 30))):
        stamp = BASE + dt.timedelta(microseconds=draw(st.sampled_from([0, 1, 1, 2, 999_999, 1_000_000])) * n)
        copy_of = draw(st.none() | st.integers(0, max(n - 1, 0))) if n and draw(st.integers(0, 4)) == 0 else None
        rows.append(_row(n, stamp, draw(st.sampled_from([10, 11])), copy_of, signed))
    return rows


def _frames(config: DatabaseConfig, page: int, window: tuple[int | None, int | None], signed: bool) -> pl.DataFrame:
    verifier = Verifier(RING) if signed else None
    with DatabaseSource(config, page_size=page, verifier=verifier) as db:
        got = list(db.frames(*window, size=1))
    return pl.concat(got) if got else pl.DataFrame()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, *FIXTURE])
@given(stored(), st.integers(1, 5), st.sampled_from([(None, None), (1, 2), (0, 1)]))
def test_rows_read_as_arrow_are_the_rows_read_over_mysql(mariadb, stand_in, rows, page, seconds):
    mariadb.create_logs("arrowdiff")
    mariadb.insert("arrowdiff", rows)
    base = int(BASE.replace(tzinfo=dt.UTC).timestamp() * 1_000_000)
    window = tuple(None if s is None else base + s * 1_000_000 for s in seconds)
    config = DatabaseConfig(port=mariadb.port, database="arrowdiff", password=PASSWORD)
    signed = any("logstack_sig" in row for row in rows)
    over_mysql = _frames(config, page, window, signed)
    before = len(stand_in.requests)
    over_http = _frames(dataclasses.replace(config, http=_endpoint(stand_in)), page, window, signed)
    assert over_http.to_dicts() == over_mysql.to_dicts()
    asked = stand_in.requests[before:]
    assert asked and all("format=arrow" in path and "db=arrowdiff" in path for path, _, _ in asked)
    assert all(headers["x-greptime-timezone"] == "+00:00" for _, headers, _ in asked)
    assert all(headers["x-greptime-timeout"] == "300s" for _, headers, _ in asked)  # the MySQL reader's


def _analyze(mariadb, *extra: str) -> tuple[int, str]:
    args = ["analyze", "--db-port", str(mariadb.port), "--db-name", "arrowcli", "--format", "jsonl", *extra]
    result = CliRunner().invoke(app, args, env={"GREPTIMEDB_PASSWORD": PASSWORD})
    return result.exit_code, result.output


def test_analyze_over_http_reports_what_it_reports_over_mysql(mariadb, stand_in):
    rows = [_row(n, BASE + dt.timedelta(seconds=n // 3), 10 + n % 4, signed=True) for n in range(60)]
    rows += [_row(60 + n, BASE + dt.timedelta(seconds=40), 20, copy_of=n) for n in range(5)]
    mariadb.create_logs("arrowcli")
    mariadb.insert("arrowcli", rows)
    code, over_mysql = _analyze(mariadb)
    before = len(stand_in.requests)
    code_http, over_http = _analyze(mariadb, "--db-http", _endpoint(stand_in))
    assert (code_http, over_http) == (code, over_mysql)
    events = [json.loads(line) for line in over_http.splitlines()]
    assert events and any(e["type"] == "brute_force" or e["outcome"] == "failure" for e in events)
    assert len(stand_in.requests) > before
    assert PASSWORD not in over_http


@pytest.mark.parametrize(
    ("endpoint", "said"),
    [
        ("ftp://127.0.0.1:4000", "--db-http: 'ftp://127.0.0.1:4000': must be https://host[:port]"),
        ("http://192.0.2.1:4000", "--db-http: 'http://192.0.2.1:4000': must be https://host[:port] (http:// only on"),
        ("http://127.0.0.1:4000/v1", "without a path"),
    ],
)
def test_an_endpoint_that_is_not_one_is_refused_before_any_connection(mariadb, endpoint, said):
    code, output = _analyze(mariadb, "--db-http", endpoint)
    assert code == 2
    assert said in output and len(output.strip().splitlines()) == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Answer(BaseHTTPRequestHandler):
    status, kind, body = 200, "application/arrow", b""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(self.status)
        self.send_header("Content-Type", self.kind)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    ("status", "kind", "body", "said"),
    [
        (200, "application/arrow", b"\xff\xff\xff\xffnot arrow", "an Arrow answer that does not read"),
        (200, "text/html", b"<html>", "GreptimeDB answered 'text/html', not Arrow"),
        (401, "application/json", b'{"code":7002,"error":"User not found, username: x"}', "HTTP 401: User not found"),
        (500, "text/plain", b"\n boom \n", "GreptimeDB HTTP 500: boom"),
    ],
)
def test_a_bad_answer_is_one_line_naming_the_store(mariadb, status, kind, body, said):
    mariadb.create_logs("arrowcli")
    mariadb.insert("arrowcli", [_row(1, BASE, 10)])
    with _served(body, status, kind) as endpoint:
        code, output = _analyze(mariadb, "--db-http", endpoint)
    assert code == 3, output
    assert said in output and "analyst@127.0.0.1" in output
    assert len(output.strip().splitlines()) == 1


@contextlib.contextmanager
def _served(body: bytes, status: int = 200, kind: str = "application/arrow"):
    """An endpoint that answers every request with `body`."""
    with on_free_port(type("Answer", (_Answer,), {"status": status, "kind": kind, "body": body})) as endpoint:
        yield endpoint


def _logs(rows: list[dict], **options) -> bytes:
    """An answer of the logs table's columns as GreptimeDB types them, holding `rows`."""
    types = schema_types(_rendered("/etc/logstack/schema.sql"), "logs")
    names = list(rows[0])
    return _stream(pa.Table.from_pylist(rows, pa.schema([(n, types.get(n, pa.utf8())) for n in names])), **options)


@pytest.mark.parametrize(
    ("body", "said"),
    [
        # a compressed answer (never asked for) may claim any number of rows: refused before it is decoded
        (_logs([_row(1, BASE, 10)], compression="zstd"), "a compressed record batch, which logstack does not ask for"),
        # rows past the end asked for: the paging would go on for ever
        (_logs([_row(1, BASE + dt.timedelta(days=400), 10)]), "the store answered rows other than those asked for"),
        (_logs([_row(1, BASE, 10), _row(2, None, 10)]), "greptime_timestamp came without a time"),
        # the columns asked for, even with no rows (GreptimeDB writes the schema whatever the rows)
        (_stream(pa.table({"message": pa.array([], pa.utf8())})), "greptime_timestamp came as missing, not a time"),
    ],
    ids=["compressed", "past the end", "a null time", "no time column"],
)
def test_an_answer_that_is_not_what_was_asked_for_is_one_line(mariadb, body, said):
    mariadb.create_logs("arrowcli")
    mariadb.insert("arrowcli", [_row(1, BASE, 10)])
    with _served(body) as endpoint:
        code, output = _analyze(mariadb, "--db-http", endpoint, "--until", "2026-03-02")
    assert code == 3, output
    assert said in output and len(output.strip().splitlines()) == 1


_BASIC = base64.b64encode(f"analyst:{PASSWORD}".encode()).decode()


@pytest.mark.parametrize(
    "said",
    [
        f"bad header Basic {_BASIC} for {PASSWORD}",
        f"{'x' * 290} Basic {_BASIC}",  # where the message is cut (300 characters)
        f"{'x' * 290} {PASSWORD}",
        f"sent {base64.urlsafe_b64encode(f'analyst:{PASSWORD}'.encode()).decode()}",
    ],
)
def test_an_error_that_quotes_the_request_does_not_show_the_password(mariadb, said):
    mariadb.create_logs("arrowcli")
    body = json.dumps({"code": 1004, "error": said}).encode()
    with _served(body, 400, "application/json") as endpoint:
        code, output = _analyze(mariadb, "--db-http", endpoint)
    assert code == 3 and "<se" in output  # the mark, or its start where the message is cut
    assert PASSWORD[8:14] not in output and _BASIC[:8] not in output  # "test-p", and "YW5hbHlz"


def test_an_endpoint_with_a_password_in_it_is_refused_without_repeating_it(mariadb):
    for endpoint in (
        "https://analyst:hunter2-secret@127.0.0.1:4000",
        "https://bob:hunter2?secret@127.0.0.1:4000",  # a password holding what ends a URL's host part
        "https://bob:hunter2/secret@127.0.0.1:4000",
        "https://bob:hunter2" + "x" * 90 + "@127.0.0.1:4000",  # its `@` past what an error repeats of a value
    ):
        code, output = _analyze(mariadb, "--db-http", endpoint)
        assert code == 2 and "hunter2" not in output, output
        assert "--db-http: an endpoint with a user or password in it: " in output
    for endpoint in ("http://127.0.0.1:4000/?x=1", "http://127.0.0.1:4000#f"):
        code, output = _analyze(mariadb, "--db-http", endpoint)
        assert code == 2 and "without a query or fragment" in output


def test_a_column_the_answer_cannot_carry_is_read_over_mysql(mariadb):
    """A column of a type polars does not read here (GreptimeDB's INTERVAL is Arrow's MonthDayNano): the read
    goes on over the MySQL port, and reports what it reports there."""
    rows = [_row(n, BASE + dt.timedelta(seconds=n), 10) for n in range(12)]
    mariadb.create_logs("arrowcli")
    mariadb.insert("arrowcli", rows)
    code, over_mysql = _analyze(mariadb)
    page = pa.table({"greptime_timestamp": pa.array([BASE], pa.timestamp("ns")), "x": [pa.MonthDayNano([1, 2, 3])]})
    with _served(_stream(page)) as endpoint:
        assert _analyze(mariadb, "--db-http", endpoint) == (code, over_mysql)
    assert over_mysql.count("\n") or over_mysql


def test_an_endpoint_that_does_not_answer_is_one_line(mariadb):
    mariadb.create_logs("arrowcli")
    mariadb.insert("arrowcli", [_row(1, BASE, 10)])
    code, output = _analyze(mariadb, "--db-http", f"http://127.0.0.1:{_closed_port()}")
    assert code == 3
    assert "GreptimeDB HTTP: [Errno 111] Connection refused" in output
    assert len(output.strip().splitlines()) == 1


def test_the_analysis_unit_reads_over_the_http_port_greptimedb_listens_on(tmp_path):
    """The address the rendered unit reads from is the one rendered standalone.toml serves (or the external
    store's endpoint), on the store the unit's MySQL options name."""
    unit = _rendered("/etc/systemd/system/logstack-analyze.service")
    toml = _rendered("/etc/greptime/standalone.toml")
    http = toml.split("[http]", 1)[1].split("addr = ", 1)[1].split("\n", 1)[0].strip('"')
    assert f" --db-http http://{http} " in unit and " --db-host 127.0.0.1 --db-port 4002 " in unit
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["server"]["store"] = {
        "type": "external",
        "http_endpoint": "https://store.example.com:4000",
        "mysql_host": "store.example.com",
        "mysql_port": 4002,
    }
    doc["server"]["backup"] = None
    external = tmp_path / "inventory.yaml"
    external.write_text(yaml.safe_dump(doc))
    unit = _rendered("/etc/systemd/system/logstack-analyze.service", external)
    assert " --db-http https://store.example.com:4000 " in unit and "--db-host store.example.com" in unit


def test_the_report_over_http_is_the_report_over_mysql(mariadb, stand_in, tmp_path):
    rows = [_row(n, BASE + dt.timedelta(seconds=n // 3), 10 + n % 4, signed=True) for n in range(40)]
    mariadb.create_logs("arrowcli")
    mariadb.insert("arrowcli", rows)
    pages = []
    for extra in ([], ["--db-http", _endpoint(stand_in)]):
        out = tmp_path / f"report{len(pages)}.html"
        args = ["report", "--db-port", str(mariadb.port), "--db-name", "arrowcli", "-o", str(out)]
        args += ["--since", "2026-03-01", "--until", "2026-03-02", *extra]
        before = len(stand_in.requests)
        result = CliRunner().invoke(app, args, env={"GREPTIMEDB_PASSWORD": PASSWORD})
        assert result.exit_code == 0, result.output
        assert (len(stand_in.requests) > before) == bool(extra)
        pages.append(out.read_text())
    generated = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")  # when each was made
    assert "<td><code>203.0.113.7</code></td>" in pages[0]  # a source address of the failed logins
    assert generated.sub("", pages[1]) == generated.sub("", pages[0])


# What an answer says of itself, checked before polars makes anything of it (store/arrow_ipc.py)
_PAGE = pa.table(
    {
        "greptime_timestamp": pa.array([1, 2, 3, 4, 5], pa.timestamp("ns")),
        "message": ["a", None, "c", "d", "e"],
        "n": pa.array([1, 2, None, 4, 5], pa.int64()),
        "b": pa.array([b"x", None, b"", b"y", b"z"], pa.binary()),
    }
)


@pytest.mark.parametrize(
    ("data", "rows", "refused"),
    [
        (_stream(_PAGE), 5, None),
        (_stream(_PAGE, use_legacy_format=True), 5, None),  # the stream format before Arrow 0.15
        (_stream(_PAGE.slice(0, 0)), 5, None),
        (_stream(_PAGE)[:-8], 5, None),  # without the end-of-stream marker
        (_stream(_PAGE), 4, (NotArrow, "more than the 4 rows asked for")),
        (_stream(_PAGE, compression="zstd"), 5, (NotArrow, "a compressed record batch")),
        (_stream(_PAGE, compression="lz4"), 5, (NotArrow, "a compressed record batch")),
        (_stream(_PAGE)[:-20], 5, (NotArrow, "longer than the answer")),
        (b"", 5, (NotArrow, "without a schema")),
        (_stream(pa.table({"x": pa.array([pa.MonthDayNano([1, 2, 3])])})), 5, (OtherColumns, "of Arrow type 11")),
        (_stream(pa.table({"x": pa.array(["a"]).dictionary_encode()})), 5, (OtherColumns, "'x'")),
        (_stream(pa.table({"x": [[1]]})), 5, (OtherColumns, "of Arrow type 12")),
        (_stream(pa.Table.from_arrays([pa.array(["a"]), pa.array(["b"])], ["x", "x"])), 5, (OtherColumns, "twice")),
        # every row's view may point at the same bytes: 5000 rows of one 8 MB string would be 5000 of them
        (_stream(pa.table({"x": pa.array(["a"], pa.string_view())})), 5, (OtherColumns, "of Arrow type 24")),
        (_stream(pa.table({"x": pa.array([b"a"], pa.binary_view())})), 5, (OtherColumns, "of Arrow type 23")),
        # polars spells out a zone's name to suggest another, seconds a megabyte; GreptimeDB's times have none
        (_stream(pa.table({"t": pa.array([1], pa.timestamp("ns", tz="+00:00"))})), 5, (NotArrow, "a time with a zone")),
        (_stream(pa.table({f"c{n}": [1] for n in range(4097)})), 5, (NotArrow, "more than 4096 entries")),
        (_stream(pa.table({"x": pa.array([], pa.int64())}), chunk=1) * 1, 5, None),
    ],
    ids=[
        "plain",
        "legacy format",
        "no rows",
        "no end marker",
        "past the rows",
        "zstd",
        "lz4",
        "cut short",
        "empty",
        "interval",
        "dictionary",
        "list",
        "a name twice",
        "string view",
        "binary view",
        "a zone",
        "4097 columns",
        "an empty batch",
    ],
)
def test_an_answer_is_checked_before_it_is_decoded(data, rows, refused):
    if refused is None:
        check_stream(data, rows)
        assert decode(data, rows, "s").to_dicts() == pl.read_ipc_stream(io.BytesIO(data)).to_dicts()
        return
    with pytest.raises(refused[0], match=re.escape(refused[1])):
        check_stream(data, rows)


def _empty_batches(count: int) -> bytes:
    """A schema of one column and `count` record batches of no rows, as pyarrow writes them."""
    schema = pa.schema([("x", pa.int64())])
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, schema) as writer:
        for _ in range(count):
            writer.write_batch(pa.record_batch([pa.array([], pa.int64())], schema=schema))
    return sink.getvalue()


def test_batches_beyond_what_the_rows_take_are_refused():
    check_stream(_empty_batches(5 + 64), 5)
    with pytest.raises(NotArrow, match="more record batches"):
        check_stream(_empty_batches(5 + 65), 5)


def test_the_check_reads_a_table_s_fields_when_asked_for_them(monkeypatch):
    """A vtable may claim 32k entries: reading each of them for every table a vector names over and over made a
    70 KB answer cost 13 s. The reads the check makes stay in proportion to the answer."""
    import logstack.store.arrow_ipc as arrow_ipc

    data = _stream(_PAGE)
    reads = 0
    real = arrow_ipc._unpack

    def counted(kind, buffer, at):
        nonlocal reads
        reads += 1
        return real(kind, buffer, at)

    monkeypatch.setattr(arrow_ipc, "_unpack", counted)
    check_stream(data, 5)
    assert reads < len(data) // 4
    reads, data = 0, _wide_fields(1000)
    with pytest.raises(OtherColumns, match="twice"):
        check_stream(data, 5)
    assert reads < len(data) // 4


def _wide_fields(count: int) -> bytes:
    """A schema message (flatbuffers, laid out by hand) whose fields vector names one Field table `count` times,
    that table's vtable claiming 32,765 entries (the most a vtable holds)."""
    import struct

    pack = struct.pack
    vm, m = 4, 16  # Message: vtable (version, header_type, header, bodyLength), then the table
    vs, sc = 28, 36  # Schema: vtable (endianness, fields), then the table
    vec = 44
    vf = vec + 4 + 4 * count  # Field: vtable (name, nullable, type_type, the rest absent), then the table
    f = vf + 4 + 2 * 32765
    name = f + 12
    out = bytearray(name + 8)
    out[0:4] = pack("<I", m)
    out[vm : vm + 12] = pack("<HHHHHH", 12, 12, 0, 4, 8, 0)
    out[m : m + 12] = pack("<iBxxxI", m - vm, 1, sc - (m + 8))
    out[vs : vs + 8] = pack("<HHHH", 8, 8, 0, 4)
    out[sc : sc + 8] = pack("<iI", sc - vs, vec - (sc + 4))
    out[vec : vec + 4] = pack("<I", count)
    for i in range(count):
        out[vec + 4 + 4 * i : vec + 8 + 4 * i] = pack("<I", f - (vec + 4 + 4 * i))
    out[vf : vf + 10] = pack("<HHHHH", 4 + 2 * 32765, 12, 4, 0, 8)
    out[f : f + 9] = pack("<iIB", f - vf, name - (f + 4), 1)
    out[name : name + 5] = pack("<I", 1) + b"a"
    out += b"\0" * (-len(out) % 8)
    return b"\xff\xff\xff\xff" + pack("<i", len(out)) + bytes(out) + b"\xff\xff\xff\xff\0\0\0\0"


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6), st.integers(1, 6))
def test_a_damaged_answer_is_a_failure_naming_the_store_or_rows_asked_for(flips, rows):
    """Bytes changed anywhere in an answer: the rows asked for at most, or one error naming the store (a polars
    panic included: it is a BaseException), or a column read elsewhere."""
    data = bytearray(_stream(_PAGE))
    for at, value in flips:
        data[at % len(data)] = value
    try:
        frame = decode(bytes(data), rows, "the store")
    except RuntimeFailure as exc:
        assert str(exc).startswith("database the store: an Arrow answer that does not read")
    except OtherColumns:
        pass
    else:
        assert len(frame) <= rows


@pytest.mark.parametrize("year", [1, 50, 999, 1970, 2026, 9999])
def test_a_time_is_written_as_the_store_reads_it_whatever_its_year(year):
    value = dt.datetime(year, 1, 2, 3, 4, 5, 6)
    assert time_literal(value) == f"'{year:04d}-01-02 03:04:05.000006'"
