"""The store's database and table, made once through its HTTP API, and a self-test of who may do what:
for the standalone store on the server (reached through SSH) and an external one (directly, over TLS)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from logstack.base.errors import RuntimeFailure
from logstack.render.rendered import RenderedFile
from logstack.site.inventory import ServerSpec
from logstack.store.greptime import GreptimeHTTP, ttl_seconds

Api = Callable[[str], GreptimeHTTP]  # the API as one of the site's users (admin, vector, analyst)


def schema_statements(schema_sql: str) -> list[str]:
    """The rendered schema.sql as single statements (comments dropped)."""
    body = "\n".join(line for line in schema_sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def create_schema(api_as: Api, files: list[RenderedFile], server: ServerSpec) -> list[str]:
    """Wait for GreptimeDB, bring an existing database to the inventory's retention and run the rendered
    schema.sql through its HTTP API, as `admin`; returns what changed."""
    api = api_as("admin")
    api.wait_healthy()
    changed = retention(api, server, apply=True)
    schema = next(f for f in files if f.path == "/etc/logstack/schema.sql").content.decode()
    for statement in schema_statements(schema):
        api.sql(statement)
    return changed


def retention(api: GreptimeHTTP, server: ServerSpec, apply: bool) -> list[str]:
    """A changed `ttl` reaches an existing database: CREATE DATABASE IF NOT EXISTS ignores its options when
    the database exists (v1.1.4 src/operator/src/statement/ddl.rs), ALTER DATABASE ... SET 'ttl' does not
    (src/sql/src/parsers/alter_parser.rs). The current TTL is read from information_schema.schemata."""
    rows = api.rows(f"SELECT options FROM information_schema.schemata WHERE schema_name = '{server.database}'")
    if not rows:
        return []  # created with the inventory's TTL by schema.sql
    current = re.search(r"'ttl'='([^']*)'", str(rows[0][0] or ""))
    shown = current.group(1) if current else "forever"
    if ttl_seconds(shown) == ttl_seconds(server.ttl):
        return []
    if apply:
        api.sql(f"ALTER DATABASE `{server.database}` SET 'ttl'='{server.ttl}'")
    verb = "changed" if apply else "would change"
    return [f"{verb} the retention of database {server.database}: {shown} -> {server.ttl}"]


SELF_TEST_HOST = "logstack-init-server"


def self_test(api_as: Api, server: ServerSpec) -> str:
    """A row written as `vector` is read as `analyst`, and the table refuses DELETE (append mode:
    v1.1.4 src/mito2/src/worker/handle_write.rs, "DELETE is not allowed under append mode").

    The row is a heartbeat of a machine no inventory holds: analysis and status pass over it."""
    table = f"`{server.database}`.`{server.table}`"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    where = f"`logstack_host` = '{SELF_TEST_HOST}' AND `greptime_timestamp` = '{stamp}'"
    status, answer = api_as("vector").try_sql(
        f"INSERT INTO {table} (`greptime_timestamp`, `SYSLOG_IDENTIFIER`, `logstack_host`, `message`) "
        f"VALUES ('{stamp}', 'logstack-heartbeat', '{SELF_TEST_HOST}', 'init-server self-test')"
    )
    if status != 200:  # an external store's users are the operator's own: say what is missing
        raise RuntimeFailure(
            f"store: the store refused the user vector a write to {server.database}.{server.table} "
            f"({status}: {_said(answer)}): the receivers ingest as vector, give it write access"
        )
    status, answer = api_as("analyst").try_sql(f"SELECT count(*) FROM {table} WHERE {where}")
    if status != 200:
        raise RuntimeFailure(
            f"store: the store refused the user analyst a read of {server.database}.{server.table} "
            f"({status}: {_said(answer)}): analysis and status read as analyst, give it read access"
        )
    try:
        count = answer["output"][0]["records"]["rows"]
    except (KeyError, IndexError, TypeError):
        count = []
    try:
        readable = int(count[0][0]) > 0
    except (IndexError, KeyError, TypeError, ValueError):
        readable = False
    if not readable:
        raise RuntimeFailure("server: a row written as vector is not readable as analyst: check users.conf")
    status, answer = api_as("admin").try_sql(f"DELETE FROM {table} WHERE {where}")
    error = answer.get("error", "") if isinstance(answer, dict) else ""
    if status == 200 or "append mode" not in str(error):
        raise RuntimeFailure(
            f"server: table {server.database}.{server.table} accepts DELETE: it is not append-only "
            "(recreate it from /etc/logstack/schema.sql)"
        )
    return "GreptimeDB: a row written as vector is read as analyst; DELETE is refused (append-only)"


def _said(answer: object) -> str:
    """What GreptimeDB said about a refused statement, short."""
    return str(answer.get("error", answer) if isinstance(answer, dict) else answer)[:200]
