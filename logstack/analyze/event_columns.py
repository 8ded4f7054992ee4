"""Events as group aggregations: the fields `build_event` gives a group of lines, for every group of a batch at
once (one row per group), from the lines' columns and their facts' columns (`fact_columns`).

What `build_event` reads line by line is read here per group: the event type by the first matching rule of
`TYPE_RULES`, the fields merged as `merge_fields` merges them (the program's own lines before PAM's, a value
taken from the first line that has one), the flags, the failed tries, the keys offered before an accepted
one. tests/test_event_columns.py checks it equals `build_event` on generated groups.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import TYPE_CHECKING

from logstack.analyze import event as reference
from logstack.analyze.event import FAILED_TRY_KINDS, TYPE_RULES, Event, event_id
from logstack.classify.classifier import EXPECTED_COMM, SYSTEM_PREFIXES
from logstack.classify.kinds import EventType, FactKind
from logstack.classify.programs import SSH_IDENTIFIERS
from logstack.journal.line import Line

if TYPE_CHECKING:
    import polars as pl

# Columns of the lines frame `event_columns` reads, besides the fact columns and `group`.
LINE_COLUMNS = ("ts", "arrival", "key", "host", "machine", "boot", "pid", "ident", "message", "comm", "exe")
LINE_COLUMNS += ("loginuid", "auth")
_UNSET_LOGINUID = "4294967295"
_PROBE_DETAIL = 200  # characters of an offered key's description, as `_key_probes` keeps


def event_columns(lines: pl.DataFrame) -> pl.DataFrame:
    """One row per `group` of `lines` (LINE_COLUMNS, the fact columns, `group`): the event `build_event` makes
    of those lines, as columns named like Event's fields, and `line_order` (the lines' row numbers in `lines`,
    in the event's order: by journal time, then key)."""
    import polars as pl

    frame = lines.with_row_index("row").sort("group", "ts", "key")
    frame = frame.with_columns(_line_columns())
    frame = frame.join(_types(frame), on="group", how="left", maintain_order="left").with_columns(_applicable())
    ranked = frame.sort("group", "secondary", "ts", "key")  # merge_fields: a program's own lines first
    merged = ranked.group_by("group", maintain_order=True).agg(_merged_fields())
    events = frame.group_by("group", maintain_order=True).agg(_group_fields("known" in lines.columns))
    events = events.join(merged, on="group", maintain_order="left")
    events = events.join(_tried(frame), on="group", how="left", maintain_order="left")
    events = events.with_columns(_fallbacks()).with_columns(_after_merge()).pipe(_flags)
    ids = [
        event_id(machine or host, boot, key)
        for machine, host, boot, key in events.select("machine", "host", "boot_id_raw", "first_key").iter_rows()
    ]
    return events.with_columns(id=pl.Series(ids, dtype=pl.String)).select(EVENT_COLUMNS)


