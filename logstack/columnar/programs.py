"""The programs' own parsers over columns, for those whose parser is a few patterns or splits: systemd-logind,
journald's suppression notices, su and runuser, sudo, login. Each reads its lines as its module in
`logstack.classify.programs` does; what it leaves unread is read by the identifier's rows of the message table,
as `classify()` does.

The patterns are `rules`' own, written for Rust's `regex`: Python's `$` is `\\n?\\z`, `\\S` takes no \\x1c-\\x1f.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from logstack.classify.rules import SUDO_FAILURES, UNREAD_KINDS
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
_TTY = rf"'?(?P<tty>[^{SPACE}']+)'?"
_FROM = rf"'?(?P<ip>[^{SPACE}']+)'?"
LOGIN_ROOT = rf"(?i)^ROOT LOGIN[{SPACE}]+ON {_TTY}(?: FROM {_FROM})?"
LOGIN_OK = rf"(?i)^LOGIN ON {_TTY} BY '?(?P<user>.+?)'?(?: FROM {_FROM})?\n?\z"
LOGIN_FAIL = rf"(?i)^FAILED LOGIN \(?\d+\)? (?:ON|FROM) {_TTY} (?:FROM {_FROM} )?FOR '?(?P<user>.+?)'?,"


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


def _first_of(lines: pl.DataFrame, patterns: dict[str, str], field: str) -> tuple[pl.DataFrame, list[pl.Expr]]:
    """Each pattern's groups read from the message (a struct column named as the pattern), and for each whether
    it is the first, in order, that reads the line (its `field` group is there), as a parser's if-chain picks."""
    import polars as pl

    message = pl.col("message")
    frame = lines.with_columns(**{name: message.str.extract_groups(pattern) for name, pattern in patterns.items()})
    first, before = [], pl.lit(False)
    for name in patterns:
        hit = pl.col(name).struct.field(field).is_not_null()
        first.append(~before & hit)
        before = before | hit
    return frame, first


def _su(lines: pl.DataFrame) -> pl.DataFrame:
    import polars as pl

    message = pl.col("message")
    frame, (failed, legacy, done) = _first_of(lines, {"fail": SU_FAIL, "legacy": SU_LEGACY, "ok": SU_OK}, "user")
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


def _login(lines: pl.DataFrame) -> pl.DataFrame:
    import polars as pl

    message = pl.col("message")
    patterns = {"root": LOGIN_ROOT, "ok": LOGIN_OK, "fail": LOGIN_FAIL}
    frame, (root, ok, fail) = _first_of(lines, patterns, "tty")

    def field(name: str) -> pl.Expr:
        taken = pl.when(ok).then(pl.col("ok").struct.field(name)).when(fail).then(pl.col("fail").struct.field(name))
        return (
            pl.when(root).then(pl.col("root").struct.field(name) if name != "user" else pl.lit("root")).otherwise(taken)
        )

    return frame.select(
        "i",
        kind=pl.when(root | ok)
        .then(pl.lit("console_ok"))
        .when(fail)
        .then(pl.lit("console_fail"))
        .otherwise(pl.lit("login_other")),
        target_user=field("user"),
        tty=field("tty"),
        source_ip=field("ip"),
        reason=pl.when(~root & ~ok & ~fail).then(message),
    )


_CONTINUED = "(command continued)"
_STRIP = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"  # what Python's str.strip() takes off ASCII text


