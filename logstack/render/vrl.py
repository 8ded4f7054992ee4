"""The VRL programs senders run: which lines they keep, the identity and heartbeat fields they stamp."""

from __future__ import annotations

import json
import re

from logstack.site.inventory import Host


def vrl_str(value: str) -> str:
    """A VRL string expression for `value` that no interpolation of Vector's can alter.

    Vector rewrites `$NAME`, `${NAME}` and `$$` in the config text when environment interpolation is on
    (v0.57.0 src/config/vars.rs; off by default since 0.57, src/config/loading/mod.rs, on with
    --dangerously-allow-env-var-interpolation and in older releases), and `SECRET[backend.key]` when a
    secret backend is configured (src/config/loading/secret.rs). VRL has no escape for either, so the
    value is split into literals joined with `+` such that every `$` is followed by a closing quote and
    `SECRET` never touches its `[`: neither pattern can match, whatever the mode. (The inventory admits no
    control characters or braces in values.)
    """
    pieces = [value]
    for cut in ("$", "SECRET"):
        pieces = [part for piece in pieces for part in _cut_after(piece, cut)]
    return " + ".join(json.dumps(piece, ensure_ascii=False) for piece in pieces)


def _cut_after(value: str, marker: str) -> list[str]:
    parts = value.split(marker)
    if len(parts) == 1:
        return parts
    return [part + marker for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


# Heartbeats name the configuration that sends them: a digest of the sender's vector.yaml (with this
# placeholder in its place), CA bundle and certificate. `enroll-host` waits for a heartbeat carrying the
# digest it deployed, so delivery is proven for the new configuration, not for the one it replaced.
CONFIG_DIGEST_PLACEHOLDER = "logstack-config-digest"
HEARTBEAT_VRL = (
    '.SYSLOG_IDENTIFIER = "logstack-heartbeat"\n'
    '.message = "heartbeat"\n'
    '.__REALTIME_TIMESTAMP = to_string(to_unix_timestamp(now(), unit: "microseconds"))\n'
    f'.logstack_config = "{CONFIG_DIGEST_PLACEHOLDER}"\n'
    "del(.service)\n"
)


_DIGEST_IN_CONFIG_RE = re.compile(rb'\.logstack_config = "([0-9a-f]{16})"')


def digest_in(config: bytes) -> str | None:
    """The digest a rendered sender config stamps on its heartbeats."""
    match = _DIGEST_IN_CONFIG_RE.search(config)
    return match.group(1).decode() if match else None


def identity_vrl(host: Host) -> str:
    """Remap stamping the host's identity columns, always as strings."""
    return "".join(f".{name} = {vrl_str(value)}\n" for name, value in host.columns.items())
