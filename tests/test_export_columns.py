"""The export read in columns (polars) against the export read line by line (orjson), on generated lines: every
spelling journalctl writes and a hostile file may hold (values that are not strings, keys given twice, spacing,
escapes, surrogates, blank lines, bytes that are not UTF-8, broken JSON), cut into chunks anywhere."""

from __future__ import annotations

import io
import json
from unittest import mock

import hypothesis
import pytest
from hypothesis import strategies as st

from logstack.analyze import export_columns
from logstack.analyze.export import CHANGED, Read, parse_export
from logstack.analyze.export_columns import export_frames
from logstack.base.errors import BadInputError, RuntimeFailure
from logstack.journal.columns import line_columns
from logstack.journal.selection import Selection

SELECTION = Selection(("sshd-session", "sudo"))
T0 = 1_700_000_000_000_000
IDENTS = ["sshd-session", "sudo", "CRON", "systemd-journald", "logstack-heartbeat"]
MESSAGES = [
    "Failed password for root from 192.0.2.7 port 22 ssh2",
    '   git : TTY=pts/0 ; PWD=/home/git ; USER=root ; COMMAND=/bin/echo "a" "b"',
    "Suppressed 3 messages from ssh.service",
    "",
    "caf\u00e9 \u2603 \U0001f600",
    'quoted \\" : "x":1',
    "tab\there",
]
FIELD = st.sampled_from(
    [
        "__REALTIME_TIMESTAMP",
        "MESSAGE",
        "_HOSTNAME",
        "_MACHINE_ID",
        "_PID",
        "_BOOT_ID",
        "SYSLOG_IDENTIFIER",
        "__CURSOR",
        "_COMM",
        "_EXE",
        "_AUDIT_LOGINUID",
        "logstack_host",
        "OTHER",
    ]
)
ODD_VALUE = st.sampled_from(
    [
        None,
        12,
        -3,
        1.5,
        100000.0,
        True,
        False,
        [],
        [104, 105],
        [255, 0],
        ["a", "b"],
        [[104], "x"],
        {"a": "b"},
        "",
        " x",
        "1700000000000001",
        "0017",
        "12345678901234567890",
        "253402300799999999",
        "253402300800000000",
        "1_7",
    ]
)


def _record(i: int, ident: str, message: str) -> dict[str, object]:
    return {
        "__CURSOR": f"s=1;i={i:x}",
        "__REALTIME_TIMESTAMP": str(T0 + i * 1_000_000),
        "_BOOT_ID": "b" * 32,
        "_MACHINE_ID": "m" * 32,
        "_HOSTNAME": "web1",
        "SYSLOG_IDENTIFIER": ident,
        "_PID": str(100 + i),
        "_COMM": ident,
        "MESSAGE": message,
        "_SELINUX_CONTEXT": "unconfined\n",
    }


