"""Where logstack keeps state: the data root on the server, and how an analysis state file is named."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from logstack.base.errors import BadInputError

# The analysis service's StateDirectory on the server (its units and `status` name it alike).
DATA_ROOT = Path("/var/lib/logstack")
STATE_GLOB = "analyze-*.sqlite"
_STATE_ID_RE = re.compile(r"[0-9a-f]{12}")


def source_id(journal: str | None, host: str, port: int, db: str | None, table: str | None) -> str:
    """What names an analysis state: the export, or the store's endpoint, database and table."""
    if journal is not None:
        ident = f"journal:{Path(journal).resolve() if journal != '-' else '-'}"
    else:
        ident = f"db:{host}:{port}:{db}:{table}"
    return hashlib.sha256(ident.encode()).hexdigest()[:12]


def state_file(directory: Path, state_id: str) -> Path:
    """The analysis state of one source in `directory`; `state_id` is 12 hex digits (see `source_id`)."""
    if not _STATE_ID_RE.fullmatch(state_id):
        raise BadInputError(f"--state-id {state_id[:20]!r} is not 12 hex digits")
    return directory / STATE_GLOB.replace("*", state_id)
