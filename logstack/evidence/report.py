"""The periodic review for the auditor: coverage, logins, failures, privilege use, account changes.

One self-contained HTML file (inline CSS and SVG charts, nothing fetched) and an optional Markdown twin.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import jinja2
from markupsafe import Markup

from logstack.analyze.grouping import Event, EventBuilder, Settings
from logstack.base.clock import iso
from logstack.base.package_data import templates_dir
from logstack.base.terminal import escape
from logstack.evidence.line_counts import LineCounts
from logstack.journal.line import Line
from logstack.journal.record import HEARTBEAT_IDENTIFIER
from logstack.pki.service import CertView

DAY = 86_400_000_000


@dataclass
class HostCoverage:
    """How well one host reported during the period."""

    first: int | None = None
    last: int | None = None
    heartbeats: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)
    suppressed: int = 0
    suppression_notices: int = 0
    events: int = 0
    last_heartbeat: int | None = None


@dataclass
class ReportData:
    """Everything the report shows, computed from lines of the period."""

    site: str
    since: int
    until: int
    silence: int
    heartbeat_source: bool = False
    coverage: dict[str, HostCoverage] = field(default_factory=dict)
    logins_ok: Counter[tuple[str, str]] = field(default_factory=Counter)
    logins_failed: Counter[tuple[str, str]] = field(default_factory=Counter)
    failed_sources: Counter[str] = field(default_factory=Counter)
    per_day: dict[str, list[int]] = field(default_factory=dict)  # day -> [success, failure]
    heat: Counter[tuple[str, str]] = field(default_factory=Counter)  # (host, day) -> events
    brute_force: list[Event] = field(default_factory=list)
    privilege: list[Event] = field(default_factory=list)
    account_changes: list[Event] = field(default_factory=list)
    forged: list[Event] = field(default_factory=list)
    # (host the row names, why its signature does not prove it) -> rows
    unauthenticated: Counter[tuple[str, str]] = field(default_factory=Counter)
    lockouts: list[Event] = field(default_factory=list)
    certificates: list[CertView] = field(default_factory=list)
    events: int = 0
    verified: bool = False  # rows were checked against the site's signing keys
    last_verification: str | None = None  # the newest `logstack verify` outcome, as it recorded it
    last_backup: str | None = None  # the newest store backup, flagged when older than the site allows
    source: str = ""  # where the lines came from: the store or an export
    generated: int | None = None  # when the report was made (µs)
    version: str = ""  # logstack's
    source_first: int | None = None  # the oldest and newest journal time the source held (of lines read)
    source_last: int | None = None
    lines_outside: int = 0  # lines the source held outside the period
    lines_inside: int = 0  # lines (heartbeats included) inside it

    @property
    def empty_but_not_silent(self) -> bool:
        """No line in the period, while the source has lines outside it (a period that missed the data; a quiet
        week whose heartbeats are there is not this)."""
        return self.lines_inside == 0 and self.lines_outside > 0

    @property
    def days(self) -> list[str]:
        first = dt.datetime.fromtimestamp(self.since / 1e6, dt.UTC).date()
        last = dt.datetime.fromtimestamp((self.until - 1) / 1e6, dt.UTC).date()
        return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]

    @property
    def hosts(self) -> list[str]:
        return sorted(self.coverage)


def _day(ts: int) -> str:
    return iso(ts)[:10]


def build_report(
    lines: Iterable[Line],
    since: int,
    until: int,
    site: str = "",
    expected_hosts: Iterable[str] = (),
    silence: int = 600_000_000,
    settings: Settings | None = None,
    certificates: list[CertView] | None = None,
    verified: bool = False,
    last_verification: str | None = None,
    last_backup: str | None = None,
) -> ReportData:
    """Aggregate the period: heartbeats give coverage; events give logins, failures and changes."""
    data = new_report(
        since, until, site, expected_hosts, silence, certificates, verified, last_verification, last_backup
    )
    builder = EventBuilder(settings)
    counts = LineCounts(since, until)
    for line in lines:
        counts.line(line)
        if line.ident != HEARTBEAT_IDENTIFIER:  # heartbeats are coverage, not events
            for event in builder.feed(line):
                count_event(data, event)
    for event in builder.finish():
        count_event(data, event)
    end_counts(data, counts)
    return data


def end_counts(data: ReportData, counts: LineCounts) -> None:
    """The counts of the source's lines into `data`, and the heartbeats' coverage: the report is complete."""
    data.source_first, data.source_last = counts.first, counts.last
    data.lines_inside, data.lines_outside = counts.inside, counts.outside
    data.unauthenticated.update(counts.unauthenticated)
    for host, (low, high) in counts.spans.items():
        cov = data.coverage.setdefault(host, HostCoverage())
        cov.first = low if cov.first is None else min(cov.first, low)
        cov.last = high if cov.last is None else max(cov.last, high)
    _coverage(data, counts.heartbeats)


def new_report(
    since: int,
    until: int,
    site: str = "",
    expected_hosts: Iterable[str] = (),
    silence: int = 600_000_000,
    certificates: list[CertView] | None = None,
    verified: bool = False,
    last_verification: str | None = None,
    last_backup: str | None = None,
) -> ReportData:
    """A report of the period before any line: every host expected, every day of the period."""
    data = ReportData(
        site=site,
        since=since,
        until=until,
        silence=silence,
        certificates=certificates or [],
        verified=verified,
        last_verification=last_verification,
        last_backup=last_backup,
    )
    for host in expected_hosts:
        data.coverage.setdefault(host, HostCoverage())
    for day in data.days:
        data.per_day[day] = [0, 0]
    return data


class Counted(NamedTuple):
    """What `count_event` reads of an event that is not listed (`OBJECT_TYPES`, forged: those are given as
    `Event`s, which it lists and shows): a row of events in columns."""

    type: str
    outcome: str
    user: str | None
    host: str
    start: int
    flags: list[str]
    source_ip: str | None


def count_event(data: ReportData, event: Event | Counted) -> None:
    """One event of the period into the report's tables."""
    if not data.since <= event.start < data.until:
        return
    data.events += 1
    day = _day(event.start)
    for host in event.host.split(", "):
        data.heat[(host, day)] += 1
        data.coverage.setdefault(host, HostCoverage()).events += 1
    if "forged" in event.flags:
        # A line that lies about its program proves nothing about logins: listed, not counted.
        data.forged.append(event)
    elif event.type == "ssh_login" or event.type == "console_login":
        who = (event.user or "?", event.host)
        success = event.outcome == "success"
        (data.logins_ok if success else data.logins_failed)[who] += 1
        data.per_day.setdefault(day, [0, 0])[0 if success else 1] += 1
        if not success and event.source_ip:
            data.failed_sources[event.source_ip] += 1
    elif event.type == "log_gap":
        cov = data.coverage.setdefault(event.host, HostCoverage())
        cov.suppression_notices += 1
        assert isinstance(event, Event)  # OBJECT_TYPES
        for line in event.lines:
            words = line.message.split()
            if len(words) > 1 and words[1].isascii() and words[1].isdigit() and len(words[1]) <= 12:
                cov.suppressed += int(words[1])
    else:
        listed = _LISTS.get(event.type)
        if listed is not None:
            assert isinstance(event, Event)  # OBJECT_TYPES
            getattr(data, listed).append(event)


