"""What `--since-last-run` remembers between runs, in SQLite in the data directory.

Every reported line (machine + cursor, hashed to 12 bytes) with its journal time, every reported event with
the (machine, boot, PID, program) groups it covers, and the resume point. A copy of a line that arrives again,
however late, is recognised until its journal time is older than the horizon; a line that belongs to a
reported event is reported as its continuation. One transaction per run, committed after the run's output is
flushed: a crash repeats at most that run's events, and never loses one. A second run on the same state
fails at once (SQLite's write lock, taken at the start).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from logstack.base.clock import SECOND
from logstack.base.errors import BadInputError, RuntimeFailure
from logstack.classify.programs import SSH_IDENTIFIERS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lines (key BLOB PRIMARY KEY, ts INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    grp BLOB NOT NULL, id BLOB NOT NULL, first_ts INTEGER NOT NULL, last_ts INTEGER NOT NULL, PRIMARY KEY (grp, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reported (id BLOB PRIMARY KEY, ts INTEGER NOT NULL) WITHOUT ROWID;
"""


def line_key(key: str) -> bytes:
    """A line's de-duplication key (machine + cursor) at a fixed width."""
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=12).digest()


def reported_id(event_id: str) -> bytes:
    """An event id as the state keeps it: its bytes (hex), or for anything else its digest."""
    try:
        return bytes.fromhex(event_id)
    except ValueError:
        return hashlib.blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=10).digest()


def group_key(machine: str, boot: str, pid: str, family: str) -> bytes:
    """The (machine, boot, PID, program) a line groups by, at a fixed width (8 bytes: one machine's groups
    within the horizon are far too few to collide)."""
    return hashlib.blake2b(
        "\0".join((machine, boot, pid, family)).encode("utf-8", "surrogatepass"), digest_size=8
    ).digest()


def event_groups(
    etype: str,
    source_ip: str | None,
    pids: list[str],
    machine: str,
    boot: str,
    first_pid: str,
    ident: str,
    auth: str | None,
) -> list[bytes]:
    """The (machine, boot, PID, program) groups an event covers, read from its first line (its machine, or
    host, boot, PID, program, who vouches for it): what a later event of them continues (an incident: its
    source address)."""
    if etype == "brute_force":  # incidents continue by source address
        return [group_key("brute_force", "", source_ip or "", "")]
    family = "ssh" if ident in SSH_IDENTIFIERS else ident
    if auth:  # an unproven event never continues a proven one
        family = f"{family}|{auth}"
    return [group_key(machine, boot, pid, family) for pid in pids or [first_pid]]


