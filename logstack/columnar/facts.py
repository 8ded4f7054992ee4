"""The classifier over columns: a batch of lines in, one column per fact attribute out, equal line for line to
what `classify()` gives (tests/test_fact_columns.py checks both on generated lines and on the test suite's).

sshd's lines are read by the message table's rows as vectorized patterns that polars runs in Rust's
linear-time `regex` crate (logstack.columnar.linear), and the row's fact is made by column expressions,
as `table_fact` makes it. What the vectorized reader takes: a line of sshd's in ASCII, not PAM's, without a
Solaris message id, no longer than the rules read. Its `[preauth]` suffix and `error:`/`fatal:` prefix come
off as `_ssh` takes them off; its bucket is looked up by first words as `match_buckets` does. Every other
line is read by the line-by-line classifier, its fact put into the same columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from logstack.classify import rules
from logstack.classify.classifier import MAX_RULE_INPUT, classify
from logstack.classify.fact import OWN_EVENT_KINDS, WHOLE_TEXT_KINDS, Fact
from logstack.classify.programs import SSH_IDENTIFIERS
from logstack.classify.programs.openssh import ADDRESS_COLON, AUTH_FROM
from logstack.columnar.linear import LinearBucket, linear_bucket, rust_pattern

if TYPE_CHECKING:
    import polars as pl

FACT_FIELDS = tuple(f.name for f in fields(Fact))
# Below this many lines a batch is read line by line: each call compiles its patterns (a few milliseconds).
MIN_BATCH = 256
_FLAGS = frozenset({"invalid_user", "own_event", "truncated", "ambiguous"})


def _schema() -> dict[str, Any]:
    import polars as pl

    return {
        name: pl.Boolean if name in _FLAGS else pl.Int64 if name == "source_port" else pl.String for name in FACT_FIELDS
    }


@dataclass(frozen=True)
class _SshTable:
    """sshd's buckets for the automaton, and every row's attributes as a frame keyed by a row number."""

    buckets: dict[str, tuple[int, LinearBucket]]  # key → (number of its first row, bucket)
    rows: pl.DataFrame


@lru_cache(maxsize=1)
def _ssh_table() -> _SshTable:
    import polars as pl

    buckets: dict[str, tuple[int, LinearBucket]] = {}
    rows: list[dict[str, object]] = []
    for key, bucket in rules.TABLE_RULES["sshd"].items():
        linear, first = linear_bucket(bucket), len(rows)
        buckets[key] = (first, linear)
        rows.extend(
            {
                "row": first + k,
                "row_kind": m.kind,
                "row_kind_preauth": m.kind_preauth,
                "row_reason": m.reason,
                "row_method": m.method,
                "row_invalid_user": m.invalid_user,
                "short_auth_log": m.short_auth_log,
                "one_address": m.one_address,
                "rhosts": m.method == "rhosts-rsa",
            }
            for k, m in enumerate(linear.rows)
        )
    frame = pl.DataFrame(rows, schema_overrides={"row": pl.UInt32}, infer_schema_length=None)
    return _SshTable(buckets, frame)


def fact_columns(
    identifiers: Sequence[str],
    messages: Sequence[str],
    max_length: int | None = MAX_RULE_INPUT,
    min_batch: int = MIN_BATCH,
) -> pl.DataFrame:
    """A frame with one row per line, in order: the columns of its fact (FACT_FIELDS). sshd's lines up to
    `max_length` characters are read by the automaton (None: whatever their length); longer ones as
    `classify` reads them (unread, flagged truncated). A batch of fewer than `min_batch` lines is read
    line by line. Text is as journal readers give it: Unicode without lone surrogates (bytes that are not
    UTF-8 arrive escaped), which columns cannot hold."""
    import polars as pl

    if len(messages) < min_batch:
        return _by_lines(range(len(messages)), identifiers, messages).drop("i")
    frame = pl.DataFrame(
        {"ident": identifiers, "message": messages}, schema={"ident": pl.String, "message": pl.String}
    ).with_row_index("i")
    ssh = _ssh_columns(_ssh_lines(frame, max_length))
    rest = frame.join(ssh.select("i"), on="i", how="anti")
    return pl.concat([ssh, _by_lines(rest["i"], rest["ident"], rest["message"])]).sort("i").drop("i")


def _by_lines(index: Sequence[int], identifiers: Sequence[str], messages: Sequence[str]) -> pl.DataFrame:
    """The line-by-line classifier's facts, as columns (with the row index `i`)."""
    import polars as pl

    facts = [classify(ident, message) for ident, message in zip(identifiers, messages, strict=True)]
    return pl.DataFrame(
        {"i": index, **{name: [getattr(f, name) for f in facts] for name in FACT_FIELDS}},
        schema={"i": pl.UInt32, **_schema()},
    )


