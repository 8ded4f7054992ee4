"""What `--since-last-run` remembers between runs: where to resume and what was already reported."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from logstack.errors import BadInputError
from logstack.fsutil import atomic_write


@dataclass
class RunState:
    """resume_from: ingest time (µs) before which every line belongs to a reported event."""

    resume_from: int | None = None
    reported_lines: set[str] = field(default_factory=set)
    reported_ids: dict[str, int] = field(default_factory=dict)  # event id → when it was reported


def load_state(path: Path) -> RunState:
    """The saved state, or a fresh one on the first run."""
    if not path.exists():
        return RunState()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return RunState(
            resume_from=raw["resume_from"],
            reported_lines=set(raw["reported_lines"]),
            reported_ids={str(k): int(v) for k, v in raw["reported_ids"].items()},
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadInputError(f"{path}: unreadable analysis state ({exc}); move it away to start over") from None


def save_state(path: Path, state: RunState) -> None:
    """Write the state atomically (a crash leaves the previous state)."""
    data = {
        "version": 1,
        "resume_from": state.resume_from,
        "reported_lines": sorted(state.reported_lines),
        "reported_ids": dict(sorted(state.reported_ids.items())),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, separators=(",", ":")) + "\n", mode=0o600)
