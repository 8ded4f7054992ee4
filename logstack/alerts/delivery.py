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
from logstack.alerts.files import AlertConfig, check_secrets
from logstack.alerts.send import DeliveryError, send
from logstack.alerts.spec import DESTINATIONS, Destination
from logstack.errors import BadInputError, RuntimeFailure, SecretsError


def load_config(alerts_file: Path, secrets_file: Path | None) -> AlertConfig:
    """The server's alerts.json and the secrets credential, checked."""
    try:
        raw = orjson.loads(alerts_file.read_bytes())
        destinations = tuple(DESTINATIONS.validate_python(raw["destinations"]))
        site = raw["site"]
        if not isinstance(site, str):
            raise TypeError("site is not text")
    except OSError as exc:
        raise BadInputError(f"{alerts_file}: cannot read: {exc.strerror}") from None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValidationError) as exc:
        detail = exc.errors(include_url=False)[0]["msg"] if isinstance(exc, ValidationError) else type(exc).__name__
        raise BadInputError(f"{alerts_file}: not a logstack alerts file ({detail})") from None
    secrets: dict[str, dict[str, str]] = {}
    if secrets_file is not None:
        try:
            loaded = orjson.loads(secrets_file.read_bytes())
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


class Collector:
    """During a run: the events each destination wants, serialised once; queued with the run's state."""

    def __init__(self, config: AlertConfig) -> None:
        self.config = config
        self.bodies: dict[str, list[bytes]] = {d.name: [] for d in config.destinations}
        self.overflow: dict[str, int] = {}

    def add(self, event: dict[str, Any]) -> None:
        body: bytes | None = None
        for dest in self.config.destinations:
            if dest.wants(str(event.get("severity")), str(event.get("type"))):
                body = body or orjson.dumps({**event, "site": self.config.site})
                self.bodies[dest.name].append(body)

    def queue(self, db: sqlite3.Connection) -> None:
        """Inside the run's transaction, before its commit."""
        outbox.ensure_schema(db)
        for dest in self.config.destinations:
            lost = outbox.enqueue(db, dest.name, dest.queue_limit, self.bodies[dest.name])
            if lost:
                self.overflow[dest.name] = lost


@dataclass
class DeliveryResult:
    """What each destination accepted, and which failed (their events stay queued)."""

    delivered: dict[str, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    queued: dict[str, int] = field(default_factory=dict)
    forgotten: dict[str, int] = field(default_factory=dict)


def deliver(state_path: Path, config: AlertConfig) -> DeliveryResult:
    """Send every destination its queue, oldest first, in batches; each accepted batch leaves the queue at
    once. Holds the state's write lock throughout, so two runs never send the same entries."""
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
        events = [body for _, body in batch] or [_overflow_notice(config.site, dest.name, lost)]
        try:
            send(dest, secrets, config.site, events)
        except DeliveryError as exc:
            outbox.failed(db, dest.name, str(exc), int(time.time()))
            result.failures[dest.name] = str(exc)
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
    result.queued[dest.name] = int(db.execute("SELECT count(*) FROM outbox WHERE dest = ?", (dest.name,)).fetchone()[0])


def _overflow_notice(site: str, dest: str, count: int) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "id": f"overflow-{dest}-{now}",
        "type": "alerts_dropped",
        "outcome": "dropped",
        "severity": "alert",
        "host": "logstack",
        "site": site,
        "start": now,
        "end": now,
        "reason": f"{count} events did not fit this destination's queue while it was unreachable; "
        "they are in the analysis output (journalctl -u logstack-analyze.service)",
        "flags": [],
        "lines": [],
    }


def send_test(config: AlertConfig) -> dict[str, str | None]:
    """One test message to every destination: None where it was accepted, else why not."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    event = {
        "id": f"test-{now}",
        "type": "test",
        "outcome": "test",
        "severity": "info",
        "host": "logstack",
        "site": config.site,
        "start": now,
        "end": now,
        "reason": "a test message from `logstack alerts test`",
        "flags": [],
        "lines": [],
    }
    answers: dict[str, str | None] = {}
    for dest in config.destinations:
        try:
            send(dest, config.secrets.get(dest.name, {}), config.site, [event])
            answers[dest.name] = None
        except DeliveryError as exc:
            answers[dest.name] = str(exc)
    return answers


def backlog(data_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Each analysis state's queues (read only; a running analysis does not block it)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(data_dir.glob("analyze-*.sqlite")):
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
