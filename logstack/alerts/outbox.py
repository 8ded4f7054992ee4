"""Per-destination queues in the analysis state: what each destination has yet to accept.

Events enter in the run's own transaction (with the resume point and the reported lines), so an event is
either reported and queued for every destination that wants it, or neither. Before a batch is sent, its
range is recorded (in flight): a batch that may have arrived is sent again exactly as it was, with the
same id, until it is accepted; then its entries leave the queue, and a destination never gets an event
again after its accepted delivery was recorded. What a destination has not accepted by the end of a run is
kept up to its limit: beyond it the least severe, then the oldest, are dropped, counted, and announced to
the destination once it is back (a run's events are all queued first and delivered, so a destination that
is up gets every one, however many).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    dest TEXT NOT NULL, seq INTEGER NOT NULL, rank INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (dest, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox_status (
    dest TEXT PRIMARY KEY, overflow INTEGER NOT NULL DEFAULT 0, last_error TEXT, last_attempt INTEGER,
    last_success INTEGER, inflight INTEGER
) WITHOUT ROWID;
"""
BATCH_EVENTS = 100
BATCH_BYTES = 256 * 1024  # well below common request limits (nginx: 1 MB); one event is capped far below


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


def enqueue(db: sqlite3.Connection, dest: str, entries: Iterable[tuple[int, bytes]]) -> None:
    """Queue (severity rank, body) entries for `dest` inside the caller's transaction."""
    row = db.execute("SELECT coalesce(max(seq), 0) FROM outbox WHERE dest = ?", (dest,)).fetchone()
    seq = int(row[0])
    rows = []
    for rank, body in entries:
        seq += 1
        rows.append((dest, seq, rank, body))
    db.executemany("INSERT INTO outbox VALUES (?, ?, ?, ?)", rows)
    db.execute("INSERT OR IGNORE INTO outbox_status (dest) VALUES (?)", (dest,))


def next_batch(db: sqlite3.Connection, dest: str) -> list[tuple[int, dict]]:
    """The batch to send: the one in flight, exactly, or the oldest entries up to the size limits."""
    row = db.execute("SELECT inflight FROM outbox_status WHERE dest = ?", (dest,)).fetchone()
    inflight = row[0] if row else None
    if inflight is not None:
        rows = db.execute("SELECT seq, body FROM outbox WHERE dest = ? AND seq <= ? ORDER BY seq", (dest, inflight))
    else:
        rows = db.execute("SELECT seq, body FROM outbox WHERE dest = ? ORDER BY seq LIMIT ?", (dest, BATCH_EVENTS))
    batch: list[tuple[int, dict]] = []
    size = 0
    for seq, body in rows:
        if inflight is None and batch and size + len(body) > BATCH_BYTES:
            break
        size += len(body)
        batch.append((int(seq), orjson.loads(body)))
    return batch


def mark_inflight(db: sqlite3.Connection, dest: str, up_to: int) -> None:
    db.execute("UPDATE outbox_status SET inflight = ? WHERE dest = ?", (up_to, dest))


def accepted(db: sqlite3.Connection, dest: str, up_to: int, now: int) -> None:
    db.execute("DELETE FROM outbox WHERE dest = ? AND seq <= ?", (dest, up_to))
    db.execute(
        "UPDATE outbox_status SET last_success = ?, last_attempt = ?, last_error = NULL, inflight = NULL "
        "WHERE dest = ?",
        (now, now, dest),
    )


def failed(db: sqlite3.Connection, dest: str, error: str, now: int) -> None:
    db.execute("INSERT OR IGNORE INTO outbox_status (dest) VALUES (?)", (dest,))
    db.execute("UPDATE outbox_status SET last_error = ?, last_attempt = ? WHERE dest = ?", (error[:500], now, dest))


def trim(db: sqlite3.Connection, dest: str, limit: int) -> int:
    """Keep at most `limit` entries, dropping the least severe, then the oldest; returns how many were
    dropped, which are counted for the notice. When that touches the batch in flight, the next batch is made
    anew (what is left of it may then reach a receiver that got it under another id)."""
    count = int(db.execute("SELECT count(*) FROM outbox WHERE dest = ?", (dest,)).fetchone()[0])
    if count <= limit:
        return 0
    doomed = [
        int(seq)
        for (seq,) in db.execute(
            "SELECT seq FROM outbox WHERE dest = ? ORDER BY rank, seq LIMIT ?", (dest, count - limit)
        ).fetchall()
    ]
    db.executemany("DELETE FROM outbox WHERE dest = ? AND seq = ?", [(dest, s) for s in doomed])
    db.execute(
        "UPDATE outbox_status SET overflow = overflow + ?, "
        "inflight = CASE WHEN inflight >= ? THEN NULL ELSE inflight END WHERE dest = ?",
        (len(doomed), min(doomed), dest),
    )
    return len(doomed)


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
    """Every destination's queue length, what was dropped, and its last attempt."""
    result = []
    for dest in destinations(db):
        queued = int(db.execute("SELECT count(*) FROM outbox WHERE dest = ?", (dest,)).fetchone()[0])
        row = db.execute(
            "SELECT overflow, last_error, last_attempt, last_success FROM outbox_status WHERE dest = ?", (dest,)
        ).fetchone() or (0, None, None, None)
        result.append(Backlog(dest, queued, int(row[0]), row[1], row[2], row[3]))
    return result
