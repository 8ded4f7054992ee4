"""A CA bundle given by the operator (an external store's `ca_file`, `--db-tls-ca`): certificates only.

It is deployed to machines and trusted for TLS, so it is read as a certificate file and nothing else: a
regular file of at most 1 MiB, parsed, and written out again holding only its certificates (a private key
pasted into it never travels further)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from logstack.base.errors import BadInputError

MAX_BYTES = 1 << 20


def resolve(value: str, base: Path) -> Path:
    """A path as written in the inventory: ~ expanded, relative to the site."""
    try:
        path = Path(value).expanduser()
    except RuntimeError:
        raise BadInputError(f"{value}: cannot expand ~ in this path") from None
    return path if path.is_absolute() else base / path


def read_bundle(path: Path, what: str) -> bytes:
    """The certificates of a PEM file, re-encoded; anything else is a one-line error naming `what`."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise BadInputError(f"{path}: {what}: cannot read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise BadInputError(f"{path}: {what}: not a regular file")
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise BadInputError(f"{path}: {what}: larger than 1 MiB; not a CA bundle")
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise BadInputError(f"{path}: {what}: holds no PEM certificate") from None
    return b"".join(cert.public_bytes(Encoding.PEM) for cert in certificates)
