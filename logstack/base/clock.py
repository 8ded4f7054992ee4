"""Time, in one place: instants are integer microseconds since 1970 (UTC), durations microseconds too.

Journal timestamps, GreptimeDB's ingest times and every window of analysis are microseconds; certificate
dates are whole seconds in the registry's `YYYY-MM-DDTHH:MM:SSZ` form.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from functools import lru_cache

from logstack.base.errors import BadInputError

MILLISECOND = 1_000
SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# One vocabulary for every duration: options, the inventory's TTL, and what GreptimeDB shows (humantime, as
# GreptimeDB v1.1.4 parses `ttl`: a month is 30.44 days, a year 365.25). `m` is a minute and `M` a month.
UNIT_SECONDS: dict[str, float] = {
    **dict.fromkeys(("nsec", "ns"), 1e-9),
    **dict.fromkeys(("usec", "us"), 1e-6),
    **dict.fromkeys(("msec", "ms"), 1e-3),
    **dict.fromkeys(("seconds", "second", "secs", "sec", "s"), 1),
    **dict.fromkeys(("minutes", "minute", "mins", "min", "m"), 60),
    **dict.fromkeys(("hours", "hour", "hrs", "hr", "h"), 3600),
    **dict.fromkeys(("days", "day", "d"), 86400),
    **dict.fromkeys(("weeks", "week", "w"), 604800),
    **dict.fromkeys(("months", "month", "M"), 2_630_016),
    **dict.fromkeys(("years", "year", "y"), 31_557_600),
}
_PART_RE = re.compile(r"\s*(\d{1,12})\s*([A-Za-z]+)", re.ASCII)  # ASCII digits: `١٢h` is no duration
_DURATION_EXAMPLES = "a duration like 90s, 15m, 2h, 7d, 2w, 1month or 1year"
_REGISTRY_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%SZ")
_TIME_EXAMPLES = "2026-11-01, '2026-11-01 08:00', 2026-11-01T08:00:00Z, now, today, yesterday, -2h or 7d (ago)"


def duration_seconds(value: str) -> float | None:
    """Seconds of a duration in the shared vocabulary (`90s`, `1h30m`, `3months`), or None if it is not one."""
    text = value.strip()
    total, at = 0.0, 0
    while at < len(text):
        part = _PART_RE.match(text, at)
        if part is None or part.group(2) not in UNIT_SECONDS:
            return None
        total += int(part.group(1)) * UNIT_SECONDS[part.group(2)]
        at = part.end()
    return total if text else None


def now() -> dt.datetime:
    """The current UTC time, to the second (certificate dates have no fractions)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def parse_duration(value: str, what: str = "duration") -> dt.timedelta:
    """A duration in the shared vocabulary (`90s` … `1year`); bad input is a BadInputError naming `what`."""
    seconds = duration_seconds(value)
    if seconds is None or seconds > 1000 * 31_557_600:
        raise BadInputError(f"{what}: {value!r} is not {_DURATION_EXAMPLES}")
    return dt.timedelta(seconds=seconds)


def duration_micros(value: str, what: str = "duration") -> int:
    """A `30d`-style duration in microseconds."""
    return int(parse_duration(value, what).total_seconds() * SECOND)


def to_micros(value: dt.datetime) -> int:
    """A naive-UTC (as GreptimeDB returns over MySQL) or aware datetime as epoch microseconds."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - EPOCH
    return (delta.days * 86400 + delta.seconds) * SECOND + delta.microseconds


def from_micros(value: int) -> dt.datetime:
    """Epoch microseconds as an aware UTC datetime."""
    return EPOCH + dt.timedelta(microseconds=value)


@lru_cache(maxsize=4096)
def _iso_seconds(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def iso(value: int) -> str:
    """Epoch microseconds as UTC ISO-8601 with microseconds."""
    seconds, micros = divmod(value, SECOND)
    return f"{_iso_seconds(seconds)}.{micros:06d}Z"


def registry_time(value: dt.datetime) -> str:
    """A datetime as the registry writes it (UTC, whole seconds)."""
    return value.astimezone(dt.UTC).strftime(_REGISTRY_FORMAT)


def parse_registry_time(value: str) -> dt.datetime:
    """The registry's `YYYY-MM-DDTHH:MM:SSZ` as an aware datetime."""
    return dt.datetime.strptime(value, _REGISTRY_FORMAT).replace(tzinfo=dt.UTC)


def parse_time(value: str, what: str = "--since", now: int | None = None) -> int:
    """An instant as epoch microseconds: an ISO date or datetime (UTC unless it names an offset), journalctl's
    words (`now`, `today`, `yesterday`, `tomorrow`, `-2h`, `+1d`), or a duration back from now (`7d`)."""
    text = value.strip()
    if not text.isascii():
        raise BadInputError(f"{what}: {value[:40]!r} is not a time like {_TIME_EXAMPLES}")
    current = now if now is not None else time.time_ns() // 1000
    midnight = current - current % DAY
    words = {"now": current, "today": midnight, "yesterday": midnight - DAY, "tomorrow": midnight + DAY}
    if text in words:
        return words[text]
    sign = -1 if text[:1] == "-" else 1 if text[:1] == "+" else 0
    seconds = duration_seconds(text[1:] if sign else text)
    if seconds is not None:
        return _in_range(current + (sign or -1) * int(seconds * SECOND), value, what)
    for fmt in _DATE_FORMATS:
        try:
            return _in_range(to_micros(dt.datetime.strptime(text, fmt).replace(tzinfo=dt.UTC)), value, what)
        except ValueError:
            continue
    try:
        return _in_range(to_micros(dt.datetime.fromisoformat(text.replace("Z", "+00:00"))), value, what)
    except (ValueError, OverflowError):
        raise BadInputError(f"{what}: {value[:40]!r} is not a time like {_TIME_EXAMPLES}") from None


def parse_period(since: str | None, until: str | None, now: int | None = None) -> tuple[int | None, int | None]:
    """`--since` and `--until` as epoch microseconds (None where not given); an end not after the start is a
    BadInputError."""
    start = parse_time(since, "--since", now) if since else None
    end = parse_time(until, "--until", now) if until else None
    if start is not None and end is not None and end <= start:
        raise BadInputError("--until must be after --since")
    return start, end


_FIRST, _LAST = to_micros(dt.datetime(1970, 1, 1, tzinfo=dt.UTC)), to_micros(dt.datetime(9999, 12, 31, tzinfo=dt.UTC))


def _in_range(micros: int, value: str, what: str) -> int:
    """A time every date function can show (1970 to 9999); anything else is an error, not a crash later."""
    if not _FIRST <= micros <= _LAST:
        raise BadInputError(f"{what}: {value[:40]!r} is outside 1970 to 9999")
    return micros
