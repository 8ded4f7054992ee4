"""Benchmark `logstack analyze`.

(a) Generate N realistic journal rows (default 1M); print lines/s from a JSON export and from MariaDB,
    and the peak RSS of `logstack analyze` reading each. Targets: >= 200k lines/s from a file;
    1M rows within 150 MB RSS. Exports are measured at several shares of login lines: 100 % is what
    the senders forward (and what MariaDB is loaded with); a whole host's journal is mostly other
    programs, whose lines analysis skips before parsing. Also printed: orjson's parse rate alone.
(c) The same rows signed as each host's sender signs them, analysed with every signature checked
    (`--signing-keys`): the cost of verification. Target: <= 30 % over (a) from MariaDB.
(d) 1 % of the rows delivered again (a sender's retries).
(e) The rows of (a) read over GreptimeDB's HTTP API as Arrow (`--db-http`), from the stand-in over MariaDB
    (tests/greptime_arrow.py), its answers replayed from memory: what logstack spends, not the stand-in.
(b) Load 10k failed-login events into MariaDB and time, in the same run, the old analysis script's
    query pattern (one query for the events, then one connection and one query per event) against
    `logstack analyze`. Target: >= 100x.

Needs mariadb-server (bash tests/setup.sh installs it); starts its own server in a temp directory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hmac
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from logstack.integrity.keyring import KeyRing, save_keyring  # noqa: E402
from logstack.integrity.signatures import canonical  # noqa: E402
from tests.journal import entry  # noqa: E402
from tests.mariadb import COLUMNS, PASSWORD, start_mariadb  # noqa: E402

START = 1_760_000_000_000_000  # µs
HOSTS = [f"web{i:02d}" for i in range(40)]
USERS = ["root", "admin", "oracle", "test", "ubuntu", "git", "postgres", "deploy", "pi", "user"]


# Lines of other programs in a whole host's journal: (identifier, _COMM, message template).
NOISE = [
    (
        "kernel",
        "kernel",
        "[UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56 SRC={ip} DST=10.0.0.5 LEN=44 TOS=0x00 "
        "PREC=0x00 TTL=243 ID=54321 PROTO=TCP SPT={port} DPT=23 WINDOW=1024 RES=0x00 SYN URGP=0",
    ),
    ("systemd", "systemd", "Started session-{n}.scope - Session {n} of User {user}."),
    ("systemd", "systemd", "apt-daily.service: Deactivated successfully."),
    ("CRON", "cron", "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"),
    ("CRON", "cron", "(root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)"),
    (
        "dockerd",
        "dockerd",
        'time="2025-10-09T08:53:20Z" level=info msg="ignoring event" container={n} '
        'module=libcontainerd namespace=moby topic=/tasks/delete type="*events.TaskDelete"',
    ),
    ("nginx", "nginx", '{ip} - - "GET /index.html HTTP/1.1" 200 612 "-" "Mozilla/5.0"'),
    ("systemd-resolved", "systemd-resolve", "Clock change detected. Flushing caches."),
    ("systemd-journald", "systemd-journal", "Journal started"),
]


CHILD = 500_000  # a session child's PID: the monitor's and this (no other line of the export has one so high)
Generated = Iterator[tuple[int, str, int, str, str, str]]


def _events(
    rng: random.Random, count_lines: int, login_share: float = 1.0, children: bool = False, attackers: int = 0
) -> Generated:
    """Yield (ts_us, host, pid, identifier, comm, message) in time order, ~count_lines lines.

    `login_share` is the part of the lines that are login and privilege lines; the rest are other
    programs' lines, as in a whole host's journal. With `children`, each login's session child (another PID, as
    OpenSSH's privilege separation runs it) logs the disconnect and the monitor the session's end: one
    connection's events to join across processes. With `attackers`, the failed logins come from that many
    addresses (brute force: incidents), the successes from anywhere.
    """
    ts = START
    pid = 1000
    produced = 0
    noise_owed = 0.0
    while produced < count_lines:
        ts += rng.randint(1, 200_000)
        pid += 1
        host = rng.choice(HOSTS)
        roll = rng.random()
        ip = f"203.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        port = rng.randint(1024, 65535)
        user = rng.choice(USERS)
        if roll < 0.55:
            if attackers:
                ip = f"198.51.{rng.randint(0, attackers - 1) // 250}.{rng.randint(0, attackers - 1) % 250 + 1}"
            lines = [
                ("sshd-session", f"Invalid user {user} from {ip} port {port}"),
                ("sshd-session", "pam_unix(sshd:auth): check pass; user unknown"),
                (
                    "sshd-session",
                    f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}",
                ),
                ("sshd-session", f"Failed password for invalid user {user} from {ip} port {port} ssh2"),
                ("sshd-session", f"Connection closed by invalid user {user} {ip} port {port} [preauth]"),
            ]
        elif roll < 0.75:
            lines = [
                ("sshd-session", f"Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:x"),
                ("sshd-session", f"pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)"),
                ("systemd-logind", f"New session {pid} of user {user}."),
            ]
            if children:
                lines += [
                    (
                        "sshd-session",
                        f"Received disconnect from {ip} port {port}:11: disconnected by user",
                        pid + CHILD,
                    ),
                    ("sshd-session", f"Disconnected from user {user} {ip} port {port}", pid + CHILD),
                    ("sshd-session", f"pam_unix(sshd:session): session closed for user {user}"),
                ]
        elif roll < 0.9:
            lines = [
                (
                    "sudo",
                    f"   {user} : TTY=pts/0 ; PWD=/home/{user} ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx",
                ),
                ("sudo", f"pam_unix(sudo:session): session opened for user root(uid=0) by {user}(uid=1000)"),
                ("sudo", "pam_unix(sudo:session): session closed for user root"),
            ]
        else:
            lines = [
                ("sshd-session", "error: kex_exchange_identification: Connection closed by remote host"),
                ("sshd-session", f"Connection closed by {ip} port {port}"),
            ]
        for i, (ident, message, *own) in enumerate(lines):
            at = own[0] if own else 600 if ident == "systemd-logind" else pid
            yield ts + i * 1000, host, at, ident, ident, message
            produced += 1
        noise_owed += len(lines) * (1 - login_share) / login_share
        while noise_owed >= 1 and produced < count_lines:
            noise_owed -= 1
            ident, comm, template = rng.choice(NOISE)
            message = template.format(ip=ip, port=port, n=pid, user=user)
            yield ts + 500, host, rng.randint(300, 90000), ident, comm, message
            produced += 1


def generate_json(
    path: Path, count: int, seed: int = 7, login_share: float = 1.0, children: bool = False, attackers: int = 0
) -> int:
    rng = random.Random(seed)
    n = 0
    with path.open("w") as out:
        for ts, host, pid, ident, comm, message in _events(rng, count, login_share, children, attackers):
            n += 1
            record = entry(
                ts,
                ident,
                pid,
                message,
                host=host,
                machine=host.ljust(32, "0"),
                boot="b" * 32,
                comm=comm,
                _SYSTEMD_UNIT=f"{comm}.service",
                _CAP_EFFECTIVE="1ffffffffff",
                _SELINUX_CONTEXT="unconfined\n",
            )
            out.write(json.dumps(record, separators=(",", ":")) + "\n")  # as journalctl writes it
    return n


def parse_floor(path: Path) -> float:
    """Seconds orjson alone takes to parse every line: the ceiling for any analysis in Python."""
    import orjson

    start = time.perf_counter()
    with path.open("rb") as src:
        for raw in src:
            orjson.loads(raw)
    return time.perf_counter() - start


def load_mariadb(db, name: str, path: Path, ring: KeyRing | None = None, retried: float = 0.0) -> None:
    """Rows as the receiving Vector writes them; with `ring`, signed as each host's sender signs them; with
    `retried`, that part of the rows written again 1 s to 2 min later (a sender's retry: the same entry)."""
    rng = random.Random(3)
    db.create_logs(name)
    names = ["greptime_timestamp", *COLUMNS]
    sql = (
        f"INSERT INTO `{name}`.`logs` ({', '.join(f'`{c}`' for c in names)}) VALUES ({', '.join(['%s'] * len(names))})"
    )
    conn = db.admin()
    batch = []
    with conn.cursor() as cur, path.open() as src:
        for raw in src:
            e = json.loads(raw)
            ts = int(e["__REALTIME_TIMESTAMP"])
            arrival = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=ts + 1_500_000)
            row = {
                "greptime_timestamp": arrival,
                "host": e["_HOSTNAME"],
                "message": e["MESSAGE"],
                "SYSLOG_IDENTIFIER": e["SYSLOG_IDENTIFIER"],
                "_PID": e["_PID"],
                "_COMM": e["_COMM"],
                "_EXE": e["_EXE"],
                "_BOOT_ID": e["_BOOT_ID"],
                "_MACHINE_ID": e["_MACHINE_ID"],
                "__CURSOR": e["__CURSOR"],
                "__REALTIME_TIMESTAMP": e["__REALTIME_TIMESTAMP"],
                "source_type": "journald",
            }
            if ring is not None:
                key = ring.current(e["_HOSTNAME"])
                row.update(logstack_host=e["_HOSTNAME"], logstack_kid=key.kid, logstack_signed="")
                row["logstack_sig"] = hmac.new(key.key, canonical(row), "sha256").hexdigest()
            batch.append([row.get(c) for c in names])
            if retried and rng.random() < retried:
                again = {**row, "greptime_timestamp": arrival + dt.timedelta(seconds=rng.randint(1, 120))}
                batch.append([again.get(c) for c in names])
            if len(batch) >= 5000:
                cur.executemany(sql, batch)
                batch.clear()
        if batch:
            cur.executemany(sql, batch)
    conn.close()


