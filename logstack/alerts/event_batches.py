"""Alerts from a run in columns: of each batch of events (`column_run.run_columns` gives them), only those a
destination takes are made dictionaries, from their JSON lines (`event_json`: the bytes `EventWriter` writes of
`Event.as_dict()`, whose values they read back as), and collected in the batch's order; every event made an object
and a dictionary cost the run its columns' output."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from logstack.alerts.delivery import Collector
from logstack.analyze.column_run import EventSink
from logstack.analyze.event_json import event_json, severity_column

if TYPE_CHECKING:
    import polars as pl


def collecting(write: EventSink, collector: Collector) -> EventSink:
    """`write`, then the events `collector`'s destinations take, as `Collector.add` is given them one by one."""

    def give(events: pl.DataFrame, lines: pl.DataFrame) -> None:
        write(events, lines)
        if events.is_empty():
            return
        severities = events.select(severity_column()).to_series().to_list()
        types = events["type"].to_list()
        rows = [n for n, kind in enumerate(zip(severities, types, strict=True)) if collector.wants(*kind)]
        if rows:
            for line in event_json(events[rows], lines, by="idx").splitlines():
                collector.add(orjson.loads(line))

    return give