class StateStore:
    """The state of one analysis source; open for the length of one run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lines: dict[bytes, int] = {}  # recorded, not yet written (hashed key -> journal second)
        self._events: dict[bytes, list[tuple[bytes, int, int]]] = {}  # group -> (id, first, last), not yet written
        self._reported: dict[bytes, int] = {}  # event ids recorded, not yet written
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            raise BadInputError(f"{path}: the analysis state is a link; point --data-dir at the real directory")
        old_umask = os.umask(0o077)  # the database and its -wal and -shm files: the operator's alone
        try:
            self.db = sqlite3.connect(path, timeout=0, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(_SCHEMA)
            self.db.execute("BEGIN IMMEDIATE")  # the write lock: a second concurrent run fails here
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise RuntimeFailure(f"{path}: another analysis run is using this state; try again later") from None
            raise BadInputError(f"{path}: unusable analysis state ({exc}); move it away to start over") from None
        except sqlite3.DatabaseError as exc:
            raise BadInputError(f"{path}: not an analysis state ({exc}); move it away to start over") from None
        finally:
            os.umask(old_umask)
        path.chmod(0o600)
        self._nothing_written = self.db.execute("SELECT 1 FROM lines LIMIT 1").fetchone() is None
        self._marked = self._nothing_written

    @property
    def resume_from(self) -> int | None:
        row = self.db.execute("SELECT value FROM meta WHERE name = 'resume_from'").fetchone()
        return None if row is None else int(row[0])

    # Times are kept in whole seconds and event ids as bytes: a smaller state, the same answers.

    def seen(self, key: str) -> bool:
        """Whether a line with this key was part of a reported event (within the horizon)."""
        hashed = line_key(key)
        if hashed in self._lines:
            return True
        if self._nothing_written:  # a first run: no need to ask the database for each line
            return False
        return self.db.execute("SELECT 1 FROM lines WHERE key = ?", (hashed,)).fetchone() is not None

    def seen_hashed(self, hashed: list[bytes]) -> list[bool]:
        """`seen` of many lines at once, their keys hashed (`line_key`): one query a few hundred lines."""
        found = self._lines.keys() & set(hashed)
        if not self._nothing_written:
            found |= self._stored("SELECT key FROM lines WHERE key IN", hashed)
        return [key in found for key in hashed]

    def _stored(self, select: str, keys: list[bytes]) -> set[bytes]:
        """Which of `keys` the table holds (`select` ends with `IN`): a query a few hundred keys."""
        found: set[bytes] = set()
        for at in range(0, len(keys), 500):
            part = keys[at : at + 500]
            found.update(bytes(row[0]) for row in self.db.execute(f"{select} ({','.join('?' * len(part))})", part))
        return found

    def line_keys(self, chunk: int = 100_000) -> Iterator[list[bytes]]:
        """The hashed keys of the lines recorded (`line_key`), this run's so far included, in order, a chunk at a
        time."""
        self._write()
        rows = self.db.execute("SELECT key FROM lines ORDER BY key")  # the table's own order: its primary key
        while part := rows.fetchmany(chunk):
            yield [bytes(row[0]) for row in part]

    def mark(self) -> None:
        """Remember the state as it is now: `back_to_mark` undoes what was recorded since (the run goes on)."""
        self._write()
        self.db.execute("SAVEPOINT mark")
        self._marked = self._nothing_written

    def back_to_mark(self) -> None:
        """Drop what was recorded since `mark` (an engine gives up; another runs the input from its start)."""
        self._lines.clear()
        self._events.clear()
        self._reported.clear()
        self.db.execute("ROLLBACK TO mark")
        self._nothing_written = self._marked

    def reported_ids(self, event_ids: list[str]) -> set[bytes]:
        """Of `event_ids`, as `reported_id` keys them, those `was_reported` says were (one query a few hundred
        ids, not one an id)."""
        keys = list({reported_id(event_id) for event_id in event_ids})
        return {key for key in keys if key in self._reported} | self._stored(
            "SELECT id FROM reported WHERE id IN", keys
        )

    def was_reported(self, event_id: str) -> bool:
        ident = reported_id(event_id)
        if ident in self._reported:
            return True
        return self.db.execute("SELECT 1 FROM reported WHERE id = ?", (ident,)).fetchone() is not None

    def continued(self, groups: list[bytes], start: int, end: int, gap: int) -> str | None:
        """The reported event that lines of these groups between start and end would have joined."""
        low, high = (start - gap) // SECOND, (end + gap) // SECOND + 1
        for grp in groups:
            for ident, first, last in reversed(self._events.get(grp, ())):
                if last >= low and first <= high:
                    return ident.hex()
            row = self.db.execute(
                "SELECT id FROM events WHERE grp = ? AND last_ts >= ? AND first_ts <= ? ORDER BY last_ts DESC LIMIT 1",
                (grp, (start - gap) // SECOND, (end + gap) // SECOND + 1),
            ).fetchone()
            if row is not None:
                return bytes(row[0]).hex()
        return None

    def record(
        self, event_id: str, groups: list[bytes], start: int, end: int, lines: list[tuple[str, int]], now: int
    ) -> None:
        """A reported event: its id, its lines (key, journal time) and the groups it covers."""
        self.record_hashed(event_id, groups, start, end, [(line_key(key), ts) for key, ts in lines], now)

    def record_hashed(
        self, event_id: str, groups: list[bytes], start: int, end: int, lines: list[tuple[bytes, int]], now: int
    ) -> None:
        """`record`, the lines' keys hashed already (`line_key`)."""
        ident = reported_id(event_id)
        kept = now // SECOND  # a line is kept for the horizon after it was reported, however old it is
        for key, ts in lines:
            self._lines[key] = max(ts // SECOND, kept)
        for grp in groups:
            self._events.setdefault(grp, []).append((ident, start // SECOND, end // SECOND))
        self._reported[ident] = kept
        if len(self._reported) >= 5000:  # written in batches: one statement per event would double a run's cost
            self._write()

    def _write(self) -> None:
        self._nothing_written = self._nothing_written and not self._lines
        # in key order: each page of the table's B-tree is written once a batch, not once a key
        self.db.executemany("INSERT OR REPLACE INTO lines VALUES (?, ?)", sorted(self._lines.items()))
        self.db.executemany(
            "INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?)",
            [(g, ident, first, last) for g, rows in self._events.items() for ident, first, last in rows],
        )
        self.db.executemany("INSERT OR REPLACE INTO reported VALUES (?, ?)", self._reported.items())
        self._lines.clear()
        self._events.clear()
        self._reported.clear()

    def forget_before(self, horizon: int) -> None:
        """Forget lines and events older than the horizon (journal time), before this run looks anything up."""
        cut = horizon // SECOND
        self.db.execute("DELETE FROM lines WHERE ts < ?", (cut,))  # ts: when it may be forgotten from
        self.db.execute("DELETE FROM events WHERE last_ts < ?", (cut,))
        self.db.execute("DELETE FROM reported WHERE ts < ?", (cut,))

    def commit(self, resume_from: int) -> None:
        """Store the resume point and make the run's work durable."""
        self._write()
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('resume_from', ?)", (resume_from,))
        self.db.execute("COMMIT")

    def close(self) -> None:
        """Without commit, everything this run recorded is dropped."""
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        self.db.close()

    def migrate(self, legacy: Path, now: int) -> bool:
        """Take over a JSON state of earlier versions (resume point, line keys, event ids), once."""
        if not legacy.exists() or self.resume_from is not None:
            return False
        try:
            raw = json.loads(legacy.read_text(encoding="utf-8"))
            resume = raw.get("resume_from")
            keys = raw.get("reported_lines", [])
            ids = raw.get("reported_ids", {})
            if not (
                (resume is None or (type(resume) is int and 0 <= resume < 2**62))
                and isinstance(keys, list)
                and all(isinstance(k, str) for k in keys)
                and isinstance(ids, dict)
                and all(type(v) is int and 0 <= v < 2**62 for v in ids.values())
            ):
                raise ValueError("not the layout of an analysis state")
            keys = [k.encode("utf-8").decode() for k in keys]
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError, UnicodeError) as exc:
            raise BadInputError(f"{legacy}: unreadable analysis state ({exc}); move it away to start over") from None
        when = (resume if resume is not None else now) // SECOND
        self.db.executemany("INSERT OR REPLACE INTO lines VALUES (?, ?)", [(line_key(k), when) for k in keys])
        self.db.executemany(
            "INSERT OR REPLACE INTO reported VALUES (?, ?)", [(reported_id(k), v // SECOND) for k, v in ids.items()]
        )
        if resume is not None:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('resume_from', ?)", (resume,))
        self._nothing_written = self._nothing_written and not keys
        return True