def over_arrow(db, db_args: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(seconds, peak RSS MiB, events) of reading the rows over the HTTP stand-in, the second of two runs (the
    first fills its replay)."""
    from logstack.render.site_files import render_site
    from logstack.site.inventory import load_inventory
    from tests.greptime_arrow import arrow_stand_in, schema_types

    files = render_site(load_inventory(ROOT / "inventory.example.yaml"))
    schema = next(f for f in files if f.path == "/etc/logstack/schema.sql").content.decode()
    with arrow_stand_in("127.0.0.1", 0, db.port, schema_types(schema, "logs"), replay=True) as served:
        http = ["--db-http", f"http://127.0.0.1:{served.server.server_address[1]}"]
        timed_cli([*db_args, *http], env)
        return timed_cli([*db_args, *http], env)


def timed_cli(
    args: list[str], env: dict[str, str], piped: Path | None = None, fmt: str = "jsonl"
) -> tuple[float, float, int]:
    """Run `logstack analyze` in a child (`piped`: that file through a pipe, `cat FILE | analyze`); (seconds, peak
    RSS MiB of that child, events: lines of output, or text blocks)."""
    code = "import sys; from logstack.cli import main; sys.argv = ['logstack', *sys.argv[1:]]; main()"
    cmd = [sys.executable, "-c", code, "analyze", "--format", fmt, *args]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        cat = subprocess.Popen(["cat", str(piped)], stdout=subprocess.PIPE) if piped is not None else None
        stdin = cat.stdout if cat is not None else None
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=out, stderr=err, env={**os.environ, **env}, cwd=ROOT)
        if cat is not None and cat.stdout is not None:
            cat.stdout.close()  # the child holds the pipe's read end
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        if cat is not None:
            cat.wait()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode not in (0, 1):
            err.seek(0)
            raise SystemExit(f"analyze failed: {err.read()}")
        out.seek(0)
        events = sum(1 for line in out if fmt != "text" or line.startswith("  TYPE: "))
    return elapsed, usage.ru_maxrss / 1024, events


def state_runs(path: Path, rows: int, state: Path) -> None:
    """`--since-last-run` over the export twice: the first run reports every event, the second reads the same
    lines against the state the first left (every line known: nothing to report)."""
    # the generated export is dated in the past: a horizon that covers it, so that every line is read again
    args = ["--journal", str(path), "--since-last-run", "--data-dir", str(state), "--dedupe-horizon", "3650d"]
    for run in ("first", "second"):
        seconds, rss, events = timed_cli(args, {})
        print(
            f"(a) JSON export with --since-last-run, {run} run: {rows:,} lines in {seconds:.2f} s = "
            f"{rows / seconds:,.0f} lines/s, {events:,} events, peak RSS {rss:.0f} MiB"
            + (" (target: >= 150,000 lines/s against a state of every line)" if run == "second" else "")
        )


def old_pattern(port: int, name: str) -> tuple[float, int]:
    """The old script: find lines with 'authentication failure', then per (host, PID) a new connection."""
    import pymysql

    start = time.perf_counter()
    conn = pymysql.connect(host="127.0.0.1", port=port, user="analyst", password=PASSWORD, database=name)
    with conn.cursor() as cur:
        cur.execute("SELECT DISTINCT `host`, `_PID` FROM `logs` WHERE `message` LIKE %s", ("%authentication failure%",))
        keys = cur.fetchall()
    conn.close()
    for host, pid in keys:
        per_event = pymysql.connect(host="127.0.0.1", port=port, user="analyst", password=PASSWORD, database=name)
        with per_event.cursor() as cur:
            cur.execute(
                "SELECT `greptime_timestamp`, `host`, `message`, `_PID` FROM `logs` WHERE `host` = %s AND "
                "`_PID` = %s ORDER BY `greptime_timestamp`",
                (host, pid),
            )
            cur.fetchall()
        per_event.close()
    return time.perf_counter() - start, len(keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--failed-events", type=int, default=10_000)
    parser.add_argument(
        "--login-shares",
        default="1,0.5,0.25,0.1",
        help="parts of an export that are login lines; 1 = only what senders forward (default: %(default)s)",
    )
    parser.add_argument("--skip-db", action="store_true", help="only the JSON export figures")
    parser.add_argument("--skip-old", action="store_true", help="skip (b), the old script's query pattern")
    args = parser.parse_args()
    shares = [float(x) for x in args.login_shares.split(",")]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        export = tmp / "journal.json"  # login lines only: what the senders forward
        for share in shares:
            path = export if share == 1 else tmp / "host-journal.json"
            t0 = time.perf_counter()
            rows = generate_json(path, args.rows, login_share=share)
            print(
                f"generated {rows:,} journal rows, {share:.0%} login lines ({path.stat().st_size / 2**20:,.0f} MiB) "
                f"in {time.perf_counter() - t0:.1f} s"
            )
            if share == 1:
                print(f"    parsing alone (orjson, one process): {rows / parse_floor(path):,.0f} lines/s")
            seconds, rss, events = timed_cli(["--journal", str(path)], {})
            print(
                f"(a) JSON export, {share:.0%} login lines: {rows:,} lines in {seconds:.2f} s = "
                f"{rows / seconds:,.0f} lines/s, {events:,} events, peak RSS {rss:.0f} MiB "
                "(targets: >= 200,000 lines/s, <= 600 MiB)"
            )
            if share == 1:
                for label, run in (
                    ("piped (`cat FILE | analyze --journal -`)", timed_cli(["--journal", "-"], {}, piped=path)),
                    ("as text (the default format)", timed_cli(["--journal", str(path)], {}, fmt="text")),
                ):
                    seconds, rss, events = run
                    print(
                        f"(a) JSON export {label}: {rows:,} lines in {seconds:.2f} s = {rows / seconds:,.0f} "
                        f"lines/s, {events:,} events, peak RSS {rss:.0f} MiB"
                    )
                state_runs(path, rows, tmp / "state")
            if path != export:
                path.unlink()
        if not export.exists():
            generate_json(export, args.rows)
        if args.skip_db:
            return

        db = start_mariadb(tmp / "mariadb")
        try:
            t0 = time.perf_counter()
            load_mariadb(db, "bench", export)
            print(f"loaded MariaDB in {time.perf_counter() - t0:.1f} s")
            env = {"GREPTIMEDB_PASSWORD": PASSWORD}
            db_args = ["--db-port", str(db.port), "--db-name", "bench"]
            seconds, rss, events = timed_cli(db_args, env)
            print(
                f"(a) MariaDB: {rows:,} rows in {seconds:.2f} s = {rows / seconds:,.0f} lines/s, "
                f"{events:,} events, peak RSS {rss:.0f} MiB"
            )
            # the same rows signed, analysed with every signature checked
            ring = KeyRing(seal_key=b"s" * 32)
            for host in HOSTS:
                ring.mint(host, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
            ring_path = tmp / "signing-keys.json"
            save_keyring(ring_path, ring)
            load_mariadb(db, "signed", export, ring)
            signed_args = ["--db-port", str(db.port), "--db-name", "signed", "--signing-keys", str(ring_path)]
            signed_s, _, signed_events = timed_cli(signed_args, env)
            print(
                f"(c) MariaDB, signed rows, every signature verified: {rows / signed_s:,.0f} lines/s, "
                f"{signed_events:,} events; verification adds {100 * (signed_s / seconds - 1):.0f} % "
                "(target: <= 30 %)"
            )

            # a sender's retries: 1 % of the rows delivered again (once sent to the line-by-line engine whole)
            load_mariadb(db, "retried", export, retried=0.01)
            retried_s, _, retried_events = timed_cli(["--db-port", str(db.port), "--db-name", "retried"], env)
            print(
                f"(d) MariaDB, 1 % of the rows delivered again: {rows / retried_s:,.0f} lines/s, "
                f"{retried_events:,} events (the same as without: {retried_events == events})"
            )

            arrow_s, arrow_rss, arrow_events = over_arrow(db, db_args, env)
            print(
                f"(e) MariaDB's rows as Arrow over HTTP (--db-http): {rows / arrow_s:,.0f} lines/s, "
                f"{arrow_events:,} events (the same as over MySQL: {arrow_events == events}), "
                f"peak RSS {arrow_rss:.0f} MiB"
            )

            if args.skip_old:
                return
            failed = tmp / "failed.json"
            generate_failed(failed, args.failed_events)
            load_mariadb(db, "failed", failed)
            old_s, old_events = old_pattern(db.port, "failed")
            new_s, _, new_events = timed_cli(["--db-port", str(db.port), "--db-name", "failed"], env)
            print(
                f"(b) {args.failed_events:,} failed logins: old pattern {old_s:.2f} s ({old_events:,} events), "
                f"logstack analyze {new_s:.2f} s ({new_events:,} events, process start included): "
                f"{old_s / new_s:,.1f}x (target: >= 100x)"
            )
        finally:
            db.stop()


def generate_failed(path: Path, count: int) -> None:
    rng = random.Random(11)
    with path.open("w") as out:
        ts = START
        for i in range(count):
            ts += rng.randint(10_000, 2_000_000)
            host = rng.choice(HOSTS)
            ip = f"198.51.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
            port = rng.randint(1024, 65535)
            for j, message in enumerate(
                [
                    f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}",
                    f"Failed password for root from {ip} port {port} ssh2",
                    f"Connection closed by authenticating user root {ip} port {port} [preauth]",
                ]
            ):
                record = entry(
                    ts + j,
                    "sshd-session",
                    10000 + i,
                    message,
                    host=host,
                    machine=host.ljust(32, "0"),
                    boot="b" * 32,
                )
                out.write(json.dumps(record, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
