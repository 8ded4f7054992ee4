"""Short human durations: 30d, 12h, 2w, 90m, 45s."""

from __future__ import annotations

import datetime as dt
import re

from logstack.errors import BadInputError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RE = re.compile(r"^(\d+)([smhdw])$")


def parse_duration(value: str, what: str = "duration") -> dt.timedelta:
    """Parse `30d`-style durations; bad input is a BadInputError naming `what`."""
    match = _RE.match(value.strip())
    if not match:
        raise BadInputError(f"{what}: {value!r} is not a duration like 30d, 12h, 2w, 90m or 45s")
    return dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
