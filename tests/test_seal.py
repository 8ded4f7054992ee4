"""Sealed hours against a real MySQL-protocol server (MariaDB standing in for GreptimeDB).

GreptimeDB's append-mode tables refuse UPDATE, but anyone with the store's files, a restored backup or
admin access can still change rows; MariaDB lets the tests do exactly that and `verify` must notice.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json

import pytest

from logstack.integrity.keyring import ensure_keys
from logstack.integrity.seal_chain import SEALS
from logstack.site.inventory import load_inventory
from tests.mariadb import PASSWORD

_names = itertools.count()


def _row(ts: dt.datetime, host: str, n: int) -> dict[str, object]:
    return {
        "greptime_timestamp": ts,
        "logstack_host": host,
        "host": host,
        "message": f"Accepted publickey for alice from 203.0.113.{n} port 5{n:04d} ssh2",
        "SYSLOG_IDENTIFIER": "sshd-session",
        "_PID": str(1000 + n),
        "__CURSOR": f"s=1;i={n}",
        "__REALTIME_TIMESTAMP": str(int(ts.replace(tzinfo=dt.UTC).timestamp() * 1e6)),
        "_BOOT_ID": "b" * 32,
        "_MACHINE_ID": f"{host:m<32}",
        "logstack_sig": f"{n:064x}",
        "logstack_kid": "0" * 16,
    }


@pytest.fixture
def sealed_site(site, mariadb, runner, tmp_path):
    name = f"seal{next(_names)}"
    mariadb.create_logs(name)
    inv = load_inventory(site)
    ensure_keys(inv.site_dir, [h.name for h in inv.hosts], dt.datetime.now(dt.UTC))
    with mariadb.admin() as conn, conn.cursor() as cur:
        cur.execute("SELECT UTC_TIMESTAMP(6)")
        now = cur.fetchone()[0]
    hour = now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=3)
    rows = [_row(hour + dt.timedelta(minutes=5 * i), ("web1", "db1")[i % 2], i) for i in range(24)]
    mariadb.insert(name, rows)

    def cli(*args: str):
        from logstack.cli import app

        return runner.invoke(
            app,
            [
                args[0],
                "-i",
                str(site),
                "--db-port",
                str(mariadb.port),
                "--db-name",
                name,
                *args[1:],
            ],
            env={"GREPTIMEDB_PASSWORD": PASSWORD},
        )

    def sql(statement: str, *params: object) -> None:
        with mariadb.admin() as conn, conn.cursor() as cur:
            cur.execute(statement.replace("LOGS", f"`{name}`.`logs`"), params)

    cli.database = name  # type: ignore[attr-defined]
    result = cli("seal", "--delay", "0s")
    assert result.exit_code == 0, result.output
    assert "sealed 3 hours" in result.output  # the hour of the first rows, the next, and the one after
    return cli, sql, hour, site.parent / "state" / SEALS


def _stamp(hour: dt.datetime) -> str:
    return hour.strftime("%Y-%m-%dT%H:00Z")


def test_unchanged_store_verifies_clean(sealed_site):
    cli, _, _, _ = sealed_site
    result = cli("verify")
    assert result.exit_code == 0, result.output
    assert "3 sealed hours checked" in result.output and "0 host-hours changed" in result.output


def test_update_of_a_message_is_caught_with_hour_and_host(sealed_site):
    cli, sql, hour, _ = sealed_site
    sql("UPDATE LOGS SET message = 'nothing happened' WHERE __CURSOR = 's=1;i=3'")
    result = cli("verify")
    assert result.exit_code == 1, result.output
    assert f"{_stamp(hour)} db1: rows altered after sealing (6 rows)" in result.output
    assert "web1" not in result.output.split("sealed hours checked")[0]


def test_delete_of_a_row_is_caught(sealed_site):
    cli, sql, hour, _ = sealed_site
    sql("DELETE FROM LOGS WHERE __CURSOR = 's=1;i=4'")
    result = cli("verify")
    assert result.exit_code == 1
    assert f"{_stamp(hour)} web1: 1 of 6 sealed rows deleted" in result.output


def test_delete_and_reinsert_with_one_changed_field_is_caught(sealed_site):
    cli, sql, hour, _ = sealed_site
    sql("DELETE FROM LOGS WHERE __CURSOR = 's=1;i=6'")
    row = _row(hour + dt.timedelta(minutes=30), "web1", 6)
    row["_PID"] = "1"  # otherwise identical, timestamp included
    names = ", ".join(f"`{n}`" for n in row)
    sql(f"INSERT INTO LOGS ({names}) VALUES ({', '.join(['%s'] * len(row))})", *row.values())
    result = cli("verify")
    assert result.exit_code == 1
    assert f"{_stamp(hour)} web1: rows altered after sealing (6 rows)" in result.output


def test_rows_added_to_a_sealed_hour_are_caught(sealed_site, mariadb):
    cli, sql, hour, _ = sealed_site
    sql(
        "INSERT INTO LOGS (greptime_timestamp, logstack_host, message) VALUES (%s, 'web9', 'planted')",
        hour + dt.timedelta(hours=1, minutes=1),
    )
    result = cli("verify")
    assert result.exit_code == 1
    later = hour + dt.timedelta(hours=1)
    assert f"{_stamp(later)} web9: 1 rows added after sealing (sealed 0)" in result.output


def test_an_edited_seal_chain_is_an_error(sealed_site):
    cli, _, _, chain = sealed_site
    lines = chain.read_text().splitlines()
    first = json.loads(lines[0])
    host = next(iter(first["hosts"]))
    first["hosts"][host][0] -= 1  # claim one row fewer was sealed (to hide a deletion)
    chain.write_text("\n".join([json.dumps(first, sort_keys=True), *lines[1:]]) + "\n")
    result = cli("verify")
    assert result.exit_code == 1
    assert "does not match its hash" in result.output
    # dropping a line breaks the links
    chain.write_text("\n".join(lines[1:]) + "\n")
    result = cli("verify")
    assert result.exit_code == 1 and "does not follow" in result.output


def test_sealing_again_adds_no_hour_twice_and_exports(sealed_site, tmp_path):
    cli, _, _, chain = sealed_site
    before = chain.read_bytes()
    result = cli("seal", "--export", str(tmp_path / "chain.jsonl"))
    assert result.exit_code == 0, result.output
    assert "sealed 0 hours" in result.output
    assert chain.read_bytes() == before == (tmp_path / "chain.jsonl").read_bytes()


def test_the_server_seals_without_an_inventory(sealed_site, tmp_path, mariadb, runner):
    """What logstack-seal.service runs: the deployed seal key file and the service's state directory."""
    from logstack.cli import app
    from logstack.integrity.keyring import keyring_path, load_keyring

    cli, _, _, chain = sealed_site
    key_file = tmp_path / "seal.key"
    key_file.write_text(load_keyring(keyring_path(chain.parent.parent)).seal_key.hex() + "\n")
    state = tmp_path / "var-lib-logstack"
    args = ["--seal-key", str(key_file), "--data-dir", str(state), "--db-port", str(mariadb.port)]
    result = runner.invoke(app, ["seal", *args, "--db-name", cli.database], env={"GREPTIMEDB_PASSWORD": PASSWORD})
    assert result.exit_code == 0, result.output
    assert (state / SEALS).exists()
    verify = runner.invoke(
        app, ["verify", *args, "--db-name", cli.database, "--ttl", "30d"], env={"GREPTIMEDB_PASSWORD": PASSWORD}
    )
    assert verify.exit_code == 0, verify.output
    wrong = tmp_path / "other.key"
    wrong.write_text("ab" * 32)
    result = runner.invoke(
        app,
        [
            "verify",
            "--seal-key",
            str(wrong),
            "--data-dir",
            str(state),
            "--db-port",
            str(mariadb.port),
            "--db-name",
            cli.database,
        ],
        env={"GREPTIMEDB_PASSWORD": PASSWORD},
    )
    assert result.exit_code == 1 and "not this site's" in result.output  # its record of the chain's end
    result = runner.invoke(app, ["seal", "--db-port", str(mariadb.port)], env={"GREPTIMEDB_PASSWORD": PASSWORD})
    assert result.exit_code == 2 and "--seal-key" in result.output


