"""Checks for every value that reaches a file, a unit, a shell or a rule set.

Patterns match the whole value (`re.fullmatch`: `$` would also match before a final newline), control
characters are refused wherever a value is written into a file (C0, C1, DEL, the Unicode line and paragraph
separators, which `str.splitlines` and YAML break lines on, and noncharacters, which YAML parsers reject),
and paths are confined so that no unit, shell line or `install -d` can reach a system directory.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import posixpath
import re
import urllib.parse
from typing import Any

from logstack.base.clock import UNIT_SECONDS

# C0, DEL, C1, U+2028/U+2029 and the Unicode noncharacters (U+FDD0-U+FDEF, U+xFFFE/U+xFFFF in every plane)
_CONTROL_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\ufdd0-\ufdef"
    + "".join(f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(17))
    + "]"
)

# Linux interface names: at most 15 bytes (IFNAMSIZ 16), no '/', no whitespace.
_INTERFACE_RE = re.compile(r"[A-Za-z0-9_.-]{1,15}")

# Characters a managed path may hold: nothing that a shell, systemd (specifiers '%', escapes '\\', quotes,
# whitespace as list separator) or TOML would read specially.
_PATH_CHARS_RE = re.compile(r"[A-Za-z0-9._/@+-]+")

# GreptimeDB's data directory is handed to the `greptime` user (install -d -o greptime) and made writable
# in its unit: it must be a directory of its own below a root meant for data, never a system directory.
DATA_ROOTS = ("/var/lib/", "/srv/", "/opt/", "/data/", "/mnt/", "/media/")


def has_control(value: str) -> bool:
    """True when `value` holds a character that would break or split a line of a rendered file."""
    return _CONTROL_RE.search(value) is not None


def full(pattern: re.Pattern[str], value: str) -> bool:
    """True when `pattern` matches the whole of `value` (never only up to a final newline)."""
    return pattern.fullmatch(value) is not None


def data_directory(value: str) -> str:
    """GreptimeDB's own data directory: absolute, normalised, plain characters, below a data root, named
    for GreptimeDB (so that no system or other program's directory can be given to the `greptime` user)."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError(f"{value!r} must be an absolute path")
    if not _PATH_CHARS_RE.fullmatch(value):
        raise ValueError(
            f"{value!r}: a path may hold only letters, digits and . _ / @ + - "
            "(no spaces, quotes, '%', '\\' or control characters: it is written into units and shell lines)"
        )
    if posixpath.normpath(value) != value or ".." in value.split("/") or value.startswith("//"):
        raise ValueError(f"{value!r} is not a normalised path (no '..', '.', '//' or trailing '/')")
    if not value.startswith(DATA_ROOTS) or "greptime" not in value.rsplit("/", 1)[1].lower():
        raise ValueError(
            f"{value!r}: the data directory must be GreptimeDB's own, below {', '.join(DATA_ROOTS)} and "
            "named for it (e.g. /var/lib/greptime, /srv/greptimedb): it is handed to the greptime user"
        )
    return value


def ip_address(value: str) -> str:
    """An IP address in canonical form; an IPv6 scope id must be an interface name."""
    if not isinstance(value, str) or has_control(value):
        raise ValueError(f"{value!r} is not a valid IP address")
    address, sep, scope = value.partition("%")
    if sep and (not scope or not _INTERFACE_RE.fullmatch(scope) or ":" not in address):
        raise ValueError(f"{value!r}: an IPv6 scope id must be an interface name (letters, digits, . _ -, 1-15)")
    return str(ipaddress.ip_address(value))


def without_scope(address: str) -> str:
    """The address without its IPv6 scope id (what a packet filter matches)."""
    return address.partition("%")[0]


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
IDENTIFIER_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_FIELD_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
# an S3 key (and a region): what may stand in a SQL string literal (COPY ... CONNECTION) as it is
S3_KEY_RE = re.compile(r"[A-Za-z0-9+/=._~-]{1,256}")
BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# no leading, trailing or double '/', no '.' or '..' segment: S3 keys as written, never normalised
KEY_PREFIX_RE = re.compile(r"(?:(?!\.{1,2}(?:/|$))[A-Za-z0-9._-]+(?:/(?!\.{1,2}(?:/|$))[A-Za-z0-9._-]+)*)?")
REGION_RE = re.compile(r"[a-z0-9-]{1,40}")
LAG_RE = re.compile(r"(?:[1-9][0-9]?s|[1-5]?[0-9]m|1h)")  # up to an hour: longer would hold reports back
SQL_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_TTL_UNIT = "(?:" + "|".join(sorted(UNIT_SECONDS, key=len, reverse=True)) + ")"  # the durations' own units
_TTL_RE = re.compile(rf"forever|instant|(?:\d{{1,6}} *{_TTL_UNIT} *){{1,4}}", re.ASCII)
VERSION_RE = re.compile(r"v\d{1,4}\.\d{1,4}\.\d{1,4}")
# systemd.time(7) calendar events: a shorthand, or [weekdays] [[year-]month-day] hour:minute[:second], each
# field `*`, a number, a range `a..b`, a repetition `/n` or a comma list of these.
_CAL_VALUE = r"\*|\d{1,4}(?:\.\.\d{1,4})?(?:/[1-9]\d{0,3})?"
_CAL_FIELD = rf"(?:{_CAL_VALUE})(?:,(?:{_CAL_VALUE})){{0,15}}"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_DAYS = rf"{_DAY}(?:\.\.{_DAY})?(?:,{_DAY}(?:\.\.{_DAY})?){{0,6}}"
_DATE = rf"(?:{_CAL_FIELD}-)?{_CAL_FIELD}[-~]{_CAL_FIELD}"
_TIME = rf"{_CAL_FIELD}:{_CAL_FIELD}(?::{_CAL_FIELD})?"
CALENDAR_RE = re.compile(
    rf"minutely|hourly|daily|weekly|monthly|yearly|annually|quarterly|semiannually"
    rf"|(?:{_DAYS} )?(?:{_DATE} )?{_TIME}|{_DAYS} {_DATE}"
)
SSH_USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}")
SITE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# a command name found on PATH, or an absolute path: never one relative to the directory logstack runs in
SERVICE_MANAGER_RE = re.compile(r"[A-Za-z0-9_.-]{1,200}|/[A-Za-z0-9_./-]{1,199}")

