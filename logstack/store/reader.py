"""The store reader: rows of the logs table over the MySQL protocol (or, for the analysis in columns, over the HTTP
API as Arrow), as journal lines, signatures checked.

Analysis, status, enrolment, the report and sealing all read the store through `DatabaseSource`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from logstack.base.clock import from_micros, to_micros
from logstack.base.errors import RuntimeFailure
from logstack.integrity.signatures import Verifier
from logstack.journal.line import Line, from_row
from logstack.journal.record import NOT_IN_STORE, READ_COLUMNS
from logstack.store.arrow_http import ArrowSQL
from logstack.store.arrow_ipc import OtherColumns
from logstack.store.greptime import DatabaseConfig, tls_context
from logstack.store.row_columns import STAMP, arrow_frame, page_frame

if TYPE_CHECKING:
    import polars as pl

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# lines a frame of `DatabaseSource.frames` (a batch of the analysis in columns), and characters of messages: any
# local user can log lines of 48 KB
FRAME_ROWS = 40_000
FRAME_TEXT = 16 << 20
T = TypeVar("T")


class DatabaseSource:
    """Rows of the logs table in ingest order, fetched in keyset pages (never the whole table at once)."""

    def __init__(
        self,
        config: DatabaseConfig,
        page_size: int = 5000,
        verifier: Verifier | None = None,
        timeouts: tuple[int, int | None] = (300, None),  # reading, writing (s)
    ) -> None:
        self.config = config
        self.page_size = page_size
        self.timeouts = timeouts
        self.verifier = verifier  # set: every row's signature is checked, and the lines say what failed
        self._conn: Any = None

    def __enter__(self) -> DatabaseSource:
        import pymysql

        try:
            self._conn = pymysql.connect(
                host=self.config.host,
                port=self.config.port,
                user=self.config.user,
                password=self.config.password,
                database=self.config.database,
                connect_timeout=10,
                read_timeout=self.timeouts[0],
                write_timeout=self.timeouts[1],
                charset="utf8mb4",
                cursorclass=pymysql.cursors.DictCursor,
                conv=_converters(),
                ssl=tls_context(self.config.tls_ca) if self.config.tls else None,
                # times come back in the session's zone without an offset: make it UTC, whatever the server's
                # default (GreptimeDB v1.1.4 src/operator/src/statement.rs:479, statement/set.rs:79 accept this)
                init_command="SET time_zone = '+00:00'",
            )
        except pymysql.MySQLError as exc:
            raise RuntimeFailure(f"database {self.config.label}: {mysql_message(exc)}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            self._conn.close()

    def _columns(self) -> list[str]:
        sql = "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s"
        rows = self.query(sql, (self.config.database, self.config.table))
        present = {next(iter(row.values())) for row in rows}
        if "greptime_timestamp" not in present:
            raise RuntimeFailure(
                f"database {self.config.label}: table has no greptime_timestamp column (or is missing)"
            )
        wanted = [c for c in READ_COLUMNS if c in present and c not in NOT_IN_STORE]
        if self.verifier is not None:  # a signature covers identity columns of any name: read them all
            wanted += sorted(c for c in present if c not in wanted and c not in NOT_IN_STORE and _NAME_RE.fullmatch(c))
        return wanted

    def _awake(self) -> None:
        """The connection, connected again if the server closed it: it may have waited idle for longer than the
        server lets it (wait_timeout, a proxy) while the reading process read, before the analysis refused a
        batch and reads the rows again here."""
        import pymysql

        try:
            self._conn.ping()
        except pymysql.MySQLError:
            with contextlib.suppress(pymysql.MySQLError):
                self._conn.close()
            self.__enter__()  # a new connection, set up as the first (UTC)

    def holds_more_than(self, start: int | None, end: int | None, count: int) -> bool:
        """Whether more than `count` rows have start <= greptime_timestamp <= end: one row asked for, past the
        first `count` in ingest order (GreptimeDB v1.1.4 takes LIMIT with OFFSET:
        tests/cases/standalone/common/limit/limit_advanced.sql)."""
        self._awake()
        self._columns()  # a missing table named as such
        where, bounds = _window(start, end)
        sql = f"SELECT `greptime_timestamp` FROM `{self.config.table}` WHERE {where} ORDER BY `greptime_timestamp`"
        found = self._fetch(sql + " LIMIT 1 OFFSET %s", (*(b for b in bounds if b is not None), count), dicts=False)
        return bool(found)

    def store_now(self) -> int:
        """The store's clock (µs): seals, resume points and delivery checks go by the time the store stamps rows
        with. Bare CURRENT_TIMESTAMP: in GreptimeDB it is DataFusion's `now()` (v1.1.4
        src/query/src/dist_plan/analyzer/test.rs:2441), whose signature takes no argument, so a precision
        would be refused; MariaDB gives whole seconds, enough for a clock. A store that gives no time is an
        error: a seal or a resume point at 1970 would be worse than none."""
        rows = self.query("SELECT CURRENT_TIMESTAMP AS now", ())
        value = next(iter(rows[0].values()), None) if rows else None
        if not isinstance(value, dt.datetime):
            raise RuntimeFailure(f"database {self.config.label}: SELECT CURRENT_TIMESTAMP gave no time ({value!r:.40})")
        return micros_of(value)

    def oldest(self) -> int | None:
        """Ingest time of the oldest row, or None for an empty table."""
        self._columns()
        value = self.query(f"SELECT MIN(`greptime_timestamp`) AS oldest FROM `{self.config.table}`", ())[0]["oldest"]
        return micros_of(value) if isinstance(value, dt.datetime) else None

    def newest(self) -> int | None:
        """Ingest time of the newest row, or None for an empty table."""
        self._columns()
        value = self.query(f"SELECT MAX(`greptime_timestamp`) AS newest FROM `{self.config.table}`", ())[0]["newest"]
        return micros_of(value) if isinstance(value, dt.datetime) else None

    def rows(self, start: int, end: int, identifier: str | None = None) -> Iterator[dict[str, Any]]:
        """Every column of the rows with start <= greptime_timestamp < end (of one program), as stored."""
        rows = self.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            (self.config.database, self.config.table),
        )
        columns = sorted(str(next(iter(r.values()))) for r in rows)
        columns = [c for c in columns if _NAME_RE.fullmatch(c)]
        select = ", ".join(f"`{c}`" for c in columns)
        sql = (
            f"SELECT {select} FROM `{self.config.table}` WHERE `greptime_timestamp` >= %s AND `greptime_timestamp` < %s"
        )
        low, high = from_micros(start).replace(tzinfo=None), from_micros(end).replace(tzinfo=None)
        params: tuple[Any, ...] = (low, high)
        if identifier is not None:
            sql += " AND `SYSLOG_IDENTIFIER` = %s"
            params = (low, high, identifier)
        for values in self._fetch(sql, params, dicts=False):
            yield dict(zip(columns, values, strict=True))

    def stream(self, sql: str, params: tuple[Any, ...]) -> Iterator[dict[str, Any]]:
        """One parameterised query's rows one at a time (unbuffered: memory does not grow with the answer)."""
        import pymysql

        try:
            with self._conn.cursor(pymysql.cursors.SSDictCursor) as cursor:
                cursor.execute(sql, params)
                yield from cursor
        except pymysql.MySQLError as exc:
            raise RuntimeFailure(f"database {self.config.label}: {mysql_message(exc)}") from None

    def execute(self, sql: str, params: tuple[Any, ...]) -> None:
        """One statement that changes the store, committed; MySQL errors become one-line RuntimeFailures."""
        import pymysql

        self._fetch(sql, params, dicts=False)
        try:
            self._conn.commit()
        except pymysql.MySQLError as exc:
            raise RuntimeFailure(f"database {self.config.label}: {mysql_message(exc)}") from None

    def query(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        """One parameterised query; MySQL errors become one-line RuntimeFailures (exit 3)."""
        return self._fetch(sql, params, dicts=True)

    def _fetch(self, sql: str, params: tuple[Any, ...], dicts: bool) -> list[Any]:
        import pymysql

        try:
            with self._conn.cursor(pymysql.cursors.DictCursor if dicts else pymysql.cursors.Cursor) as cursor:
                cursor.execute(sql, params)
                return list(cursor.fetchall())
        except pymysql.MySQLError as exc:
            raise RuntimeFailure(f"database {self.config.label}: {mysql_message(exc)}") from None

    def lines(self, start: int | None, end: int | None) -> Iterator[Line]:
        """Rows with start <= greptime_timestamp <= end (microseconds; None = open)."""
        for lines in self._pages(start, end, self._lines):
            yield from lines

    def frames(
        self, start: int | None, end: int | None, size: int = FRAME_ROWS, text: int = FRAME_TEXT
    ) -> Iterator[pl.DataFrame]:
        """The lines `lines` gives, in columns (`journal.columns.LINE_FIELDS`): pages joined into frames of about
        `size` lines or `text` characters of messages, whichever comes first."""
        return joined(self._pages(start, end, self._frame, arrow=self.config.http is not None), size, text)

    def _pages(
        self, start: int | None, end: int | None, read: Callable[[_Page], tuple[T, set[str]]], arrow: bool = False
    ) -> Iterator[T]:
        """What `read` makes of each keyset page of rows: the page's lines, less those an earlier page gave (rows
        at its newest timestamp, by key), and the keys of its lines at its own newest timestamp. `arrow`: the pages
        come over the HTTP endpoint (`config.http`) as Arrow (`arrow_http`), and `read` takes them in columns."""
        self._awake()
        columns = self._columns()
        select = ", ".join(f"`{c}`" for c in columns)
        where, (low, high) = _window(start, end)
        sql = f"SELECT {select} FROM `{self.config.table}` WHERE {where} ORDER BY `greptime_timestamp` LIMIT %s"
        fetch = self._arrow_pages() if arrow else self._mysql_page
        stamp = columns.index(STAMP)
        boundary: set[str] = set()
        limit = self.page_size
        while True:
            params: tuple[Any, ...] = (low, high, limit) if high is not None else (low, limit)
            try:
                rows, count, newest = fetch(sql, params, stamp)
            except OtherColumns:  # a column the Arrow answer cannot carry here: this read goes on over MySQL
                fetch = self._mysql_page
                rows, count, newest = fetch(sql, params, stamp)
            check_page(self.config.label, rows, count, stamp, (low, high, limit))
            made, keys = read(_Page(columns, rows, stamp, low, newest, boundary))
            yield made
            if count < limit:
                return
            if newest == low:
                boundary |= keys
                limit *= 2  # a page of one timestamp: widen it rather than loop
            else:
                boundary = keys
                low = newest
                limit = self.page_size

    def _mysql_page(self, sql: str, params: tuple[Any, ...], stamp: int) -> tuple[list[Any], int, Any]:
        """A page's rows over MySQL (tuples), their count and the newest ingest time."""
        rows = self._fetch(sql, params, dicts=False)
        return rows, len(rows), rows[-1][stamp] if rows else None

    def _arrow_pages(self) -> Callable[[str, tuple[Any, ...], int], tuple[pl.DataFrame, int, Any]]:
        """`_mysql_page` over the HTTP endpoint, as Arrow: one client (and TLS context) for a read's pages."""
        config = self.config
        assert config.http is not None
        tls = tls_context(config.tls_ca) if config.http.startswith("https:") else None
        api = ArrowSQL(config.http, config.user, config.password, config.database, tls, config.label, self.timeouts[0])
        return lambda sql, params, stamp: api.page(sql, params)

    def _lines(self, page: _Page) -> tuple[list[Line], set[str]]:
        """A page's lines, line by line."""
        lines: list[Line] = []
        keys: set[str] = set()
        verifier = self.verifier
        for values in page.rows:
            row = dict(zip(page.columns, values, strict=True))
            line = from_row(row)
            if line is None:
                continue
            if verifier is not None:
                verdict = verifier.check(row)
                if verdict.problem is not None:
                    line.auth = verdict.said
                    # who vouches for a line is part of its identity: an unproven one never stands for,
                    # suppresses or joins a proven one with the same machine, cursor, boot and PID
                    line.key = f"{line.key}|{line.auth}"
            stamp = values[page.stamp]
            if stamp == page.newest:
                keys.add(line.key)
            if stamp == page.low and line.key in page.boundary:
                continue  # already given by the previous page
            lines.append(line)
        return lines, keys

    def _frame(self, page: _Page) -> tuple[pl.DataFrame, set[str]]:
        """A page's lines in columns (`row_columns.page_frame`, `arrow_frame`)."""
        import polars as pl

        if isinstance(page.rows, pl.DataFrame):  # its times are times (`ArrowSQL.page`)
            frame = arrow_frame(page.rows, self.verifier)
            stamps = page.rows.get_column(STAMP).cast(pl.Datetime("us")).to_list()
        else:
            frame = page_frame(page.columns, page.rows, self.verifier)
            stamps = [values[page.stamp] for values in page.rows]
        at = frame["row"]
        newest = pl.Series([stamp == page.newest for stamp in stamps], dtype=pl.Boolean).gather(at)
        keys = set(frame.filter(newest)["key"].to_list())
        if page.boundary:
            low = pl.Series([stamp == page.low for stamp in stamps], dtype=pl.Boolean).gather(at)
            frame = frame.filter(~(low & frame["key"].is_in(list(page.boundary))))
        return frame.drop("row"), keys


def check_page(label: str, rows: list[Any] | pl.DataFrame, count: int, stamp: int, asked: tuple[Any, Any, int]) -> None:
    """A page is what was asked for: at most `limit` rows, in order of ingest time, from `low` to `high` (else a
    store, or whatever answers in its place, could keep the paging going for ever)."""
    import polars as pl

    low, high, limit = asked
    if not count:
        return
    if isinstance(rows, list):
        first, last = rows[0][stamp], rows[-1][stamp]
    else:
        times = rows.get_column(STAMP).cast(pl.Datetime("us"))
        first, last = times[0], times[-1]
    if not (isinstance(first, dt.datetime) and isinstance(last, dt.datetime)):
        return  # not times (a MySQL server's oddity): the paging ends where the rows do, as it did
    if count > limit or first < low or last < first or (high is not None and last > high):
        raise RuntimeFailure(
            f"database {label}: the store answered rows other than those asked for ({count} rows from {first} to "
            f"{last}, asked for at most {limit} from {low} to {high or 'now'})"
        )


def _window(start: int | None, end: int | None) -> tuple[str, tuple[dt.datetime, dt.datetime | None]]:
    """The condition on ingest time of rows with start <= greptime_timestamp <= end (None: open), and its bounds
    as the store compares them (naive UTC; no upper bound: None, and no parameter for it)."""
    where = "`greptime_timestamp` >= %s" + (" AND `greptime_timestamp` <= %s" if end is not None else "")
    low = from_micros(start if start is not None else 0).replace(tzinfo=None)
    return where, (low, from_micros(end).replace(tzinfo=None) if end is not None else None)


def joined(frames: Iterable[pl.DataFrame], size: int = FRAME_ROWS, text: int = FRAME_TEXT) -> Iterator[pl.DataFrame]:
    """`frames` (of lines) joined into frames of at least `size` lines or `text` characters of messages, but
    for the last; empty ones left out."""
    import polars as pl

    pending: list[pl.DataFrame] = []
    count = characters = 0
    for frame in frames:
        pending.append(frame)
        count += len(frame)
        characters += frame["message"].str.len_chars().sum()
        if count >= size or characters >= text:
            yield pl.concat(pending)
            pending, count, characters = [], 0, 0
    if count:
        yield pl.concat(pending)


@dataclass(frozen=True)
class _Page:
    """One page of rows (tuples of `columns`) and where it stands: `stamp`, the place of the ingest time;
    `low`, the least time asked for; `newest`, its last row's time; `boundary`, the keys of lines at `low` an
    earlier page gave."""

    columns: list[str]
    rows: list[tuple[Any, ...]] | pl.DataFrame  # a DataFrame: the page came as Arrow
    stamp: int
    low: dt.datetime
    newest: Any
    boundary: set[str]


def _converters() -> dict[Any, Any]:
    """pymysql's conversions, with DATETIME/TIMESTAMP read by the C parser (pymysql's own is a regex)."""
    from pymysql.constants import FIELD_TYPE
    from pymysql.converters import conversions, convert_datetime

    def to_datetime(value: str | bytes) -> Any:
        try:
            return dt.datetime.fromisoformat(value if isinstance(value, str) else value.decode("ascii"))
        except ValueError:
            return convert_datetime(value)  # zero dates and other oddities, as pymysql returns them

    return {**conversions, FIELD_TYPE.DATETIME: to_datetime, FIELD_TYPE.TIMESTAMP: to_datetime}


def mysql_message(exc: Exception) -> str:
    args = getattr(exc, "args", ())
    if len(args) >= 2:
        return f"{args[1]} (error {args[0]})"
    return str(exc) or type(exc).__name__


def micros_of(value: dt.datetime) -> int:
    """A time the store gave: naive ones are UTC (the session's time zone is set to UTC), an offset is kept."""
    return to_micros(value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC))
