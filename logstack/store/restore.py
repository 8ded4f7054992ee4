"""Restores: a backup loaded into a fresh store, its tables made as they were, the same backup never twice."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from logstack.base.errors import BadInputError, RuntimeFailure
from logstack.integrity.store_head import HEAD_TABLE
from logstack.store.backup import (
    BACKUP_TABLE,
    SQL,
    affected_rows,
    check_location,
    database_exists,
    keys_hidden,
    manifest_reader,
    read_manifest,
    site_s3,
    table_names,
)
from logstack.store.backup_targets import MANIFEST, S3Storage, is_stamp, parse_s3

# SHOW CREATE TABLE as GreptimeDB v1.1.4 prints it (src/sql/src/statements/create.rs:492-516, Display for
# CreateTable): the name, one column a line (`"name" TYPE NULL|NOT NULL`), the constraints, `)`, ENGINE= and
# WITH( one option a line ). Only what logstack's own tables hold is read; the statement run is logstack's.
_HEAD_RE = re.compile(r'CREATE TABLE IF NOT EXISTS (?:"([A-Za-z_]\w{0,63})"|`([A-Za-z_]\w{0,63})`) \(')
_NAME = r'(?:"([A-Za-z_][A-Za-z0-9_]{0,63})"|`([A-Za-z_][A-Za-z0-9_]{0,63})`)'
_COLUMN_RE = re.compile(_NAME + r" (STRING|BIGINT|TIMESTAMP\([0369]\)) (NULL|NOT NULL)")
_TIME_INDEX_RE = re.compile(r"TIME INDEX \(" + _NAME + r"\)")
_OPTION_RE = re.compile(r"([a-z_.]{1,40}) ?= ?'([^'\\]{0,40})'")
# the options logstack sets on its tables (the TTL is the database's: a table shows it when it has one)
_OPTIONS = {"append_mode": {"true"}, "ttl": None}


def _name(match: re.Match[str], first: int = 1) -> str:
    return match.group(first) or match.group(first + 1)


def table_statement(database: str, table: str, shown: str, where: str) -> str:
    """The CREATE TABLE logstack runs for a backed-up table: its columns and time index as the backup's
    statement lists them, nothing else of it; append-only as logstack makes its tables. A statement with
    anything logstack's tables do not hold (another constraint, a column option, an option logstack does
    not set, a second statement) is refused."""

    def refuse(why: str) -> BadInputError:
        return BadInputError(f"{where}: table {table!r}: {why}")

    lines = [line.strip().rstrip(",") for line in shown.strip().splitlines() if line.strip()]
    head = _HEAD_RE.fullmatch(lines[0]) if lines else None
    if head is None or _name(head) != table:
        raise refuse("the saved statement is not a CREATE TABLE IF NOT EXISTS of that table")
    columns: list[tuple[str, str, str]] = []
    time_index = None
    rest = iter(lines[1:])
    for line in rest:
        if line == ")":
            break
        if m := _COLUMN_RE.fullmatch(line):
            columns.append((_name(m), m.group(3), m.group(4)))
        elif (m := _TIME_INDEX_RE.fullmatch(line)) and time_index is None:
            time_index = _name(m)
        else:
            raise refuse(f"{line[:80]!r} is not a column or the time index of logstack's tables")
    tail = list(rest)
    if tail[:1] != ["ENGINE=mito"] or (len(tail) > 1 and (tail[1] != "WITH(" or tail[-1] != ")")):
        raise refuse("the statement does not end as GreptimeDB shows a mito table")
    for option in tail[2:-1]:
        m = _OPTION_RE.fullmatch(option)
        if m is None or m.group(1) not in _OPTIONS or (_OPTIONS[m.group(1)] or {m.group(2)}) != {m.group(2)}:
            raise refuse(f"option {option[:60]!r} is not one logstack sets")
    names = [name for name, _, _ in columns]
    if time_index is None or time_index not in names or len(set(names)) != len(names):
        raise refuse("its columns and time index are not those of a logstack table")
    body = "".join(f"  `{name}` {kind} {null},\n" for name, kind, null in columns)
    return (
        f"CREATE TABLE IF NOT EXISTS `{database}`.`{table}` (\n{body}  TIME INDEX (`{time_index}`)\n)"
        " ENGINE = mito WITH (append_mode = 'true')"
    )


BACKUP_TABLE_SQL = (  # as schema.sql makes it (templates/server/schema.sql.j2)
    "CREATE TABLE IF NOT EXISTS `{database}`.`logstack_backups` (\n  `greptime_timestamp` TIMESTAMP(3) NOT NULL,\n"
    "  `location` STRING NULL,\n  `rows_copied` BIGINT NULL,\n  TIME INDEX (`greptime_timestamp`)\n)"
    " ENGINE = mito WITH (append_mode = 'true')"
)


def _record(api: SQL, database: str, location: str, rows: int) -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    api.sql(
        f"INSERT INTO `{database}`.`{BACKUP_TABLE}` (`greptime_timestamp`, `location`, `rows_copied`) "
        f"VALUES ('{now}', '{location}', {int(rows)})"
    )


@dataclass
class RestoreResult:
    """What a restore created and loaded."""

    created: list[str]
    rows: int
    expected: int


def restore(
    api: SQL,
    database: str,
    location: str,
    read: Callable[[str], bytes],
    connection: str = "",
    secrets: tuple[str, ...] = (),
    known_tables: tuple[str, ...] = (),
) -> RestoreResult:
    """Load a backup into a fresh store: its tables created as they were (SHOW CREATE TABLE), then COPY
    DATABASE FROM. The store records each restore; the same backup is never loaded twice (the tables are
    append-only: a second load would double every row). Senders may deliver into the store meanwhile."""
    location = location.rstrip("/")
    where = f"{location}/{MANIFEST}"
    manifest = read_manifest(read(where), where)
    if manifest["database"] != database:
        raise BadInputError(f"{location}: a backup of database {manifest['database']!r}, not {database!r}")
    unknown = sorted(set(manifest["tables"]) - set(known_tables))
    if unknown:
        raise BadInputError(f"{where}: tables logstack does not make: {', '.join(unknown)}")
    statements = {t: table_statement(database, t, sql, where) for t, sql in manifest["tables"].items()}
    existing = set(table_names(api, database)) if database_exists(api, database) else set()
    created_at = manifest["created"]
    if (
        BACKUP_TABLE in existing
        and api.rows(
            f"SELECT count(*) FROM `{database}`.`{BACKUP_TABLE}` "
            f"WHERE `location` IN ('restoring:{created_at}', 'restored:{created_at}')"
        )[0][0]
    ):
        raise BadInputError(f"the backup of {created_at} was restored into this store already (or began to be)")
    created = []
    api.sql(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    for table, create in sorted(statements.items()):
        if table not in existing:
            api.sql(create)
            created.append(table)
    if BACKUP_TABLE not in existing and BACKUP_TABLE not in statements:  # the record needs logstack's table
        api.sql(BACKUP_TABLE_SQL.format(database=database))
        created.append(BACKUP_TABLE)
    # recorded before the COPY: a restore cut off after loading (a crash, a lost connection) is never loaded
    # again on top of itself; the operator sees "began to be" and decides
    _record(api, database, f"restoring:{created_at}", 0)
    copy = f"COPY DATABASE `{database}` FROM '{location}/' WITH (format = 'parquet')"
    rows = affected_rows(keys_hidden(secrets, api, copy + connection))
    _record(api, database, f"restored:{created_at}", rows)
    if rows != manifest["rows"]:
        raise RuntimeFailure(f"restore: {rows} rows loaded, the backup holds {manifest['rows']}")
    return RestoreResult(created, rows, manifest["rows"])


def _site_stamp(storage: S3Storage, location: str) -> str:
    """The stamp of a backup below the site's own bucket and prefix; any other location is refused."""
    bucket, path = parse_s3(location)
    prefix, _, stamp = path.rpartition("/")
    if bucket != storage.bucket.bucket or prefix != storage.root or not is_stamp(stamp, dt.datetime.now(dt.UTC)):
        raise BadInputError(
            f"{location[:120]}: not a backup of this site (expected {storage.location('STAMP').rstrip('/')})"
        )
    return stamp


