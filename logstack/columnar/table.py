"""The message table over columns: a batch of lines matched against a program's rows as vectorized patterns
(Rust's linear-time `regex`, through polars), and the fact each matched row states, made by column
expressions as `table_fact` (and, for sshd, `row_fact`) makes it."""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from logstack.classify import rules
from logstack.classify.fact import OWN_EVENT_KINDS, WHOLE_TEXT_KINDS, Fact
from logstack.classify.programs.openssh import ADDRESS_COLON, AUTH_FROM
from logstack.columnar.linear import LinearBucket, linear_bucket, rust_pattern

if TYPE_CHECKING:
    import polars as pl

FACT_FIELDS = tuple(f.name for f in fields(Fact))
_FLAGS = frozenset({"invalid_user", "own_event", "truncated", "ambiguous"})


def fact_schema() -> dict[str, Any]:
    """The polars type of each fact column."""
    import polars as pl

    return {
        name: pl.Boolean if name in _FLAGS else pl.Int64 if name == "source_port" else pl.String for name in FACT_FIELDS
    }


@dataclass(frozen=True)
class _Table:
    """A program's buckets for the automaton, and every row's attributes as a frame keyed by a row number."""

    buckets: dict[str, tuple[int, LinearBucket]]  # key → (number of its first row, bucket)
    rows: pl.DataFrame


@lru_cache(maxsize=64)
def _table(program: str) -> _Table:
    import polars as pl

    buckets: dict[str, tuple[int, LinearBucket]] = {}
    rows: list[dict[str, object]] = []
    for key, bucket in rules.TABLE_RULES[program].items():
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
    schema = {"row": pl.UInt32, "row_kind": pl.String, "row_kind_preauth": pl.String, "row_reason": pl.String}
    schema |= {"row_method": pl.String, "row_invalid_user": pl.Boolean, "short_auth_log": pl.Boolean}
    schema |= {"one_address": pl.Boolean, "rhosts": pl.Boolean}
    return _Table(buckets, pl.DataFrame(rows, schema=schema))


def table_matches(lines: pl.DataFrame, program: str) -> tuple[pl.DataFrame | None, pl.DataFrame]:
    """Lines (`i`, `text`, `preauth`) matched against the program's rows as `match_buckets` does: those a row
    reads (with the row's attributes and values s0..s7 in FACT_SLOTS order), and those none reads."""
    import polars as pl

    table = _table(program)
    if not table.buckets:
        return None, lines
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
    read = pl.concat(matched).join(table.rows, on="row") if matched else None
    return read, frame.drop("key2", "key1", "digit")


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


def filled(column: str) -> pl.Expr:
    """Python's truth of an optional text: present and not empty."""
    import polars as pl

    return pl.col(column).is_not_null() & (pl.col(column) != "")


def row_facts(found: pl.DataFrame, ssh: bool) -> pl.DataFrame:
    """The facts of matched rows, as `table_fact` makes them; for sshd (`ssh`), as `row_fact` makes them: a
    line that may be a longer shape whose client-chosen tail ends like this one reads no value."""
    import polars as pl

    address_colon, auth_from = _ssh_checks()
    text = pl.col("text")
    ambiguous = (
        (
            (pl.col("short_auth_log") & text.str.contains(" ssh2: ", literal=True))
            | (pl.col("one_address") & (text.str.count_matches(address_colon) != 1))
            | (pl.col("rhosts") & (text.str.count_matches(auth_from) != 1))
        )
        if ssh
        else pl.lit(False)
    )
    slots = [f"s{j}" for j in range(len(rules.FACT_SLOTS))]
    found = found.with_columns(ambiguous=ambiguous).with_columns(
        [pl.when(pl.col("ambiguous")).then(pl.lit(None, pl.String)).otherwise(pl.col(s)).alias(s) for s in slots]
    )
    kind = (
        pl.when(pl.col("preauth") & filled("row_kind_preauth"))
        .then(pl.col("row_kind_preauth"))
        .otherwise(pl.col("row_kind"))
    )
    found = found.with_columns(kind=kind)
    reason = pl.when(filled("row_reason")).then(pl.col("row_reason")).otherwise(pl.col("s7"))
    found = found.with_columns(reason=reason).with_columns(
        reason=pl.when(pl.col("kind") == "ssh_abandon")
        .then(
            pl.concat_str(
                pl.lit("disconnected before authenticating"),
                pl.when(filled("reason")).then(pl.lit(": ") + pl.col("reason")).otherwise(pl.lit("")),
            )
        )
        .otherwise(pl.col("reason"))
    )
    port = pl.col("s3")
    number = port.cast(pl.Int64, strict=False)
    whole = pl.col("kind").is_in(list(WHOLE_TEXT_KINDS))
    return complete(
        found.select(
            "i",
            "kind",
            "ambiguous",
            user=pl.col("s0"),
            target_user=pl.col("s1"),
            source_ip=pl.col("s2"),
            source_port=pl.when(filled("s3") & (port.str.len_bytes() <= 5) & (number <= 65535)).then(number),
            method=pl.when(filled("s4")).then(pl.col("s4")).otherwise(pl.col("row_method")),
            tty=pl.col("s5"),
            command=pl.col("s6"),
            reason=pl.when(filled("reason")).then(pl.col("reason")).otherwise(pl.when(whole).then(text)),
            invalid_user=pl.col("row_invalid_user") | (pl.col("kind") == "ssh_invalid"),
            own_event=pl.col("kind").is_in(list(OWN_EVENT_KINDS)),
        )
    )


def complete(frame: pl.DataFrame) -> pl.DataFrame:
    """Every fact column, in order, absent ones as Fact's defaults."""
    import polars as pl

    schema = fact_schema()
    defaults = {name: pl.lit(False) if name in _FLAGS else pl.lit(None, dtype) for name, dtype in schema.items()}
    missing = [defaults[name].cast(schema[name]).alias(name) for name in FACT_FIELDS if name not in frame.columns]
    return frame.with_columns(missing).select(
        pl.col("i").cast(pl.UInt32), *(pl.col(name).cast(schema[name]) for name in FACT_FIELDS)
    )