def test_a_vanished_or_emptied_chain_is_found_and_not_resealed(sealed_site):
    cli, sql, _hour, chain = sealed_site
    saved = chain.read_bytes()
    sql("DELETE FROM LOGS WHERE __CURSOR = 's=1;i=4'")
    for damage in ("empty", "delete"):
        if damage == "empty":
            chain.write_bytes(b"")
        else:
            chain.unlink()
        result = cli("verify")
        assert result.exit_code == 1 and "seal chain: no sealed hours" in result.output
        result = cli("seal", "--delay", "0s")
        assert result.exit_code == 1 and "ends before seal 3" in result.output
    chain.write_bytes(saved)  # restored from a copy: the deletion shows again
    assert "1 of 6 sealed rows deleted" in cli("verify").output


def test_a_chain_cut_at_its_end_is_found(sealed_site, tmp_path):
    cli, sql, _hour, chain = sealed_site
    export = tmp_path / "export.jsonl"
    assert cli("seal", "--delay", "0s", "--export", str(export)).exit_code == 0
    sql("DELETE FROM LOGS WHERE __CURSOR = 's=1;i=13'")  # in the second sealed hour
    lines = chain.read_text().splitlines()
    chain.write_text(lines[0] + "\n")  # keep only the first seal
    result = cli("verify", "--anchor", str(export))
    assert result.exit_code == 1
    assert "does not extend the exported chain (seal 2" in result.output


