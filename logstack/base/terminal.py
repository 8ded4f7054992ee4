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
    """Printable text: every control character as a visible escape."""
    text = str(value)
    if not UNSAFE.search(text):
        return text
    return UNSAFE.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text
    )
