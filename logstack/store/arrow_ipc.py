"""What an Arrow IPC stream says of itself, read before polars decodes it: the bytes polars is given are bounded,
but what it would make of them is not (a compressed buffer of 500 KB can claim 200M rows; a column type polars
does not read makes it panic). The stream's messages are flatbuffers (format/Message.fbs, Schema.fbs of the
Arrow specification); this reads the few fields the checks need, and nothing is trusted that it did not check.

GreptimeDB v1.1.4 writes an answer uncompressed unless `compression` is asked for, with one schema and record
batches (src/servers/src/http/result/arrow_result.rs `write_arrow_bytes`); logstack never asks."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

# Schema.fbs `Type`: the column types read here, flat, each value its own bytes (Null, Int, FloatingPoint, Binary,
# Utf8, Bool, Date, Timestamp, LargeBinary, LargeUtf8); not the view types, whose rows may all point at one
# string (a page of 8 MB would become 5000 strings of 8 MB each)
READ_TYPES = frozenset({1, 2, 3, 4, 5, 6, 8, 10, 19, 20})
_TIMESTAMP = 10
_SCHEMA, _RECORD_BATCH = 1, 3  # Message.fbs `MessageHeader`
COLUMNS = 4096  # a logs table has its own columns and the journal fields the identity pipeline adds: tens
BATCHES = 64  # record batches beyond one a row (GreptimeDB's scans may end a batch early, or give one empty)
CELLS = 1 << 18  # columns × record batches: each is an array polars makes (tens of columns, a few batches a page)


class NotArrow(ValueError):
    """The bytes are not an answer as GreptimeDB writes one (`str` says how)."""


class OtherColumns(ValueError):
    """A well-formed answer with a column of a type (or a dictionary) the columns here do not read."""


@dataclass(frozen=True)
class _Table:
    """A flatbuffer table: its position in `data`, its vtable's (entries are read when asked for: a vtable may
    claim 32k of them)."""

    data: bytes
    at: int
    vtable: int
    count: int  # entries of the vtable

    @classmethod
    def root(cls, data: bytes, at: int = 0) -> _Table:
        return cls.read(data, at + _u32(data, at))

    @classmethod
    def read(cls, data: bytes, at: int) -> _Table:
        vtable = at - _i32(data, at)
        size = _u16(data, vtable)
        if size < 4 or size % 2:
            raise NotArrow("a message table that does not read")
        return cls(data, at, vtable, (size - 4) // 2)

    def _where(self, field: int) -> int | None:
        offset = _u16(self.data, self.vtable + 4 + 2 * field) if field < self.count else 0
        return self.at + offset if offset else None

    def scalar(self, field: int, kind: str, default: int = 0) -> int:
        at = self._where(field)
        return default if at is None else _unpack(kind, self.data, at)

    def table(self, field: int) -> _Table | None:
        at = self._where(field)
        return None if at is None else _Table.read(self.data, at + _u32(self.data, at))

    def vector(self, field: int, size: int) -> tuple[int, int]:
        """(where its elements of `size` bytes start, how many), all inside the message."""
        at = self._where(field)
        if at is None:
            return 0, 0
        start = at + _u32(self.data, at)
        count = _u32(self.data, start)
        _slice(self.data, start + 4, count * size)
        return start + 4, count

    def tables(self, field: int, most: int) -> Iterator[_Table]:
        """The tables of a vector of at most `most` of them."""
        start, count = self.vector(field, 4)
        if count > most:
            raise NotArrow(f"more than {most} entries where a stream of logs rows has a few")
        for i in range(count):
            yield _Table.read(self.data, start + 4 * i + _u32(self.data, start + 4 * i))

    def pairs(self, field: int) -> list[tuple[int, int]]:
        """A vector of structs of two longs (FieldNode, Buffer)."""
        start, count = self.vector(field, 16)
        return [struct.unpack_from("<qq", self.data, start + 16 * i) for i in range(count)]

    def text(self, field: int) -> str:
        start, count = self.vector(field, 1)
        return _slice(self.data, start, count).decode("utf-8", errors="replace")


def check_stream(data: bytes, rows: int) -> None:
    """NotArrow unless `data` is one IPC stream: a schema, then uncompressed record batches of at most `rows`
    rows in all, every buffer inside its message; OtherColumns for a column this does not read (a type outside
    READ_TYPES, a dictionary, a name given twice)."""
    at, seen, total, columns = 0, 0, 0, 0
    while at < len(data):  # the end-of-stream marker may be left out (the format's specification)
        if at + 4 > len(data):
            raise NotArrow("an Arrow stream cut short")
        size = _i32(data, at)
        at += 4
        if size == -1:  # the continuation marker, then the length
            size = _i32(data, at) if at + 4 <= len(data) else -1
            at += 4
        if size == 0:
            break
        if size < 0 or at + size > len(data):
            raise NotArrow("an Arrow message longer than the answer")
        message = _Table.root(_slice(data, at, size))
        at += size
        body = message.scalar(3, "q")
        if body < 0 or at + body > len(data):
            raise NotArrow("an Arrow message body longer than the answer")
        kind = message.scalar(1, "B")
        header = message.table(2)
        if header is None or (kind == _SCHEMA) != (seen == 0) or kind not in (_SCHEMA, _RECORD_BATCH):
            raise NotArrow("not a schema followed by record batches")
        if kind == _SCHEMA:
            columns = _check_schema(header)
        else:
            total += _check_batch(header, body, columns)
            if total > rows:
                raise NotArrow(f"more than the {rows} rows asked for")
            if seen > rows + BATCHES or seen * columns > CELLS:  # an empty batch costs as much as any to make
                raise NotArrow(f"more record batches ({seen}) than {rows} rows of {columns} columns take")
        at += body
        seen += 1
    if not seen:
        raise NotArrow("an Arrow stream without a schema")


def _check_schema(schema: _Table) -> int:
    """The number of columns of a schema whose columns are all read here."""
    names: set[str] = set()
    for field in schema.tables(1, COLUMNS):
        name, kind = field.text(0), field.scalar(2, "B")
        if name in names:
            raise OtherColumns(f"the column {name[:64]!r} twice")
        names.add(name)
        if kind not in READ_TYPES or field.table(4) is not None or field.vector(5, 4)[1]:
            raise OtherColumns(f"the column {name[:64]!r} of Arrow type {kind}")
        details = field.table(3)
        if kind == _TIMESTAMP and details is not None and details.vector(1, 1)[1]:
            # polars reads a zone's name letter by letter to suggest another (seconds a MB); GreptimeDB's
            # TIMESTAMP has none (src/datatypes/src/types/timestamp_type.rs)
            raise NotArrow(f"the column {name[:64]!r}: a time with a zone")
    return len(names)


def _check_batch(batch: _Table, body: int, columns: int) -> int:
    length = batch.scalar(0, "q")
    if length < 0 or batch.table(3) is not None:
        raise NotArrow("a compressed record batch, which logstack does not ask for" if length >= 0 else "rows < 0")
    if batch.vector(1, 16)[1] != columns or batch.vector(2, 16)[1] > 3 * columns:  # validity, offsets, data
        raise NotArrow("a record batch of other columns than its schema's")
    nodes, buffers = batch.pairs(1), batch.pairs(2)  # FieldNode { length, null_count }, Buffer { offset, length }
    for values, nulls in nodes:
        if values != length or not 0 <= nulls <= length:
            raise NotArrow("a column of another length than its record batch")
    for offset, size in buffers:
        if offset < 0 or size < 0 or offset + size > body:
            raise NotArrow("a buffer outside its record batch")
    return length


def _unpack(kind: str, data: bytes, at: int) -> int:
    if at < 0 or at + struct.calcsize("<" + kind) > len(data):  # unpack_from reads a negative place from the end
        raise NotArrow("an Arrow message cut short")
    return int(struct.unpack_from("<" + kind, data, at)[0])


def _u16(data: bytes, at: int) -> int:
    return _unpack("H", data, at)


def _u32(data: bytes, at: int) -> int:
    return _unpack("I", data, at)


def _i32(data: bytes, at: int) -> int:
    return _unpack("i", data, at)


def _slice(data: bytes, at: int, count: int) -> bytes:
    if at < 0 or count < 0 or at + count > len(data):
        raise NotArrow("an Arrow message cut short")
    return data[at : at + count]
