"""Benchmark the columnar engine's stages on a generated login-heavy journal export (default 1M lines).

(a) Reading the export into columns: polars (streaming NDJSON reader) against DuckDB (`read_json`), each in
    its own process, seconds and peak RSS. DuckDB is measured only where it is installed (`pip install duckdb`:
    it is not one of logstack's dependencies).
(b) Classifying every line: the line-by-line classifier (Python `re`) against the classifier over columns
    (`logstack.columnar.facts`, Rust's regex through polars), in batches; lines/s, and for sshd's lines alone.
(c) A 14 KB hostile line against a benign line of the same length, read by the automaton: seconds per line.
(e) The store's rows (`--store`, needs mariadb-server): N rows read with pymysql as the store reader reads them
    (DictCursor) and as tuples, against the same rows as the Arrow IPC stream GreptimeDB v1.1.4 answers
    `/v1/sql?format=arrow` with (src/servers/src/http/result/arrow_result.rs: one StreamWriter over the whole
    result, optional `compression=zstd|lz4`), decoded by polars into columns and into Python tuples.
(d) A sketch, not the engine: lines grouped by (machine, boot, PID, program) with the gap rule alone, as sorted
    column operations, and each group's first and last time, lines and first message aggregated: what
    grouping in columns costs (no address rule, connection joins, incidents or event fields).
(f) The stages built so far, end to end on the export in batches, not yet the engine: each batch read by
    polars, facts in columns, the builder's groups carried across batches (`BatchGroups`), events as group
    aggregations (`event_columns`) joined and released as the builder does (`BatchConnections`), JSON lines
    brute-force incidents and `after_failures` (`BatchIncidents`), JSON lines (`event_json`); seconds per stage,
    lines/s, and how many events equal the line-by-line analysis' (`logstack analyze --journal`) byte for byte,
    and whether the whole output is the same. `--children`: logins with their session children (another PID),
    joined across processes (`BatchConnections`). `--attackers N`: the failed logins from N addresses (brute
    force: incidents).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COLUMNS = ["__REALTIME_TIMESTAMP", "__CURSOR", "_HOSTNAME", "_MACHINE_ID", "_BOOT_ID", "SYSLOG_IDENTIFIER"]
COLUMNS += ["_PID", "_COMM", "_EXE", "MESSAGE"]

READERS = {
    "polars": """
import polars as pl
frame = pl.scan_ndjson(PATH, schema={c: pl.String for c in COLUMNS}).select(
    pl.len(), pl.col("MESSAGE").str.extract(r"from (\\S+) port", 1).n_unique()
).collect(engine="streaming")
rows = frame.item(0, 0)
""",
    "duckdb": """
