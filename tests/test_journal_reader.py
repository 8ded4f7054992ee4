"""The journal export reader (which skips lines before parsing) against parsing every line."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logstack.analyze import export as sources
from logstack.base.errors import BadInputError
from logstack.journal.line import from_journal
from logstack.journal.selection import Selection
from tests.journal import entry

SELECTION = Selection(frozenset({"sshd-session", "sudo"}))
FAIL = "Failed password for root from 192.0.2.{} port {} ssh2"


def _line(kind: str, i: int) -> bytes:
    """One export line of a given spelling; its identifier is wanted or not."""
    ident = ["sshd-session", "sudo", "CRON", "kernel", "systemd-journald"][i % 5]
    message = "Suppressed 3 messages from ssh.service" if i % 7 == 0 else FAIL.format(i % 250, 1000 + i)
    record = entry(1_700_000_000_000_000 + i * 1_000_000, ident, 100 + i, message, comm=ident)
    compact = (",", ":")
    if kind == "plain":
        return json.dumps(record, separators=compact).encode() + b"\n"
    if kind == "spaced":
        return json.dumps(record).encode() + b"\n"
    if kind == "escaped":  # the identifier spelled with a JSON escape
        text = json.dumps(record, separators=compact).replace(f'"SYSLOG_IDENTIFIER":"{ident}",', "")
        escaped = ident.replace("-", "\\u002d").replace("o", "\\u006f")
        return text.replace("{", '{"SYSLOG_IDENTIFIER":"' + escaped + '",', 1).encode() + b"\n"
    if kind == "bytes":  # journald's byte-array form
        record["SYSLOG_IDENTIFIER"] = list(ident.encode())
        return json.dumps(record, separators=compact).encode() + b"\n"
    if kind == "missing":
        del record["SYSLOG_IDENTIFIER"]
        return json.dumps(record, separators=compact).encode() + b"\n"
    if kind == "crlf":
        return json.dumps(record, separators=compact).encode() + b"\r\n"
    if kind == "blank":
        return b"\n"
    raise AssertionError(kind)


def _reference(data: bytes, since: int | None) -> list[tuple[str, str, str]]:
    """Every line parsed, then filtered: what the reader must return, however it gets there."""
    kept = []
    for raw in data.splitlines():
        if not raw.strip():
            continue
        line = from_journal(json.loads(raw))
        assert line is not None
        if since is not None and line.ts < since:
            continue
        if SELECTION.keeps(line.ident, line.message):
            kept.append((line.key, line.ident, line.message))
    return kept


def _read(data: bytes, since: int | None) -> list[tuple[str, str, str]]:
    return [(ln.key, ln.ident, ln.message) for ln in sources.parse_export(io.BytesIO(data), "x", since, SELECTION)]


KINDS = st.sampled_from(["plain"] * 6 + ["spaced", "escaped", "bytes", "missing", "crlf", "blank"])


@settings(max_examples=60, deadline=None)
@given(
    kinds=st.lists(KINDS, min_size=0, max_size=60),
    since_at=st.none() | st.integers(0, 60),
    final_newline=st.booleans(),
)
def test_reader_matches_line_by_line_parse(kinds, since_at, final_newline):
    data = b"".join(_line(kind, i) for i, kind in enumerate(kinds))
    if not final_newline:
        data = data.rstrip(b"\r\n")
    since = None if since_at is None else 1_700_000_000_000_000 + since_at * 1_000_000
    assert _read(data, since) == _reference(data, since)


def test_bad_line_is_named_by_number():
    good = b"".join(_line("plain", i) for i in range(30))
    bad = _line("plain", 0).replace(b'"MESSAGE"', b'"MESSAGE" oops', 1)  # a wanted line, broken JSON
    data = good + bad + good
    with pytest.raises(BadInputError, match=r"^x:31: not a JSON object"):
        _read(data, None)
