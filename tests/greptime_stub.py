"""The one HTTP stand-in: GreptimeDB's HTTP API (GreptimeDB cannot run here), recording every request."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest


class FakeGreptime(BaseHTTPRequestHandler):
    """Records what init-server sends to GreptimeDB's HTTP API and answers like GreptimeDB."""

    requests: ClassVar[list[tuple[str, str, str | None, str | None]]] = []

    def do_GET(self) -> None:
        self.requests.append(("GET", self.path, self.headers.get("Authorization"), None))
        self._reply(200, b"{}")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        sql = urllib.parse.parse_qs(body).get("sql", [None])[0]
        self.requests.append(("POST", self.path, self.headers.get("Authorization"), sql))
        self._reply(200, json.dumps({"output": [{"affectedrows": 1}], "execution_time_ms": 1}).encode())

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def greptime_api():
    FakeGreptime.requests = []
    try:
        server = ThreadingHTTPServer(("127.0.0.1", 4000), FakeGreptime)
    except OSError as exc:
        pytest.fail(f"127.0.0.1:4000 is taken ({exc}); the GreptimeDB stand-in needs it")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield FakeGreptime.requests
    server.shutdown()
    server.server_close()
