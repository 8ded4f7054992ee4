"""Backups of the store with GreptimeDB's own COPY DATABASE, kept N daily / M weekly, and restores.

Why COPY DATABASE and not `greptime cli data export`: the export tool sends exactly this statement for the
data (v1.1.4 src/cli/src/data/export.rs:506-515, `COPY DATABASE ... TO '<path>' WITH (format = 'parquet')`)
and SHOW CREATE TABLE for the schema (export.rs:393-453), but it is marked legacy (src/cli/src/data.rs:39-49)
and takes the password on its command line (`--auth-basic`), where every local user sees it. logstack sends
the same statements through the HTTP API with the password from a systemd credential.

Facts relied on (v1.1.4): the location must end with '/' (src/operator/src/statement/copy_database.rs:62-68);
each base table is written to `<location><table>.parquet` by the GreptimeDB process itself
(copy_database.rs:114-116, copy_table_to.rs:178-184), so the directory is the greptime user's; the answer is
the number of rows as `affectedrows` (copy_database.rs:144-146). COPY DATABASE FROM loads every
`<table>.parquet` of the location into the existing table of that name and fails on a file without a table
(copy_database.rs:184-230, copy_table_from.rs:372): a restore creates the tables first. COPY counts as a write
(src/sql/src/statements/statement.rs:207): a read-only user may not run it, so the backup runs as admin.
Append-mode tables accept COPY FROM (inserts are Puts; src/mito2/src/worker/handle_write.rs:399-407).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from logstack.backup_storage import MANIFEST, STAMP_FORMAT, DirectoryStorage, S3Storage, Storage, s3_storage
from logstack.errors import BadInputError, LogstackError, RuntimeFailure, SecretsError

BACKUP_TABLE = "logstack_backups"
_MADE = "WHERE `location` NOT LIKE 'restored:%'"  # backups made, not restores recorded
_PATH_RE = re.compile(r"/[A-Za-z0-9._/-]{1,1000}")


class SQL(Protocol):
    def sql(self, statement: str, db: str | None = None) -> Any: ...
    def rows(self, statement: str) -> list[list[Any]]: ...


@dataclass
class BackupResult:
    """One backup: where it went, what it holds, what retention removed."""

    location: str
    rows: int
    tables: list[str]
    removed: list[str] = field(default_factory=list)


def check_location(path: str) -> str:
    """An absolute directory path that can sit in a SQL string literal as it is."""
    if not _PATH_RE.fullmatch(path) or "/../" in f"{path}/" or "//" in path:
        raise BadInputError(f"{path[:80]!r}: a backup location must be an absolute path of [A-Za-z0-9._/-]")
    return path.rstrip("/")


def _tables(api: SQL, database: str) -> dict[str, str]:
    names = api.rows(
        "SELECT table_name FROM information_schema.tables "
        f"WHERE table_schema = '{database}' AND table_type = 'BASE TABLE' ORDER BY table_name"
    )
    tables: dict[str, str] = {}
    for (name,) in names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(name)):
            raise RuntimeFailure(f"server: table name {str(name)[:60]!r} in {database} cannot be backed up safely")
        create = api.rows(f"SHOW CREATE TABLE `{database}`.`{name}`")
        tables[str(name)] = str(create[0][1])
    return tables


def affected_rows(answer: Any) -> int:
    try:
        return int(answer["output"][0]["affectedrows"])
    except (KeyError, IndexError, TypeError, ValueError):
        raise RuntimeFailure("server: GreptimeDB answered COPY DATABASE without a row count") from None


def run_backup(api: SQL, database: str, storage: Storage, now: dt.datetime) -> BackupResult:
    """Copy the database to `<storage>/<UTC stamp>/`, then write the manifest (the mark of a complete backup)
    and record the backup in the store (its location, never the keys)."""
    stamp = now.strftime(STAMP_FORMAT)
    target = storage.location(stamp)
    try:
        storage.begin(stamp)
    except OSError as exc:
        raise RuntimeFailure(f"{target}: cannot create the backup directory: {exc.strerror}") from None
    tables = _tables(api, database)
    copy = f"COPY DATABASE `{database}` TO '{target}' WITH (format = 'parquet')"
    rows = affected_rows(_without(storage.secrets(), lambda: api.sql(copy + storage.connection())))
    manifest = {
        "version": 1,
        "database": database,
        "created": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "format": "parquet",
        "rows": rows,
        "tables": tables,
    }
    storage.write_manifest(stamp, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    if BACKUP_TABLE in tables or _has_backup_table(api, database):
        api.sql(
            f"INSERT INTO `{database}`.`{BACKUP_TABLE}` (`greptime_timestamp`, `location`, `rows_copied`) "
            f"VALUES ('{now.strftime('%Y-%m-%d %H:%M:%S')}', '{target}', {rows})"
        )
    return BackupResult(target, rows, sorted(tables))


def _without(secrets: tuple[str, ...], call: Callable[[], Any]) -> Any:
    """Run a statement that carries keys; what GreptimeDB says back never shows them."""
    try:
        return call()
    except RuntimeFailure as exc:
        message = str(exc)
        for secret in secrets:
            message = message.replace(secret, "***")
        raise RuntimeFailure(message) from None


def _has_backup_table(api: SQL, database: str) -> bool:
    found = api.rows(
        f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{database}' "
        f"AND table_name = '{BACKUP_TABLE}'"
    )
    return bool(found)


def keep(stamps: list[str], keep_daily: int, keep_weekly: int) -> set[str]:
    """Which backups retention keeps: the newest of each of the last `keep_daily` days that have one, and
    the newest of each of the last `keep_weekly` ISO weeks that have one."""
    kept: set[str] = set()
    days: dict[str, str] = {}
    weeks: dict[tuple[int, int], str] = {}
    for stamp in sorted(stamps, reverse=True):
        when = dt.datetime.strptime(stamp, STAMP_FORMAT)
        days.setdefault(stamp[:8], stamp)
        weeks.setdefault(when.isocalendar()[:2], stamp)
    kept.update(sorted(days.values(), reverse=True)[:keep_daily])
    kept.update(sorted(weeks.values(), reverse=True)[:keep_weekly])
    return kept


def prune(storage: Storage, keep_daily: int, keep_weekly: int, now: dt.datetime) -> tuple[list[str], list[str]]:
    """Remove complete backups retention does not keep, and incomplete ones older than a day; returns what
    was removed and what could not be. Only backups named as logstack names them, and not after `now`,
    are ever touched; the backup made at `now` is always kept."""
    try:
        complete, incomplete = storage.listing(now)
    except (OSError, LogstackError) as exc:
        return [], [f"cannot list the backups: {getattr(exc, 'strerror', None) or exc}"]
    kept = keep(complete, keep_daily, keep_weekly) | {now.strftime(STAMP_FORMAT)}
    cutoff = (now - dt.timedelta(days=1)).strftime(STAMP_FORMAT)
    removed, problems = [], []
    for stamp in sorted([s for s in complete if s not in kept] + [s for s in incomplete if s < cutoff]):
        try:
            storage.remove(stamp)
            removed.append(stamp)
        except (OSError, LogstackError) as exc:
            problems.append(f"{storage.location(stamp)}: cannot remove: {getattr(exc, 'strerror', None) or exc}")
    return removed, problems


_CREATE_RE = re.compile(r'CREATE TABLE IF NOT EXISTS (?:"([A-Za-z_][A-Za-z0-9_]*)"|`([A-Za-z_][A-Za-z0-9_]*)`) \(')


def check_create(table: str, statement: str, where: str) -> str:
    """A saved CREATE TABLE that may be run as admin: one statement creating exactly that table."""
    match = _CREATE_RE.match(statement)
    if match is None or (match.group(1) or match.group(2)) != table or ";" in statement:
        raise BadInputError(
            f"{where}: the saved statement for table {table!r} is not one CREATE TABLE IF NOT EXISTS of that table"
        )
    return statement


def read_manifest(text: bytes, where: str) -> dict[str, Any]:
    """A backup's manifest, checked: database, row count and each table's CREATE statement."""
    try:
        manifest = json.loads(text)
        ok = (
            manifest.get("version") == 1
            and isinstance(manifest.get("database"), str)
            and type(manifest.get("rows")) is int
            and isinstance(manifest.get("tables"), dict)
            and all(
                isinstance(k, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k) and isinstance(v, str)
                for k, v in manifest["tables"].items()
            )
        )
    except (ValueError, AttributeError, RecursionError):
        ok = False
    if not ok:
        raise BadInputError(f"{where}: not a logstack backup manifest")
    return manifest


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
    existing = set(_tables(api, database)) if _database_exists(api, database) else set()
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
    rows = affected_rows(_without(secrets, lambda: api.sql(copy + connection)))
    if BACKUP_TABLE in existing or BACKUP_TABLE in statements:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        api.sql(
            f"INSERT INTO `{database}`.`{BACKUP_TABLE}` (`greptime_timestamp`, `location`, `rows_copied`) "
            f"VALUES ('{now}', '{marker}', {rows})"
        )
    if rows != manifest["rows"]:
        raise RuntimeFailure(f"restore: {rows} rows loaded, the backup holds {manifest['rows']}")
    return RestoreResult(created, rows, manifest["rows"])


def _database_exists(api: SQL, database: str) -> bool:
    return bool(api.rows(f"SELECT schema_name FROM information_schema.schemata WHERE schema_name = '{database}'"))


def last_backup(api: SQL, database: str) -> dt.datetime | None:
    """When the newest recorded backup ran (None: none recorded, or no backup table)."""
    if not _has_backup_table(api, database):
        return None
    rows = api.rows(f"SELECT max(`greptime_timestamp`) FROM `{database}`.`{BACKUP_TABLE}` {_MADE}")
    value = rows[0][0] if rows and rows[0] else None
    if value is None:
        return None
    return parse_time(value)


def parse_time(value: Any) -> dt.datetime | None:
    """A timestamp as GreptimeDB's HTTP API gives it (epoch milliseconds) or as text."""
    try:
        if isinstance(value, int | float):
            return dt.datetime.fromtimestamp(value / 1000, dt.UTC)
        return dt.datetime.fromisoformat(str(value).replace(" ", "T")).replace(tzinfo=dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None


def site_s3(inventory: Any, secrets: Any) -> S3Storage | None:
    """The site's S3 backup storage (inventory's `backup.s3`, keys from secrets.yaml `backup:`), if any."""
    settings = inventory.server.backup
    if settings is None or settings.s3 is None:
        return None
    keys = secrets.backup
    if not keys.get("access_key_id") or not keys.get("secret_access_key"):
        raise SecretsError("secrets.yaml: backup.access_key_id and backup.secret_access_key are needed for backup.s3")
    s3 = settings.s3
    return s3_storage(
        f"s3://{s3.bucket}/{s3.root}", s3.endpoint, s3.region, keys["access_key_id"], keys["secret_access_key"]
    )


def manifest_reader(conn: Any, storage: S3Storage | None) -> Callable[[str], bytes]:
    """Reads a manifest where its backup lies: S3 (`s3://...`, from here) or the server's disk (over SSH)."""
    from logstack.shell import shell_command

    def read(path: str) -> bytes:
        if path.startswith("s3://"):
            if storage is None:
                raise BadInputError(f"{path[:120]}: an S3 backup, but the inventory has no backup.s3")
            bucket, _, key = path.removeprefix("s3://").partition("/")
            if bucket != storage.bucket.bucket:
                raise BadInputError(f"{path[:120]}: not in the site's backup bucket {storage.bucket.bucket}")
            return storage.bucket.get(key)
        status, out, _ = conn.run(
            shell_command('cat -- "$1"', check_location(path.removesuffix("/" + MANIFEST)) + "/" + MANIFEST),
            check=False,
        )
        if status != 0:
            raise BadInputError(f"server: {path}: no such backup manifest")
        return out

    return read


def restore_on_server(inventory: Any, location: str, accept_new: bool = False) -> RestoreResult:
    """`logstack restore`: a backup into the site's fresh store, through its HTTP API as admin: a backup on
    the server's disk into its standalone store, or one on S3 into either store (a move to an external
    store goes this way)."""
    from logstack.greptime import store_api
    from logstack.secrets_store import load_secrets, secrets_path
    from logstack.ssh import connect
    from logstack.targets import known_hosts_path, server_target

    if not location.startswith("s3://"):
        location = check_location(location)
        if inventory.server.store.type != "standalone":
            raise BadInputError(
                "an external store cannot read the server's disk: restore it from a backup on S3 (backup.s3)"
            )
    secrets = load_secrets(secrets_path(inventory.site_dir))
    storage = site_s3(inventory, secrets) if location.startswith("s3://") else None
    with connect(server_target(inventory), known_hosts_path(inventory), accept_new=accept_new) as conn:
        api = store_api(conn, inventory, "admin", secrets.db_password("admin"))
        api.wait_healthy()
        connection, keys = (storage.connection(), storage.secrets()) if storage else ("", ())
        read = manifest_reader(conn, storage)
        return restore(api, inventory.server.database, location, read, connection, keys)


def recorded_backup(db: Any) -> dt.datetime | None:
    """The newest backup recorded in the store, read through the analysis' MySQL source (None when there is
    none, or no backup table yet)."""
    try:
        rows = db.query(  # pymysql formats the statement: the pattern goes as a parameter
            f"SELECT max(`greptime_timestamp`) AS newest FROM `{db.config.database}`.`{BACKUP_TABLE}` "
            "WHERE `location` NOT LIKE %s",
            ("restored:%",),
        )
    except RuntimeFailure:
        return None
    value = rows[0]["newest"] if rows else None
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC)
    return parse_time(value) if value is not None else None