# Event types the report lists as they are, by the ReportData list that holds them.
_LISTS = {
    "brute_force": "brute_force",
    "sudo": "privilege",
    "su": "privilege",
    "polkit": "privilege",
    "privilege": "privilege",
    "account_change": "account_changes",
    "account_lockout": "lockouts",
}

# Events `count_event` reads more of than `Counted` (their lines), or keeps: given to it as `Event`s, as is any event
# flagged forged (listed).
OBJECT_TYPES = frozenset({*_LISTS, "log_gap"})


def _coverage(data: ReportData, heartbeats: dict[str, list[int]]) -> None:
    """Heartbeat counts and the gaps longer than `silence` per host (`heartbeats`: their times in the period)."""
    data.heartbeat_source = bool(heartbeats)
    if not data.heartbeat_source:
        return
    for host in heartbeats:  # a host that sent only heartbeats, and is not in the inventory, is listed too
        data.coverage.setdefault(host, HostCoverage())
    for host, cov in data.coverage.items():
        beats = sorted(heartbeats.get(host, []))
        cov.heartbeats = len(beats)
        cov.last_heartbeat = beats[-1] if beats else None
        previous = data.since
        for beat in [*beats, data.until]:
            if beat - previous > data.silence:
                cov.gaps.append((previous, beat))
            previous = beat


# -- charts -----------------------------------------------------------------------------------------


def _bar_chart(data: ReportData) -> str:
    days = data.days
    values = [data.per_day.get(d, [0, 0]) for d in days]
    top = max([1, *(max(v) for v in values)])
    width, height, left, bottom = max(360, 60 * len(days) + 60), 220, 40, 40
    plot_h = height - bottom - 20
    step = (width - left - 10) / max(1, len(days))
    bar = max(4.0, step / 3)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Logins per day" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" class="chart">',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 5}" y2="{height - bottom}" stroke="#333"/>',
        f'<text x="{left - 6}" y="{height - bottom - plot_h + 4}" text-anchor="end" class="axis">{top}</text>',
        f'<text x="{left - 6}" y="{height - bottom}" text-anchor="end" class="axis">0</text>',
    ]
    for i, (day, (ok, failed)) in enumerate(zip(days, values, strict=True)):
        x = left + i * step + (step - 2 * bar) / 2
        for j, (value, colour, label) in enumerate(((ok, "#2e7d32", "successful"), (failed, "#c62828", "failed"))):
            h = plot_h * value / top
            parts.append(
                f'<rect x="{x + j * bar:.1f}" y="{height - bottom - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{day}: {value} {label}</title></rect>'
            )
            if value:
                parts.append(
                    f'<text x="{x + j * bar + bar / 2:.1f}" y="{height - bottom - h - 3:.1f}" '
                    f'text-anchor="middle" class="value">{value}</text>'
                )
        parts.append(
            f'<text x="{x + bar:.1f}" y="{height - bottom + 16}" text-anchor="middle" class="axis">{day[5:]}</text>'
        )
    parts.append(
        f'<rect x="{left}" y="{height - 14}" width="10" height="10" fill="#2e7d32"/>'
        f'<text x="{left + 14}" y="{height - 5}" class="axis">successful</text>'
        f'<rect x="{left + 100}" y="{height - 14}" width="10" height="10" fill="#c62828"/>'
        f'<text x="{left + 114}" y="{height - 5}" class="axis">failed</text></svg>'
    )
    return "".join(parts)


