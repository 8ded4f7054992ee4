"""Alert delivery around an analysis run: collect what each destination wants, queue it with the run's
state, then deliver every queue; and `alerts test`."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from logstack.alerts import outbox
from logstack.alerts.send import DeliveryError, send
from logstack.base.errors import BadInputError, RuntimeFailure, SecretsError
from logstack.base.fsutil import exclusive
from logstack.base.paths import STATE_GLOB
from logstack.base.safe_read import MiB, read_file
from logstack.base.validation import SITE_RE, full
from logstack.site.alerts import DESTINATIONS, SEVERITIES, AlertConfig, Destination, check_secrets


def load_config(alerts_file: Path, secrets_file: Path | None) -> AlertConfig:
    """The server's alerts.json and the secrets credential, checked."""
    try:
        raw = orjson.loads(read_file(alerts_file, "alerts file", 4 * MiB, follow_links=True))
        destinations = tuple(DESTINATIONS.validate_python(raw["destinations"]))
        site = raw["site"]
        if not isinstance(site, str) or not full(SITE_RE, site):
            raise TypeError("site is not a site name")
    except OSError as exc:
        raise BadInputError(f"{alerts_file}: cannot read: {exc.strerror}") from None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValidationError) as exc:
        detail = exc.errors(include_url=False)[0]["msg"] if isinstance(exc, ValidationError) else type(exc).__name__
        raise BadInputError(f"{alerts_file}: not a logstack alerts file ({detail})") from None
    secrets: dict[str, dict[str, str]] = {}
    if secrets_file is not None:
        try:
            loaded = orjson.loads(
                read_file(secrets_file, "alert secrets", 4 * MiB, follow_links=True, error=SecretsError)
            )
        except OSError as exc:
            raise SecretsError(f"{secrets_file}: cannot read: {exc.strerror}") from None
        except orjson.JSONDecodeError:
            raise SecretsError(f"{secrets_file}: not JSON") from None
        if not isinstance(loaded, dict) or not all(
            isinstance(v, dict) and all(isinstance(x, str) for x in v.values()) for v in loaded.values()
        ):
            raise SecretsError(f"{secrets_file}: not a mapping of destination to its secrets")
        secrets = loaded
    config = AlertConfig(site, destinations, secrets)
    check_secrets(config, str(secrets_file or alerts_file))
    return config


MAX_LINES = 20  # of one event, in what a destination gets (the analysis output keeps them all)
MAX_TEXT = 2000  # characters of one message, command or reason


def alert_body(event: dict[str, Any], site: str) -> bytes:
    """An event as destinations get it: bounded, however many lines a local user made it hold."""
    body = {**event, "site": site}
    lines = event.get("lines") or []
    body["lines"] = [{**line, "message": str(line.get("message", ""))[:MAX_TEXT]} for line in lines[:MAX_LINES]]
    if len(lines) > MAX_LINES:
        body["lines_omitted"] = len(lines) - MAX_LINES
    for key in ("command", "reason", "user", "target_user"):
        if isinstance(body.get(key), str):
            body[key] = body[key][:MAX_TEXT]
    if isinstance(body.get("tried_users"), list):
        body["tried_users"] = body["tried_users"][:50]
    return orjson.dumps(body)


class Collector:
    """During a run: the events each destination wants, serialised once; queued with the run's state."""

    def __init__(self, config: AlertConfig) -> None:
        self.config = config
        self.entries: dict[str, list[tuple[int, bytes]]] = {d.name: [] for d in config.destinations}

    def wants(self, severity: str, event_type: str) -> bool:
        """Whether any destination takes an event of this severity and type."""
        return any(dest.wants(severity, event_type) for dest in self.config.destinations)

    def add(self, event: dict[str, Any]) -> None:
        body: bytes | None = None
        severity = str(event.get("severity"))
        for dest in self.config.destinations:
            if dest.wants(severity, str(event.get("type"))):
                body = body or alert_body(event, self.config.site)
                self.entries[dest.name].append((SEVERITIES.index(severity), body))

    def queue(self, db: sqlite3.Connection) -> None:
        """Inside the run's transaction, before its commit."""
        outbox.ensure_schema(db)
        for dest in self.config.destinations:
            outbox.enqueue(db, dest.name, self.entries[dest.name])


