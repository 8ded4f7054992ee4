"""Text from outside (log lines, remote files, remote errors) made safe to print on a terminal or page."""

from __future__ import annotations

import re

# Control characters (C0, DEL, C1), line and paragraph separators, and every Unicode format character
# (category Cf: bidi marks and overrides, zero-width characters, tags...), which can hide or reorder
# text on a terminal or page. A test checks this class against unicodedata.
UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
    "\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)


def escape(value: object) -> str:
    """Printable text: every control character as a visible escape (\\xNN, \\uNNNN, \\UNNNNNNNN: one reading each)."""
    text = str(value)
    if not UNSAFE.search(text):
        return text
    return UNSAFE.sub(_visible, text)


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def json_escape(text: str) -> str:
    """JSON text (orjson's, which escapes C0 controls only) with every other character of UNSAFE as a \\u escape:
    one beyond U+FFFF as its UTF-16 surrogate pair (JSON reads four hex digits an escape: `\\ue0041` would read
    as U+E004 and `1`)."""
    if not UNSAFE.search(text):
        return text
    return UNSAFE.sub(_json_unit, text)


def _json_unit(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
