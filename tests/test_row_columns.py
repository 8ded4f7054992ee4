"""The store's rows in columns (`store.row_columns.page_frame`) against the store reader's line-by-line reading
(`from_row`, each line's row checked by the `Verifier`), on generated rows of every kind of value."""

from __future__ import annotations

import datetime as dt
import hmac
import io
from typing import Any

import polars as pl
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logstack.integrity.keyring import KeyRing
from logstack.integrity.signatures import Verifier, canonical
from logstack.journal.columns import line_columns
from logstack.journal.line import from_row
from logstack.store.row_columns import STAMP, arrow_frame, page_frame

RING = KeyRing(seal_key=b"s" * 32)
KEY = RING.mint("web1", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
OLD = RING.mint("web2", dt.datetime(2025, 1, 1, tzinfo=dt.UTC))  # retired: proves only rows stored in time
RING.retire_older(
    "web2", RING.mint("web2", dt.datetime(2026, 1, 1, tzinfo=dt.UTC)).kid, dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
)
VERIFIER = Verifier(RING)

TEXT = ("__REALTIME_TIMESTAMP", "message", "logstack_host", "host", "_MACHINE_ID", "_PID", "SYSLOG_PID", "_BOOT_ID")
TEXT += ("SYSLOG_IDENTIFIER", "__CURSOR", "_COMM", "_EXE", "_AUDIT_LOGINUID", "timestamp", "cmdb_id")
SIGNATURE = ("logstack_kid", "logstack_signed", "logstack_sig")

stamps = st.one_of(
    st.none(),
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.datetimes(timezones=st.just(dt.timezone(dt.timedelta(hours=-5)))),
    st.sampled_from(["0000-00-00 00:00:00", "x", b"2026"]),
)
# what a timestamp or another text column may hold: digits of every length, the bounds, lookalikes
digits = st.sampled_from(["", "0", "7", "1700000000000001", "9" * 18, "9" * 19, "0" * 18 + "1", "253402300799999999"])
digits |= st.sampled_from(["253402300800000000", "-1", " 1", "1 ", "1_0", "\uff11\uff12", "1\n", "+5", "0x1"])
texts = st.one_of(st.none(), digits, st.text(max_size=6), st.sampled_from(["web1", "web2", "m1", "2026-01-01T00:00Z"]))
others = st.one_of(st.binary(max_size=3), st.integers(-3, 2**70), st.booleans(), st.floats(allow_nan=False))
others |= st.lists(st.integers(0, 255), max_size=3) | st.lists(st.text(max_size=2), max_size=2)
values = st.one_of(texts, texts, texts, others)


# a row of the common kind (what a sender writes), each of its values then perhaps replaced by any other
common = {
    "__REALTIME_TIMESTAMP": st.integers(0, 253402300799999999).map(str) | digits,
    "message": st.text(max_size=6),
    "logstack_host": st.sampled_from(["web1", "web2", "", None]),
    "host": st.sampled_from(["web1", "h2", "", None]),
    "_MACHINE_ID": st.sampled_from(["m1", "m2", "", None]),
    "_PID": st.sampled_from(["1", "22", "", None]),
    "SYSLOG_PID": st.sampled_from(["3", "", None]),
    "__CURSOR": st.sampled_from(["s=1;i=2", "c", "", None]),
    "cmdb_id": st.sampled_from(["42", None]),
    "timestamp": st.sampled_from(["2026-01-01T00:00:00Z", "2026-13-01", None]),
}
naive = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30))


@st.composite
def pages(draw: st.DrawFn, signed: bool) -> tuple[list[str], list[tuple[Any, ...]]]:
    left_out = draw(st.lists(st.sampled_from(TEXT), unique=True, max_size=4))
    names = [name for name in TEXT if name not in left_out]
    columns = [STAMP, *names]
    if signed:
        columns += [name for name in SIGNATURE if name not in columns]
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        odd = draw(st.integers(0, 3))  # how many values drawn from anything
        row = {STAMP: draw(naive if draw(st.integers(0, 4)) else stamps)}
        for name in names:
            usual = common.get(name, st.one_of(st.none(), st.text(max_size=4)))
            row[name] = draw(values if odd and draw(st.integers(0, len(names))) < odd else usual)
        if signed:
            row.update(_signature(draw, row))
        rows.append(tuple(row.get(name) for name in columns))
    order = draw(st.permutations(columns))
    place = [columns.index(name) for name in order]
    return list(order), [tuple(row[i] for i in place) for row in rows]


