"""A TCP relay from a fixed loopback port to a stand-in on another port.

Units rendered for the server name GreptimeDB's MySQL port (127.0.0.1:4002); a test that runs such a unit's
ExecStart line reaches the MariaDB stand-in through this relay, as the greptime_api stand-in holds 4000."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def relay(listen_port: int, target_port: int) -> Iterator[None]:
    try:
        server = socket.create_server(("127.0.0.1", listen_port))
    except OSError as exc:
        pytest.fail(f"127.0.0.1:{listen_port} is taken ({exc}); the relay to the stand-in needs it")
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", target_port), timeout=10)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield
    finally:
        stop.set()
        server.close()