@st.composite
def _export_line(draw: st.DrawFn, i: int) -> bytes:
    record = _record(i, draw(st.sampled_from(IDENTS)), draw(st.sampled_from(MESSAGES)))
    kinds = ["plain"] * 8 + ["odd", "dup", "spaced", "drop", "escape", "raw", "bytes", "escaped key"]
    kind = draw(st.sampled_from(kinds))
    if kind == "odd":
        record[draw(FIELD)] = draw(ODD_VALUE)
    if kind == "drop":
        record.pop(draw(FIELD), None)
    text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    if kind == "dup":  # a key twice: orjson reads the last
        field = draw(FIELD)
        text = text[:-1] + "," + json.dumps(field) + ":" + json.dumps(draw(ODD_VALUE) if draw(st.booleans()) else "z")
        text += "}"
        text = "{" + json.dumps(field) + ':"first",' + text[1:] if draw(st.booleans()) else text
    if kind == "spaced":
        text = json.dumps(
            record, separators=(draw(st.sampled_from([",", ", "])), draw(st.sampled_from([" :", ": ", " : ", ":\t"])))
        )
    if kind == "escape":
        text = text.replace(
            draw(st.sampled_from(["e", "s", "o", "/"])),
            draw(st.sampled_from(["\\u0065", "\\ud800", "\\ud83d\\ude00", "\\/", "\\udc00x"])),
            1,
        )
    if kind == "escaped key":  # a key spelled with an escape, given as well as itself, before or after
        field = draw(FIELD)
        at = draw(st.integers(0, len(field) - 1))
        spelled = json.dumps(field)[: at + 1] + f"\\u{ord(field[at]):04x}" + json.dumps(field)[at + 2 :]
        value = json.dumps(draw(st.sampled_from(["sudo", "CRON", "1", "x", ""])))
        text = (
            "{" + spelled + ":" + value + "," + text[1:]
            if draw(st.booleans())
            else text[:-1] + "," + spelled + ":" + value + "}"
        )
    data = text.encode()
    if kind == "raw":
        data = draw(
            st.sampled_from(
                [
                    b"",
                    b"   ",
                    b"\r",
                    b"[1]",
                    b'"s"',
                    b"{}",
                    b"{",
                    b"\xff",
                    b"\xef\xbb\xbf" + data,
                    b" " + data,
                    data + b"\r",
                    data + b" x",
                    data[:-2],
                    data.replace(b"git", b"g\x01t"),
                    data.replace(b"web1", b"w\xc3\x28"),
                ]
            )
        )
    if kind == "bytes":
        data = data.replace(b'"Failed', b'"F\\u0000ailed').replace(b"root", b"r\xc3\xa9ot")
    return data


@st.composite
def _export(draw: st.DrawFn) -> bytes:
    count = draw(st.integers(0, 40))
    lines = [draw(_export_line(i)) for i in range(count)]
    data = b"\n".join(lines)
    return data + b"\n" if lines and draw(st.booleans()) else data


def _by_lines(
    data: bytes, since: int | None, selection: Selection | None, read: Read | None = None
) -> tuple[list[tuple], str | None]:
    lines: list[tuple] = []
    try:
        for line in parse_export(io.BytesIO(data), "x", since, selection, read):
            lines.append(line)
    except BadInputError as exc:
        return _rows(line_columns(lines)), str(exc)
    return _rows(line_columns(lines)), None


def _in_columns(
    data: bytes, since: int | None, selection: Selection | None, size: int, read: Read | None = None
) -> tuple[list[tuple], str | None]:
    rows: list[tuple] = []
    try:
        for frame in export_frames(io.BytesIO(data), "x", since, selection, read or Read(), size):
            rows += _rows(frame)
    except BadInputError as exc:
        return rows, str(exc)
    return rows, None


def _rows(frame) -> list[tuple]:
    return list(frame.iter_rows())


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(
    data=_export(),
    since=st.none() | st.integers(0, 40).map(lambda n: T0 + n * 1_000_000),
    selection=st.sampled_from([None, SELECTION, Selection(("sudo",), suppression_notices=False)]),
    size=st.integers(1, 3000),
    piece=st.integers(1, 2000),
)
def test_columns_read_what_lines_read(data, since, selection, size, piece):
    by_lines, in_columns = Read(), Read()
    want, error = _by_lines(data, since, selection, by_lines)
    with mock.patch.object(export_columns, "PIECE", piece):
        got, got_error = _in_columns(data, since, selection, size, in_columns)
    assert got_error == error
    # what was read: up to a bad line and no further (a second read stopping there must have read it all)
    assert (in_columns.size, in_columns.digest()) == (by_lines.size, by_lines.digest())
    if error is None:
        assert got == want
    else:  # a chunk's lines come out only once it is read: those before the bad one's chunk
        assert got == want[: len(got)]