def _signature(draw: st.DrawFn, row: dict[str, Any]) -> dict[str, Any]:
    """Signed as a sender signs (with either host's key, listing an extra column or not), or not signed, or a
    signature of the wrong length, or another row's."""
    how = draw(st.sampled_from(["good", "good", "none", "short", "wrong"]))
    if how == "none":
        return {}
    key = draw(st.sampled_from([KEY, OLD]))
    listed = draw(st.sampled_from(["", "cmdb_id"]))
    signed = {**row, "logstack_kid": key.kid, "logstack_signed": listed}
    try:
        message = canonical(signed)
    except TypeError:  # a value a sender never signs (bytes): any signature is wrong
        message = None
    sig = hmac.new(key.key, message or b"", "sha256").hexdigest()
    sig = {"good": sig, "short": sig[:10], "wrong": "0" * 64}[how]
    return {"logstack_kid": key.kid, "logstack_signed": listed, "logstack_sig": sig}


def line_by_line(
    columns: list[str], rows: list[tuple[Any, ...]], verifier: Verifier | None
) -> pl.DataFrame | type[Exception]:
    """What the store reader makes of the rows line by line: `from_row`, then the row's verdict."""
    lines, kept = [], []
    for place, values in enumerate(rows):
        row = dict(zip(columns, values, strict=True))
        line = from_row(row)
        if line is None:
            continue
        if verifier is not None:
            try:
                verdict = verifier.check(row)
            except TypeError as exc:
                return type(exc)
            if verdict.problem is not None:
                line.auth = verdict.problem if verdict.signer is None else f"{verdict.problem}:{verdict.signer}"
                line.key = f"{line.key}|{line.auth}"
        lines.append(line)
        kept.append(place)
    return line_columns(lines, kept)


def in_columns(
    columns: list[str], rows: list[tuple[Any, ...]], verifier: Verifier | None
) -> pl.DataFrame | type[Exception]:
    try:
        return page_frame(columns, rows, verifier)
    except TypeError as exc:
        return type(exc)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages(signed=False))
def test_rows_read_in_columns_are_the_lines_the_reader_makes(page):
    columns, rows = page
    expected, got = line_by_line(columns, rows, None), in_columns(columns, rows, None)
    assert isinstance(expected, pl.DataFrame) and isinstance(got, pl.DataFrame)
    assert got.to_dicts() == expected.to_dicts()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages(signed=True))
def test_signed_rows_read_in_columns_carry_the_same_verdicts(page):
    columns, rows = page
    expected, got = line_by_line(columns, rows, VERIFIER), in_columns(columns, rows, VERIFIER)
    if isinstance(expected, type):
        assert got is expected
        return
    assert isinstance(got, pl.DataFrame)
    assert got.to_dicts() == expected.to_dicts()


def test_common_rows_never_reach_the_line_reader(monkeypatch):
    import logstack.store.row_columns as row_columns

    columns = [STAMP, "__REALTIME_TIMESTAMP", "message", "host", "_MACHINE_ID", "_PID", "_BOOT_ID", "__CURSOR"]
    columns += ["SYSLOG_IDENTIFIER"]
    stamp = dt.datetime(2026, 1, 1, 0, 0, 1, 5)
    rows = [(stamp, str(1767225600000000 + i), f"m{i}", "web1", "m1", str(i), "b1", f"c{i}", "sshd") for i in range(50)]
    monkeypatch.setattr(row_columns, "from_row", lambda row: (_ for _ in ()).throw(AssertionError(row)))
    frame = page_frame(columns, rows, None)
    assert frame["key"].to_list() == [f"m1|c{i}" for i in range(50)]
    assert frame["arrival"].unique().to_list() == [1767225601000005]


