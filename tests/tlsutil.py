"""Real TLS handshakes for the PKI tests: Python's ssl module and the openssl command line."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.processes import spawn, stop_group


@dataclass
class Outcome:
    ok: bool
    server_error: str = ""
    client_error: str = ""
    peer_cn: str = ""


def python_handshake(
    ca_bundle: Path,
    server_cert: Path,
    server_key: Path,
    client_cert: Path | None,
    client_key: Path | None,
    ca_for_client: Path,
    hostname: str,
) -> Outcome:
    """Mutual TLS as the receiver does it: client certificate required, hostname verified by the client."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(server_cert, server_key)
    server_ctx.load_verify_locations(ca_bundle)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname on, CERT_REQUIRED
    client_ctx.load_verify_locations(ca_for_client)
    if client_cert is not None:
        client_ctx.load_cert_chain(client_cert, client_key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    outcome = Outcome(ok=False)

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                peer = tls.getpeercert()
                outcome.peer_cn = dict(x[0] for x in peer["subject"]).get("commonName", "")
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            outcome.server_error = str(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_ctx.wrap_socket(raw, server_hostname=hostname) as tls,
        ):
            outcome.ok = tls.recv(2) == b"ok"
    except (ssl.SSLError, OSError) as exc:
        outcome.client_error = str(exc)
    thread.join(10)
    listener.close()
    outcome.ok = outcome.ok and not outcome.server_error
    return outcome


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openssl_handshake(
    ca_bundle: Path,
    server_cert: Path,
    server_key: Path,
    client_cert: Path,
    client_key: Path,
    ca_for_client: Path,
    hostname: str,
) -> tuple[bool, str]:
    """`openssl s_server -Verify` against `openssl s_client`; returns (handshake ok, transcript)."""
    port = _free_port()
    server = spawn(
        [
            "openssl",
            "s_server",
            "-accept",
            f"127.0.0.1:{port}",
            "-cert",
            str(server_cert),
            "-key",
            str(server_key),
            "-CAfile",
            str(ca_bundle),
            "-Verify",
            "2",
            "-verify_return_error",
            "-naccept",
            "1",
            "-rev",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    client = None
    try:
        assert server.stdout is not None
        seen = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # s_server prints ACCEPT once it listens
            line = server.stdout.readline()
            seen.append(line)
            if not line or line.startswith("ACCEPT"):
                break
        client = spawn(
            [
                "openssl",
                "s_client",
                "-connect",
                f"127.0.0.1:{port}",
                "-cert",
                str(client_cert),
                "-key",
                str(client_key),
                "-CAfile",
                str(ca_for_client),
                "-verify_return_error",
                "-verify_hostname",
                hostname,
                "-servername",
                hostname,
                "-quiet",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert client.stdin is not None and client.stdout is not None
        echoed: list[str] = []

        def read_echo() -> None:
            line = client.stdout.readline()  # a refused handshake ends the process: EOF
            echoed.append(line)

        reader = threading.Thread(target=read_echo, daemon=True)
        reader.start()
        try:
            client.stdin.write("hello\n")
            client.stdin.flush()
        except BrokenPipeError:
            pass
        reader.join(15)
        client.kill()
        _, client_err = client.communicate()
        try:
            out, _ = server.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            out, _ = server.communicate()
    finally:  # whatever failed above, neither openssl outlives the handshake
        stop_group(server)
        if client is not None:
            stop_group(client)
    client_out = "".join(echoed)
    transcript = "".join(seen) + out + client_out + client_err
    # -rev echoes the line reversed, which happens only after a completed, verified handshake.
    return "olleh" in client_out, transcript


@contextlib.contextmanager
def openssl_server(address: str, port: int, cert: Path, key: Path, bundle: Path) -> Iterator[None]:
    """A receiver's TLS port as Vector serves it: openssl s_server with its certificate, a client certificate
    of the site CA required; up once it accepts a connection, ended with the block."""
    server = spawn(
        [
            "openssl",
            "s_server",
            "-accept",
            f"{address}:{port}",
            "-cert",
            str(cert),
            "-key",
            str(key),
            "-CAfile",
            str(bundle),
            "-Verify",
            "2",
            "-verify_return_error",
            "-quiet",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection((address, port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)
        yield
    finally:
        stop_group(server)
