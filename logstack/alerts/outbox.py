"""Per-destination queues in the analysis state: what each destination has yet to accept.

Events enter in the run's own transaction (with the resume point and the reported lines), so an event is
either reported and queued for every destination that wants it, or neither. A destination's entries leave
only once it accepted them, in a transaction of their own right after: a destination never gets an event
again after its accepted delivery was recorded (a crash between the two repeats that one batch, which
carries the same Idempotency-Key / Message-ID). A full queue takes no more events but counts them, and
the destination is told how many once it is back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    dest TEXT NOT NULL, seq INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (dest, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox_status (
    dest TEXT PRIMARY KEY, overflow INTEGER NOT NULL DEFAULT 0, last_error TEXT, last_attempt INTEGER,
    last_success INTEGER
) WITHOUT ROWID;
"""
BATCH = 100


@dataclass(frozen=True)
class Backlog:
    """One destination's queue as `status` shows it."""

    dest: str
    queued: int
    overflow: int
    last_error: str | None
    last_attempt: int | None
    last_success: int | None


def ensure_schema(db: sqlite3.Connection) -> None:
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


def enqueue(db: sqlite3.Connection, dest: str, limit: int, bodies: Iterable[bytes]) -> int:
    """Queue event bodies for `dest` inside the caller's transaction; returns how many did not fit."""
    row = db.execute("SELECT count(*), coalesce(max(seq), 0) FROM outbox WHERE dest = ?", (dest,)).fetchone()
    count, seq = int(row[0]), int(row[1])
    overflow = 0
    rows = []
    for body in bodies:
        if count >= limit:
            overflow += 1
            continue
        count += 1
        seq += 1
        rows.append((dest, seq, body))
    db.executemany("INSERT INTO outbox VALUES (?, ?, ?)", rows)
    db.execute("INSERT OR IGNORE INTO outbox_status (dest) VALUES (?)", (dest,))
    if overflow:
        db.execute("UPDATE outbox_status SET overflow = overflow + ? WHERE dest = ?", (overflow, dest))
    return overflow


def next_batch(db: sqlite3.Connection, dest: str) -> list[tuple[int, dict]]:
    rows = db.execute("SELECT seq, body FROM outbox WHERE dest = ? ORDER BY seq LIMIT ?", (dest, BATCH)).fetchall()
    return [(int(seq), orjson.loads(body)) for seq, body in rows]


def accepted(db: sqlite3.Connection, dest: str, up_to: int, now: int) -> None:
    db.execute("DELETE FROM outbox WHERE dest = ? AND seq <= ?", (dest, up_to))
    db.execute(
        "UPDATE outbox_status SET last_success = ?, last_attempt = ?, last_error = NULL WHERE dest = ?",
        (now, now, dest),
    )


def failed(db: sqlite3.Connection, dest: str, error: str, now: int) -> None:
    db.execute("INSERT OR IGNORE INTO outbox_status (dest) VALUES (?)", (dest,))
    db.execute("UPDATE outbox_status SET last_error = ?, last_attempt = ? WHERE dest = ?", (error[:500], now, dest))


def overflow(db: sqlite3.Connection, dest: str) -> int:
    row = db.execute("SELECT overflow FROM outbox_status WHERE dest = ?", (dest,)).fetchone()
    return int(row[0]) if row else 0


def clear_overflow(db: sqlite3.Connection, dest: str, count: int) -> None:
    db.execute("UPDATE outbox_status SET overflow = overflow - ? WHERE dest = ?", (count, dest))


def forget(db: sqlite3.Connection, dest: str) -> int:
    """Drop a destination the configuration no longer has; returns how many events it still held."""
    dropped = int(db.execute("SELECT count(*) FROM outbox WHERE dest = ?", (dest,)).fetchone()[0])
    db.execute("DELETE FROM outbox WHERE dest = ?", (dest,))
    db.execute("DELETE FROM outbox_status WHERE dest = ?", (dest,))
    return dropped


def destinations(db: sqlite3.Connection) -> list[str]:
    rows = db.execute("SELECT dest FROM outbox_status UNION SELECT DISTINCT dest FROM outbox").fetchall()
    return sorted(str(r[0]) for r in rows)


def backlog(db: sqlite3.Connection) -> list[Backlog]:
    """Every destination's queue length, overflow and last attempt."""
    result = []
    for dest in destinations(db):
        queued = int(db.execute("SELECT count(*) FROM outbox WHERE dest = ?", (dest,)).fetchone()[0])
        row = db.execute(
            "SELECT overflow, last_error, last_attempt, last_success FROM outbox_status WHERE dest = ?", (dest,)
        ).fetchone() or (0, None, None, None)
        result.append(Backlog(dest, queued, int(row[0]), row[1], row[2], row[3]))
    return result
