"""Backups of the store with GreptimeDB's own COPY DATABASE, kept N daily / M weekly (restores: `restore`).

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

from logstack.base.errors import BadInputError, LogstackError, RuntimeFailure, SecretsError
from logstack.base.safe_read import KiB, read_file
from logstack.base.validation import SQL_NAME_RE
from logstack.store.backup_targets import (
    MANIFEST,
    STAMP_FORMAT,
    DirectoryStorage,
    S3Storage,
    Storage,
    s3_storage,
)

BACKUP_TABLE = "logstack_backups"
_MADE = "WHERE `location` NOT LIKE 'restor%'"  # backups made, not restores recorded (restoring:, restored:)
_PATH_RE = re.compile(r"/[A-Za-z0-9._/-]{1,1000}")


class SQL(Protocol):
    def sql(self, statement: str, db: str | None = None) -> Any: ...
    def try_sql(self, statement: str, db: str | None = None) -> tuple[int, Any]: ...
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


def table_names(api: SQL, database: str) -> list[str]:
    """The database's base tables; a name that could not stand in SQL as it is is refused."""
    rows = api.rows(
        "SELECT table_name FROM information_schema.tables "
        f"WHERE table_schema = '{database}' AND table_type = 'BASE TABLE' ORDER BY table_name"
    )
    names = [str(name) for (name,) in rows]
    for name in names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise RuntimeFailure(f"server: table name {name[:60]!r} in {database} cannot be backed up safely")
    return names


def table_statements(api: SQL, database: str) -> dict[str, str]:
    """Each base table's CREATE statement, as SHOW CREATE TABLE gives it."""
    return {
        name: str(api.rows(f"SHOW CREATE TABLE `{database}`.`{name}`")[0][1]) for name in table_names(api, database)
    }


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
    tables = table_statements(api, database)
    copy = f"COPY DATABASE `{database}` TO '{target}' WITH (format = 'parquet')"
    rows = affected_rows(keys_hidden(storage.secrets(), api, copy + storage.connection()))
    manifest = {
        "version": 1,
        "database": database,
        "created": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "format": "parquet",
        "rows": rows,
        "tables": tables,
    }
    storage.write_manifest(stamp, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    if BACKUP_TABLE in tables:
        api.sql(
            f"INSERT INTO `{database}`.`{BACKUP_TABLE}` (`greptime_timestamp`, `location`, `rows_copied`) "
            f"VALUES ('{now.strftime('%Y-%m-%d %H:%M:%S')}', '{target}', {rows})"
        )
    return BackupResult(target, rows, sorted(tables))


def keys_hidden(secrets: tuple[str, ...], api: SQL, statement: str) -> Any:
    """Run a statement that carries keys; what GreptimeDB says back never shows them (masked before it is
    shortened, so no part of a key survives)."""
    if not secrets:
        return api.sql(statement)
    status, answer = api.try_sql(statement)
    if status == 200:
        return answer
    message = str(answer.get("error", answer) if isinstance(answer, dict) else answer)
    for secret in secrets:
        message = message.replace(secret, "***")
    raise RuntimeFailure(f"server: GreptimeDB rejected SQL ({status}): {message[:300]}")


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


MAX_MANIFEST = 1024 * 1024  # a manifest of logstack's own tables is a few KiB
_STAMP_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_TABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def read_manifest(text: bytes, where: str) -> dict[str, Any]:
    """A backup's manifest, checked whole before any value is used: version, database and table names,
    the stamp, the row count and each table's statement, each of its type and within its bounds."""
    try:
        manifest = json.loads(text) if len(text) <= MAX_MANIFEST else None
        tables = manifest.get("tables") if isinstance(manifest, dict) else None
        ok = (
            isinstance(manifest, dict)
            and manifest.get("version") == 1
            and isinstance(manifest.get("database"), str)
            and bool(SQL_NAME_RE.fullmatch(manifest["database"]))
            and isinstance(manifest.get("created"), str)
            and bool(_STAMP_RE.fullmatch(manifest["created"]))
            and type(manifest.get("rows")) is int
            and 0 <= manifest["rows"] < 2**63
            and isinstance(tables, dict)
            and 0 < len(tables) <= 16
            and all(
                isinstance(k, str) and _TABLE_RE.fullmatch(k) and isinstance(v, str) and len(v) <= 256 * 1024
                for k, v in tables.items()
            )
        )
    except (ValueError, AttributeError, RecursionError):
        ok = False
    if not ok:
        raise BadInputError(f"{where}: not a logstack backup manifest")
    return manifest


def database_exists(api: SQL, database: str) -> bool:
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
    keys = secrets.s3_keys("backup", "backup.s3", inventory.site_dir / "secrets.yaml")
    s3 = settings.s3
    return s3_storage(
        f"s3://{s3.bucket}/{s3.root}", s3.endpoint, s3.region, keys["access_key_id"], keys["secret_access_key"]
    )


def manifest_reader(conn: Any, storage: S3Storage | None) -> Callable[[str], bytes]:
    """Reads a manifest where its backup lies: S3 (`s3://...`, from here) or the server's disk (over SSH)."""
    from logstack.base.shell import shell_command

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


def recorded_backup(db: Any) -> dt.datetime | None:
    """The newest backup recorded in the store, read through the analysis' MySQL source (None when there is
    none, or no backup table yet)."""
    try:
        rows = db.query(  # pymysql formats the statement: the pattern goes as a parameter
            f"SELECT max(`greptime_timestamp`) AS newest FROM `{db.config.database}`.`{BACKUP_TABLE}` "
            "WHERE `location` NOT LIKE %s",
            ("restor%",),
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


def storage_from_options(
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
        keys = json.loads(read_file(credentials, "S3 credentials", 64 * KiB, follow_links=True, error=SecretsError))
        access, secret = str(keys["access_key_id"]), str(keys["secret_access_key"])
    except OSError as exc:
        raise SecretsError(f"{credentials}: cannot read: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError):
        raise SecretsError(f"{credentials}: not JSON with access_key_id and secret_access_key") from None
    return s3_storage(str(s3), endpoint, region, access, secret)