@dataclass
class DeliveryResult:
    """What each destination accepted, and which failed (their events stay queued)."""

    delivered: dict[str, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    queued: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    forgotten: dict[str, int] = field(default_factory=dict)


def deliver(state_path: Path, config: AlertConfig) -> DeliveryResult:
    """Send every destination its queue, oldest first, in batches; each accepted batch leaves the queue at
    once. One delivery at a time per state, from reading a queue to recording what was accepted (a lock file
    beside the state, held throughout): two overlapping runs never send the same entries."""
    with exclusive(state_path.with_name(state_path.name + ".delivery.lock")):
        return _deliver(state_path, config)


def _deliver(state_path: Path, config: AlertConfig) -> DeliveryResult:
    result = DeliveryResult()
    try:
        db = sqlite3.connect(state_path, timeout=30, isolation_level=None)
    except sqlite3.Error as exc:
        raise RuntimeFailure(f"{state_path}: alert queues: {exc}") from None
    try:
        db.execute("BEGIN IMMEDIATE")
        outbox.ensure_schema(db)
        configured = {d.name for d in config.destinations}
        for name in outbox.destinations(db):
            if name not in configured:
                result.forgotten[name] = outbox.forget(db, name)
        db.execute("COMMIT")
        for dest in config.destinations:
            _deliver_one(db, dest, config, result)
            db.execute("BEGIN IMMEDIATE")
            dropped = outbox.trim(db, dest.name, dest.queue_limit)
            db.execute("COMMIT")
            if dropped:
                result.dropped[dest.name] = dropped
            result.queued[dest.name] = int(
                db.execute("SELECT count(*) FROM outbox WHERE dest = ?", (dest.name,)).fetchone()[0]
            )
    except sqlite3.Error as exc:
        raise RuntimeFailure(f"{state_path}: alert queues: {exc}") from None
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
        db.close()
    return result


def _deliver_one(db: sqlite3.Connection, dest: Destination, config: AlertConfig, result: DeliveryResult) -> None:
    secrets = config.secrets.get(dest.name, {})
    sent = 0
    while True:
        db.execute("BEGIN IMMEDIATE")
        batch = outbox.next_batch(db, dest.name)
        lost = outbox.overflow(db, dest.name) if not batch else 0
        if not batch and not lost:
            db.execute("COMMIT")
            break
        if batch:  # recorded before sending: a batch that may have arrived goes again exactly as it was
            outbox.mark_inflight(db, dest.name, batch[-1][0])
        db.execute("COMMIT")
        events = [body for _, body in batch] or [_overflow_notice(config.site, dest, lost)]
        error = _attempt(dest, secrets, config.site, events)
        db.execute("BEGIN IMMEDIATE")
        if error is not None:
            outbox.failed(db, dest.name, error, int(time.time()))
            result.failures[dest.name] = error
            db.execute("COMMIT")
            break
        if batch:
            outbox.accepted(db, dest.name, batch[-1][0], int(time.time()))
            sent += len(batch)
        else:
            outbox.clear_overflow(db, dest.name, lost)
            outbox.accepted(db, dest.name, 0, int(time.time()))
        db.execute("COMMIT")
    result.delivered[dest.name] = sent


def _attempt(dest: Destination, secrets: dict[str, str], site: str, events: list[dict[str, Any]]) -> str | None:
    """None when the destination accepted, else why not; one destination's fault never stops the others."""
    try:
        send(dest, secrets, site, events)
    except DeliveryError as exc:
        return str(exc)
    except Exception as exc:  # a sender's bug or an input it did not foresee: this destination fails
        return f"unexpected {type(exc).__name__} while sending (events kept)"
    return None


def _notice(site: str, ident: str, kind: str, outcome: str, severity: str, reason: str) -> dict[str, Any]:
    """An event of logstack's own (not from a journal), shaped as analysis reports events."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "id": f"{ident}-{now}",
        "type": kind,
        "outcome": outcome,
        "severity": severity,
        "host": "logstack",
        "site": site,
        "start": now,
        "end": now,
        "reason": reason,
        "flags": [],
        "lines": [],
    }


def _overflow_notice(site: str, dest: Destination, count: int) -> dict[str, Any]:
    reason = (
        f"{count} events were dropped from this destination's queue while it did not accept them "
        f"(queue_limit {dest.queue_limit}; the least severe first); they are in the analysis output "
        "(journalctl -u logstack-analyze.service)"
    )
    return _notice(site, f"overflow-{dest.name}", "alerts_dropped", "dropped", "alert", reason)


def send_test(config: AlertConfig) -> dict[str, str | None]:
    """One test message to every destination: None where it was accepted, else why not."""
    event = _notice(config.site, "test", "test", "test", "info", "a test message from `logstack alerts test`")
    return {d.name: _attempt(d, config.secrets.get(d.name, {}), config.site, [event]) for d in config.destinations}


def backlog(data_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Each analysis state's queues (read only; a running analysis does not block it)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(data_dir.glob(STATE_GLOB)):
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
            try:
                rows = outbox.backlog(db) if _has_outbox(db) else []
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise RuntimeFailure(f"{path}: alert queues: {exc}") from None
        found[path.name] = [row.__dict__ for row in rows]
    return found


def _has_outbox(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE name = 'outbox_status'").fetchone() is not None
