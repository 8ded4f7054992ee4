"""Restores: a backup loaded into a fresh store, its tables made as they were, the same backup never twice."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from logstack.base.errors import BadInputError, RuntimeFailure
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

_CREATE_RE = re.compile(r'CREATE TABLE IF NOT EXISTS (?:"([A-Za-z_][A-Za-z0-9_]*)"|`([A-Za-z_][A-Za-z0-9_]*)`) \(')


def check_create(table: str, statement: str, where: str) -> str:
    """A saved CREATE TABLE that may be run as admin: one statement creating exactly that table."""
    match = _CREATE_RE.match(statement)
    if match is None or (match.group(1) or match.group(2)) != table or ";" in statement:
        raise BadInputError(
            f"{where}: the saved statement for table {table!r} is not one CREATE TABLE IF NOT EXISTS of that table"
        )
    return statement


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
) -> RestoreResult:
    """Load a backup into a fresh store: its tables created as they were (SHOW CREATE TABLE), then COPY
    DATABASE FROM. The store records each restore; the same backup is never loaded twice (the tables are
    append-only: a second load would double every row). Senders may deliver into the store meanwhile."""
    location = location.rstrip("/")
    where = f"{location}/{MANIFEST}"
    manifest = read_manifest(read(where), where)
    if manifest["database"] != database:
        raise BadInputError(f"{location}: a backup of database {manifest['database']!r}, not {database!r}")
    statements = {t: check_create(t, sql, where) for t, sql in manifest["tables"].items()}
    existing = set(table_names(api, database)) if database_exists(api, database) else set()
    marker = f"restored:{manifest['created']}"
    if (
        BACKUP_TABLE in existing
        and api.rows(f"SELECT count(*) FROM `{database}`.`{BACKUP_TABLE}` WHERE `location` = '{marker}'")[0][0]
    ):
        raise BadInputError(f"the backup of {manifest['created']} was restored into this store already")
    created = []
    api.sql(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    for table, create in sorted(statements.items()):
        if table not in existing:
            api.sql(create, db=database)
            created.append(table)
    copy = f"COPY DATABASE `{database}` FROM '{location}/' WITH (format = 'parquet')"
    rows = affected_rows(keys_hidden(secrets, api, copy + connection))
    if BACKUP_TABLE in existing or BACKUP_TABLE in statements:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        api.sql(
            f"INSERT INTO `{database}`.`{BACKUP_TABLE}` (`greptime_timestamp`, `location`, `rows_copied`) "
            f"VALUES ('{now}', '{marker}', {rows})"
        )
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
        return restore(api, inventory.server.database, location, read, connection, keys)