def restore_on_server(inventory: Any, location: str, accept_new: bool = False) -> RestoreResult:
    """`logstack restore`: a backup into the site's fresh store, through its HTTP API as admin: a backup on
    the server's disk into its standalone store, or one on S3 into either store (a move to an external
    store goes this way)."""
    from logstack.connection.registry import connect
    from logstack.connection.targets import known_hosts_path, server_target
    from logstack.site.secrets import load_secrets, secrets_path
    from logstack.store.greptime import store_api

    if not location.startswith("s3://"):
        location = check_location(location)
        if inventory.server.store.type != "standalone":
            raise BadInputError(
                "an external store cannot read the server's disk: restore it from a backup on S3 (backup.s3)"
            )
    secrets = load_secrets(secrets_path(inventory.site_dir))
    storage = site_s3(inventory, secrets) if location.startswith("s3://") else None
    if storage is not None:
        location = storage.location(_site_stamp(storage, location)).rstrip("/")
    with connect(server_target(inventory), known_hosts_path(inventory), accept_new=accept_new) as conn:
        api = store_api(conn, inventory, "admin", secrets.db_password("admin"))
        api.wait_healthy()
        connection, keys = (storage.connection(), storage.secrets()) if storage else ("", ())
        read = manifest_reader(conn, storage)
        known = restore_known_tables(inventory.server.table)
        return restore(api, inventory.server.database, location, read, connection, keys, known)


def restore_known_tables(table: str) -> tuple[str, ...]:
    """The tables a backup of a logstack store may hold: the logs table and logstack's own."""
    return (table, BACKUP_TABLE, HEAD_TABLE)
