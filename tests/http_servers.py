"""HTTP stand-ins served on a free port of 127.0.0.1 (no test relies on a port being free)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextlib.contextmanager
def on_free_port(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` served until the block ends; yields its endpoint (http://127.0.0.1:PORT)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
