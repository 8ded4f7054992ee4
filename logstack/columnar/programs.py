"""The programs' own parsers over columns, for those whose parser is a few patterns: systemd-logind, journald's
suppression notices, su and runuser. Each reads its lines as its module in `logstack.classify.programs` does;
what it leaves unread is read by the identifier's rows of the message table, as `classify()` does.

The patterns are `rules`' own, written for Rust's `regex`: Python's `$` is `\\n?\\z`, `\\S` takes no \\x1c-\\x1f.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from logstack.classify.rules import UNREAD_KINDS
from logstack.columnar.linear import NON_SPACE, SPACE
from logstack.columnar.table import complete, row_facts, table_matches

if TYPE_CHECKING:
    import polars as pl

_S = NON_SPACE
LOGIND_NEW = rf"^New session {_S}+ of user (?P<user>.+?)\.\n?\z"
LOGIND_END = rf"^(?:Removed session|Session) {_S}+?(?: logged out)?\."
SUPPRESSED = rf"^Suppressed \d+ messages from {_S}+"
_TARGET = rf"(?P<target>[^{SPACE})]+)"
SU_OK = rf"^(?:\+ )?\(to {_TARGET}\) (?P<user>{_S}+) on (?P<tty>{_S}+)\n?\z"
SU_FAIL = rf"^(?:FAILED SU|- ) ?\(to {_TARGET}\) (?P<user>{_S}+) on (?P<tty>{_S}+)\n?\z"
SU_LEGACY = rf"^FAILED su for (?P<target>{_S}+) by (?P<user>.+)\n?\z"


def _logind(lines: pl.DataFrame) -> pl.DataFrame:
    import polars as pl

    message = pl.col("message")
    new = message.str.extract(LOGIND_NEW, 1)
    ended = message.str.contains(LOGIND_END)
    return lines.with_columns(new=new).select(
        "i",
        kind=pl.when(pl.col("new").is_not_null() | ended).then(pl.lit("logind")).otherwise(pl.lit("logind_other")),
        target_user=pl.col("new"),
        reason=pl.when(pl.col("new").is_not_null())
        .then(pl.lit("session started"))
        .when(ended)
        .then(pl.lit("session ended"))
        .otherwise(message),
        own_event=pl.lit(True),
    )


def _journald(lines: pl.DataFrame) -> pl.DataFrame:
    import polars as pl

    message = pl.col("message")
    return lines.select(
        "i",
        kind=pl.when(message.str.contains(SUPPRESSED)).then(pl.lit("log_gap")).otherwise(pl.lit("journald_other")),
        reason=message,
        own_event=pl.lit(True),
    )


def _su(lines: pl.DataFrame) -> pl.DataFrame:
    import polars as pl

    message = pl.col("message")
    frame = lines.with_columns(
        fail=message.str.extract_groups(SU_FAIL),
        legacy=message.str.extract_groups(SU_LEGACY),
        ok=message.str.extract_groups(SU_OK),
    )
    failed = pl.col("fail").struct.field("user").is_not_null()
    legacy = ~failed & pl.col("legacy").struct.field("user").is_not_null()
    done = ~failed & ~legacy & pl.col("ok").struct.field("user").is_not_null()
    refused = ~failed & ~legacy & ~done & message.str.starts_with("pam_authenticate: ")

    def field(name: str) -> pl.Expr:
        return (
            pl.when(failed)
            .then(pl.col("fail").struct.field(name))
            .when(legacy)
            .then(pl.col("legacy").struct.field(name) if name != "tty" else pl.lit(None, pl.String))
            .when(done)
            .then(pl.col("ok").struct.field(name))
        )

    return frame.select(
        "i",
        kind=pl.when(failed | legacy | refused)
        .then(pl.lit("su_fail"))
        .when(done)
        .then(pl.lit("su_ok"))
        .otherwise(pl.lit("su_other")),
        user=field("user"),
        target_user=field("target"),
        tty=field("tty"),
        reason=pl.when(refused)
        .then(message.str.strip_prefix("pam_authenticate: "))
        .when(~failed & ~legacy & ~done)
        .then(message),
    )


# identifier → its parser over columns (its lines: `i`, `message`; a frame of some fact columns out)
PARSERS: dict[str, Callable[[pl.DataFrame], pl.DataFrame]] = {
    "systemd-logind": _logind,
    "systemd-journald": _journald,
    "su": _su,
    "runuser": _su,
}
# their PAM lines are PAM's (read first, as `read_pam` does): not theirs to read
PAM_READ = frozenset({"su", "runuser"})


def program_columns(frame: pl.DataFrame, identifier: str) -> pl.DataFrame:
    """Facts of one identifier's lines (`i`, `message`): its parser's, or its table rows' where it reads none."""
    import polars as pl

    facts = complete(PARSERS[identifier](frame))
    unread = facts.filter(pl.col("kind").is_in(list(UNREAD_KINDS)))
    if unread.is_empty():
        return facts
    lines = frame.join(unread.select("i"), on="i").select("i", text="message", preauth=pl.lit(False))
    read, _ = table_matches(lines, identifier)
    if read is None:
        return facts
    found = row_facts(read.filter(~pl.col("row_kind").is_in(list(UNREAD_KINDS))), ssh=False)
    return pl.concat([facts.join(found.select("i"), on="i", how="anti"), found])
