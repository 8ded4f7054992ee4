"""The classifier over columns: a batch of lines in, one column per fact attribute out, equal line for line to
what `classify()` gives (tests/test_fact_columns.py checks both on generated lines and on the test suite's).

Read in columns (logstack.columnar.table, .pam, .programs): sshd's own lines, the PAM lines of every program
that logs through PAM, systemd-logind's, journald's notices, su's, runuser's, sudo's and login's, in ASCII,
without a Solaris message id, no longer than the rules read. sshd's `[preauth]` suffix and `error:`/`fatal:`
prefix come off as `_ssh` takes them off. Every other line (shadow-utils, polkit, doas, run0) is read by the
line-by-line classifier, its fact put into the same columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from logstack.classify.classifier import MAX_RULE_INPUT, classify
from logstack.classify.fact import Fact
from logstack.classify.programs import PROGRAMS, SSH_IDENTIFIERS
from logstack.columnar.pam import pam_columns
from logstack.columnar.programs import PAM_READ, PARSERS, program_columns
from logstack.columnar.table import FACT_FIELDS, complete, fact_schema, row_facts, table_matches

if TYPE_CHECKING:
    import polars as pl

# Below this many lines a batch is read line by line: each call compiles its patterns (a few milliseconds).
MIN_BATCH = 256
_PAM_IDENTIFIERS = frozenset(ident for p in PROGRAMS if p.pam for ident in p.identifiers)


def fact_columns(
    identifiers: Sequence[str] | pl.Series,
    messages: Sequence[str] | pl.Series,
    max_length: int | None = MAX_RULE_INPUT,
    min_batch: int = MIN_BATCH,
) -> pl.DataFrame:
    """A frame with one row per line, in order: the columns of its fact (FACT_FIELDS). Lines up to
    `max_length` characters are read in columns (None: whatever their length); longer ones as `classify`
    reads them (unread, flagged truncated). A batch of fewer than `min_batch` lines is read line by line.
    Text is as journal readers give it: Unicode without lone surrogates (bytes that are not UTF-8 arrive
    escaped), which columns cannot hold."""
    import polars as pl

    if len(messages) < min_batch:
        return _by_lines(range(len(messages)), identifiers, messages).drop("i")
    frame = pl.DataFrame(
        {"ident": identifiers, "message": messages}, schema={"ident": pl.String, "message": pl.String}
    ).with_row_index("i")
    message = pl.col("message")
    length = pl.lit(True) if max_length is None else message.str.len_bytes() <= max_length
    readable = frame.filter(length & ~message.str.contains(r"[^\x00-\x7f]") & ~message.str.starts_with("[ID "))
    pam_line = message.str.starts_with("pam_") | message.str.starts_with("PAM ")  # read by PAM's patterns first
    pam = readable.filter(pl.col("ident").is_in(list(_PAM_IDENTIFIERS)) & message.str.starts_with("pam_"))
    ssh = readable.filter(pl.col("ident").is_in(list(SSH_IDENTIFIERS)) & ~pam_line)
    done = [pam_columns(pam), _ssh_columns(ssh)]
    for identifier in PARSERS:
        own = readable.filter(pl.col("ident") == identifier)
        if identifier in PAM_READ:
            own = own.filter(~pam_line)
        if not own.is_empty():
            done.append(program_columns(own, identifier))
    done = [part for part in done if not part.is_empty()]
    read = pl.concat(done) if done else None
    rest = frame if read is None else frame.join(read.select("i"), on="i", how="anti")
    parts = [_by_lines(rest["i"], rest["ident"], rest["message"])] + ([read] if read is not None else [])
    return pl.concat(parts).sort("i").drop("i")


def facts_of(columns: pl.DataFrame) -> list[Fact]:
    """The fact of each row of `fact_columns`, as objects."""
    return [Fact(**row) for row in columns.iter_rows(named=True)]


def _by_lines(index: Sequence[int], identifiers: Sequence[str], messages: Sequence[str]) -> pl.DataFrame:
    """The line-by-line classifier's facts, as columns (with the row index `i`)."""
    import polars as pl

    facts = [classify(ident, message) for ident, message in zip(identifiers, messages, strict=True)]
    return pl.DataFrame(
        {"i": index, **{name: [getattr(f, name) for f in facts] for name in FACT_FIELDS}},
        schema={"i": pl.UInt32, **fact_schema()},
    )


def _ssh_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """sshd's own lines: the table's rows read them, or they are ssh_other."""
    import polars as pl

    message = pl.col("message")
    lines = frame.select(
        "i",
        preauth=message.str.ends_with(" [preauth]"),
        text=message.str.strip_suffix(" [preauth]").str.replace(r"^(?:error|fatal|Critical): ", ""),
    )
    read, unread = table_matches(lines, "sshd")
    parts = [complete(unread.select("i", kind=pl.lit("ssh_other"), reason=pl.col("text")))]
    if read is not None:
        parts.append(row_facts(read, ssh=True))
    return pl.concat(parts)
