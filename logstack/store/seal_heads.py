"""The store's table of seal chain ends (`logstack_seal_heads`): read as the analyst, written as the ingest user.

The ingest user (`vector`, write-only in users.conf) may INSERT over the MySQL protocol: GreptimeDB v1.1.4
src/auth/src/permission.rs `is_readonly()` lets a write-only user run any statement that is not read-only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

from logstack.base.clock import MILLISECOND, from_micros
from logstack.base.errors import RuntimeFailure
from logstack.integrity.store_head import HEAD_TABLE, StoreHead, StoreHeads, fold_heads, head_from_row
from logstack.store.greptime import DatabaseConfig
from logstack.store.reader import DatabaseSource, micros_of


def read_heads(db: DatabaseSource) -> Iterator[tuple[StoreHead, str]] | None:
    """Every record of the table, streamed (None: the store has no such table, as before logstack made it).
    Anyone with the ingest password may add rows, future-dated ones included: none can push the genuine records
    out of what is read, and none costs more than the time to check it."""
    present = db.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
        (db.config.database, HEAD_TABLE),
    )
    if not present:
        return None
    rows = db.stream(f"SELECT `greptime_timestamp`, `sealer`, `chain`, `seq`, `hash`, `mac` FROM `{HEAD_TABLE}`", ())
    return (_pair(row) for row in rows)


def _pair(row: dict[str, Any]) -> tuple[StoreHead, str]:
    stamp = row.get("greptime_timestamp")
    return head_from_row(row, micros_of(stamp) if isinstance(stamp, dt.datetime) else -1)


def store_time(micros: int) -> int:
    """A time as the heads table keeps it (milliseconds): the record's MAC covers what is read back."""
    return micros - micros % MILLISECOND


def write_head(config: DatabaseConfig, user: str, password: str, head: StoreHead, mac: str) -> None:
    """Append one record as the ingest user (its own connection: the reading user may not write)."""
    stamp = from_micros(head.at).replace(tzinfo=None).isoformat(sep=" ", timespec="milliseconds")
    ingest = dataclasses.replace(config, user=user, password=password, table=HEAD_TABLE)
    try:
        with DatabaseSource(ingest, timeouts=(60, 60)) as db:
            db.execute(
                f"INSERT INTO `{HEAD_TABLE}` (`greptime_timestamp`, `sealer`, `chain`, `seq`, `hash`, `mac`) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (stamp, head.sealer, head.chain, head.seq, head.hash, mac),
            )
    except RuntimeFailure as exc:
        raise RuntimeFailure(
            f"{exc} (the seal chain is saved; the next `logstack seal` records its end; after --start-anew, give "
            "it --accept-chain)"
        ) from None


class StoreHeadLog:
    """The heads table of one store: read over the reading connection, appended to as the ingest user
    (no ingest password: read only)."""

    def __init__(self, db: DatabaseSource, user: str | None = None, password: str | None = None) -> None:
        self.db = db
        self.user = user
        self.password = password
        self.writable = bool(user and password)

    def summary(self, key: bytes, sealer: str) -> StoreHeads | None:
        rows = read_heads(self.db)
        return fold_heads(rows, key, sealer) if rows is not None else None

    def stamp(self, micros: int) -> int:
        return store_time(micros)

    def append(self, head: StoreHead, mac: str) -> None:
        if not (self.user and self.password):
            raise RuntimeFailure("no ingest user to record the seal chain's end with")
        write_head(self.db.config, self.user, self.password, head, mac)
