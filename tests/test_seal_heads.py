"""The seal chain's end recorded in the store (MariaDB standing in for GreptimeDB): a state directory put back
is found by `seal` and `verify` without an exported copy (--anchor)."""

from __future__ import annotations

import datetime as dt

import pytest

from logstack.integrity.keyring import keyring_path, load_keyring
from logstack.integrity.seal_chain import STARTED, read_chain, write_head
from logstack.integrity.store_head import HEAD_TABLE
from tests.test_seal import sealed_site  # noqa: F401  (the fixture)

INGEST_PASSWORD = "ingest-test-password"


@pytest.fixture
def recorded(sealed_site, mariadb, tmp_path):  # noqa: F811
    cli, sql, _hour, chain = sealed_site
    with mariadb.admin() as conn, conn.cursor() as cur:
        cur.execute(
            f"CREATE TABLE `{cli.database}`.`{HEAD_TABLE}` (`greptime_timestamp` DATETIME(3) NOT NULL, "
            "`sealer` TEXT NULL, `chain` TEXT NULL, `seq` BIGINT NULL, `hash` TEXT NULL, `mac` TEXT NULL)"
        )
        cur.execute("CREATE USER IF NOT EXISTS 'ingest'@'%%' IDENTIFIED BY %s", (INGEST_PASSWORD,))
        # write-only, as the vector user is in users.conf: it may add records, never read or change them
        cur.execute(f"GRANT INSERT ON `{cli.database}`.`{HEAD_TABLE}` TO 'ingest'@'%'")
    password = tmp_path / "ingest.password"
    password.write_text(INGEST_PASSWORD + "\n")

    def seal(*args: str):
        return cli("seal", "--delay", "0s", "--ingest-user", "ingest", "--ingest-password-file", str(password), *args)

    result = seal()
    assert result.exit_code == 0, result.output
    key = load_keyring(keyring_path(chain.parent.parent)).seal_key
    return cli, seal, sql, chain, key


def _put_back_older(chain, key, seals: int) -> None:
    """The state directory as an earlier seal run left it (chain and its head, both genuine and recorded)."""
    lines = chain.read_text().splitlines(keepends=True)
    chain.write_text("".join(lines[:seals]))
    write_head(chain.parent / STARTED, key, read_chain(chain, key), recorded=True)


def _records(sql_cli, mariadb) -> list[tuple]:
    with mariadb.admin() as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT `seq`, `chain`, `sealer` FROM `{sql_cli.database}`.`{HEAD_TABLE}` ORDER BY `greptime_timestamp`"
        )
        return list(cur.fetchall())


def test_each_seal_run_that_moves_the_end_records_it_once(recorded, mariadb):
    cli, seal, _sql, chain, key = recorded
    first = read_chain(chain, key)[0].hash
    assert _records(cli, mariadb) == [(3, first, "site")]
    assert seal().exit_code == 0  # nothing new sealed: nothing new recorded
    assert _records(cli, mariadb) == [(3, first, "site")]
    assert cli("verify").exit_code == 0


def test_an_older_state_directory_put_back_is_found_without_an_anchor(recorded, mariadb):
    cli, seal, sql, chain, key = recorded
    third = read_chain(chain, key)[2].hour
    planted = dt.datetime.fromtimestamp(third / 1e6 + 600, dt.UTC).replace(tzinfo=None)
    sql("INSERT INTO LOGS (greptime_timestamp, logstack_host, message) VALUES (%s, 'web1', 'planted')", planted)
    _put_back_older(chain, key, 2)  # hides the third hour's seal: the planted row would be sealed as genuine
    result = cli("verify")
    assert result.exit_code == 1, result.output
    assert "ends before where the store recorded seal 3" in result.output
    result = seal()
    assert result.exit_code == 1 and "rolled back" in result.output  # not re-sealed as the store is now
    assert len(read_chain(chain, key)) == 2
    # the table dropped too: the head remembers its end was recorded
    sql(f"DROP TABLE `{cli.database}`.`{HEAD_TABLE}`")
    result = cli("verify")
    assert result.exit_code == 1 and "though one was written" in result.output
    # the same put-back where nothing was ever recorded passes: the record is what finds it
    write_head(chain.parent / STARTED, key, read_chain(chain, key))
    result = cli("verify")
    assert result.exit_code == 0, result.output
    assert "keeps no record of the chain's end" in result.output


