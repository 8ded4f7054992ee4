"""Local receivers for alert destinations: an HTTPS webhook, an SMTP server with STARTTLS and AUTH
(aiosmtpd), a Zabbix trapper stand-in, each recording what it accepted.

The trapper stand-in speaks the Zabbix sender protocol as Zabbix documents it and nothing more: a header
`ZBXD` + flags 0x01 + 4-byte little-endian data length + 4 reserved bytes, then the JSON request
`{"request": "sender data", "data": [{"host", "key", "value", "clock"...}]}`; the answer in the same
framing is `{"response": "success", "info": "processed: N; failed: M; total: T; seconds spent: S"}`
(Zabbix manual, Appendixes > Protocols > Header and Zabbix sender protocol; the format zabbix-utils
parses in zabbix_utils/types.py TrapperResponse.parse). A value for a host/key it does not know fails.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(directory: Path, name: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA: clients trust it through ca_file)."""
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(name))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class Webhook:
    """An HTTPS server on 127.0.0.1 recording each POST (headers and JSON body); `status` is its answer."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.posts: list[tuple[dict[str, str], dict]] = []
        self.status = 200
        self.delay = 0.0  # seconds before answering (after taking the body)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if owner.status == 200:
                    owner.posts.append((dict(self.headers), json.loads(body)))
                time.sleep(owner.delay)
                self.send_response(owner.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def events(self) -> list[dict]:
        return [e for _, body in self.posts for e in body["events"]]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Trapper:
    """The Zabbix trapper stand-in; `items` holds (host, key) pairs it knows."""

    def __init__(self, items: set[tuple[str, str]]) -> None:
        self.items = items
        self.values: list[dict] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                header = _read(conn, 13)
                if header[:5] != b"ZBXD\x01":
                    continue
                length = struct.unpack("<II", header[5:13])[0]
                request = json.loads(_read(conn, length))
                ok = [d for d in request["data"] if (d["host"], d["key"]) in self.items]
                self.values += ok
                total = len(request["data"])
                info = f"processed: {len(ok)}; failed: {total - len(ok)}; total: {total}; seconds spent: 0.000042"
                answer = json.dumps({"response": "success", "info": info}).encode()
                conn.sendall(b"ZBXD\x01" + struct.pack("<II", len(answer), 0) + answer)

    def stop(self) -> None:
        self.listener.close()


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


@contextlib.contextmanager
def smtp_server(cert: Path, key: Path, user: str, password: str, implicit: bool = False) -> Iterator[tuple[int, list]]:
    """aiosmtpd with STARTTLS required before AUTH and mail (or, `implicit`, TLS from the first byte);
    yields (port, accepted messages)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    received: list = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope)
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            user.encode(),
            password.encode(),
        )
        return AuthResult(success=ok)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tls = {"ssl_context": context, "server_hostname": "127.0.0.1"} if implicit else {"tls_context": context}
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=port,
        require_starttls=not implicit,
        authenticator=authenticator,
        auth_require_tls=not implicit,
        **tls,
    )
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


def email_destination(port: int, **settings: object):
    """An email destination on 127.0.0.1:`port` from a@example.com to b@example.com, with `settings`."""
    from logstack.site.alerts import Email

    fields = {"type": "email", "name": "m", "host": "127.0.0.1", "port": port, "sender": "a@example.com"}
    return Email(**{**fields, "recipients": ["b@example.com"], **settings})
