"""Backups of the store (COPY DATABASE through GreptimeDB's HTTP API) and restores into a fresh server."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logstack.integrity.keyring import ensure_keys
from logstack.render.site_files import render_site
from logstack.site.inventory import load_inventory
from logstack.store.backup import MANIFEST, STAMP_FORMAT, keep, prune
from logstack.store.backup_targets import DirectoryStorage
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
    (tmp_path / "20270101T000000Z").mkdir()  # a stamp after now (a wrong clock, or planted): left alone
    (tmp_path / "20261231T246000Z").mkdir()  # not a time: left alone
    removed, problems = prune(DirectoryStorage(tmp_path), 2, 0, now)
    assert removed == ["20261120T020000Z", "20261125T020000Z"] and problems == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "20261101T020000Z",
        "20261130T020000Z",
        "20261201T020000Z",
        "20261201T025900Z",
        "20261231T246000Z",
        "20270101T000000Z",
        "operator-notes",
    ]
    assert outside.is_dir()


def test_the_backup_just_made_is_kept_and_what_cannot_be_removed_is_said(tmp_path, monkeypatch):
    import shutil

    from logstack.store import backup_targets

    now = dt.datetime(2026, 12, 1, 3, tzinfo=dt.UTC)
    for stamp in ("20261101T020000Z", "20261102T020000Z", "20261201T030000Z"):
        (tmp_path / stamp).mkdir()
        (tmp_path / stamp / MANIFEST).write_text("{}")
    real = shutil.rmtree

    def rmtree(path, *args, **kwargs):  # one made by root by hand: the greptime user cannot remove it
        if path.name == "20261102T020000Z":
            raise PermissionError(13, "Permission denied")
        real(path, *args, **kwargs)

    monkeypatch.setattr(backup_targets.shutil, "rmtree", rmtree)
    removed, problems = prune(DirectoryStorage(tmp_path), 1, 0, now)
    assert (tmp_path / "20261201T030000Z").is_dir()  # the one just made, whatever keep_daily says
    assert removed == ["20261101T020000Z"]
    assert problems == [f"{tmp_path}/20261102T020000Z/: cannot remove: Permission denied"]


def _store(fake, rows: int) -> None:  # the example has backups: logs and logstack_backups
    """A store as init-server leaves it, with `rows` rows logged."""
    inv = load_inventory(EXAMPLE)
    (schema,) = [f for f in render_site(inv, hosts=[]) if f.path == "/etc/logstack/schema.sql"]
    from logstack.provision.store_schema import schema_statements

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
    assert done.stdout.startswith(f"backed up 12 rows of 3 tables to {location}/")
    copy = f"COPY DATABASE `vector` TO '{location}/' WITH (format = 'parquet')"
    sent = [r[3] for r in greptime_api if r[0] == "POST"]
    assert copy in sent
    assert sent[-1].startswith(
        "INSERT INTO `vector`.`logstack_backups` (`greptime_timestamp`, `location`, `rows_copied`)"
    )
    manifest = json.loads((location / MANIFEST).read_text())
    assert manifest["rows"] == 12 and sorted(manifest["tables"]) == ["logs", "logstack_backups", "logstack_seal_heads"]
    parquet = ["logs.parquet", "logstack_backups.parquet", "logstack_seal_heads.parquet"]
    assert sorted(p.name for p in location.iterdir()) == sorted([MANIFEST, *parquet])

    # a fresh server: nothing in its store; restore over SSH recreates the tables and loads the rows
    FakeGreptime.databases.clear()
    FakeGreptime.tables.clear()
    FakeGreptime.table_rows.clear()
    FakeGreptime.creates.clear()
    FakeGreptime.rows.clear()
    fleet = make_fleet(tmp_path / "fleet", ssh_client_key, [], server=True, first_octet=70)
    # init-server made the tables, and senders delivered their buffers at once: a restore still goes ahead
    _store(FakeGreptime, 0)
    FakeGreptime._answer(
        FakeGreptime,
        "INSERT INTO `vector`.`logs` (`greptime_timestamp`, `logstack_host`, `message`) "
        "VALUES ('2026-12-01 08:00:00', 'web1', 'heartbeat')",
    )
    try:
        restored = invoke(runner, "restore", str(location), "-i", fleet.inventory)
        assert restored.exit_code == 0, restored.output
        assert restored.stdout.strip() == "restored 12 rows (the backup holds 12)"
        assert FakeGreptime.table_rows["`vector`.`logs`"][1:] == original["`vector`.`logs`"]
        sent = [r[3] for r in greptime_api if r[0] == "POST"]
        assert f"COPY DATABASE `vector` FROM '{location}/' WITH (format = 'parquet')" in sent
        assert sent[-1].startswith("INSERT INTO `vector`.`logstack_backups`") and "'restored:" in sent[-1]
        # a second restore would double every row: refused, by the record of the first
        again = invoke(runner, "restore", str(location), "-i", fleet.inventory)
        assert again.exit_code == 2
        assert f"the backup of {manifest['created']} was restored into this store already" in again.output
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
    ensure_keys(site, [], dt.datetime.now(dt.UTC))  # the key ring init-server writes: report refuses a site without
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


SHOWN = (  # SHOW CREATE TABLE as GreptimeDB v1.1.4 prints it (src/sql/src/statements/create.rs:492-516)
    'CREATE TABLE IF NOT EXISTS "logs" (\n  "greptime_timestamp" TIMESTAMP(9) NOT NULL,\n  "host" STRING NULL,\n'
    '  "cmdb_id" STRING NULL,\n  TIME INDEX ("greptime_timestamp")\n)\n\nENGINE=mito\nWITH(\n'
    "  append_mode = 'true',\n  ttl = '90days'\n)"
)


def test_a_backed_up_table_is_created_by_logstack_s_own_statement_with_its_columns():
    from logstack.store.restore import table_statement

    statement = table_statement("vector", "logs", SHOWN, "m")
    assert statement == (
        "CREATE TABLE IF NOT EXISTS `vector`.`logs` (\n  `greptime_timestamp` TIMESTAMP(9) NOT NULL,\n"
        "  `host` STRING NULL,\n  `cmdb_id` STRING NULL,\n  TIME INDEX (`greptime_timestamp`)\n)"
        " ENGINE = mito WITH (append_mode = 'true')"
    )


@pytest.mark.parametrize(
    ("shown", "why"),
    [
        (SHOWN.replace('"logs" (', '"zz" ('), "not a CREATE TABLE IF NOT EXISTS of that table"),
        (SHOWN + "; DROP TABLE `vector`.`logs`", "does not end as GreptimeDB shows"),
        (SHOWN.replace("append_mode = 'true'", "append_mode = 'false'"), "not one logstack sets"),
        (SHOWN.replace("ttl = '90days'", "ttl = '1s'\n  'compaction.type' = 'twcs'"), "not one logstack sets"),
        (SHOWN.replace('"host" STRING NULL', "\"host\" STRING DEFAULT 'x'"), "is not a column"),
        (SHOWN.replace('"host" STRING NULL', '"host`; DROP TABLE x; --" STRING NULL'), "is not a column"),
        (SHOWN.replace('  TIME INDEX ("greptime_timestamp")', '  PRIMARY KEY ("host")'), "is not a column"),
        (SHOWN.replace('TIME INDEX ("greptime_timestamp")', 'TIME INDEX ("nope")'), "not those of a logstack"),
        ("DROP TABLE logs", "not a CREATE TABLE"),
    ],
)
def test_a_manifest_statement_with_anything_else_is_refused(shown, why):
    from logstack.base.errors import BadInputError
    from logstack.store.restore import table_statement

    with pytest.raises(BadInputError, match=why):
        table_statement("vector", "logs", shown, "m")


@pytest.mark.parametrize(
    "change",
    [
        {"created": "2026-01-01T00:00:00Z'; DROP TABLE `vector`.`logs`; --"},
        {"created": 20260101},
        {"database": "vector`; DROP DATABASE x; --"},
        {"rows": -1},
        {"rows": 2**64},
        {"tables": {}},
        {"tables": {f"t{i}": "x" for i in range(17)}},
        {"tables": {"logs": "x" * (256 * 1024 + 1)}},
    ],
)
def test_a_manifest_is_checked_whole_before_any_value_is_used(change):
    from logstack.base.errors import BadInputError
    from logstack.store.backup import read_manifest

    manifest = {"version": 1, "database": "vector", "created": "2026-01-01T00:00:00Z", "rows": 3}
    manifest |= {"tables": {"logs": SHOWN}} | change
    with pytest.raises(BadInputError, match="not a logstack backup manifest"):
        read_manifest(json.dumps(manifest).encode(), "m")


def test_a_restore_refuses_a_table_logstack_does_not_make():
    from logstack.base.errors import BadInputError
    from logstack.store.restore import restore

    manifest = {"version": 1, "database": "vector", "created": "2026-01-01T00:00:00Z", "rows": 0}
    manifest["tables"] = {"logs": SHOWN, "evil": SHOWN.replace('"logs"', '"evil"')}

    class NoStore:
        def sql(self, *a, **k):
            raise AssertionError("nothing may reach the store")

        rows = sql

    with pytest.raises(BadInputError, match="tables logstack does not make: evil"):
        restore(NoStore(), "vector", "/b", lambda _: json.dumps(manifest).encode(), known_tables=("logs",))


@pytest.mark.parametrize(
    "directory",
    ["/etc/systemd/system", "/usr/local/bin", "/etc/logstack", "/root/.ssh", "/var/lib", "/var/backups", "/srv/data"],
)
def test_a_backup_directory_is_never_a_system_directory(directory, tmp_path):
    from logstack.base.errors import InventoryError

    inv = tmp_path / "inventory.yaml"
    inv.write_text(EXAMPLE.read_text().replace("directory: /var/backups/logstack", f"directory: {directory}"))
    with pytest.raises(InventoryError, match=r"server\.backup\.directory"):
        load_inventory(inv)


def test_greptimedb_may_write_the_backup_directory_and_the_table_name_is_reserved(tmp_path):
    from logstack.base.errors import InventoryError

    files = {f.path: f for f in render_site(load_inventory(EXAMPLE), hosts=[])}
    unit = files["/etc/systemd/system/greptime.service"].content.decode()
    assert "ReadWritePaths=/var/lib/greptime\n" in unit and "ReadWritePaths=/var/backups/logstack\n" in unit
    inv = tmp_path / "inventory.yaml"
    inv.write_text(EXAMPLE.read_text().replace("table: logs ", "table: logstack_backups "))
    with pytest.raises(InventoryError, match="logstack_backups is the table of store backups"):
        load_inventory(inv)


def test_status_believes_a_recorded_backup_only_with_its_manifest_on_the_server(greptime_api, tmp_path, ssh_client_key):
    from logstack.connection.registry import connect
    from logstack.connection.targets import known_hosts_path, server_target
    from logstack.evidence.status import ServerStatus, _check_backup, _check_backup_files
    from tests.fleet_site import make_fleet
    from tests.greptime_stub import FakeGreptime

    backups = tmp_path / "backups"
    backups.mkdir()
    fleet = make_fleet(tmp_path / "fleet", ssh_client_key, [], server=True, first_octet=75)
    try:
        spec = fleet.inventory.read_text()
        fleet.inventory.write_text(spec.replace("manage_packages: false", "manage_packages: false\n  backup: {}"))
        inv = load_inventory(fleet.inventory)
        _store(FakeGreptime, 3)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)

        def status_of() -> list[str]:
            from logstack.store.greptime import GreptimeHTTP

            with connect(server_target(inv), known_hosts_path(inv)) as conn:
                server = ServerStatus()
                api = GreptimeHTTP(conn, "analyst", "x" * 20)
                _check_backup(api, inv, server, dt.datetime.now(dt.UTC))
                _check_backup_files(conn, api, inv, server, None)
            return server.problems

        assert status_of() == ["no backup recorded yet (logstack-backup.timer; run `logstack backup` on the server)"]
        # a real backup: recorded, and its manifest on the server says the same time
        from logstack.store.backup import run_backup
        from logstack.store.greptime import DirectGreptimeHTTP

        run_backup(DirectGreptimeHTTP("127.0.0.1", 4000, "admin", "x" * 20), "vector", DirectoryStorage(backups), now)
        assert status_of() == []
        # a row the ingest user wrote, claiming a fresh backup: no manifest behind it
        later = (now + dt.timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S")
        FakeGreptime._answer(
            FakeGreptime,
            "INSERT INTO `vector`.`logstack_backups` (`greptime_timestamp`, `location`, `rows_copied`) "
            f"VALUES ('{later}', '/var/backups/logstack/forged/', 1)",
        )
        (only,) = status_of()
        assert only.endswith("has no manifest on the server: removed, or the record is not logstack's")
        future = (now + dt.timedelta(days=300)).strftime("%Y-%m-%d %H:%M:%S")
        FakeGreptime._answer(
            FakeGreptime,
            "INSERT INTO `vector`.`logstack_backups` (`greptime_timestamp`, `location`, `rows_copied`) "
            f"VALUES ('{future}', '/var/backups/logstack/forged/', 1)",
        )
        problems = status_of()
        assert any("dated in the future" in p for p in problems) and any("no manifest" in p for p in problems)
    finally:
        fleet.stop()


def test_a_backup_to_s3_keeps_its_keys_out_and_retention_stays_in_its_prefix(greptime_api, runner, tmp_path):
    from tests.greptime_stub import FakeGreptime
    from tests.s3_standin import ACCESS, SECRET, FakeS3, fake_s3

    _store(FakeGreptime, 5)
    with fake_s3() as endpoint:
        for stamp in ("20261101T020000Z", "20261102T020000Z"):
            FakeS3.objects[("audit", f"site1/{stamp}/{MANIFEST}")] = b"{}"
            FakeS3.objects[("audit", f"site1/{stamp}/logs.parquet")] = b""
        FakeS3.objects[("audit", "site1/20261103T020000Z/logs.parquet")] = b""  # incomplete, days old
        FakeS3.objects[("audit", "elsewhere/20261101T020000Z/logs.parquet")] = b""  # another prefix
        done = backup_to_s3(
            runner,
            endpoint,
            tmp_path,
            "admin-password-for-tests",
            (ACCESS, SECRET),
            "--keep-daily",
            "2",
            "--keep-weekly",
            "0",
        )
        assert done.exit_code == 0, done.output
        stamp = done.stdout.split("s3://audit/site1/")[1][:16]
        assert sorted(k for b, k in FakeS3.objects if b == "audit") == sorted(
            [
                "elsewhere/20261101T020000Z/logs.parquet",
                f"site1/20261102T020000Z/{MANIFEST}",
                "site1/20261102T020000Z/logs.parquet",
                f"site1/{stamp}/{MANIFEST}",
                f"site1/{stamp}/logs.parquet",
                f"site1/{stamp}/logstack_backups.parquet",
                f"site1/{stamp}/logstack_seal_heads.parquet",
            ]
        )
        assert "removed s3://audit/site1/20261101T020000Z/ (retention)" in done.stdout
        manifest = json.loads(FakeS3.objects[("audit", f"site1/{stamp}/{MANIFEST}")])
        assert manifest["rows"] == 5
    sent = [r[3] for r in greptime_api if r[0] == "POST"]
    copy = next(s for s in sent if s.startswith("COPY DATABASE"))
    assert copy.startswith(
        f"COPY DATABASE `vector` TO 's3://audit/site1/{stamp}/' WITH (format = 'parquet') CONNECTION ("
    )
    record = sent[-1]
    assert record.startswith("INSERT INTO `vector`.`logstack_backups`") and SECRET not in record
    assert SECRET not in done.output and ACCESS not in done.output


def test_a_bad_key_never_shows_in_the_error(greptime_api, runner, tmp_path):
    from tests.greptime_stub import FakeGreptime
    from tests.s3_standin import fake_s3

    _store(FakeGreptime, 1)
    with fake_s3() as endpoint:
        done = backup_to_s3(runner, endpoint, tmp_path, "admin-password-for-tests", ("AKIDWRONG", "wrong-secret-value"))
    assert done.exit_code == 3
    assert "wrong-secret-value" not in done.output and "AKIDWRONG" not in done.output


def backup_to_s3(runner, endpoint: str, tmp_path, password: str, keys: tuple[str, str], *more: object):
    """`logstack backup --s3 s3://audit/site1` against the S3 stand-in, as the backup unit runs it."""
    from tests.s3_standin import REGION

    password_file, keys_file = tmp_path / "admin.password", tmp_path / "s3.json"
    password_file.write_text(password + "\n")
    keys_file.write_text(json.dumps({"access_key_id": keys[0], "secret_access_key": keys[1]}))
    return invoke(
        runner,
        "backup",
        "--s3",
        "s3://audit/site1",
        "--s3-endpoint",
        endpoint,
        "--s3-region",
        REGION,
        "--s3-credentials",
        keys_file,
        "--db-password-file",
        password_file,
        *more,
    )


def test_a_backup_reports_as_one_json_document(greptime_api, runner, tmp_path):
    from tests.greptime_stub import FakeGreptime

    _store(FakeGreptime, 5)
    password = tmp_path / "admin.password"
    password.write_text("admin-password-for-tests\n")
    backups = tmp_path / "backups"
    backups.mkdir()
    done = invoke(runner, "backup", "--directory", backups, "--db-password-file", password, "--format", "json")
    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout)
    (location,) = list(backups.iterdir())
    assert document["location"] == f"{location}/" and document["rows"] == 5 and "logs" in document["tables"]
    assert document["removed"] == [] and document["retention_problems"] == []
    failed = invoke(
        runner, "backup", "--directory", tmp_path / "nowhere", "--db-password-file", password, "--format", "json"
    )
    assert failed.exit_code != 0 and "error" in json.loads(failed.stdout)