def _heat_map(data: ReportData) -> str:
    days, hosts = data.days, data.hosts
    cell, left, top_margin = 44, 140, 30
    width = left + cell * len(days) + 10
    height = top_margin + cell * max(1, len(hosts)) + 10
    peak = max([1, *data.heat.values()])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Events per host and day" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" class="chart">'
    ]
    for j, day in enumerate(days):
        parts.append(
            f'<text x="{left + j * cell + cell / 2}" y="{top_margin - 8}" text-anchor="middle" '
            f'class="axis">{day[5:]}</text>'
        )
    for i, host in enumerate(hosts):
        y = top_margin + i * cell
        parts.append(
            f'<text x="{left - 6}" y="{y + cell / 2 + 4}" text-anchor="end" class="axis">'
            f"{html.escape(escape(host))}</text>"
        )
        for j, day in enumerate(days):
            count = data.heat.get((host, day), 0)
            shade = 0.08 + 0.92 * count / peak if count else 0.0
            fill = f"rgba(21,101,192,{shade:.2f})" if count else "#f3f3f3"
            parts.append(
                f'<rect x="{left + j * cell + 1}" y="{y + 1}" width="{cell - 2}" height="{cell - 2}" '
                f'fill="{fill}"><title>{html.escape(escape(host))} {day}: {count} events</title></rect>'
            )
            if count:
                colour = "#fff" if shade > 0.5 else "#000"
                parts.append(
                    f'<text x="{left + j * cell + cell / 2}" y="{y + cell / 2 + 4}" text-anchor="middle" '
                    f'class="value" fill="{colour}">{count}</text>'
                )
    parts.append("</svg>")
    return "".join(parts)


def _code_span(value: object, in_table: bool = False) -> str:
    """Log content for Markdown as a code span: shown as written (control characters escaped), and nothing in
    it is markup (CommonMark 0.31 §6.1: no link, image, HTML or emphasis inside). The fence is one backtick
    longer than any run in the content; in a table cell `|` is escaped, which GFM's table rule undoes first."""
    if value is None:
        return "—"
    text = escape(value)
    if in_table:
        text = text.replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    if text.startswith(("`", " ")) or text.endswith(("`", " ")) or not text:
        text = f" {text} "
    return f"{fence}{text}{fence}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir() / "report")),
        undefined=jinja2.StrictUndefined,
        # log content is attacker-controlled: every value in the HTML page is escaped
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["iso"] = lambda v: iso(v)[:19].replace("T", " ") if v is not None else "—"
    env.filters["safe_text"] = lambda v: escape(v) if v is not None else "—"
    env.filters["minutes"] = lambda v: f"{v / 60e6:.0f} min"
    env.filters["md"] = _code_span
    env.filters["mdcell"] = lambda v: _code_span(v, in_table=True)
    return env


def render_html(data: ReportData) -> str:
    """The report as one self-contained HTML page."""
    return (
        _environment()
        .get_template("report.html.j2")
        .render(d=data, bar_chart=Markup(_bar_chart(data)), heat_map=Markup(_heat_map(data)))
    )


def render_markdown(data: ReportData) -> str:
    """The report as Markdown (for tickets and wikis)."""
    return _environment().get_template("report.md.j2").render(d=data)


def backup_line(newest: dt.datetime | None, max_age_hours: int, now: dt.datetime) -> str:
    """The report's line on store backups: the newest, and whether it is older than the schedule allows."""
    if newest is None:
        return "none recorded (logstack-backup.timer has not completed a backup)"
    age = (now - newest).total_seconds() / 3600
    late = f" — OLDER THAN {max_age_hours} h: check logstack-backup.service" if age > max_age_hours else ""
    if age < -0.1:
        late = " — DATED IN THE FUTURE: not a backup logstack made now; check the server's clock and status"
    return f"{newest.strftime('%Y-%m-%d %H:%M UTC')} ({age:.0f} h before this report){late}"