def test_a_chain_that_stopped_long_ago_is_found(sealed_site):
    cli, _sql, _hour, chain = sealed_site
    lines = chain.read_text().splitlines()
    chain.write_text(lines[0] + "\n")  # the chain ends 3 hours ago: cut, or sealing stopped
    result = cli("verify")
    assert result.exit_code == 1 and "later hours are not sealed" in result.output


def test_the_recorded_verification_is_authenticated(sealed_site, tmp_path):
    from logstack.evidence.sealing import site_last_verification
    from logstack.integrity.seal_chain import LAST_VERIFICATION

    cli, _, _, chain = sealed_site
    assert cli("verify").exit_code == 0
    site_dir = chain.parent.parent
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1e6)
    assert "3 sealed hours checked, clean" in site_last_verification(site_dir, now)
    record = chain.parent / LAST_VERIFICATION
    data = json.loads(record.read_text())
    data["findings"] = []
    data["checked_hours"] = 9999
    record.write_text(json.dumps(data))
    assert site_last_verification(site_dir, now).startswith("unverifiable")
    record.write_text("[" * 100000 + "]" * 100000)  # nested beyond any parser's depth: read as not a record
    assert site_last_verification(site_dir, now).startswith("unverifiable")


def test_columns_of_any_type_are_sealed_and_verified(sealed_site):
    cli, sql, _hour, _chain = sealed_site
    sql("ALTER TABLE LOGS ADD COLUMN `blob_col` BLOB NULL, ADD COLUMN `dec_col` DECIMAL(10,2) NULL")
    sql("UPDATE LOGS SET blob_col = X'00ff', dec_col = 1.50 WHERE __CURSOR = 's=1;i=2'")
    result = cli("verify")
    assert result.exit_code == 1 and "rows altered after sealing" in result.output
    assert "Traceback" not in result.output


def test_a_nested_or_oversized_seal_line_is_a_one_line_error(sealed_site):
    cli, _, _, chain = sealed_site
    chain.write_text("[" * 100000 + "]" * 100000 + "\n")
    result = cli("verify")
    assert result.exit_code == 1 and "not a seal (the chain was edited)" in result.output