# Columns the pipeline itself produces; an identity field with one of these names would clobber it.
RESERVED_FIELDS = frozenset(
    {"host", "message", "timestamp", "source_type", "greptime_timestamp", "logstack_host", "fqdn", "cmdb_id"}
)


def pattern_check(pattern: re.Pattern[str], what: str):
    def check(value: str) -> str:
        if not full(pattern, value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return check


def hostname(value: str) -> str:
    # An all-numeric last label is a mistyped IP address, never a name.
    if (
        not isinstance(value, str)
        or len(value) > 253
        or not full(_HOSTNAME_RE, value)
        or value.rsplit(".", 1)[-1].isdigit()
    ):
        raise ValueError(f"{value!r} is not a valid hostname")
    return value


def address(value: str) -> str:
    try:
        return ip_address(value)
    except ValueError as exc:
        if "%" in value:
            raise ValueError(str(exc).removeprefix("Value error, ")) from None
    try:
        return hostname(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid IP address or hostname") from None


def ip(value: str) -> str:
    """An IP address without a scope id (Vector's listen address and certificate SANs take none)."""
    if isinstance(value, str) and "%" in value:
        raise ValueError(f"{value!r}: no scope id here (an address to listen on or to certify)")
    try:
        return ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid IP address") from None


_CAL_BOUNDS = {"year": (1970, 2199), "month": (1, 12), "day": (1, 31), "hour": (0, 23), "minute": (0, 59)}


def calendar(value: str) -> str:
    """A systemd OnCalendar expression whose every number is in its field's range."""
    if not isinstance(value, str) or not CALENDAR_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a systemd OnCalendar expression (e.g. '*:0/15', 'Mon..Fri 08:00')")
    parts = value.split(" ")
    fields: list[tuple[str, str]] = []
    if ":" in parts[-1]:
        time = parts[-1].split(":")
        fields += [("hour", time[0]), ("minute", time[1])] + [("minute", f) for f in time[2:]]
    date = next((p for p in parts if "-" in p or "~" in p), None)
    if date is not None:
        pieces = re.split(r"[-~]", date)
        names = ["year", "month", "day"][-len(pieces) :]
        fields += list(zip(names, pieces, strict=True))
    for name, field in fields:
        low, high = _CAL_BOUNDS[name]
        for number in re.findall(r"(?<![/\d])\d+", field):  # repetition steps after '/' are not values
            if not low <= int(number) <= high:
                raise ValueError(f"{value!r}: {number} is not a {name} ({low}-{high})")
        for start, end in re.findall(r"(\d+)\.\.(\d+)", field):
            if int(start) > int(end):  # systemd refuses a range that runs backwards (systemd-analyze calendar)
                raise ValueError(f"{value!r}: the {name} range {start}..{end} runs backwards")
    if any(int(n) > 28 for n in re.findall(r"~(\d+)", date or "")):
        raise ValueError(f"{value!r}: systemd counts at most 28 days back from a month's end (~1 to ~28)")
    for start, end in re.findall(r"([A-Za-z]+)\.\.([A-Za-z]+)", parts[0] if parts else ""):
        if _WEEKDAYS.index(start[:3].lower()) > _WEEKDAYS.index(end[:3].lower()):
            raise ValueError(f"{value!r}: the weekday range {start}..{end} runs backwards (systemd refuses it)")
    return value


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def ttl(value: str) -> str:
    if not full(_TTL_RE, value.strip()):
        raise ValueError(f"{value!r} is not a retention TTL (examples: '90d', '3months', '1year', 'forever')")
    return value.strip()


def local_path(value: str) -> str:
    if not value or has_control(value):
        raise ValueError(f"{value!r} is not a file path (empty, or holds control characters)")
    return value


def ssh_user(value: str) -> str:
    if not full(SSH_USER_RE, value):
        raise ValueError(f"{value!r} is not a user name ([A-Za-z0-9_][A-Za-z0-9_.@-]*, at most 64)")
    return value


def parse_jump(spec: str) -> tuple[str | None, str, int | None]:
    """The first hop of a ProxyJump value (`[user@]host[:port]`, comma-separated) as (user, host, port)."""
    hop = spec.split(",")[0].strip()
    user, at, hostport = hop.rpartition("@")
    if at and not full(SSH_USER_RE, user):
        raise ValueError(f"{spec!r}: {user!r} is not a user name")
    if hostport.startswith("["):  # [v6]:port
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif hostport.count(":") == 1:
        host, _, port = hostport.partition(":")
    else:
        host, port = hostport, ""
    address(host)
    if port and not (port.isascii() and port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65535):
        raise ValueError(f"{spec!r}: port {port!r} is not a number from 1 to 65535")
    return user or None, host, int(port) if port else None


def proxy_jump(value: str) -> str:
    """A ProxyJump value whose every hop is `[user@]host[:port]`."""
    for hop in value.split(","):
        parse_jump(hop)
    return value


def identity_text(value: Any) -> str:
    """Identity values go out as strings whatever YAML made of them (a type change breaks ingest)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    if not isinstance(value, str | int | float):
        raise ValueError("identity values must be scalars (string, number, boolean or date)")
    text = str(value)
    # Values become VRL string literals and columns: no control characters, no template braces.
    if not text or len(text) > 256 or has_control(text) or "{" in text or "}" in text:
        raise ValueError(f"{text!r}: identity values are 1-256 printable characters without braces")
    return text


def identity_names(value: dict[str, str]) -> dict[str, str]:
    for name in value:
        if not full(_FIELD_RE, name):
            raise ValueError(f"identity field {name!r} must match [a-z][a-z0-9_]* (it becomes a column)")
        if name in RESERVED_FIELDS or name.startswith("logstack_"):
            # logstack_* columns are logstack's own: signature, key id, configuration digest
            raise ValueError(f"identity field {name!r} is reserved (use the host's own key or rename it)")
    return value


_BACKUP_DIR_RE = re.compile(r"/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)+")


BACKUP_ROOTS = (*DATA_ROOTS, "/var/backups/")


def backup_directory(value: str) -> str:
    """Where GreptimeDB writes backups: handed to the greptime user, so, like the data directory, below a
    data root and named for backups (no system or other program's directory can be given away)."""
    if not _BACKUP_DIR_RE.fullmatch(value) or any(part in (".", "..") for part in value.split("/")):
        raise ValueError(f"{value[:80]!r} must be an absolute path of [A-Za-z0-9._-] names, at least two deep")
    name = value.rsplit("/", 1)[1].lower()
    if not value.startswith(BACKUP_ROOTS) or not ("backup" in name or "logstack" in name or "greptime" in name):
        raise ValueError(
            f"{value!r}: the backup directory must be its own, below {', '.join(BACKUP_ROOTS)} and named for "
            "it (e.g. /var/backups/logstack, /srv/greptime-backups): it is handed to the greptime user"
        )
    return value


def https_url(value: str) -> str:
    """An https:// URL of printable ASCII whose host and port parse."""
    if not re.fullmatch(r"https://[A-Za-z0-9.\[\]:-]{1,300}(/[!-~]*)?", value):
        raise ValueError("must be an https:// URL (TLS is always verified) of printable ASCII without spaces")
    try:
        parts = urllib.parse.urlsplit(value)
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    if not parts.hostname or parts.netloc.endswith(":") or (parts.port is not None and not 1 <= parts.port <= 65535):
        raise ValueError("the URL names no host, or a port outside 1-65535")
    try:
        ip(parts.hostname)
    except ValueError:
        hostname(parts.hostname)  # a name, as a certificate would hold it
    return value


def s3_endpoint(value: str) -> str:
    """An S3 endpoint: https://host[:port], or http:// on loopback (an S3-compatible service on the machine)."""
    parts = urllib.parse.urlsplit(value)
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if not (parts.scheme == "https" or (parts.scheme == "http" and loopback)) or parts.path not in ("", "/"):
        raise ValueError("must be https://host[:port] (http:// only on loopback), without a path")
    return https_url("https://" + value.split("://", 1)[1].rstrip("/")).replace("https://", f"{parts.scheme}://", 1)
