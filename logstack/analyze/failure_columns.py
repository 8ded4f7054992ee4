"""Failed tries over columns: a successful login flagged `after_failures` when its source (an IPv4 address, an IPv6
/64) failed within the window before it, as `FailureWindows.finalise` flags it (by the tries' journal times;
a key its own connection offered first is no failed try). Brute-force incidents are not here yet."""

from __future__ import annotations

from typing import TYPE_CHECKING

from logstack.analyze.event import FAILED_TRY_KINDS, Settings
from logstack.analyze.failures import source_key

if TYPE_CHECKING:
    import polars as pl

_TRY_KINDS = [*FAILED_TRY_KINDS, "ssh_abandon"]


def _source(column: str) -> pl.Expr:
    """`source_key` of each address (computed once per distinct address)."""
    import polars as pl

    return pl.col(column).map_elements(source_key, return_dtype=pl.String, skip_nulls=True)


def _process() -> pl.Expr:
    import polars as pl

    machine = pl.when(pl.col("machine") != "").then(pl.col("machine")).otherwise(pl.col("host"))
    return pl.concat_str(machine, pl.col("boot").fill_null(""), pl.col("pid").fill_null(""), separator="\0")


def failed_tries(lines: pl.DataFrame) -> pl.DataFrame:
    """The failed tries among `lines` (their columns and facts' `kind`, `method`, `source_ip`), as `feed` notes
    them: source, journal time, arrival, and for a key probe the process that offered it."""
    import polars as pl

    tried = lines.filter(pl.col("source_ip").is_not_null() & pl.col("kind").is_in(_TRY_KINDS))
    probe = (pl.col("kind") == "ssh_fail") & (pl.col("method") == "publickey")
    return tried.select(
        source=_source("source_ip"),
        ts=pl.col("ts"),
        arrival=pl.col("arrival"),
        tag=pl.when(probe.fill_null(False)).then(_process()),
    )


def after_failures(events: pl.DataFrame, tries: pl.DataFrame, settings: Settings, arrivals: pl.Series) -> pl.DataFrame:
    """`events` (event_columns' frame) with `after_failures` added to the flags of each successful login whose
    source failed a try from the window before its start to its end, other than a key its own process offered,
    fed before the login was released: up to the first line (of `arrivals`, sorted) that arrived more than two
    gaps after the login's last one, as the builder sweeping at every line releases it."""
    import polars as pl

    window, gap = settings.brute_force_window, settings.gap
    success = (pl.col("type") == "ssh_login") & (pl.col("outcome") == "success") & pl.col("source_ip").is_not_null()
    logins = events.with_row_index("at").filter(success)
    if logins.is_empty() or tries.is_empty():
        return events
    machine = pl.when(pl.col("machine_id").is_not_null()).then(pl.col("machine_id")).otherwise(pl.col("host"))
    own = pl.concat_str(machine, pl.col("boot_id").fill_null(""), pl.col("pid"), separator="\0")
    processes = logins.select("at", "machine_id", "host", "boot_id", "pids").explode("pids")
    processes = processes.rename({"pids": "pid"}).select("at", own=own)
    logins = logins.select("at", "start", "end", "last_arrival", source=_source("source_ip"))
    after = arrivals.search_sorted(logins["last_arrival"] + 2 * gap, side="right")
    released = pl.Series([*arrivals, None]).gather(after)  # None: not released before the end of input
    logins = logins.with_columns(released=released)
    pairs = logins.join(tries, on="source").filter(
        (pl.col("ts") >= pl.col("start") - window)
        & (pl.col("ts") <= pl.col("end"))
        & ((pl.col("arrival") <= pl.col("released")) | pl.col("released").is_null())
    )
    pairs = pairs.join(processes, left_on=["at", "tag"], right_on=["at", "own"], how="anti")
    flagged = pairs.select("at").unique()
    flags = pl.col("flags")
    added = (
        pl.when(pl.col("at").is_in(flagged["at"].implode()) & ~flags.list.contains("after_failures"))
        .then(pl.concat_list(pl.lit(["after_failures"]), flags))
        .otherwise(flags)
    )
    return events.with_row_index("at").with_columns(flags=added).drop("at")