def _sudo(lines: pl.DataFrame) -> pl.DataFrame:
    """`_sudo` over columns: `USER : KEY=value ; …` split at its first ` : ` and at each ` ; `, the parts read
    until the first COMMAND= (whose value runs to the end: a command may hold ` ; `)."""
    import polars as pl

    message = pl.col("message")
    split = message.str.splitn(" : ", 2)
    frame = lines.with_columns(user=split.struct.field("field_0"), rest=split.struct.field("field_1"))
    rest = pl.col("rest")
    continued = message.str.starts_with(_CONTINUED) | rest.str.starts_with(_CONTINUED).fill_null(False)
    other = rest.is_null() | (~rest.str.contains("TTY=", literal=True) & ~rest.str.contains("COMMAND=", literal=True))
    frame = frame.with_columns(continued=continued, other=~continued & other)
    fields = _sudo_fields(frame.filter(~pl.col("continued") & ~pl.col("other")))
    frame = frame.join(fields, on="i", how="left")
    reason = pl.col("reason")
    failure = pl.when(reason.is_not_null() & (reason != "")).then(
        pl.coalesce(
            *(
                pl.when(reason.str.contains(needle, literal=True)).then(pl.lit(label))
                for needle, label in SUDO_FAILURES
            ),
            reason,
        )
    )
    uses = rest.str.count_matches(" ; USER=", literal=True) + rest.str.starts_with("USER=").cast(pl.UInt32)
    return frame.select(
        "i",
        kind=pl.when("continued")
        .then(pl.lit("sudo_continued"))
        .when("other")
        .then(pl.lit("sudo_other"))
        .when(failure.is_not_null())
        .then(pl.lit("sudo_fail"))
        .otherwise(pl.lit("sudo_cmd")),
        user=pl.when(~pl.col("continued") & ~pl.col("other")).then(pl.col("user").str.strip_chars(_STRIP)),
        target_user=pl.col("USER"),
        tty=pl.col("TTY"),
        cwd=pl.col("PWD"),
        command=pl.when(message.str.starts_with(_CONTINUED))
        .then(message.str.slice(len(_CONTINUED)).str.strip_chars(_STRIP))
        .when("continued")
        .then(rest.str.slice(len(_CONTINUED)).str.strip_chars(_STRIP))
        .when(~pl.col("other"))
        .then(pl.col("COMMAND")),
        reason=pl.when("other").then(message).otherwise(failure),
        ambiguous=~pl.col("continued")
        & ~pl.col("other")
        & ((uses > 1) | (rest.str.count_matches("COMMAND=", literal=True) > 1)),
    )


def _sudo_fields(frame: pl.DataFrame) -> pl.DataFrame:
    """Per line: USER, TTY and PWD (a key's last value before COMMAND=), COMMAND (all after the first
    `COMMAND=`), and the first part that is no `KEY=value` (the reason), as `_sudo`'s loop reads them."""
    import polars as pl

    parts = (
        frame.select("i", part=pl.col("rest").str.split(" ; "))
        .with_columns(at=pl.int_ranges(pl.col("part").list.len()))
        .explode("part", "at")
        .with_columns(pair=pl.col("part").str.splitn("=", 2))
        .with_columns(key=pl.col("pair").struct.field("field_0"), value=pl.col("pair").struct.field("field_1"))
    )
    key = pl.col("key")
    # str.isupper() on ASCII: a capital letter and no small one
    is_field = pl.col("value").is_not_null() & key.str.contains("[A-Z]") & ~key.str.contains("[a-z]")
    parts = parts.with_columns(is_field=is_field, command=is_field & (key == "COMMAND"))
    # the loop stops at the first COMMAND= part: nothing after it is read
    parts = parts.with_columns(
        read=pl.col("command").cast(pl.UInt32).cum_sum().over("i") - pl.col("command").cast(pl.UInt32) == 0
    )
    parts = parts.filter("read")
    named = (
        parts.filter("is_field")
        .group_by("i")
        .agg(
            [pl.col("value").filter(key == name).last().alias(name) for name in ("USER", "TTY", "PWD")],
            has_command=pl.col("command").any(),
        )
    )
    reasons = parts.filter(~pl.col("is_field")).group_by("i").agg(reason=pl.col("part").first().str.strip_chars(_STRIP))
    out = frame.select("i", "rest").join(named, on="i", how="left").join(reasons, on="i", how="left")
    return out.select(
        "i",
        "USER",
        "TTY",
        "PWD",
        "reason",
        COMMAND=pl.when(pl.col("has_command")).then(pl.col("rest").str.splitn("COMMAND=", 2).struct.field("field_1")),
    )


# identifier → its parser over columns (its lines: `i`, `message`; a frame of some fact columns out)
PARSERS: dict[str, Callable[[pl.DataFrame], pl.DataFrame]] = {
    "systemd-logind": _logind,
    "systemd-journald": _journald,
    "su": _su,
    "runuser": _su,
    "sudo": _sudo,
    "login": _login,
}
# their PAM lines are PAM's (read first, as `read_pam` does): not theirs to read
PAM_READ = frozenset({"su", "runuser", "sudo", "login"})


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