def facts_of(columns: pl.DataFrame) -> list[Fact]:
    """The fact of each row of `fact_columns`, as objects."""
    return [Fact(**row) for row in columns.iter_rows(named=True)]


def _ssh_lines(frame: pl.DataFrame, max_length: int | None) -> pl.DataFrame:
    import polars as pl

    message = pl.col("message")
    length = pl.lit(True) if max_length is None else message.str.len_bytes() <= max_length
    return frame.filter(
        pl.col("ident").is_in(list(SSH_IDENTIFIERS))
        & length
        & ~message.str.contains(r"[^\x00-\x7f]")
        & ~message.str.starts_with("pam_")
        & ~message.str.starts_with("PAM ")
        & ~message.str.starts_with("[ID ")
    ).select(
        "i",
        preauth=message.str.ends_with(" [preauth]"),
        text=message.str.strip_suffix(" [preauth]").str.replace(r"^(?:error|fatal|Critical): ", ""),
    )


def _ssh_columns(lines: pl.DataFrame) -> pl.DataFrame:
    import polars as pl

    table = _ssh_table()
    text = pl.col("text")
    frame = lines.with_columns(
        key2=pl.coalesce(text.str.extract(r"^([^ ]* [^ ]*)", 1), text),
        key1=text.str.extract(r"^([^ ]*)", 1),
        digit=text.str.contains(r"^[0-9]"),
    )
    matched: list[pl.DataFrame] = []
    # a line's bucket by its first two words, its first, then (beginning with a digit) a number's, then a value's
    for key in (pl.col("key2"), pl.col("key1"), pl.when("digit").then(pl.lit("0")), pl.lit("")):
        candidates = frame.with_columns(key=key).filter(pl.col("key").is_in(list(table.buckets)))
        found = [
            _match(part, *table.buckets[str(name)])
            for (name,), part in candidates.partition_by("key", as_dict=True).items()
        ]
        found = [part for part in found if not part.is_empty()]
        if found:
            stage = pl.concat(found)
            matched.append(stage)
            frame = frame.join(stage.select("i"), on="i", how="anti")
        if frame.is_empty():
            break
    unread = frame.select("i", kind=pl.lit("ssh_other"), reason=text)
    read = _row_facts(pl.concat(matched).join(table.rows, on="row")) if matched else None
    parts = [_complete(unread)] + ([read] if read is not None else [])
    return pl.concat(parts)


def _match(part: pl.DataFrame, first: int, bucket: LinearBucket) -> pl.DataFrame:
    """The lines of one bucket its pattern matches: which row (numbered from `first`), and the row's values.

    The row is the first alternative that matches (leftmost-first, as the alternation), found without
    captures, each row tried only on the lines no earlier row took; its values are then read by its own
    pattern from its own lines. Captures across the whole alternation cost time that grows with the rows a
    long line keeps possible (a 2 KB line matching one of 11 rows that share its first words: 1.6 ms)."""
    import polars as pl

    text = pl.col("text")
    found = []
    for row, alone in enumerate(bucket.alternatives):
        tested = part.with_columns(hit=text.str.contains(alone))
        lines, part = tested.filter("hit"), tested.filter(~pl.col("hit")).drop("hit")
        if not lines.is_empty():
            groups = lines.select("i", "text", "preauth", found=text.str.extract_groups(alone))
            values = (
                (pl.col(name) if name else pl.lit(None, pl.String)).alias(f"s{j}")
                for j, name in enumerate(bucket.slots[row])
            )
            found.append(
                groups.unnest("found").select(
                    "i", "text", "preauth", pl.lit(first + row, pl.UInt32).alias("row"), *values
                )
            )
        if part.is_empty():
            break
    return pl.concat(found) if found else part.clear()


