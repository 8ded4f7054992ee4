"""An external store is read over verified TLS only: a server that offers no TLS never sees the password."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from logstack.base.errors import RuntimeFailure
from logstack.store.greptime import DatabaseConfig
from logstack.store.reader import DatabaseSource


def _packet(seq: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


def test_a_store_offering_no_tls_gets_no_password(tmp_path):
    """The MySQL handshake (protocol 10) of a server without CLIENT_SSL (0x800) in its capabilities, which
    would then ask for the password in clear (mysql_clear_password)."""
    from tests.alert_receivers import self_signed

    cert, _ = self_signed(tmp_path)
    seen: dict[str, object] = {}
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            caps = 0x0200 | 0x8000 | 0x80000 | 0x8  # PROTOCOL_41, SECURE_CONNECTION, PLUGIN_AUTH, CONNECT_WITH_DB
            greeting = (
                b"\x0a8.0.0-stand-in\0"
                + struct.pack("<I", 1)
                + b"abcdefgh\0"
                + struct.pack("<H", caps & 0xFFFF)
                + b"\x21"
                + struct.pack("<H", 2)
                + struct.pack("<H", caps >> 16)
                + bytes([21])
                + b"\0" * 10
                + b"ijklmnopqrst\0"
                + b"mysql_native_password\0"
            )
            conn.sendall(_packet(0, greeting))
            conn.settimeout(5)
            received = b""
            try:
                while chunk := conn.recv(4096):
                    received += chunk
                    conn.sendall(_packet(2, b"\xfemysql_clear_password\0\0"))
            except OSError:
                pass
            seen["received"] = received

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    config = DatabaseConfig(
        host="127.0.0.1", port=listener.getsockname()[1], password="analyst-secret-123456", tls=True, tls_ca=str(cert)
    )
    with pytest.raises(RuntimeFailure, match="SSL is required"), DatabaseSource(config):
        pass
    thread.join(10)
    listener.close()
    assert b"analyst-secret" not in seen.get("received", b"")


def test_a_tunnel_pump_ends_quietly_when_the_ssh_transport_has_gone():
    """paramiko raises EOFError (not OSError) from a channel whose transport ended: no thread traceback."""
    import socket

    from logstack.store.greptime import PortForward

    class EndedChannel:
        def recv(self, size: int) -> bytes:
            raise EOFError

        def close(self) -> None:
            raise EOFError

    mine, theirs = socket.socketpair()
    try:
        PortForward._pump(EndedChannel(), mine)  # raises on the old code
        PortForward._pump(theirs, EndedChannel())  # peer closed below: recv gives b"", then close raises
    finally:
        mine.close()
        theirs.close()