def test_records_not_made_with_the_seal_key_are_reported_and_not_believed(recorded, mariadb):
    cli, seal, _sql, chain, key = recorded
    import pymysql

    from tests.mariadb import MariaDB

    assert isinstance(mariadb, MariaDB)
    conn = pymysql.connect(
        host="127.0.0.1", port=mariadb.port, user="ingest", password=INGEST_PASSWORD, database=cli.database
    )
    with conn, conn.cursor() as cur:  # the ingest password alone: a newer "end" far beyond the chain
        cur.execute(
            f"INSERT INTO `{HEAD_TABLE}` VALUES ('2999-01-01 00:00:00', 'site', %s, 99, %s, %s)",
            (read_chain(chain, key)[0].hash, "b" * 64, "c" * 64),
        )
        conn.commit()
    result = cli("verify")
    assert result.exit_code == 0, result.output  # counted and ignored: no permanent alarm a writer can raise
    assert f"1 rows of {HEAD_TABLE} were not made with the seal key (ignored)" in result.output
    assert "rolled back" not in result.output and "seal 99" not in result.output
    assert seal().exit_code == 0  # sealing goes on from the genuine record


def test_a_new_chain_is_recorded_and_the_old_one_put_back_is_found(recorded, mariadb):
    cli, seal, sql, chain, _key = recorded
    old = chain.read_bytes(), (chain.parent / STARTED).read_bytes()
    sql("DELETE FROM LOGS WHERE __CURSOR = 's=1;i=4'")  # a new chain seals the store as it is now
    result = seal("--start-anew")
    assert result.exit_code == 0, result.output
    assert [seq for seq, _, _ in _records(cli, mariadb)] == [3, 0, 3]  # old end, old chain given up, new end
    assert cli("verify").exit_code == 0
    chain.write_bytes(old[0])
    (chain.parent / STARTED).write_bytes(old[1])
    result = cli("verify")
    assert result.exit_code == 1
    assert "is not the chain the store recorded" in result.output
    assert seal().exit_code == 1  # and not sealed on


def test_seal_says_when_it_cannot_record_the_end(sealed_site):  # noqa: F811
    cli, _sql, _hour, _chain = sealed_site
    result = cli("seal", "--delay", "0s")
    assert result.exit_code == 0
    assert "the chain's end is not recorded in the store (no --ingest-password-file)" in result.output


def test_a_restart_whose_record_cannot_be_written_changes_nothing(recorded, tmp_path, mariadb):
    """--start-anew first records that the old chain is given up: if the store refuses, nothing changes; once
    written, the old chain put back is refused even before the new chain's end is recorded."""
    cli, _seal, sql, chain, _key = recorded
    sql("DELETE FROM LOGS WHERE __CURSOR = 's=1;i=4'")  # so that the new chain differs from the old
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password-at-all")
    before = chain.read_bytes()
    result = _seal_with(cli, wrong, "--start-anew")
    assert result.exit_code == 3, result.output
    assert "ingest@127.0.0.1:" in result.output and HEAD_TABLE in result.output and "Traceback" not in result.output
    assert chain.read_bytes() == before  # not set aside: the restart did not happen
    old = chain.read_bytes(), (chain.parent / STARTED).read_bytes()
    result = _seal_with(cli, wrong.with_name("ingest.password"), "--start-anew")
    assert result.exit_code == 0, result.output
    with mariadb.admin() as conn, conn.cursor() as cur:  # the new chain's record lost (as if its write failed)
        cur.execute(f"DELETE FROM `{cli.database}`.`{HEAD_TABLE}` WHERE `seq` > 0 AND `chain` <> %s", (_first(old[0]),))
    chain.write_bytes(old[0])
    (chain.parent / STARTED).write_bytes(old[1])
    result = cli("verify")
    assert result.exit_code == 1 and "was given up by `--start-anew`" in result.output


def _first(chain_bytes: bytes) -> str:
    import json

    return json.loads(chain_bytes.decode().splitlines()[0])["hash"]


def _seal_with(cli, password, *args: str):
    return cli("seal", "--delay", "0s", "--ingest-user", "ingest", "--ingest-password-file", str(password), *args)


def _as_ingest(mariadb, database: str):
    import pymysql

    return pymysql.connect(
        host="127.0.0.1",
        port=mariadb.port,
        user="ingest",
        password=INGEST_PASSWORD,
        database=database,
        autocommit=True,
        charset="utf8mb4",
    )


def test_a_malformed_record_is_counted_never_a_crash(recorded, mariadb, monkeypatch):
    monkeypatch.delenv("LOGSTACK_DEBUG", raising=False)
    cli, seal, _sql, _chain, _key = recorded
    with _as_ingest(mariadb, cli.database) as conn, conn.cursor() as cur:
        for values in (
            "('2999-01-01', 'site', 'c', 1, 'h', 'é')",
            "('2999-01-01', NULL, NULL, NULL, NULL, NULL)",
            f"('2999-01-01', 'site', '{'a' * 64}', 99999999999999999, '{'b' * 64}', '{'c' * 64}')",
            f"('2999-01-01', 'Site\n', '{'a' * 64}', 5, '{'b' * 64}', '{'c' * 64}')",
        ):
            cur.execute(f"INSERT INTO `{HEAD_TABLE}` VALUES {values}")
    result = cli("verify")
    assert result.exit_code == 0 and "internal error" not in result.output
    assert f"4 rows of {HEAD_TABLE} were not made with the seal key (ignored)" in result.output
    assert seal().exit_code == 0


