"""The site's private CA, server and per-host client certificates, and the registry `pki/index.json`.

`mint` is pure X.509, `registry` the files and the index, `lifecycle` the rules (`PKI`), `service` what
the commands call.
"""

from __future__ import annotations

from pathlib import Path

from logstack.base.errors import PKIError
from logstack.pki.lifecycle import PKI
from logstack.pki.mint import fingerprint
from logstack.pki.registry import SERVER, CARecord, CertRecord, Registry
from logstack.site import secrets

__all__ = ["PKI", "SERVER", "CARecord", "CertRecord", "Registry", "fingerprint", "read_passphrase"]


def read_passphrase(env_value: str | None, passphrase_file: Path | None) -> bytes | None:
    """The CA passphrase from --passphrase-file or LOGSTACK_CA_PASSPHRASE (file wins)."""
    return secrets.read_passphrase(env_value, passphrase_file, PKIError)