def newest_backup_manifest(api: SQL, database: str, read: Callable[[str], bytes]) -> dict[str, Any] | None:
    """The manifest of the newest recorded backup, where it lies, when it is there and says the same time
    as the record; else None."""
    rows = api.rows(
        f"SELECT `location`, `greptime_timestamp` FROM `{database}`.`{BACKUP_TABLE}` "
        f"{_MADE} ORDER BY `greptime_timestamp` DESC LIMIT 1"
    )
    if not rows:
        return None
    location, when = str(rows[0][0]).rstrip("/"), parse_time(rows[0][1])
    try:
        manifest = read_manifest(read(f"{location}/{MANIFEST}"), location)
    except LogstackError:
        return None
    recorded = when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None
    return manifest if manifest.get("created") == recorded else None


def backup_storage(
    directory: Path | None, s3: str | None, endpoint: str | None, region: str, credentials: Path | None
) -> Storage:
    """The storage the backup command's options name: a directory, or an S3 prefix with its keys."""
    if (directory is None) == (s3 is None):
        raise BadInputError("name exactly one of --directory and --s3")
    if directory is not None:
        return DirectoryStorage(Path(check_location(str(directory))))
    if credentials is None:
        raise BadInputError("--s3 needs --s3-credentials")
    try:
        keys = json.loads(credentials.read_bytes())
        access, secret = str(keys["access_key_id"]), str(keys["secret_access_key"])
    except OSError as exc:
        raise SecretsError(f"{credentials}: cannot read: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError):
        raise SecretsError(f"{credentials}: not JSON with access_key_id and secret_access_key") from None
    return s3_storage(str(s3), endpoint, region, access, secret)
