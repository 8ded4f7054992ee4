"""Secrets kept out of what a peer said: a peer's error text may quote what it was sent (SMTP AUTH lines, an
HTTP Authorization header), and that text reaches a log or a terminal."""

from __future__ import annotations

import base64
import re

_BASE64_RE = re.compile(r"[A-Za-z0-9+/_-]{6,}={0,2}")  # either alphabet: standard, or URL-safe


def scrub(text: str, secrets: tuple[str | None, ...]) -> str:
    """`text` without any of `secrets`, as they are or base64-encoded (SMTP AUTH carries them so)."""
    known = [s for s in secrets if s and len(s) >= 4]
    for secret in known:
        text = text.replace(secret, "<secret>")

    def hide(match: re.Match[str]) -> str:
        token = match.group(0).rstrip("=")
        for start in range(4):  # glued to a letter before it (`\\nAGFs…` in a repr) the run is misaligned
            part = token[start:]
            # padded (its last bytes, which end the secret, are kept), or cut to whole groups of four
            for whole in (part + "=" * (-len(part) % 4), part[: len(part) - len(part) % 4]):
                for decode in (base64.b64decode, base64.urlsafe_b64decode):
                    try:
                        decoded = decode(whole or "")
                    except ValueError:
                        continue
                    if any(s.encode() in decoded for s in known):
                        return "<secret>"
        return match.group(0)

    return _BASE64_RE.sub(hide, text) if known else text
