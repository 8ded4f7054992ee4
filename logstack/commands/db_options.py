"""Where the store's MySQL endpoint is: options shared by every command that reads the store (and light:
`analyze` loads no inventory code for them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DbHost = Annotated[
    str | None,
    typer.Option("--db-host", help="GreptimeDB's MySQL endpoint (default: the inventory's, else 127.0.0.1)."),
]
DbPort = Annotated[int | None, typer.Option("--db-port", help="Default: the inventory's, else 4002.")]
DbTls = Annotated[bool, typer.Option("--db-tls", help="Verified TLS to the MySQL endpoint (an external store).")]
DbTlsCa = Annotated[Path | None, typer.Option("--db-tls-ca", help="CA to verify it with (implies --db-tls).")]
