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

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_RE = re.compile(r"(\d{1,9})([smhdw])")
_REGISTRY_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_SINCE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%SZ")


def now() -> dt.datetime:
    """The current UTC time, to the second (certificate dates have no fractions)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def parse_duration(value: str, what: str = "duration") -> dt.timedelta:
    """`30d`-style durations (s, m, h, d, w); bad input is a BadInputError naming `what`."""
    match = _DURATION_RE.fullmatch(value.strip())
    if not match:
        raise BadInputError(f"{what}: {value!r} is not a duration like 30d, 12h, 2w, 90m or 45s")
    return dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def duration_micros(value: str, what: str = "duration") -> int:
    """A `30d`-style duration in microseconds."""
    return int(parse_duration(value, what).total_seconds()) * SECOND


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


def parse_since(value: str, what: str = "--since") -> int:
    """A date or datetime given on the command line (UTC) as epoch microseconds."""
    for fmt in _SINCE_FORMATS:
        try:
            parsed = dt.datetime.strptime(value, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
        return int(parsed.timestamp()) * SECOND
    raise BadInputError(f"{what}: {value!r} is not a date or datetime like 2025-07-15 or '2025-07-15 08:47:26'")