# Arrow answers (`arrow_frame`): each column has one type, as a table's columns do in GreptimeDB
_KINDS = {
    "utf8": (pa.utf8(), None),
    "int64": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "binary": (pa.binary(), st.binary(max_size=3)),
    "bool": (pa.bool_(), st.booleans()),
    "float64": (pa.float64(), st.floats(allow_nan=False)),
}
_NS = st.integers(-(2**62), 2**62)  # nanoseconds: about 1824-2116
_STAMPS = {
    "ns": (pa.timestamp("ns"), _NS),
    "us": (pa.timestamp("us"), st.integers(-62135596800000000 + 86400000000, 253402214400000000)),
    "ms": (pa.timestamp("ms"), st.integers(-62135596800000 + 86400000, 253402214400000)),
    "ns, a zone": (pa.timestamp("ns", tz="UTC"), _NS),
    "utf8": (pa.utf8(), st.text(max_size=4)),
}


@st.composite
def arrow_pages(draw: st.DrawFn, signed: bool) -> pl.DataFrame:
    """A page as an Arrow answer, read by polars: columns of one type each, a time of any precision (or none)."""
    left_out = draw(st.lists(st.sampled_from(TEXT), unique=True, max_size=4))
    names = [name for name in TEXT if name not in left_out]
    mixed = draw(st.booleans())  # some columns of other types: most rows are read by `from_row`
    kinds = {name: draw(st.sampled_from(["utf8"] * 6 + list(_KINDS))) if mixed else "utf8" for name in names}
    if signed:
        kinds.update(dict.fromkeys(SIGNATURE, "utf8"))
    stamp_kind = draw(st.sampled_from(["ns", "ns", "us", "ms", "ns, a zone", "utf8", "none"]))
    count = draw(st.integers(0, 12))
    columns: dict[str, pa.Array] = {}
    if stamp_kind != "none":
        kind, values = _STAMPS[stamp_kind]
        columns[STAMP] = pa.array([draw(values) for _ in range(count)], type=kind)
    rows: list[dict[str, Any]] = [{} for _ in range(count)]
    for name in names:
        kind, values = _KINDS[kinds[name]]
        usual = values if values is not None else common.get(name, st.one_of(st.none(), st.text(max_size=4)))
        for row in rows:
            drawn = draw(st.one_of(st.none(), usual) if values is not None else usual)
            row[name] = drawn if values is not None or drawn is None or isinstance(drawn, str) else None
    if signed:
        for row in rows:
            row.update({name: None for name in SIGNATURE} | _signature(draw, row))
    for name in [*names, *(SIGNATURE if signed else ())]:
        columns[name] = pa.array([row[name] for row in rows], type=_KINDS[kinds[name]][0])
    order = draw(st.permutations(list(columns)))
    sink = io.BytesIO()
    table = pa.table({name: columns[name] for name in order})
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=draw(st.integers(1, 5)))
    return pl.read_ipc_stream(io.BytesIO(sink.getvalue()))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrow_pages(signed=False), st.booleans())
def test_rows_that_came_as_arrow_are_the_lines_the_same_rows_make_over_mysql(table, signed):
    """The values polars gives of a row are what pymysql gives of it (text, numbers, bytes, a naive time to the
    microsecond): `page_frame` of those rows is what the columns must make."""
    verifier = VERIFIER if signed else None
    expected, got = in_columns(table.columns, table.rows(), verifier), arrow_frame(table, verifier)
    assert isinstance(expected, pl.DataFrame)
    assert got.to_dicts() == expected.to_dicts()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrow_pages(signed=True))
def test_signed_rows_that_came_as_arrow_carry_the_same_verdicts(table):
    expected, got = in_columns(table.columns, table.rows(), VERIFIER), arrow_frame(table, VERIFIER)
    assert isinstance(expected, pl.DataFrame)
    assert got.to_dicts() == expected.to_dicts()