import duckdb
con = duckdb.connect()
con.execute("SET threads=2")
spec = ", ".join(f"'{c}': 'VARCHAR'" for c in COLUMNS)
rows = con.execute(
    f"SELECT count(*), count(DISTINCT regexp_extract(MESSAGE, 'from (\\\\S+) port', 1)) "
    f"FROM read_json('{PATH}', format='newline_delimited', columns={{{spec}}})"
).fetchall()[0][0]
""",
}


def read_in_process(engine: str, path: Path) -> str:
    """Seconds and peak RSS of one engine reading the export (with one regex over MESSAGE), in a fresh process."""
    code = (
        f"import time, resource\nPATH = {str(path)!r}\nCOLUMNS = {COLUMNS!r}\nstart = time.perf_counter()\n"
        + READERS[engine]
        + "\nprint(rows, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return f"{engine}: not measured ({last})"
    rows, seconds, rss = done.stdout.split()
    rate = int(rows) / float(seconds)
    return f"{engine}: {int(rows):,} lines in {float(seconds):.2f} s ({rate:,.0f} lines/s), peak RSS {rss} MiB"


def load_lines(path: Path) -> tuple[list[str], list[str]]:
    import orjson

    identifiers, messages = [], []
    with path.open("rb") as source:
        for raw in source:
            entry = orjson.loads(raw)
            identifiers.append(entry["SYSLOG_IDENTIFIER"])
            messages.append(entry["MESSAGE"])
    return identifiers, messages


def classify_rates(identifiers: list[str], messages: list[str], batch: int) -> None:
    from logstack.classify.classifier import classify
    from logstack.classify.programs import SSH_IDENTIFIERS
    from logstack.columnar.facts import fact_columns

    count = len(messages)
    start = time.perf_counter()
    for ident, message in zip(identifiers, messages, strict=True):
        classify(ident, message)
    reference = time.perf_counter() - start
    start = time.perf_counter()
    for at in range(0, count, batch):
        fact_columns(identifiers[at : at + batch], messages[at : at + batch])
    columns = time.perf_counter() - start
    print(f"(b) {count:,} lines: line by line {count / reference:,.0f} lines/s; columns {count / columns:,.0f} lines/s")
    pairs = zip(identifiers, messages, strict=True)
    ssh = [(i, m) for i, m in pairs if i in SSH_IDENTIFIERS and not m.startswith("pam_")]
    ids, msgs = [i for i, _ in ssh], [m for _, m in ssh]
    start = time.perf_counter()
    for ident, message in ssh:
        classify(ident, message)
    reference = time.perf_counter() - start
    start = time.perf_counter()
    for at in range(0, len(ssh), batch):
        fact_columns(ids[at : at + batch], msgs[at : at + batch])
    columns = time.perf_counter() - start
    print(
        f"    sshd's own {len(ssh):,} lines (what the automaton reads): line by line {len(ssh) / reference:,.0f} "
        f"lines/s; columns {len(ssh) / columns:,.0f} lines/s"
    )


def hostile_cost() -> None:
    from logstack.columnar.facts import fact_columns

    size = 14 * 1024

    def padded(head: str, tail: str, fill: str = "1") -> str:
        return head + fill * (size - len(head) - len(tail)) + tail

    lines = {
        "benign, no row reads it": ("Accepted password for alice from 203.0.113.9 port 22 ssh2" + " x" * size)[:size],
        "benign, a long version string": padded(
            "Bad protocol version identification '", "' from 203.0.113.9 port 22", "x"
        ),
        "benign, a long disconnect text": padded(
            "Received disconnect from 203.0.113.9 port 22:11: ", " [preauth]", "x"
        ),
        "hostile, repeated `x from 1 port 1`": ("Failed password for " + "x from 1 port 1 " * size)[:size],
        "hostile, repeated ` from `": ("Invalid user " + " from " * size)[:size],
        "hostile, repeated `a `": ("Connection closed by invalid user " + "a " * size)[:size],
        "hostile, a 14 KB address (11 rows share the words)": padded(
            "drop connection #7 from [", "]:50022 on [x]:7 past MaxStartups"
        ),
        "hostile, a 14 KB address before `, pid`": padded(
            "Timeout before authentication for connection from ", ", pid = 7 (early)"
        ),
        "hostile, a 14 KB user": padded("Starting session: shell for ", " from 203.0.113.9 port 50022 id 0"),
    }
    for name, line in lines.items():
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            fact_columns(["sshd-session"] * 1000, [line] * 1000, max_length=None)
            best = min(best, time.perf_counter() - start)
        print(f"(c) 14 KB line, {name}: {best / 1000 * 1e6:,.1f} µs per line")


def grouping_sketch(path: Path) -> None:
    import polars as pl

    start = time.perf_counter()
    lines = pl.read_ndjson(path, schema={c: pl.String for c in COLUMNS})
    read = time.perf_counter() - start
    gap = 180_000_000
    ssh = pl.col("SYSLOG_IDENTIFIER").is_in(["sshd", "sshd-session", "sshd-auth"])
    keys = ["_MACHINE_ID", "_BOOT_ID", "_PID", "family"]
    start = time.perf_counter()
    lines = lines.with_row_index("pos").with_columns(
        ts=pl.col("__REALTIME_TIMESTAMP").cast(pl.Int64),
        family=pl.when(ssh).then(pl.lit("ssh")).otherwise(pl.col("SYSLOG_IDENTIFIER")),
    )
    other_key = pl.any_horizontal([pl.col(k) != pl.col(k).shift(1) for k in keys]).fill_null(True)
    groups = (
        lines.sort([*keys, "pos"])
        .with_columns(brk=((pl.col("ts") - pl.col("ts").shift(1)).fill_null(gap + 1) > gap) | other_key)
        .with_columns(group=pl.col("brk").cum_sum())
        .group_by("group")
        .agg(pl.col("ts").min().alias("start"), pl.col("ts").max().alias("end"), "pos", pl.col("MESSAGE").first())
    )
    took = time.perf_counter() - start
    print(
        f"(d) sketch: {lines.height:,} lines read in {read:.2f} s (whole file in memory), grouped into "
        f"{groups.height:,} groups in {took:.2f} s ({lines.height / took:,.0f} lines/s)"
    )


def store_rates(path: Path, rows: int) -> None:
    import io
    import tempfile

    import polars as pl
    import pymysql

    from bench.analyze import load_mariadb
    from logstack.journal.record import READ_COLUMNS
    from tests.mariadb import start_mariadb

    with tempfile.TemporaryDirectory() as tmp:
        subset = Path(tmp) / "rows.json"
        with path.open("rb") as source, subset.open("wb") as out:
            for n, raw in enumerate(source):
                if n >= rows:
                    break
                out.write(raw)
        db = start_mariadb(Path(tmp) / "mariadb")
        try:
            load_mariadb(db, "bench", subset)
            conn = db.admin()
            with conn.cursor() as cur:
                cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = 'bench'")
                present = {name for (name,) in cur.fetchall()}
            columns = ", ".join(f"`{c}`" for c in READ_COLUMNS if c in present)
            sql = f"SELECT {columns} FROM bench.logs ORDER BY greptime_timestamp"
            for name, cursor in (("DictCursor", pymysql.cursors.DictCursor), ("tuples", pymysql.cursors.Cursor)):
                with conn.cursor(cursor) as cur:
                    start = time.perf_counter()
                    cur.execute(sql)
                    fetched = cur.fetchall()
                    took = time.perf_counter() - start
                print(f"(e) pymysql, {name}: {len(fetched):,} rows in {took:.2f} s ({len(fetched) / took:,.0f} rows/s)")
            names = [c.strip("`") for c in columns.split(", ")]
            frame = pl.DataFrame([list(row) for row in fetched], schema=names, orient="row", infer_schema_length=None)
        finally:
            db.stop()
    for compression in ("uncompressed", "zstd", "lz4"):
        buffer = io.BytesIO()
        frame.write_ipc_stream(buffer, compression=compression)
        payload = buffer.getvalue()
        start = time.perf_counter()
        decoded = pl.read_ipc_stream(io.BytesIO(payload))
        columns_took = time.perf_counter() - start
        tuples = list(decoded.iter_rows())
        took = time.perf_counter() - start
        print(
            f"(e) Arrow IPC, {compression} ({len(payload) / 2**20:,.0f} MiB): into columns {columns_took:.2f} s; "
            f"into {len(tuples):,} tuples {took:.2f} s ({len(tuples) / took:,.0f} rows/s)"
        )


_EXPORT_FIELDS = {
    "ts": "__REALTIME_TIMESTAMP",
    "host": "_HOSTNAME",
    "machine": "_MACHINE_ID",
    "boot": "_BOOT_ID",
    "pid": "_PID",
    "ident": "SYSLOG_IDENTIFIER",
    "message": "MESSAGE",
    "comm": "_COMM",
    "exe": "_EXE",
    "loginuid": "_AUDIT_LOGINUID",
}


def _batches(path: Path, lines: int):
    """The export in batches of about `lines` lines, each read by polars (memory holds one batch, not the file)."""
    import io

    import polars as pl

    schema = {field: pl.String for field in [*_EXPORT_FIELDS.values(), "__CURSOR"]}
    with path.open("rb") as source:
        while chunk := source.readlines(lines * 700):  # about 700 bytes a line in the generated export
            yield pl.read_ndjson(io.BytesIO(b"".join(chunk)), schema=schema)


def end_to_end(path: Path, batch: int) -> None:
    import polars as pl

    from logstack.analyze.connection_columns import BatchConnections
    from logstack.analyze.event_json import event_json
    from logstack.analyze.grouping import Settings
    from logstack.analyze.incident_columns import BatchIncidents
    from logstack.analyze.line_groups import BatchGroups, fed_lines
    from logstack.columnar.facts import fact_columns

    stages: dict[str, float] = {}

    def timed(name, work):
        start = time.perf_counter()
        result = work()
        stages[name] = stages.get(name, 0.0) + time.perf_counter() - start
        return result

    begin = time.perf_counter()
    grouper = BatchGroups(Settings().gap)
    joiner = BatchConnections(Settings().gap)
    refused, count = False, 0
    output = Path(f"/tmp/logstack-bench-columns-{path.stem}.jsonl").open("wb")  # noqa: SIM115 - closed below

    incidents = BatchIncidents(Settings())

    def write(events: pl.DataFrame, lines: pl.DataFrame) -> None:
        if not events.is_empty():
            output.write(timed("json", lambda: event_json(events, lines, by="idx")))

    reader = _batches(path, batch)
    while (raw := timed("read", lambda: next(reader, None))) is not None:
        part = _lines(raw)
        count += len(part)
        facts = timed("facts", lambda: fact_columns(part["ident"], part["message"]))  # noqa: B023
        part = pl.concat([part, facts], how="horizontal")
        closed = timed("groups", lambda: grouper.feed(part, joiner.held_keys()))  # noqa: B023
        fed = fed_lines(part)
        released = None if closed is None else timed("events", lambda: joiner.feed(*closed, fed["arrival"]))  # noqa: B023
        if released is None:  # the columns cannot answer from here on: the rest would be the builder's
            refused = True
            break
        write(*timed("incidents", lambda: incidents.feed(fed, *released)))  # noqa: B023
    if not refused and (rest := timed("events", lambda: joiner.finish(grouper.finish()))) is not None:
        write(*timed("incidents", lambda: incidents.finish(*rest)))
    output.close()
    seconds = time.perf_counter() - begin
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    figures = ", ".join(f"{name} {took:.2f} s" for name, took in stages.items())
    print(f"(f) {count:,} lines in {seconds:.2f} s = {count / seconds:,.0f} lines/s ({figures}), peak RSS {peak} MiB")
    _compare(path, Path(output.name), refused)


def _lines(raw: pl.DataFrame) -> pl.DataFrame:
    """An export's rows as the stages read lines: as `from_journal` reads them (a missing text is "")."""
    import polars as pl

    return raw.select(
        *(pl.col(field).alias(name) for name, field in _EXPORT_FIELDS.items()),
        key=pl.concat_str(pl.col("_MACHINE_ID"), pl.lit("|"), pl.col("__CURSOR")),
        auth=pl.lit(None, pl.String),
    ).with_columns(
        pl.col("host", "machine", "boot", "pid", "ident", "message").fill_null(""),
        ts=pl.col("ts").cast(pl.Int64),
        arrival=pl.col("ts").cast(pl.Int64),
    )


