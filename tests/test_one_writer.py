"""One writer at a time: two deliveries of the same analysis state never send a batch twice, every delivery
names its batch (exec: an environment variable and a field), and a second seal is refused while one runs."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from logstack.alerts import outbox
from logstack.alerts.delivery import deliver
from logstack.base.errors import RuntimeFailure
from logstack.base.fsutil import exclusive
from logstack.site.alerts import AlertConfig, Exec


def _state(path: Path, count: int) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    outbox.ensure_schema(db)
    db.execute("BEGIN IMMEDIATE")
    outbox.enqueue(db, "prog", [(i, json.dumps({"id": f"e{i}", "severity": "alert"}).encode()) for i in range(count)])
    db.execute("COMMIT")
    db.close()


def test_two_deliveries_at_once_send_each_event_once_with_its_batch_id(tmp_path):
    state = tmp_path / "analyze-0123456789ab.sqlite"
    _state(state, 3)
    received = tmp_path / "received"
    script = tmp_path / "receive.sh"
    # slow enough that the second delivery starts while the first is sending
    script.write_text(
        f'#!/bin/sh\nsleep 1\nwhile read -r line; do echo "$LOGSTACK_BATCH_ID $line" >> {received}; done\n'
    )
    script.chmod(0o755)
    config = AlertConfig("site", (Exec(type="exec", name="prog", command=[str(script)], retries=0, timeout=10),))
    results = []
    runs = [threading.Thread(target=lambda: results.append(deliver(state, config))) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(30)
    lines = received.read_text().splitlines()
    ids = [json.loads(line.split(" ", 1)[1])["id"] for line in lines]
    assert sorted(ids) == ["e0", "e1", "e2"]  # once each, not twice
    batch, event = lines[0].split(" ", 1)
    assert len(batch) == 32 and json.loads(event)["batch_id"] == batch
    assert sorted(r.delivered.get("prog", 0) for r in results) == [0, 3]


def test_a_second_seal_is_refused_while_one_runs(tmp_path):
    from logstack.evidence.sealing import SEAL_LOCK, seal_store

    class Untouched:
        def __getattr__(self, name: str):
            raise AssertionError(f"the store was used ({name}) while another seal held the lock")

    with exclusive(tmp_path / SEAL_LOCK), pytest.raises(RuntimeFailure, match="another `logstack seal`"):
        seal_store(Untouched(), tmp_path, b"k" * 32, 0)


def test_a_site_backup_takes_an_analysis_state_as_of_its_last_commit(tmp_path):
    from logstack.site.archive import backup_site, restore_site

    site = tmp_path / "site"
    (site / "state").mkdir(parents=True)
    (site / "inventory.yaml").write_text("site: x\n")
    state = site / "state" / "analyze-0123456789ab.sqlite"
    db = sqlite3.connect(state, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")  # committed pages may still be in the WAL file beside it
    db.execute("CREATE TABLE lines (key TEXT)")
    db.execute("INSERT INTO lines VALUES ('committed')")
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO lines VALUES ('not yet')")  # an analysis in the middle of its run
    passphrase = b"a long enough passphrase"
    backup_site(site, tmp_path / "site.backup", passphrase)
    db.execute("ROLLBACK")
    db.close()
    restore_site(tmp_path / "site.backup", tmp_path / "restored", passphrase)
    # one consistent file, not a database and side files copied at different moments
    assert sorted(p.name for p in (tmp_path / "restored" / "state").iterdir()) == [state.name]
    copy = sqlite3.connect(tmp_path / "restored" / "state" / state.name)
    assert copy.execute("SELECT key FROM lines").fetchall() == [("committed",)]
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