def test_a_flood_of_forged_records_hides_no_genuine_one(recorded, mariadb):
    cli, seal, _sql, chain, key = recorded
    with _as_ingest(mariadb, cli.database) as conn, conn.cursor() as cur:
        cur.executemany(f"INSERT INTO `{HEAD_TABLE}` VALUES ('2999-01-01', 'site', 'x', 0, 'x', 'x')", [()] * 1500)
    _put_back_older(chain, key, 2)
    assert "rolled back" in cli("verify").output
    result = seal()
    assert result.exit_code == 1 and "rolled back" in result.output


def test_the_server_unit_and_an_operator_seal_keep_chains_of_their_own(recorded, tmp_path):
    """`seal -i` (the site's state/) and logstack-seal.service (--seal-key, --data-dir) on one store."""
    _cli, seal, _sql, chain, key = recorded
    key_file = tmp_path / "seal.key"
    key_file.write_text(key.hex())
    server = ("--seal-key", str(key_file), "--data-dir", str(tmp_path / "var-lib-logstack-seal"), "--sealer", "server")
    for _ in range(2):
        result = seal(*server)
        assert result.exit_code == 0, result.output
        assert seal().exit_code == 0
    _put_back_older(tmp_path / "var-lib-logstack-seal" / chain.name, key, 1)  # each is still checked
    assert seal(*server).exit_code == 1


def test_a_backup_holding_the_heads_table_is_restored_with_it():
    """Backups copy every table of the database; the heads table is one logstack makes."""
    import json

    from logstack.store.backup import BACKUP_TABLE
    from logstack.store.restore import restore, restore_known_tables
    from tests.test_backup import SHOWN

    tables = {name: SHOWN.replace('"logs"', f'"{name}"') for name in ("logs", BACKUP_TABLE, HEAD_TABLE)}
    manifest = {"version": 1, "database": "vector", "created": "2026-01-01T00:00:00Z", "rows": 0, "tables": tables}
    statements: list[str] = []

    class Store:
        def sql(self, statement, *args, **kwargs):
            statements.append(statement)
            return {"output": [{"affectedrows": 0}]}

        def rows(self, *args, **kwargs):
            return []

    result = restore(
        Store(), "vector", "/b", lambda _: json.dumps(manifest).encode(), known_tables=restore_known_tables("logs")
    )
    assert HEAD_TABLE in result.created
    assert any(f"`{HEAD_TABLE}`" in s and s.startswith("CREATE TABLE") for s in statements)


def test_an_emptied_state_directory_is_refused_not_started_anew(recorded):
    """Without --start-anew a chain never begins again by itself: the store names where it ended."""
    cli, seal, sql, chain, key = recorded
    sql(
        "INSERT INTO LOGS (greptime_timestamp, logstack_host, message) VALUES (%s, 'web9', 'planted')",
        _in_hour(chain, key, 0),
    )
    chain.unlink()
    (chain.parent / STARTED).unlink()
    result = seal()
    assert result.exit_code == 1 and "is empty, but the store recorded seal 3" in result.output
    assert not chain.exists() or not read_chain(chain, key)  # the planted row was not sealed as genuine
    assert "emptied or replaced" in cli("verify").output


def test_another_genuine_chain_put_in_place_is_found(recorded, tmp_path):
    """The server unit's chain (another sealer's, genuine) copied over the site's state directory."""
    _cli, seal, _sql, chain, key = recorded
    key_file = tmp_path / "seal.key"
    key_file.write_text(key.hex())
    other = tmp_path / "server-state"
    import time

    time.sleep(1.1)  # a chain made in another second: its first seal (sealed_at) differs
    assert seal("--seal-key", str(key_file), "--data-dir", str(other), "--sealer", "server").exit_code == 0
    for name in (chain.name, STARTED):
        (chain.parent / name).write_bytes((other / name).read_bytes())
    result = seal()
    assert result.exit_code == 1 and "is not the chain the store recorded" in result.output


def test_a_table_emptied_after_the_end_was_recorded_is_reported(recorded, mariadb):
    """The head remembers that its end is in the store: rows removed later (TRUNCATE, DROP) do not pass."""
    cli, seal, _sql, _chain, _key = recorded
    with mariadb.admin() as conn, conn.cursor() as cur:
        cur.execute(f"TRUNCATE TABLE `{cli.database}`.`{HEAD_TABLE}`")
    result = cli("verify")
    assert result.exit_code == 1 and "no record of its end, though one was written" in result.output
    result = seal()
    assert result.exit_code == 1 and "table emptied or dropped" in result.output


def _in_hour(chain, key, index: int) -> dt.datetime:
    hour = read_chain(chain, key)[index].hour
    return dt.datetime.fromtimestamp(hour / 1e6 + 600, dt.UTC).replace(tzinfo=None)
