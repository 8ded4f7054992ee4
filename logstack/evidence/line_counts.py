"""What a report counts of each line of its source (coverage, heartbeats, rows that failed authentication, lines
in and outside the period), line by line (`report.build_report`, and `report_columns` where the columns refuse)
or a batch in columns at a time (`report_columns`)."""

from __future__ import annotations

from collections import defaultdict

from logstack.journal.line import Line
from logstack.journal.record import HEARTBEAT_IDENTIFIER


class LineCounts:
    """The counts of the lines of a period's source (`report.end_counts` puts them into the report)."""

    def __init__(self, since: int, until: int) -> None:
        self.since, self.until = since, until
        self.clear()

    def clear(self) -> None:
        """Nothing counted (a source read again from its start)."""
        self.first: int | None = None
        self.last: int | None = None
        self.inside = self.outside = 0
        self.unauthenticated: dict[tuple[str, str], int] = {}
        self.heartbeats: defaultdict[str, list[int]] = defaultdict(list)
        self.spans: dict[str, tuple[int, int]] = {}  # host → first and last journal time of its lines

    def line(self, line: Line) -> None:
        """One line of the source."""
        ts, host = line.ts, line.host
        self.first = ts if self.first is None else min(self.first, ts)
        self.last = ts if self.last is None else max(self.last, ts)
        inside = self.since <= ts < self.until
        self.inside += inside
        self.outside += not inside
        if line.auth is not None and self.since <= line.arrival < self.until:
            key = (host, line.auth)
            self.unauthenticated[key] = self.unauthenticated.get(key, 0) + 1
        if line.ident == HEARTBEAT_IDENTIFIER:
            # only a heartbeat its host's own key signed proves the host was there (status's rule too): one
            # that failed authentication is listed under "Records that failed authentication" above
            if inside and line.auth is None:
                self.heartbeats[host].append(ts)
        elif inside:
            self.span(host, ts, ts)

    def span(self, host: str, low: int, high: int) -> None:
        """Lines of `host` in the period from `low` to `high` (journal time)."""
        known = self.spans.get(host)
        self.spans[host] = (low, high) if known is None else (min(known[0], low), max(known[1], high))
