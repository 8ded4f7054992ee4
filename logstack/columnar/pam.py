"""PAM's own lines (`pam_unix(sshd:auth): …`) over columns, as `logstack.classify.programs.pam.read_pam` reads
them: the module's line read by its parser's patterns (faillock, sessions, authentication failures with their
`key=value` pairs, password changes), and what that leaves unread by the module's rows of the message table.

The patterns are `rules`' own, written here for Rust's `regex`: without DOTALL, so `.` stops at a newline,
and Python's `$` (the end, or before a final newline) is `\\n?\\z`. A line the module pattern does not read is
not PAM's to the line-by-line classifier either: it is left to it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from logstack.classify.messages import programs
from logstack.columnar.linear import NON_SPACE, SPACE
from logstack.columnar.table import complete, filled, row_facts, table_matches

if TYPE_CHECKING:
    import polars as pl

_S = NON_SPACE
PAM_LINE = r"^(?P<module>pam_\w+)\((?P<service>[\w-]+):(?P<type>\w+)\): (?P<rest>.*)\n?\z"
FAILLOCK = r"^Consecutive login failures for user (?P<user>.+?) account temporarily locked"
SESSION_OPENED = (
    rf"^session opened for user (?P<user>[^{SPACE}(]+)(?:\(uid=\d+\))? by (?P<by>[^{SPACE}(]*)"
    r"(?:\(uid=(?P<byuid>\d+)\))?\n?\z"
)
SESSION_CLOSED = rf"^session closed for user (?P<user>[^{SPACE}(]+)(?:\(uid=\d+\))?\n?\z"
AUTH_FAILURE = r"^(?:\d+ more )?authentication failures?;(?P<kv>.*)\n?\z"
PASSWORD_CHANGED = r"^password changed for (?P<user>.+)\n?\z"
# rules.KV, `(?<!\w)(\w++)=(\S*+)`: the automaton has no look-behind and needs none; matches are found
# leftmost, so a key begins at a word's first character (a value runs to a space, so the next pair's key
# always begins a word)
_KV = rf"\w+={_S}*"


def pam_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Facts of lines (`i`, `message`) that begin `pam_`; those the module pattern does not read are left out."""
    import polars as pl

    if frame.is_empty():
        return complete(frame.select("i", kind=pl.lit(None, pl.String)))
    parts = frame.select("i", found=pl.col("message").str.extract_groups(PAM_LINE)).unnest("found")
    parts = parts.filter(pl.col("module").is_not_null())
    facts = _parsed(parts)
    unread = facts.filter(pl.col("kind") == "pam_info")
    read = [complete(facts.filter(pl.col("kind") != "pam_info"))]
    # a module without rows keeps its pam_info: any local user can log under as many module names as they
    # like, and each module is a pass
    tabled = pl.col("module").is_in(list(_tabled_modules()))
    read.append(complete(unread.filter(~tabled).select("i", "kind", "reason", "service")))
    for (module,), lines in unread.filter(tabled).partition_by("module", as_dict=True).items():
        read.append(_by_table(lines, str(module)))
    return pl.concat(read)


@lru_cache(maxsize=1)
def _tabled_modules() -> frozenset[str]:
    return frozenset(name for name in programs() if name.startswith("pam_"))


def _parsed(parts: pl.DataFrame) -> pl.DataFrame:
    """`_pam_line` over columns: the module's own patterns; `pam_info` where none reads the line."""
    import polars as pl

    frame = _kinds(parts)
    kind, service = pl.col("kind"), pl.col("service")
    failure = kind == "auth_failure"
    return _pairs(frame).select(
        "i",
        "module",
        "kind",
        "rest",
        pam_service=service,
        user=pl.when(kind == "lockout")
        .then(pl.col("lock"))
        .when((kind == "session_open") & filled("by"))
        .then(pl.col("by"))
        .when(failure)
        .then(pl.when(filled("kv_ruser")).then("kv_ruser").when(filled("kv_logname")).then("kv_logname")),
        target_user=pl.when(kind == "session_open")
        .then(pl.col("opened_user"))
        .when(kind == "session_close")
        .then(pl.col("closed"))
        .when(failure & filled("kv_user"))
        .then(pl.col("kv_user"))
        .when(kind == "account")
        .then(pl.col("changed")),
        source_ip=pl.when(failure & filled("kv_rhost")).then(pl.col("kv_rhost")),
        tty=pl.when(failure & filled("kv_tty")).then(pl.col("kv_tty")),
        reason=pl.when(kind == "lockout")
        .then(pl.concat_str(service, pl.lit(": account temporarily locked")))
        .when(kind == "account")
        .then(pl.lit("password changed"))
        .when(kind == "pam_info")
        .then(pl.col("rest")),
        own_event=kind.is_in(["lockout", "account"]),
        # faillock's unread lines name no service; every other PAM fact does, but a lockout or password change
        service=pl.when(
            kind.is_in(["lockout", "account"]) | ((pl.col("module") == "pam_faillock") & (kind == "pam_info"))
        )
        .then(None)
        .otherwise(service),
    )