def test_a_cut_chain_is_not_resealed_and_verify_names_it(sealed_site):
    cli, sql, _hour, chain = sealed_site
    lines = chain.read_text().splitlines()
    sql("DELETE FROM LOGS WHERE __CURSOR = 's=1;i=13'")  # in the second sealed hour
    chain.write_text(lines[0] + "\n")  # cut after the first seal, as one hiding the deletion would
    result = cli("seal", "--delay", "0s")
    assert result.exit_code == 1 and "ends before seal 3" in result.output
    result = cli("verify")
    assert result.exit_code == 1 and "ends before seal 3" in result.output
    # a new chain only on purpose; the old one is kept aside
    assert cli("seal", "--delay", "0s", "--start-anew").exit_code == 0
    assert list(chain.parent.glob("seals.jsonl.replaced-*"))


def test_hostile_state_files_are_one_line_errors(sealed_site, tmp_path):
    from logstack.integrity.seal_chain import LAST_VERIFICATION

    cli, _, _, chain = sealed_site
    (chain.parent / LAST_VERIFICATION).unlink(missing_ok=True)
    (chain.parent / LAST_VERIFICATION).mkdir()
    result = cli("verify")
    assert result.exit_code == 1 and "cannot write" in result.output and "Traceback" not in result.output
    result = cli("seal", "--export", str(tmp_path))
    assert result.exit_code == 1 and "is a directory" in result.output
    state_file = tmp_path / "state-file"
    state_file.write_text("x")
    result = cli("seal", "--data-dir", str(state_file))
    assert result.exit_code == 2 and "not a directory" in result.output


def test_a_record_dated_in_the_future_or_a_short_seal_key_is_refused(sealed_site, tmp_path, mariadb, runner):
    from logstack.cli import app
    from logstack.integrity.keyring import keyring_path, load_keyring
    from logstack.integrity.seal_chain import LAST_VERIFICATION, last_verification

    cli, _, _, chain = sealed_site
    assert cli("verify").exit_code == 0
    key = load_keyring(keyring_path(chain.parent.parent)).seal_key
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1e6)
    assert "clean" in last_verification(chain.parent, key, now)
    # the same genuine record, read as of a year earlier: dated in its future, it proves nothing
    assert last_verification(chain.parent, key, now - 365 * 86400 * 10**6).startswith("unverifiable")
    assert (chain.parent / LAST_VERIFICATION).exists()
    short = tmp_path / "short.key"
    short.write_text("ab" * 8)
    result = runner.invoke(
        app,
        ["verify", "--seal-key", str(short), "--data-dir", str(chain.parent), "--db-port", str(mariadb.port)],
        env={"GREPTIMEDB_PASSWORD": PASSWORD},
    )
    assert result.exit_code == 2 and "not a seal key" in result.output


def test_a_restored_shorter_chain_is_taken_on_purpose_and_a_broken_one_set_aside(sealed_site, tmp_path):
    cli, _, _, chain = sealed_site
    export = tmp_path / "export.jsonl"
    first = chain.read_text().splitlines()[0] + "\n"
    export.write_text(first)  # an export made after the first seal
    chain.write_text(first)  # restored from it
    assert cli("seal", "--delay", "0s").exit_code == 1
    result = cli("seal", "--delay", "0s", "--accept-chain")
    assert result.exit_code == 0 and "sealed 2 hours" in result.output, result.output
    assert cli("verify", "--anchor", str(export)).exit_code == 0
    chain.write_text("not a chain\n")
    assert cli("seal", "--delay", "0s").exit_code == 1
    assert cli("seal", "--delay", "0s", "--start-anew").exit_code == 0


def test_a_missing_key_ring_given_to_seal_or_verify_is_named(tmp_path, runner):
    from logstack.cli import app

    missing = tmp_path / "nowhere" / "signing-keys.json"
    for command in ("seal", "verify"):
        args = [command, "--signing-keys", str(missing), "--data-dir", str(tmp_path / "state"), "--db-port", "1"]
        result = runner.invoke(app, args, env={"GREPTIMEDB_PASSWORD": "unused"})
        assert result.exit_code == 2, result.output
        assert f"{missing}: no such key ring" in result.output and "Traceback" not in result.output
        assert not (tmp_path / "state").exists()
