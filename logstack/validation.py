"""Checks for every value that reaches a file, a unit, a shell or a rule set.

Patterns match the whole value (`re.fullmatch`: `$` would also match before a final newline), control
characters are refused wherever a value is written into a file (C0, C1, DEL, the Unicode line and paragraph
separators, which `str.splitlines` and YAML break lines on, and noncharacters, which YAML parsers reject),
and paths are confined so that no unit, shell line or `install -d` can reach a system directory.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re

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

# Directories whose contents belong to the system: never a data directory, never `install -d`'d.
SYSTEM_DIRECTORIES = frozenset(
    {
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/media",
        "/mnt",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/tmp",
        "/usr",
        "/usr/bin",
        "/usr/lib",
        "/usr/local",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/share",
        "/var",
        "/var/cache",
        "/var/lib",
        "/var/log",
        "/var/run",
        "/var/spool",
        "/var/tmp",
    }
)
# Virtual or volatile file systems: nothing of logstack's may live below them.
_FORBIDDEN_ROOTS = ("/proc/", "/sys/", "/dev/", "/run/", "/tmp/", "/var/tmp/", "/boot/")


def has_control(value: str) -> bool:
    """True when `value` holds a character that would break or split a line of a rendered file."""
    return _CONTROL_RE.search(value) is not None


def full(pattern: re.Pattern[str], value: str) -> bool:
    """True when `pattern` matches the whole of `value` (never only up to a final newline)."""
    return pattern.fullmatch(value) is not None


def managed_path(value: str) -> str:
    """An absolute, normalised path for a unit, a TOML file and a shell line; never a system directory."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError(f"{value!r} must be an absolute path")
    if not _PATH_CHARS_RE.fullmatch(value):
        raise ValueError(
            f"{value!r}: a path may hold only letters, digits and . _ / @ + - "
            "(no spaces, quotes, '%', '\\' or control characters: it is written into units and shell lines)"
        )
    if posixpath.normpath(value) != value or ".." in value.split("/") or value.startswith("//"):
        raise ValueError(f"{value!r} is not a normalised path (no '..', '.', '//' or trailing '/')")
    if value in SYSTEM_DIRECTORIES or value.startswith(_FORBIDDEN_ROOTS):
        raise ValueError(
            f"{value!r} is a system directory (or lies on a volatile file system): use a directory of its own"
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