def test_a_clean_chunk_is_read_by_polars_alone(monkeypatch):
    """The common case never reaches the line-by-line reader: what makes the columns fast."""
    data = b"\n".join(json.dumps(_record(i, "sudo", MESSAGES[1]), separators=(",", ":")).encode() for i in range(50))
    monkeypatch.setattr(export_columns, "export_line", lambda *a: pytest.fail("read line by line"))
    rows, error = _in_columns(data + b"\n", None, SELECTION, 1 << 20)
    assert error is None and len(rows) == 50 and rows == _by_lines(data, None, SELECTION)[0]


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(
    lines=st.lists(st.binary(min_size=0, max_size=6).map(lambda b: b.replace(b"\n", b"") + b"\n"), max_size=12),
    first=st.integers(0, 80),
    change=st.sampled_from(["same", "grown", "cut", "changed"]),
    cuts=st.lists(st.integers(1, 12), max_size=6),
)
def test_whole_lines_at_once_are_checked_as_line_by_line(lines, first, change, cuts):
    """`Read.add_lines` fails where, and only where, adding the same bytes a line at a time fails."""
    data = b"".join(lines)
    earlier = Read()
    earlier.add(data[: min(first, len(data))])
    now = {"same": data, "grown": data + b"x\n", "cut": data[:-1], "changed": b"!" + data[1:]}[change]
    now_lines = list(io.BytesIO(now))  # as a file's lines are read: at newlines only

    def outcome(pieces: list[bytes], add) -> tuple[bool, int, bytes]:
        read = Read(earlier)
        try:
            for piece in pieces:
                add(read, piece)
            read.end()
        except RuntimeFailure as exc:
            assert str(exc) == CHANGED
            return False, read.size, b""
        return True, read.size, read.digest()

    chunks, at = [], 0
    for cut in cuts:
        chunks.append(b"".join(now_lines[at : at + cut]))
        at += cut
    chunks.append(b"".join(now_lines[at:]))
    by_line = outcome(now_lines, Read.add)
    at_once = outcome([c for c in chunks if c], Read.add_lines)
    assert at_once[0] == by_line[0]
    if by_line[0]:
        assert at_once == by_line


@pytest.mark.parametrize("piece", [1, 10_000])
def test_a_value_that_is_no_string_is_not_hidden_by_a_key_given_twice(piece):
    """Counting keys alone would pass a chunk where one line's key given twice (one match too many) makes up for
    another's value that is not a string (one too few): the values polars reads there are not orjson's."""
    plain = [json.dumps(_record(i, "sudo", MESSAGES[0]), separators=(",", ":")) for i in range(6)]
    odd = plain[3].replace('"_COMM":"sudo"', '"_COMM":true')
    twice = plain[4][:-1] + ',"_EXE":"/usr/bin/last"}'
    twice = twice.replace('{"', '{"_EXE":"/usr/bin/first","', 1)
    data = "\n".join([*plain[:3], odd, twice, plain[5]]).encode() + b"\n"
    with mock.patch.object(export_columns, "PIECE", piece):
        got = _in_columns(data, None, None, 1 << 20)
    assert got == _by_lines(data, None, None)
    assert (got[0][3][8], got[0][4][9]) == ("True", "/usr/bin/last")  # comm, exe as from_journal reads them


def test_a_key_spelled_with_an_escape_is_read_as_orjson_reads_it():
    """`"\\u005fPID"` is `_PID`: given as well, polars and orjson take different ones; counted as no key, one
    line's makes up for another line's key given twice."""
    plain = [json.dumps(_record(i, "sudo", MESSAGES[0]), separators=(",", ":")) for i in range(4)]
    twice = plain[1][:-1] + ',"_PID":"666"}'
    escaped = plain[2].replace('"_COMM"', '"\\u005fCOMM"')
    hidden = plain[3][:-1] + ',"SYSLOG_IDENTIFIE\\u0052":"CRON"}'
    data = "\n".join([plain[0], twice, escaped, hidden]).encode() + b"\n"
    got = _in_columns(data, None, SELECTION, 1 << 20)
    assert got == _by_lines(data, None, SELECTION)
    assert [row[5] for row in got[0]] == ["100", "666", "102"]  # the pid orjson reads; the CRON line not kept