def lines_of(events: pl.DataFrame, lines: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """The events' lines, one row each, in each event's order: `event` (the event's row in `events`) and the
    columns `names` of `lines`, which `line_order` names by `idx`."""
    import polars as pl

    return (
        events.select(event=pl.int_range(pl.len()), idx="line_order")
        .explode("idx")
        .join(lines.select("idx", *names), on="idx", how="left", maintain_order="left")
    )


# Event's fields but those made later (lines: `line_order` gives them; continues: the state's), and the group.
_LATER = {"lines", "continues"}
EVENT_COLUMNS = ("group", *(f.name for f in fields(Event) if f.name not in _LATER), "line_order")


def _truthy(column: str) -> pl.Expr:
    """Python's truth of an optional value: present, and not empty (a text) or not zero (a number)."""
    import polars as pl

    value = pl.col(column)
    return value.is_not_null() & (value != (0 if column == "source_port" else ""))


def _line_columns() -> list[pl.Expr]:
    """Per line: an SSH daemon's, forged (as `is_forged` decides), a PAM line only filling gaps, a key probe."""
    import polars as pl

    kind = pl.col("kind")
    return [
        pl.col("ident").is_in(list(SSH_IDENTIFIERS)).alias("ssh_line"),
        _forged().alias("forged"),
        kind.is_in(list(reference._SECONDARY_KINDS)).alias("secondary"),
        key_probe().alias("probe"),
    ]


def key_probe() -> pl.Expr:
    """`is_key_probe` of each line's facts (`kind`, `method`)."""
    import polars as pl

    return ((pl.col("kind") == "ssh_fail") & (pl.col("method") == "publickey")).fill_null(False)


def _forged() -> pl.Expr:
    """`is_forged` over columns: the trusted _EXE (else _COMM) does not match the claimed identifier."""
    import polars as pl

    pairs = [f"{ident}\0{name}" for ident, names in EXPECTED_COMM.items() for name in names]
    ident, comm, exe = pl.col("ident"), pl.col("comm"), pl.col("exe")
    system = pl.any_horizontal(*(exe.str.starts_with(prefix) for prefix in SYSTEM_PREFIXES))
    exe_ok = system & ~exe.str.contains("..", literal=True)
    exe_ok = exe_ok & pl.concat_str(ident, pl.lit("\0"), exe.str.extract(r"([^/]*)\z", 1)).is_in(pairs)
    comm_ok = pl.concat_str(ident, pl.lit("\0"), comm).is_in(pairs)
    return (
        pl.when(~ident.is_in(list(EXPECTED_COMM)))
        .then(False)
        .when(comm.is_null() & exe.is_null())
        .then(True)
        .when(exe.is_not_null())
        .then(~exe_ok)
        .otherwise(~comm_ok)
    )


_KIND_BITS = {kind.value: 1 << n for n, kind in enumerate(FactKind)}  # 39 kinds: one bit each in 64
_SERVICE_BITS = {service: 1 << n for n, service in enumerate(sorted({s for rule in TYPE_RULES for s in rule.services}))}


def _bits(names: Iterable[str], bits: dict[str, int]) -> int:
    return sum({bits[name] for name in names})


def _types(frame: pl.DataFrame) -> pl.DataFrame:
    """Per group: the event type and outcome by the first matching rule (`event_type`), the group's kinds and
    services as bit sets (one pass over the lines, then a few operations per group)."""
    import polars as pl

    kinds = pl.col("kind").replace_strict(_KIND_BITS, default=0, return_dtype=pl.UInt64)
    services = pl.col("service").replace_strict(_SERVICE_BITS, default=0, return_dtype=pl.UInt64)
    groups = frame.group_by("group").agg(
        kinds=kinds.bitwise_or(), services=services.bitwise_or(), ssh=pl.col("ssh_line").any()
    )

    def has(names: Iterable[str], column: str = "kinds", table: dict[str, int] = _KIND_BITS) -> pl.Expr:
        return (pl.col(column) & _bits(names, table)) != 0

    etype: pl.Expr = pl.lit(EventType.OTHER.value)
    outcome: pl.Expr = pl.lit("info")
    for rule in reversed(TYPE_RULES):  # the first rule that matches is the outermost `when`
        hit = has(rule.kinds) | has(rule.services, "services", _SERVICE_BITS)
        if rule.kind_and_service is not None:
            kind, service = rule.kind_and_service
            hit = hit | (has([kind]) & has([service], "services", _SERVICE_BITS))
        if rule.unless:
            hit = hit & ~has(rule.unless)
        if rule.ssh:
            hit = hit & pl.col("ssh")
        result = (
            pl.when(has(rule.failure_kinds)).then(pl.lit("failure")).otherwise(pl.lit("success"))
            if rule.failure_kinds is not None
            else pl.lit(rule.outcome)
        )
        etype = pl.when(hit).then(pl.lit(rule.type.value)).otherwise(etype)
        outcome = pl.when(hit).then(result).otherwise(outcome)
    return groups.select("group", etype.alias("type"), outcome.alias("outcome"))


def _applicable() -> list[pl.Expr]:
    """Per line, the values `merge_fields` takes from its fact for the event's user and target user, and
    whether it may give the reason."""
    import polars as pl

    kind, etype = pl.col("kind"), pl.col("type")
    names_target = (etype.is_in(list(reference._PAM_USER_TYPES)) & kind.is_in(list(reference._PAM_NAMES_USER))) | (
        (etype == "privilege") & (kind == "auth_failure")
    )
    gives_reason = kind.is_in(list(reference._REASON_KINDS)) | ((kind == "ssh_preauth") & (etype == "ssh_preauth"))
    return [
        pl.when(names_target).then(pl.col("target_user")).otherwise(pl.col("user")).alias("user_value"),
        (~names_target).alias("gives_target"),
        gives_reason.alias("gives_reason"),
    ]


def _or_chain(value: str, applicable: str | None = None) -> pl.Expr:
    """`out.x = out.x or fact.x` over the lines that may give it, in order: the first value that is true, else
    the last one given (an empty text stays empty, not absent)."""
    import polars as pl

    given = pl.lit(True) if applicable is None else pl.col(applicable)
    taken = pl.col(value).filter(given & _truthy(value)).first()
    return pl.coalesce(taken, pl.col(value).filter(given).last()).alias(value)


def _merged_fields() -> list[pl.Expr]:
    """`merge_fields`, per group, over its lines ranked (the program's own first, then PAM's)."""
    import polars as pl

    return [
        _or_chain("user_value").alias("user"),
        _or_chain("target_user", "gives_target"),
        _or_chain("source_ip"),
        _or_chain("source_port"),
        _or_chain("method"),
        _or_chain("reason", "gives_reason"),
        pl.col("invalid_user").any(),
    ]


_COUNTED = list(reference._COUNTED_KINDS)
_NAMING = list(reference._NAMING_KINDS)


def _group_fields(known: bool) -> list[pl.Expr]:
    """Per group, over its lines in order: what `build_event` reads besides the merged fields."""
    import polars as pl

    kind, pid = pl.col("kind"), pl.col("pid")
    tried = kind.is_in(list(FAILED_TRY_KINDS))
    probed = pl.col("message").filter(pl.col("probe"))  # only a key probe's line is read for its key
    detail = probed.str.extract(r"(?s).* ssh2: (.*)\z", 1).str.slice(0, _PROBE_DETAIL)
    loginuid = pl.col("loginuid")
    return [
        # every line reported by an earlier run (a `known` column: the run's state; none, no state: none is)
        pl.col("known").all() if known else pl.lit(False).alias("known"),
        pl.col("host").first(),
        pl.col("machine").first(),
        pl.col("boot").first().alias("boot_id_raw"),
        pl.col("key").first().alias("first_key"),
        pl.col("ts").first().alias("start"),
        pl.col("ts").last().alias("end"),
        pl.col("arrival").min().alias("first_arrival"),
        pl.col("arrival").max().alias("last_arrival"),
        pl.col("type").first(),
        pl.col("outcome").first(),
        pl.col("ssh_line").any().alias("ssh"),
        pid.filter(_truthy("pid")).unique(maintain_order=True).alias("pids"),
        pl.col("truncated").any(),
        pl.col("ambiguous").any(),
        pl.col("forged").any(),
        pl.col("auth").str.starts_with("forged_host").any().alias("forged_host"),
        pl.col("auth").is_not_null().any().alias("unauthenticated"),
        pl.col("command").filter(_truthy("command")).alias("commands"),
        kind.is_in(_COUNTED).sum().alias("counted"),
        kind.is_in(_NAMING).any().alias("naming"),
        (tried & ~pl.col("probe")).any().alias("failed_try"),
        pl.when(probed.str.contains(" ssh2: ", literal=True))
        .then(detail)
        .otherwise(pl.lit("(key not logged)"))
        .alias("probes"),
        pl.col("user").filter(_truthy("user")).first().alias("first_user"),
        pl.col("target_user").filter(_truthy("target_user")).first().alias("first_target"),
        loginuid.filter(_truthy("loginuid") & (loginuid != _UNSET_LOGINUID)).first().alias("loginuid"),
        pl.col("row").alias("line_order"),
    ]


def _tried(frame: pl.DataFrame) -> pl.DataFrame:
    """Per group with failed tries: the names they tried, each once, in order (a try's user, then its target)."""
    import polars as pl

    tried = frame.with_columns(n=pl.int_range(pl.len())).filter(pl.col("kind").is_in(list(FAILED_TRY_KINDS)))
    names = pl.concat(
        [
            tried.filter(_truthy(column)).select("group", "n", slot=pl.lit(slot), name=pl.col(column))
            for slot, column in enumerate(("user", "target_user"))
        ]
    )
    return names.sort("n", "slot").group_by("group").agg(tried_users=pl.col("name").unique(maintain_order=True))


def _fallbacks() -> list[pl.Expr]:
    """`merge_fields`' last steps: a user from any line for some types, a console login's target, an account
    change's login uid; the machine and boot as `None` when empty; the PIDs in order when more than one."""
    import polars as pl

    etype, user = pl.col("type"), pl.col("user")
    own = etype.is_in([t.value for t in reference._USER_FROM_FACTS])
    user = pl.when(own & user.is_null()).then(pl.col("first_user")).otherwise(user)
    truthy = user.is_not_null() & (user != "")
    user = pl.when(etype == "console_login").then(pl.when(truthy).then(user).otherwise("first_target")).otherwise(user)
    uid = pl.col("loginuid")
    user = pl.when((etype == "account_change") & user.is_null() & uid.is_not_null()).then("uid=" + uid).otherwise(user)
    pids = pl.col("pids")
    return [
        user.alias("user"),
        pl.col("tried_users").fill_null([]),
        pl.when(pl.col("machine") != "").then(pl.col("machine")).alias("machine_id"),
        pl.when(pl.col("boot_id_raw") != "").then(pl.col("boot_id_raw")).alias("boot_id"),
        pl.when(pids.list.len() > 1)
        .then(pids.list.eval(pl.element().sort_by(pl.element().str.len_chars(), pl.element())))
        .otherwise(pids)
        .alias("pids"),
        pl.when(pl.col("commands").list.len() > 0).then(pl.col("commands").list.join(" ")).alias("command"),
    ]


def _after_merge() -> list[pl.Expr]:
    """A failed SSH login's tries; a successful one's failed tries before it and the keys offered first."""
    import polars as pl

    etype, outcome = pl.col("type"), pl.col("outcome")
    failed = (etype == "ssh_login") & (outcome == "failure")
    succeeded = (etype == "ssh_login") & (outcome == "success")
    counted = pl.col("counted")
    named = (pl.col("user").is_not_null() & (pl.col("user") != "")) | pl.col("naming")
    probes = pl.col("probes")
    offered = pl.concat_str(
        probes.list.len().cast(pl.String), pl.lit(" keys offered before the accepted one: "), probes.list.join(", ")
    )
    return [
        pl.when(failed)
        .then(pl.when((counted == 0) & named).then(1).otherwise(counted))
        .otherwise(0)
        .cast(pl.Int64)
        .alias("attempts"),
        (succeeded & pl.col("failed_try")).alias("after_failures"),
        pl.when(succeeded & (probes.list.len() > 0) & pl.col("reason").is_null())
        .then(offered)
        .otherwise(pl.col("reason"))
        .alias("reason"),
    ]


_FLAGS = ("after_failures", "ambiguous", "forged", "forged_host", "invalid_user", "truncated", "unauthenticated")


def _flags(events: pl.DataFrame) -> pl.DataFrame:
    """The events' flags, sorted (as `_flags` lists them): each combination's list made once, joined by its bits."""
    import polars as pl

    bits = pl.sum_horizontal(pl.col(name).cast(pl.UInt8) * (1 << n) for n, name in enumerate(_FLAGS))
    lists = pl.DataFrame(
        {
            "flag_bits": range(1 << len(_FLAGS)),
            "flags": [[name for n, name in enumerate(_FLAGS) if mask >> n & 1] for mask in range(1 << len(_FLAGS))],
        },
        schema={"flag_bits": pl.UInt8, "flags": pl.List(pl.String)},
    )
    with_bits = events.with_columns(flag_bits=bits.cast(pl.UInt8))
    return with_bits.join(lists, on="flag_bits", how="left", maintain_order="left")


def event_objects(events: pl.DataFrame, lines: pl.DataFrame) -> list[Event]:
    """The events of a batch (`run_columns` gives them) as `Event`s, for output that reads objects (text): their
    lines hold what output shows of a line (time, program, PID, message, who vouches for it), not its key."""
    if events.is_empty():
        return []
    programs: dict[str, str] = {}  # one string a program, not one a line
    made = {
        idx: Line(ts, ts, "", "", "", pid or "", programs.setdefault(ident, ident), message, None, None, None, "", auth)
        for idx, ts, pid, ident, message, auth in zip(
            *(lines[name].to_list() for name in ("idx", "ts", "pid", "ident", "message", "auth")), strict=True
        )
    }
    names = [name for name in EVENT_COLUMNS if name not in ("group", "line_order")]
    names += ["continues"] if "continues" in events.columns else []
    rows = zip(*(events[name].to_list() for name in names), events["line_order"].to_list(), strict=True)
    return [
        Event(**dict(zip(names, row, strict=True)), lines=[made[idx] for idx in order])  # type: ignore[arg-type]
        for *row, order in rows
    ]
