"""Backups of the store (COPY DATABASE through GreptimeDB's HTTP API) and restores into a fresh server."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logstack.backup import MANIFEST, STAMP_FORMAT, keep, prune
from logstack.inventory import load_inventory
from logstack.render import render_site
from tests.conftest import EXAMPLE, invoke

# (stamps present, keep_daily, keep_weekly) -> kept
RETENTION = [
    (["20261130T020000Z", "20261201T020000Z"], 1, 0, {"20261201T020000Z"}),
    # two the same day: the newer stands for the day
    (["20261201T020000Z", "20261201T140000Z", "20261130T020000Z"], 2, 0, {"20261201T140000Z", "20261130T020000Z"}),
    # weekly keeps the newest of each ISO week beyond the dailies (2026-11-16 and 2026-11-09 are Mondays)
    (
        ["20261109T020000Z", "20261110T020000Z", "20261116T020000Z", "20261130T020000Z", "20261201T020000Z"],
        1,
        3,
        {"20261201T020000Z", "20261116T020000Z", "20261110T020000Z"},
    ),
    (["20261201T020000Z"], 7, 4, {"20261201T020000Z"}),
]


@pytest.mark.parametrize(("stamps", "daily", "weekly", "kept"), RETENTION)
def test_retention_keeps_the_newest_per_day_and_week(stamps, daily, weekly, kept):
    assert keep(stamps, daily, weekly) == kept


@given(
    st.sets(st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1)), min_size=1),
    st.integers(1, 10),
    st.integers(0, 10),
)
def test_retention_always_keeps_the_newest_and_at_most_what_it_says(times, daily, weekly):
    stamps = [t.strftime(STAMP_FORMAT) for t in times]
    kept = keep(stamps, daily, weekly)
    assert max(stamps) in kept and kept <= set(stamps) and len(kept) <= daily + weekly


def test_prune_touches_only_backups_logstack_made(tmp_path):
    now = dt.datetime(2026, 12, 1, 3, tzinfo=dt.UTC)
    for stamp in ("20261125T020000Z", "20261130T020000Z", "20261201T020000Z"):
        (tmp_path / stamp).mkdir()
        (tmp_path / stamp / MANIFEST).write_text("{}")
    (tmp_path / "20261120T020000Z").mkdir()  # incomplete and old: removed
    (tmp_path / "20261201T025900Z").mkdir()  # incomplete, may be running now: kept
    (tmp_path / "operator-notes").mkdir()
    outside = tmp_path.parent / "outside-backups"
    outside.mkdir(exist_ok=True)
    (tmp_path / "20261101T020000Z").symlink_to(outside)
    removed = prune(tmp_path, 2, 0, now)
    assert removed == ["20261120T020000Z", "20261125T020000Z"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "20261101T020000Z",
        "20261130T020000Z",
        "20261201T020000Z",
        "20261201T025900Z",
        "operator-notes",
    ]
    assert outside.is_dir()


def _store(fake, rows: int) -> None:  # the example has backups: logs and logstack_backups
    """A store as init-server leaves it, with `rows` rows logged."""
    inv = load_inventory(EXAMPLE)
    (schema,) = [f for f in render_site(inv, hosts=[]) if f.path == "/etc/logstack/schema.sql"]
    from logstack.server import schema_statements

    for statement in schema_statements(schema.content.decode()):
        fake._answer(fake, statement)
    for n in range(rows):
        fake._answer(
            fake,
            "INSERT INTO `vector`.`logs` (`greptime_timestamp`, `logstack_host`, `message`) "
            f"VALUES ('2026-11-30 10:00:{n:02d}', 'web1', 'Accepted publickey for alice')",
        )


def test_a_backup_sends_what_greptimedb_accepts_and_restores_into_a_fresh_server(
    greptime_api, runner, tmp_path, ssh_client_key
):
    from tests.fleet_site import make_fleet
    from tests.greptime_stub import FakeGreptime

    _store(FakeGreptime, 12)
    original = {t: list(r) for t, r in FakeGreptime.table_rows.items()}
    password = tmp_path / "admin.password"
    password.write_text("admin-password-for-tests\n")
    backups = tmp_path / "backups"
    backups.mkdir()
    done = invoke(runner, "backup", "--directory", backups, "--db-password-file", password)
    assert done.exit_code == 0, done.output
    (location,) = list(backups.iterdir())
    assert done.stdout.startswith(f"backed up 12 rows of 2 tables to {location}/")
    copy = f"COPY DATABASE `vector` TO '{location}/' WITH (format = 'parquet')"
    sent = [r[3] for r in greptime_api if r[0] == "POST"]
    assert copy in sent
    assert sent[-1].startswith(
        "INSERT INTO `vector`.`logstack_backups` (`greptime_timestamp`, `location`, `rows_copied`)"
    )
    manifest = json.loads((location / MANIFEST).read_text())
    assert manifest["rows"] == 12 and sorted(manifest["tables"]) == ["logs", "logstack_backups"]
    assert sorted(p.name for p in location.iterdir()) == sorted([MANIFEST, "logs.parquet", "logstack_backups.parquet"])

    # a fresh server: nothing in its store; restore over SSH recreates the tables and loads the rows
    FakeGreptime.databases.clear()
    FakeGreptime.tables.clear()
    FakeGreptime.table_rows.clear()
    FakeGreptime.creates.clear()
    FakeGreptime.rows.clear()
    fleet = make_fleet(tmp_path / "fleet", ssh_client_key, [], server=True, first_octet=70)
    try:
        restored = invoke(runner, "restore", str(location), "-i", fleet.inventory)
        assert restored.exit_code == 0, restored.output
        assert restored.stdout.strip() == "restored 12 rows (created logs, logstack_backups; the backup holds 12)"
        assert FakeGreptime.table_rows["`vector`.`logs`"] == original["`vector`.`logs`"]
        assert [r[3] for r in greptime_api if r[0] == "POST"][-1] == (
            f"COPY DATABASE `vector` FROM '{location}/' WITH (format = 'parquet')"
        )
        # a second restore would double every row: refused
        again = invoke(runner, "restore", str(location), "-i", fleet.inventory)
        assert again.exit_code == 2
        assert "vector.logs holds 12 rows already; restore into a fresh store" in again.output
        missing = invoke(runner, "restore", str(tmp_path / "nothing-here"), "-i", fleet.inventory)
        assert missing.exit_code == 2 and "no such backup manifest" in missing.output
    finally:
        fleet.stop()


def test_a_server_with_backups_gets_the_timer_the_table_and_the_directory():
    files = {f.path: f for f in render_site(load_inventory(EXAMPLE), hosts=[])}
    unit = files["/etc/systemd/system/logstack-backup.service"].content.decode()
    assert "User=greptime" in unit and "ReadWritePaths=/var/backups/logstack" in unit
    assert (
        "ExecStart=/usr/local/bin/logstack backup --directory /var/backups/logstack --database vector "
        "--keep-daily 7 --keep-weekly 4 --db-password-file ${CREDENTIALS_DIRECTORY}/admin-password" in unit
    )
    assert b"OnCalendar=daily" in files["/etc/systemd/system/logstack-backup.timer"].content
    assert b"CREATE TABLE IF NOT EXISTS `vector`.`logstack_backups`" in files["/etc/logstack/schema.sql"].content
    assert files["/etc/logstack/admin.password"].secret and files["/etc/logstack/admin.password"].mode == 0o600
    assert b"<secret" in files["/etc/logstack/admin.password"].content  # review render: no password


@pytest.mark.parametrize(("age_hours", "flagged"), [(3, False), (30, True), (None, True)])
def test_the_weekly_report_shows_the_newest_backup_and_flags_a_late_one(runner, mariadb, tmp_path, age_hours, flagged):
    import shutil

    from tests.mariadb import PASSWORD

    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(EXAMPLE, site / "inventory.yaml")  # backups every day, max_age_hours 26
    mariadb.create_logs("backupreport")
    with mariadb.admin() as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE `backupreport`.`logstack_backups` (`greptime_timestamp` DATETIME(3) NOT NULL, "
            "`location` TEXT NULL, `rows_copied` BIGINT NULL)"
        )
        if age_hours is not None:
            when = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=age_hours)
            cur.execute(
                "INSERT INTO `backupreport`.`logstack_backups` VALUES (%s, '/var/backups/logstack/x/', 10)", (when,)
            )
    result = runner.invoke(
        __import__("logstack.cli", fromlist=["app"]).app,
        [
            "report",
            "-i",
            str(site / "inventory.yaml"),
            "--db-port",
            str(mariadb.port),
            "--db-name",
            "backupreport",
            "--since",
            "7d",
            "-o",
            str(tmp_path / "r.html"),
            "--markdown",
            str(tmp_path / "r.md"),
        ],
        env={"GREPTIMEDB_PASSWORD": PASSWORD},
    )
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "r.md").read_text().replace("\\", "")  # unescaped
    line = next(x for x in markdown.splitlines() if x.startswith("Last store backup:"))
    if age_hours is None:
        assert line == "Last store backup: none recorded (logstack-backup.timer has not completed a backup)"
    else:
        assert f"({age_hours} h before this report)" in line
        assert ("OLDER THAN 26 h" in line) is flagged
    assert "Last store backup:" in (tmp_path / "r.html").read_text()