def _compare(path: Path, written: Path, refused: bool) -> None:
    """How many events the columns wrote byte for byte as `logstack analyze --journal` writes them, and whether
    the whole output is the same (order included)."""
    ours_raw = written.read_bytes()
    ours = {json.loads(line)["id"]: line for line in ours_raw.splitlines()}
    reference_raw = subprocess.run(
        [sys.executable, "-m", "logstack", "analyze", "--journal", str(path), "--format", "jsonl"],
        capture_output=True,
        check=True,
        cwd=ROOT,
    ).stdout
    reference = reference_raw.splitlines()
    same = sum(1 for line in reference if ours.get(json.loads(line)["id"]) == line)
    whole = "the whole output the same, order included" if ours_raw == reference_raw else "not in the same order"
    print(
        f"    {same:,} of the line-by-line analysis' {len(reference):,} events byte for byte, {whole}"
        + (", refused at a batch: the rest is not the columns'" if refused else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--export", type=Path, help="an existing export (default: generate one in /tmp)")
    parser.add_argument("--children", action="store_true", help="generate logins with their session children")
    parser.add_argument("--attackers", type=int, default=0, help="generate failed logins from this many addresses")
    parser.add_argument("--store", type=int, default=0, metavar="N", help="also (e) with N rows in MariaDB")
    args = parser.parse_args()
    path = args.export
    if path is None:
        from bench.analyze import generate_json

        kind = ("-children" if args.children else "") + (f"-attackers{args.attackers}" if args.attackers else "")
        path = Path(f"/tmp/logstack-bench-{args.rows}{kind}.json")
        if not path.exists():
            generate_json(path, args.rows, children=args.children, attackers=args.attackers)
    print(f"export: {path} ({path.stat().st_size / 2**20:,.0f} MiB)")
    for engine in READERS:
        print("(a)", read_in_process(engine, path))
    identifiers, messages = load_lines(path)
    classify_rates(identifiers, messages, args.batch)
    hostile_cost()
    grouping_sketch(path)
    end_to_end(path, args.batch)
    if args.store:
        store_rates(path, args.store)
    print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))


if __name__ == "__main__":
    main()