@lru_cache(maxsize=1)
def _ssh_checks() -> tuple[str, str]:
    return rust_pattern(ADDRESS_COLON.pattern), rust_pattern(AUTH_FROM.pattern)


def _filled(column: str) -> pl.Expr:
    """Python's truth of an optional text: present and not empty."""
    import polars as pl

    return pl.col(column).is_not_null() & (pl.col(column) != "")


def _row_facts(found: pl.DataFrame) -> pl.DataFrame:
    """`row_fact` over columns: a row's values, its kind, reason and method, as `table_fact` makes them."""
    import polars as pl

    address_colon, auth_from = _ssh_checks()
    text = pl.col("text")
    # the line may be a longer shape whose client-chosen tail ends like this one: no value is read
    ambiguous = (
        (pl.col("short_auth_log") & text.str.contains(" ssh2: ", literal=True))
        | (pl.col("one_address") & (text.str.count_matches(address_colon) != 1))
        | (pl.col("rhosts") & (text.str.count_matches(auth_from) != 1))
    )
    slots = [f"s{j}" for j in range(len(rules.FACT_SLOTS))]
    found = found.with_columns(ambiguous=ambiguous).with_columns(
        [pl.when(pl.col("ambiguous")).then(pl.lit(None, pl.String)).otherwise(pl.col(s)).alias(s) for s in slots]
    )
    kind = (
        pl.when(pl.col("preauth") & _filled("row_kind_preauth"))
        .then(pl.col("row_kind_preauth"))
        .otherwise(pl.col("row_kind"))
    )
    found = found.with_columns(kind=kind)
    reason = pl.when(_filled("row_reason")).then(pl.col("row_reason")).otherwise(pl.col("s7"))
    found = found.with_columns(reason=reason).with_columns(
        reason=pl.when(pl.col("kind") == "ssh_abandon")
        .then(
            pl.concat_str(
                pl.lit("disconnected before authenticating"),
                pl.when(_filled("reason")).then(pl.lit(": ") + pl.col("reason")).otherwise(pl.lit("")),
            )
        )
        .otherwise(pl.col("reason"))
    )
    port = pl.col("s3")
    number = port.cast(pl.Int64, strict=False)
    whole = pl.col("kind").is_in(list(WHOLE_TEXT_KINDS))
    return _complete(
        found.select(
            "i",
            "kind",
            "ambiguous",
            user=pl.col("s0"),
            target_user=pl.col("s1"),
            source_ip=pl.col("s2"),
            source_port=pl.when(_filled("s3") & (port.str.len_bytes() <= 5) & (number <= 65535)).then(number),
            method=pl.when(_filled("s4")).then(pl.col("s4")).otherwise(pl.col("row_method")),
            tty=pl.col("s5"),
            command=pl.col("s6"),
            reason=pl.when(_filled("reason")).then(pl.col("reason")).otherwise(pl.when(whole).then(text)),
            invalid_user=pl.col("row_invalid_user") | (pl.col("kind") == "ssh_invalid"),
            own_event=pl.col("kind").is_in(list(OWN_EVENT_KINDS)),
        )
    )


def _complete(frame: pl.DataFrame) -> pl.DataFrame:
    """Every fact column, in order, absent ones as Fact's defaults."""
    import polars as pl

    schema = _schema()
    defaults = {name: pl.lit(False) if name in _FLAGS else pl.lit(None, dtype) for name, dtype in schema.items()}
    missing = [defaults[name].cast(schema[name]).alias(name) for name in FACT_FIELDS if name not in frame.columns]
    return frame.with_columns(missing).select(
        pl.col("i").cast(pl.UInt32), *(pl.col(name).cast(schema[name]) for name in FACT_FIELDS)
    )
