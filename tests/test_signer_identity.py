"""A host's key vouches for that host's machine only: a host signing with its own valid key and naming another
host's machine, boot, PID or cursor neither joins, changes nor suppresses that host's events (rows in MariaDB,
read as analysis reads the store, every signature checked)."""

from __future__ import annotations

import secrets

from logstack.analyze.grouping import build_events
from logstack.integrity.keyring import (
    HostKey,
    KeyRing,
    key_id,
    keyring_path,
    load_keyring,
    machines_enrolled,
    save_keyring,
)
from logstack.integrity.signatures import Verifier, sign_row
from logstack.site.host_facts import parse_facts
from logstack.store.greptime import DatabaseConfig
from logstack.store.reader import DatabaseSource
from tests.journal import at, entry
from tests.mariadb import PASSWORD
from tests.test_analyze_db import to_row

ALPHA, BETA = "a" * 32, "b" * 32
BOOT = "c" * 32
T0 = at("2026-11-20 10:00:00")


def _ring() -> tuple[KeyRing, bytes, bytes]:
    keys = {host: secrets.token_bytes(32) for host in ("alpha", "beta")}
    ring = KeyRing(
        hosts={h: [HostKey(key_id(k), k, "2026-11-01T00:00:00Z")] for h, k in keys.items()},
        machines={"alpha": [ALPHA], "beta": [BETA]},
    )
    return ring, keys["alpha"], keys["beta"]


def _row(host: str, key: bytes, seconds: int, cursor: str, message: str, machine: str = BETA, claims: str = "") -> dict:
    e = entry(T0 + seconds * 1_000_000, "sshd-session", 700, message, host=host, machine=machine, boot=BOOT,
              exe="/usr/sbin/sshd-session")  # fmt: skip
    e["__CURSOR"] = cursor
    row = to_row(e, T0 + (seconds + 1) * 1_000_000)
    return sign_row({**row, "logstack_host": claims or host}, key)


def test_another_hosts_key_cannot_write_into_beta_s_events(mariadb):
    ring, alpha_key, beta_key = _ring()
    failed = "Failed password for root from 203.0.113.9 port 5000 ssh2"
    rows = [
        # alpha, signing with its own key, sends beta's next cursor before beta does: it must not suppress it
        _row("alpha", alpha_key, 0, "s=beta;i=2", "Accepted password for root from 203.0.113.9 port 5000 ssh2"),
        _row("beta", beta_key, 1, "s=beta;i=1", failed),
        _row("beta", beta_key, 2, "s=beta;i=2", failed),
        # and in beta's name, on beta's machine: forged_host, whatever it claims
        _row("alpha", alpha_key, 3, "s=beta;i=3", "Accepted password for root from 203.0.113.9 port 5000 ssh2",
             claims="beta"),
    ]  # fmt: skip
    mariadb.create_logs("identity")
    mariadb.insert("identity", rows)
    config = DatabaseConfig("127.0.0.1", mariadb.port, "analyst", PASSWORD, "identity", "logs")
    with DatabaseSource(config, verifier=Verifier(ring)) as db:
        lines = list(db.lines(T0 - 60_000_000, T0 + 60_000_000))
    events = list(build_events(lines))
    genuine = [e for e in events if not e.flags or "unauthenticated" not in e.flags]
    (beta,) = genuine
    assert (beta.type, beta.outcome, beta.host) == ("ssh_login", "failure", "beta")
    assert [ln.key.split("|")[0] for ln in beta.lines] == [ln.key.split("|")[0] for ln in lines[1:3]]
    assert len(beta.lines) == 2  # beta's own second line is there, though alpha sent its cursor first
    forged = [e for e in events if e is not beta]
    assert forged and all({"forged_host", "unauthenticated"} <= set(e.flags) for e in forged)


def test_a_host_s_rows_must_name_the_machine_it_was_enrolled_on(tmp_path):
    ring, alpha_key, _ = _ring()
    own = _row("alpha", alpha_key, 0, "s=a;i=1", "x", machine=ALPHA)
    other = _row("alpha", alpha_key, 0, "s=a;i=1", "x", machine=BETA)
    verifier = Verifier(ring)
    assert verifier.check(own).problem is None
    assert (verifier.check(other).problem, verifier.check(other).signer) == ("forged_host", "alpha")
    # learned at enrolment, kept in the key ring beside the keys; a re-imaged host is enrolled again
    site = tmp_path
    save_keyring(keyring_path(site), ring)
    machines_enrolled(site, {"alpha": "d" * 32, "beta": "not a machine id"})
    again = load_keyring(keyring_path(site))
    assert again.machines == {"alpha": [ALPHA, "d" * 32], "beta": [BETA]}
    assert parse_facts(f"machine_id={ALPHA}\n").machine_id == ALPHA
    assert parse_facts("machine_id=$(reboot)\n").machine_id is None
