"""What the GreptimeDB stand-in answers for backups and restores, as v1.1.4 does:

- information_schema.tables lists the base tables of a database (table_type 'BASE TABLE');
  information_schema.schemata the databases;
- SHOW CREATE TABLE answers rows of (table, statement);
- COPY DATABASE <db> TO '<dir>/' writes `<dir><table>.parquet` per base table and answers the rows copied
  as `affectedrows`; a location without a trailing '/' is refused ("Invalid COPY DATABASE location, must
  end with '/'": src/operator/src/statement/copy_database.rs:62-68, src/operator/src/error.rs);
- COPY DATABASE <db> FROM '<dir>/' loads each `*.parquet` of the directory into the table named by the file's
  stem, which must exist (copy_database.rs:184-270; copy_table_from.rs:372, TableNotFound), and answers the
  rows loaded.
The stand-in's files hold its rows as JSON lines, not Parquet: logstack never reads the data files, it
names, counts and moves them.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any


def _records(rows: list[list[Any]]) -> tuple[int, dict]:
    return 200, {"output": [{"records": {"rows": rows, "total_rows": len(rows)}}]}


def _millis(row: str) -> int:
    stamp = re.match(r"'([^']*)'", row)[1]
    return int(dt.datetime.fromisoformat(stamp).replace(tzinfo=dt.UTC).timestamp() * 1000)


def show_create(table: str, created: str, ttl: str | None) -> str:
    """SHOW CREATE TABLE as GreptimeDB v1.1.4 prints it (src/sql/src/statements/create.rs:492-516, Display
    for CreateTable; src/query/src/sql/show_create_table.rs: the table's own name quoted, one column a line,
    the database's TTL among the options, `'k' = 'v'` for dotted keys)."""
    columns = re.findall(r"^\s*`(\w+)` ([A-Z]+(?:\(\d\))?) (NULL|NOT NULL),?$", created, re.M)
    index = re.search(r"TIME INDEX \(`(\w+)`\)", created)[1]
    options = re.findall(r"(\w+) = '([^']*)'", created.split(" WITH ", 1)[1]) if " WITH " in created else []
    if ttl is not None:
        options.append(("ttl", ttl))
    lines = [f'CREATE TABLE IF NOT EXISTS "{table}" (']
    lines += [f'  "{name}" {kind} {null},' for name, kind, null in columns]
    lines += [f'  TIME INDEX ("{index}")', ")", "", "ENGINE=mito"]
    if options:
        lines += ["WITH(", ",\n".join(f"  {k} = '{v}'" for k, v in sorted(options)), ")"]
    return "\n".join(lines)


def copy_answer(fake: Any, sql: str, db: str = "public") -> tuple[int, dict] | None:
    """The answer to a backup/restore statement, or None for any other."""
    if m := re.match(
        r"SELECT table_name FROM information_schema.tables WHERE table_schema = '(\w+)' "
        r"AND (?:table_type = 'BASE TABLE' ORDER BY table_name|table_name = '(\w+)')$",
        sql,
    ):
        names = sorted(t.split("`.`")[1].rstrip("`") for t in fake.tables if t.startswith(f"`{m[1]}`."))
        return _records([[n] for n in names if m[2] is None or n == m[2]])
    if m := re.match(r"SELECT schema_name FROM information_schema.schemata WHERE schema_name = '(\w+)'$", sql):
        return _records([[m[1]]] if m[1] in fake.databases else [])
    if m := re.match(r"SHOW CREATE TABLE (`\w+`\.`(\w+)`)$", sql):
        ttl = fake.databases.get(m[1].split(".")[0].strip("`"))
        return _records([[m[2], show_create(m[2], fake.creates[m[1]], None if ttl in (None, "forever") else ttl)]])
    if m := re.match(r'CREATE TABLE IF NOT EXISTS "(\w+)" \(', sql):  # logstack no longer sends this form
        raise AssertionError(f"a CREATE TABLE from a manifest reached the store as it was written: {sql[:80]}")
    if m := re.match(r"SELECT count\(\*\) FROM (`\w+`\.`\w+`) WHERE `logstack_host` IS NULL OR", sql):
        rows = [r for r in fake.table_rows.get(m[1], []) if "'logstack-init-server'" not in r]
        return _records([[len(rows)]])
    made = [r for r in fake.table_rows.get("`vector`.`logstack_backups`", []) if "'restor" not in r]
    if re.match(
        r"SELECT max\(`greptime_timestamp`\) FROM `\w+`\.`logstack_backups` WHERE `location` NOT LIKE 'restor%'$",
        sql,
    ):
        # a timestamp comes as an integer in its column's unit (TIMESTAMP(3): milliseconds)
        return _records([[max((_millis(r) for r in made), default=None)]])
    if re.match(r"SELECT `location`, `greptime_timestamp` FROM `\w+`\.`logstack_backups` WHERE", sql):
        newest = sorted(made, key=_millis)[-1:]
        return _records([[re.findall(r"'([^']*)'", r)[1], _millis(r)] for r in newest])
    if m := re.match(r"SELECT count\(\*\) FROM (`\w+`\.`logstack_backups`) WHERE `location` IN \((.*)\)$", sql):
        wanted = re.findall(r"'([^']*)'", m[2])
        return _records([[sum(1 for r in fake.table_rows.get(m[1], []) if any(f"'{w}'" in r for w in wanted))]])
    if m := re.match(
        r"COPY DATABASE `(\w+)` (TO|FROM) '([^']*)' WITH \(format = 'parquet'\)( CONNECTION \((.*)\))?$", sql
    ):
        if not m[3].endswith("/"):
            return 400, {"code": 1004, "error": "Invalid COPY DATABASE location, must end with '/'"}
        files = _files(m[3], m[5])
        if isinstance(files, tuple):
            return files
        return _copy_to(fake, m[1], files) if m[2] == "TO" else _copy_from(fake, m[1], files)
    return None


class _Bucket:
    """An s3:// location in the S3 stand-in's objects, as GreptimeDB's S3 backend reaches it with the
    CONNECTION keys (v1.1.4 src/common/datasource/src/object_store/s3.rs: bucket = the URL's host, root =
    its path; keys access_key_id, secret_access_key, region, endpoint)."""

    def __init__(self, bucket: str, root: str) -> None:
        self.bucket, self.root = bucket, root.strip("/")

    def write(self, name: str, data: str) -> None:
        from tests.s3_standin import FakeS3

        FakeS3.objects[(self.bucket, f"{self.root}/{name}")] = data.encode()

    def parquet(self) -> list[tuple[str, str]]:
        from tests.s3_standin import FakeS3

        found = [(k, v) for (b, k), v in FakeS3.objects.items() if b == self.bucket and k.startswith(self.root + "/")]
        return sorted((k.rsplit("/", 1)[1], v.decode()) for k, v in found if k.endswith(".parquet"))


def _files(location: str, connection: str | None) -> Any:
    if not location.startswith("s3://"):
        return Path(location)
    from tests.s3_standin import ACCESS, SECRET

    given = dict(re.findall(r"(\w+) = '([^']*)'", connection or ""))
    if given.get("ACCESS_KEY_ID") != ACCESS or given.get("SECRET_ACCESS_KEY") != SECRET:
        return 400, {"code": 1004, "error": "Failed to build backend: access denied"}
    bucket, _, root = location.removeprefix("s3://").partition("/")
    return _Bucket(bucket, root)


def _copy_to(fake: Any, db: str, where: Any) -> tuple[int, dict]:
    total = 0
    for table in sorted(t for t in fake.tables if t.startswith(f"`{db}`.")):
        rows = fake.table_rows.get(table, [])
        name = table.split("`.`")[1].rstrip("`")
        text = "".join(json.dumps(r) + "\n" for r in rows)
        if isinstance(where, _Bucket):
            where.write(f"{name}.parquet", text)
        else:
            (where / f"{name}.parquet").write_text(text)
        total += len(rows)
    return 200, {"output": [{"affectedrows": total}], "execution_time_ms": 1}


def _copy_from(fake: Any, db: str, where: Any) -> tuple[int, dict]:
    total = 0
    if isinstance(where, _Bucket):
        files = where.parquet()
    else:
        files = [(p.name, p.read_text()) for p in sorted(where.glob("*.parquet"))]
    for name, text in files:
        stem = name.removesuffix(".parquet")
        table = f"`{db}`.`{stem}`"
        if table not in fake.tables:
            return 400, {"code": 4001, "error": f"Table not found: greptime.{db}.{stem}"}
        rows = [json.loads(line) for line in text.splitlines()]
        fake.table_rows.setdefault(table, []).extend(rows)
        fake.rows.extend(rows)
        total += len(rows)
    return 200, {"output": [{"affectedrows": total}], "execution_time_ms": 1}
