"""Record signatures: the sender's rendered VRL signs in the real VRL engine, Python verifies the stored row.

Vector replaces `SECRET[logstack.signing_key]` in the raw config text with the key file's content, trailing
whitespace removed (v0.57.0 src/config/loading/secret.rs `interpolate`, src/secrets/directory.rs); the tests do
the same substitution, then run the rendered remap. The store keeps string fields as the sink sent them,
invalid UTF-8 replaced (VRL's encode_json is lossy, and the greptimedb_logs sink serialises the same way).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import hypothesis
import pytest
import yaml
from hypothesis import strategies as st

from logstack.analyze.grouping import build_events
from logstack.base.package_data import example_inventory_path
from logstack.integrity.keyring import HostKey, KeyRing, ensure_keys, keyring_path, keys_deployed, load_keyring
from logstack.integrity.signatures import SECRET_REFERENCE, SIGNED_FIELDS, Verifier
from logstack.journal.line import from_row
from logstack.render.rendered import write_tree
from logstack.render.site_files import render_site
from logstack.site.inventory import load_inventory

pyvrl = pytest.importorskip("pyvrl", reason="pyvrl is a test dependency: pip install .[test]")

NOW = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)


def _site(inventory: Path) -> tuple[Path, KeyRing]:
    inv = load_inventory(inventory)
    ensure_keys(inv.site_dir, [h.name for h in inv.hosts], NOW)
    return inventory, load_keyring(keyring_path(inv.site_dir))


def _signer(inventory: Path, ring: KeyRing, host: str) -> pyvrl.Transform:
    """The host's rendered identity + signature remaps, the key substituted as Vector's loader does."""
    inv = load_inventory(inventory)
    f = next(f for f in render_site(inv) if f.machine == f"hosts/{host}" and f.path == "/etc/vector/vector.yaml")
    config = yaml.safe_load(f.content)
    assert config["secret"]["logstack"] == {
        "type": "directory",
        "path": "/etc/vector/secrets",
        "remove_trailing_whitespace": True,
    }
    key = ring.current(host)
    assert key is not None
    source = config["transforms"]["identity"]["source"] + config["transforms"]["signature"]["source"]
    assert source.count(SECRET_REFERENCE) == 1
    return pyvrl.Transform(source.replace(SECRET_REFERENCE, (key.key.hex() + "\n").strip()) + "\n.")


def _stored(event: dict[str, object]) -> dict[str, object]:
    """What the store gives back: strings as sent (bytes decoded lossily), absent fields as NULL."""
    return {k: v.decode("utf-8", "replace") if isinstance(v, bytes) else v for k, v in event.items()}


JOURNAL = {
    "message": "Failed password for invalid user bob from 203.0.113.9 port 50688 ssh2",
    "host": "web1",
    "SYSLOG_IDENTIFIER": "sshd-session",
    "_PID": "4242",
    "_COMM": "sshd-session",
    "_EXE": "/usr/lib/openssh/sshd-session",
    "__REALTIME_TIMESTAMP": "1764568800000000",
    "__CURSOR": "s=1;i=2",
    "_BOOT_ID": "b" * 32,
    "_MACHINE_ID": "m" * 32,
}


def test_rendered_sender_signs_and_python_verifies(site):
    inventory, ring = _site(site)
    signed = _signer(inventory, ring, "web1").remap(dict(JOURNAL))
    assert set(signed) >= {"logstack_sig", "logstack_kid", "logstack_signed"}
    assert signed["logstack_kid"] == ring.current("web1").kid
    verifier = Verifier(ring)
    assert verifier.check(_stored(signed)).problem is None
    for field in (*SIGNED_FIELDS, "cmdb_id"):
        changed = dict(_stored(signed))
        changed[field] = "x" if changed.get(field) != "x" else "y"
        expected = "unknown_key" if field == "logstack_kid" else "bad_signature"
        assert verifier.check(changed).problem == expected, field
    # a field outside the signed set (added by the receiver) changes nothing
    assert verifier.check({**_stored(signed), "source_type": "vector", "timestamp": "now"}).problem is None


_values = st.one_of(
    st.none(),
    st.just(""),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    st.binary(max_size=24),  # a journald byte-array field (non-UTF-8 data)
)


@hypothesis.settings(max_examples=150, deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow])
@hypothesis.given(fields=st.dictionaries(st.sampled_from(SIGNED_FIELDS[:13]), _values, max_size=13))
def test_every_field_shape_signs_and_verifies(tmp_path_factory, fields):
    site = tmp_path_factory.mktemp("site")
    (site / "inventory.yaml").write_text(example_inventory_path().read_text())
    inventory, ring = _site(site / "inventory.yaml")
    event = {k: v for k, v in fields.items() if v is not None}
    signed = _signer(inventory, ring, "db1").remap(event)
    stored = _stored(signed)
    assert Verifier(ring).check(stored).problem is None, (event, signed)


def test_a_record_naming_another_host_is_forged_host(site):
    inventory, ring = _site(site)
    inv = load_inventory(inventory)
    f = next(f for f in render_site(inv) if f.machine == "hosts/web1" and f.path == "/etc/vector/vector.yaml")
    # a compromised web1 drops its identity remap and stamps db1's identity, signing with its own key
    signature = yaml.safe_load(f.content)["transforms"]["signature"]["source"]
    forger = pyvrl.Transform(signature.replace(SECRET_REFERENCE, ring.current("web1").key.hex()) + "\n.")
    claim = _stored(forger.remap({**JOURNAL, "logstack_host": "db1", "host": "db1"}))
    verdict = Verifier(ring).check(claim)
    assert (verdict.problem, verdict.signer) == ("forged_host", "web1")
    line = from_row({**claim, "greptime_timestamp": dt.datetime(2026, 12, 1, 6, 0, 1)})
    assert line is not None and line.host == "db1"
    line.auth = f"{verdict.problem}:{verdict.signer}"
    (event,) = list(build_events([line]))
    assert {"forged_host", "unauthenticated"} <= set(event.flags)
    assert event.severity == "alert"


def test_unsigned_and_unknown_key_rows(site):
    _, ring = _site(site)
    verifier = Verifier(ring)
    assert verifier.check(dict(JOURNAL)).problem == "unsigned"
    assert verifier.check({**JOURNAL, "logstack_kid": "0" * 16, "logstack_sig": "0" * 64}).problem == "unknown_key"
    assert verifier.check({**JOURNAL, "logstack_kid": ring.current("web1").kid}).problem == "bad_signature"


def test_a_signed_column_of_another_type_is_a_bad_signature_not_a_crash(site):
    """A column the store gives as DECIMAL or TIME (a table altered, a sender's field first seen as a number): the
    senders sign only text and null, so its row proves nothing and analysis goes on."""
    import datetime as dt
    import decimal
    import hmac

    from logstack.integrity.signatures import canonical

    _, ring = _site(site)
    key = ring.current("web1")
    row = {**JOURNAL, "logstack_host": "web1", "logstack_kid": key.kid, "logstack_signed": ""}
    row["logstack_sig"] = hmac.new(key.key, canonical(row) or b"", "sha256").hexdigest()
    assert Verifier(ring).check(row).problem is None
    for odd in (decimal.Decimal("1.5"), dt.timedelta(seconds=3), {1, 2}):
        assert canonical({**row, "_PID": odd}) is None
        assert Verifier(ring).check({**row, "_PID": odd}).problem == "bad_signature"


def test_rotation_keeps_old_records_verifiable(site):
    inventory, ring = _site(site)
    stored_at = dt.datetime(2026, 12, 1, 8, 0)  # naive UTC, as the store gives it back
    old = {**_stored(_signer(inventory, ring, "web1").remap(dict(JOURNAL))), "greptime_timestamp": stored_at}
    ensure_keys(site.parent, ["web1"], NOW + dt.timedelta(days=1), rotate=True)
    ring2 = load_keyring(keyring_path(site.parent))
    assert ring2.current("web1").kid != old["logstack_kid"]
    new = _stored(_signer(inventory, ring2, "web1").remap(dict(JOURNAL)))
    # until the new key is on the host, the old one stays live: a host not yet re-enrolled still signs with it
    assert [k.retired for k in ring2.hosts["web1"]] == [None, None]
    keys_deployed(site.parent, {"web1": ring2.current("web1").kid}, NOW + dt.timedelta(days=2))
    ring2 = load_keyring(keyring_path(site.parent))
    verifier = Verifier(ring2)
    assert verifier.check(old).problem is None
    assert verifier.check({**new, "greptime_timestamp": stored_at + dt.timedelta(days=400)}).problem is None
    assert [k.retired is not None for k in ring2.hosts["web1"]] == [True, False]
    # what the retired key signs after the senders' grace proves nothing (a stolen old key)
    late = {**old, "greptime_timestamp": stored_at + dt.timedelta(days=30)}
    assert verifier.check(late).problem == "retired_key"


def test_a_revoked_host_s_key_is_retired(site, runner):
    inventory, _ring = _site(site)
    from logstack.pki import PKI

    inv = load_inventory(inventory)
    pki = PKI.for_inventory(inv)
    pki.init_ca()
    pki.issue_client(inv.host("db1"))
    result = runner.invoke(
        __import__("logstack.cli", fromlist=["app"]).app, ["certs", "revoke", "db1", "-i", str(inventory)]
    )
    assert result.exit_code == 0, result.output
    assert load_keyring(keyring_path(site.parent)).current("db1") is None


def test_review_render_holds_no_key_material(site, tmp_path):
    inventory, ring = _site(site)
    inv = load_inventory(inventory)
    out = tmp_path / "review"
    write_tree(render_site(inv), out)
    keys = [k.key.hex() for keys in ring.hosts.values() for k in keys] + [ring.seal_key.hex()]
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            for key in keys:
                assert key not in text, path
                assert key.upper() not in text, path
    # the deployable render does carry the host's key, in its own file only
    deployed = render_site(inv, include_keys=True, hosts=[inv.host("web1")], server=False)
    holders = [f.path for f in deployed if ring.current("web1").key.hex().encode() in f.content]
    assert holders == ["/etc/vector/secrets/signing_key"]
    key_file = next(f for f in deployed if f.path == "/etc/vector/secrets/signing_key")
    assert (key_file.owner, key_file.group, key_file.mode) == ("root", "vector", 0o440)


def test_key_ring_is_private_and_checked(site):
    _site(site)
    path = keyring_path(site.parent)
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)
    with pytest.raises(Exception, match="readable by others"):
        load_keyring(path)
    path.chmod(0o600)
    data = json.loads(path.read_text())
    data["hosts"]["web1"][0]["key"] = "ab" * 32  # a key that does not match its id
    path.write_text(json.dumps(data))
    with pytest.raises(Exception, match="not a logstack signing key ring"):
        load_keyring(path)


def test_signature_remap_names_only_plain_fields():
    from logstack.integrity.signatures import sign_vrl

    source = sign_vrl("0123456789abcdef", ["cmdb_id", "role"])
    assert re.search(r'"cmdb_id": \.cmdb_id', source)
    assert '.logstack_signed = "cmdb_id,role"' in source


def test_analyze_and_report_over_the_store_flag_what_fails_authentication(site, mariadb, runner, tmp_path):
    from logstack.cli import app
    from tests.mariadb import PASSWORD

    inventory, ring = _site(site)
    name = "signed_rows"
    mariadb.create_logs(name)
    base = dt.datetime(2026, 11, 30, 10, 0, 0)
    rows = []
    for n, (host, user) in enumerate([("web1", "alice"), ("db1", "bob"), ("web1", "carol")]):
        event = {
            **JOURNAL,
            "message": f"Accepted publickey for {user} from 203.0.113.{n + 1} port 4000{n} ssh2",
            "_PID": str(500 + n),
            "__CURSOR": f"s=1;i={n}",
            "__REALTIME_TIMESTAMP": str(int((base.replace(tzinfo=dt.UTC).timestamp() + n) * 1e6)),
        }
        signed = _stored(_signer(inventory, ring, host).remap(event))
        rows.append({**signed, "greptime_timestamp": base + dt.timedelta(seconds=n + 1)})
    rows[2]["message"] = rows[2]["message"].replace("carol", "root")  # altered in the store
    mariadb.insert(name, rows)
    args = ["--db-port", str(mariadb.port), "--db-name", name, "-i", str(inventory), "--since", "2026-11-30"]
    result = runner.invoke(app, ["analyze", *args, "--format", "json"], env={"GREPTIMEDB_PASSWORD": PASSWORD})
    assert result.exit_code == 0, result.output
    events = {e["user"]: e for e in json.loads(result.stdout)}
    assert set(events) == {"alice", "bob", "root"}
    assert events["alice"]["authentication"] == [] and events["bob"]["authentication"] == [], events
    assert "unauthenticated" in events["root"]["flags"]
    assert events["root"]["authentication"] == ["bad_signature:web1"]
    assert events["root"]["severity"] == "alert"
    failing = runner.invoke(app, ["analyze", *args, "--fail-on", "alert"], env={"GREPTIMEDB_PASSWORD": PASSWORD})
    assert failing.exit_code == 1
    out = tmp_path / "r.html"
    md = tmp_path / "r.md"
    report = runner.invoke(
        app,
        ["report", "-o", str(out), "--markdown", str(md), "--since", "2026-11-30", "--until", "2026-12-01", *args[:-2]],
        env={"GREPTIMEDB_PASSWORD": PASSWORD},
    )
    assert report.exit_code == 0, report.output
    section = md.read_text().split("## Records that failed authentication", 1)[1].split("##", 1)[0]
    assert "`web1`: 1 `bad_signature:web1`" in section and "db1" not in section
    # without keys nothing is claimed either way
    plain = runner.invoke(
        app,
        [
            "report",
            "-o",
            str(out),
            "--markdown",
            str(md),
            "--since",
            "2026-11-30",
            "--until",
            "2026-12-01",
            "--db-port",
            str(mariadb.port),
            "--db-name",
            name,
        ],
        env={"GREPTIMEDB_PASSWORD": PASSWORD},
    )
    assert plain.exit_code == 0, plain.output
    assert "not checked" in md.read_text().split("## Records that failed authentication", 1)[1].split("##", 1)[0]


def test_a_site_without_its_key_ring_fails_closed_unless_told(site, mariadb, runner, tmp_path):
    """A lost signing-keys.json must not turn into a run where nothing is checked and nothing flagged."""
    from logstack.cli import app
    from tests.mariadb import PASSWORD

    inventory, ring = _site(site)
    name = "ring_lost"
    mariadb.create_logs(name)
    base = dt.datetime(2026, 11, 30, 10, 0, 0)
    event = {
        **JOURNAL,
        "message": "Accepted publickey for alice from 203.0.113.9 port 40000 ssh2",
        "__REALTIME_TIMESTAMP": str(int((base.replace(tzinfo=dt.UTC).timestamp()) * 1e6)),
    }
    signed = _stored(_signer(inventory, ring, "web1").remap(event))
    mariadb.insert(name, [{**signed, "greptime_timestamp": base + dt.timedelta(seconds=1)}])
    keyring_path(load_inventory(inventory).site_dir).unlink()
    args = ["--db-port", str(mariadb.port), "--db-name", name, "-i", str(inventory)]
    env = {"GREPTIMEDB_PASSWORD": PASSWORD}
    refused = runner.invoke(app, ["analyze", *args, "--since", "2026-11-30", "--format", "json"], env=env)
    assert refused.exit_code == 2, refused.output
    assert "signing-keys.json" in refused.output and "--no-verify-signatures" in refused.output
    assert "Traceback" not in refused.output and refused.stdout.strip().count("\n") <= 1
    md = tmp_path / "r.md"
    period = ["--since", "2026-11-30", "--until", "2026-12-01"]
    report = runner.invoke(
        app, ["report", "-o", str(tmp_path / "r.html"), "--markdown", str(md), *period, *args], env=env
    )
    assert report.exit_code == 2 and "signing-keys.json" in report.output and not md.exists()
    told = [*args, "--no-verify-signatures"]
    read = runner.invoke(app, ["analyze", *told, "--since", "2026-11-30", "--format", "json"], env=env)
    assert read.exit_code == 0, read.output
    (alice,) = json.loads(read.stdout)
    assert "unauthenticated" in alice["flags"] and alice["authentication"] == ["not_verified"]
    report = runner.invoke(
        app, ["report", "-o", str(tmp_path / "r.html"), "--markdown", str(md), *period, *told], env=env
    )
    assert report.exit_code == 0, report.output
    section = md.read_text().split("## Records that failed authentication", 1)[1].split("##", 1)[0]
    assert "`web1`: 1 `not_verified`" in section
    # a ring put back empty (or one written before any host was enrolled) proves nothing: every row is flagged
    ring_file = keyring_path(load_inventory(inventory).site_dir)
    ring_file.write_text('{"hosts": {}}')
    ring_file.chmod(0o600)
    empty = runner.invoke(app, ["analyze", *args, "--since", "2026-11-30", "--format", "json"], env=env)
    assert empty.exit_code == 0, empty.output
    (alice,) = json.loads(empty.stdout)
    assert "unauthenticated" in alice["flags"] and alice["authentication"] == ["unknown_key"]


def test_unsigned_columns_of_journald_names_are_never_read_from_the_store(site, mariadb, runner):
    """Vector renames MESSAGE and _HOSTNAME on the sender; such columns in the store are someone else's."""
    from logstack.cli import app
    from tests.mariadb import PASSWORD

    inventory, ring = _site(site)
    name = "shadowed"
    mariadb.create_logs(name)
    event = {**JOURNAL, "message": "Accepted publickey for root from 203.0.113.9 port 4242 ssh2"}
    row = {**_stored(_signer(inventory, ring, "web1").remap(event)), "greptime_timestamp": dt.datetime(2026, 11, 30, 9)}
    mariadb.insert(name, [{**row, "_HOSTNAME": "db1"}])
    args = ["analyze", "--db-port", str(mariadb.port), "--db-name", name, "-i", str(inventory), "--format", "json"]
    result = runner.invoke(app, [*args, "--since", "2026-11-30"], env={"GREPTIMEDB_PASSWORD": PASSWORD})
    assert result.exit_code == 0, result.output
    (found,) = json.loads(result.stdout)
    assert (found["type"], found["user"], found["host"]) == ("ssh_login", "root", "web1")
    assert found["authentication"] == []


def test_a_message_column_beside_the_signed_message_is_not_selected():
    """GreptimeDB's column names are case-sensitive (MariaDB's are not): the selection itself leaves it out."""
    from logstack.store.greptime import DatabaseConfig
    from logstack.store.reader import DatabaseSource

    class Store(DatabaseSource):
        def query(self, sql, params):
            names = ["greptime_timestamp", "message", "MESSAGE", "_HOSTNAME", "host", "logstack_sig", "cmdb_id"]
            return [{"column_name": n} for n in names]

    config = DatabaseConfig("127.0.0.1", 1, "analyst", "x", "vector", "logs")
    for verifier in (None, Verifier(KeyRing(hosts={"a": [HostKey("0" * 16, b"k" * 32, "x")]}))):
        columns = Store(config, verifier=verifier)._columns()
        assert "message" in columns and "MESSAGE" not in columns and "_HOSTNAME" not in columns


def test_identity_names_of_logstack_s_own_columns_are_refused(tmp_path):
    for reserved in ("logstack_sig", "logstack_kid", "logstack_signed", "logstack_config"):
        path = tmp_path / f"{reserved}.yaml"
        path.write_text(
            "site: t\nserver:\n  fqdn: logs.example.com\nhosts:\n  - name: a\n    address: 10.0.0.1\n"
            f"    identity:\n      {reserved}: x\n"
        )
        with pytest.raises(Exception, match="reserved"):
            load_inventory(path)


def test_a_short_seal_key_or_a_nested_ring_is_refused(site):
    path = keyring_path(site.parent)
    path.write_text(json.dumps({"seal_key": "00", "hosts": {}}))
    path.chmod(0o600)
    with pytest.raises(Exception, match="not a logstack signing key ring"):
        load_keyring(path)
    path.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(Exception, match="not a logstack signing key ring"):
        load_keyring(path)


def test_an_old_heartbeat_stored_again_counts_as_old_but_a_lagging_clock_is_tolerated():
    from logstack.integrity.signatures import heartbeat_time

    stored = dt.datetime(2026, 12, 1, 6, 0)
    ingest = int(stored.replace(tzinfo=dt.UTC).timestamp() * 1_000_000)
    sent = str(int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp() * 1_000_000))
    assert heartbeat_time({"greptime_timestamp": stored, "__REALTIME_TIMESTAMP": sent}) == int(sent)
    behind = str(ingest - 5 * 60 * 1_000_000)  # a sender whose clock is 5 minutes behind the store's
    assert heartbeat_time({"greptime_timestamp": stored, "__REALTIME_TIMESTAMP": behind}) == ingest