def _kinds(parts: pl.DataFrame) -> pl.DataFrame:
    """Each pattern's values, and the kind the first that reads the line gives (in `_pam_line`'s order)."""
    import polars as pl

    rest = pl.col("rest")
    opened = rest.str.extract_groups(SESSION_OPENED)
    frame = parts.with_columns(
        lock=rest.str.extract(FAILLOCK, 1),
        opened_user=opened.struct.field("user"),
        by=opened.struct.field("by"),
        closed=rest.str.extract(SESSION_CLOSED, 1),
        changed=rest.str.extract(PASSWORD_CHANGED, 1),
        kv=rest.str.extract(AUTH_FAILURE, 1),
    )
    faillock = pl.col("module") == "pam_faillock"
    session = pl.col("type") == "session"
    opens = ~faillock & session & pl.col("opened_user").is_not_null()
    return frame.with_columns(
        kind=pl.when(faillock & pl.col("lock").is_not_null())
        .then(pl.lit("lockout"))
        .when(opens)
        .then(pl.lit("session_open"))
        .when(~faillock & session & ~opens & pl.col("closed").is_not_null())
        .then(pl.lit("session_close"))
        .when(~faillock & (pl.col("type") == "auth") & pl.col("kv").is_not_null())
        .then(pl.lit("auth_failure"))
        .when(~faillock & (pl.col("type") == "chauthtok") & pl.col("changed").is_not_null())
        .then(pl.lit("account"))
        .otherwise(pl.lit("pam_info"))
    )


_KEYS = ("ruser", "logname", "user", "rhost", "tty")


def _pairs(frame: pl.DataFrame) -> pl.DataFrame:
    """The `key=value` pairs of an authentication failure, as `dict(KV.findall(...))`: a key's last value. A
    pair's key is what comes before its first `=` (a key is a word); one pass finds them all, no pattern per key."""
    import polars as pl

    pairs = (
        frame.select("i", pair=pl.col("kv").str.extract_all(_KV))
        .explode("pair")
        .select("i", split=pl.col("pair").str.splitn("=", 2))
        .unnest("split")
        .rename({"field_0": "key", "field_1": "value"})
        .filter(pl.col("key").is_in(_KEYS))
    )
    last = pairs.group_by("i", "key", maintain_order=True).last()
    columns = [
        pl.when(pl.col("key") == key).then(pl.col("value")).max().alias(f"kv_{key}") for key in _KEYS
    ]  # one value per (line, key) is left: max() is that one
    values = last.group_by("i").agg(columns)
    if values.is_empty():
        return frame.with_columns(**{f"kv_{key}": pl.lit(None, pl.String) for key in _KEYS})
    return frame.join(values, on="i", how="left")


def _by_table(lines: pl.DataFrame, module: str) -> pl.DataFrame:
    """Lines a module's parser left unread (`pam_info`), read by its rows of the message table where one reads
    them as more than `pam_info`; the row's fact keeps the line's PAM service."""
    import polars as pl

    text = lines.select("i", text=pl.col("rest"), preauth=pl.lit(False))
    read, _ = table_matches(text, module)
    taken = complete(lines.select("i", "kind", "reason", "service"))
    if read is None:
        return taken
    facts = row_facts(read.filter(pl.col("row_kind") != "pam_info"), ssh=False)
    service = lines.select("i", service="pam_service")
    facts = facts.drop("service").join(service, on="i").select(taken.columns)
    return pl.concat([taken.join(facts.select("i"), on="i", how="anti"), facts])