def test_a_retired_key_proves_no_line_written_after_its_retirement_whatever_the_store_time_says(site):
    inventory, ring = _site(site)
    retired_at = NOW + dt.timedelta(days=2)
    after = {**dict(JOURNAL), "__REALTIME_TIMESTAMP": str(int((retired_at + dt.timedelta(hours=1)).timestamp() * 1e6))}
    forged = _stored(_signer(inventory, ring, "web1").remap(after))  # signed with the key that will be retired
    ensure_keys(site.parent, ["web1"], NOW + dt.timedelta(days=1), rotate=True)
    keys_deployed(site.parent, {"web1": load_keyring(keyring_path(site.parent)).current("web1").kid}, retired_at)
    verifier = Verifier(load_keyring(keyring_path(site.parent)))
    # the store's time is not signed: backdated into the grace, it proves nothing of a line written later
    backdated = {**forged, "greptime_timestamp": retired_at.replace(tzinfo=None) - dt.timedelta(days=1)}
    assert verifier.check(backdated).problem == "retired_key"


def test_verification_options_that_cannot_both_hold_are_refused(tmp_path, runner):
    from logstack.cli import app

    ring = tmp_path / "ring.json"
    env = {"GREPTIMEDB_PASSWORD": "unused"}  # refused before any connection (port 1 answers nothing)
    both = runner.invoke(
        app, ["analyze", "--signing-keys", str(ring), "--no-verify-signatures", "--db-port", "1"], env=env
    )
    assert both.exit_code == 2 and "contradict" in both.output, both.output
    nothing = runner.invoke(
        app, ["report", "-o", str(tmp_path / "r.html"), "--verify-signatures", "--db-port", "1"], env=env
    )
    assert nothing.exit_code == 2 and "--verify-signatures needs a key ring" in nothing.output, nothing.output
    assert not (tmp_path / "r.html").exists()
