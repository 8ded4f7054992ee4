"""An encrypted archive of the site directory (inventory, secrets, PKI with the CA key, signing keys, state).

The archive is a tar of the directory, encrypted with AES-256-GCM under a key derived from a passphrase with
scrypt (the `cryptography` library's primitives): without the passphrase it reveals nothing but its size,
and any change to it makes restoring fail. Restoring writes into a new directory only, and refuses members
that are not plain files or directories or that would land outside it.
"""

from __future__ import annotations

import io
import os
import secrets
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from logstack.base.errors import BadInputError, SecretsError
from logstack.base.fsutil import atomic_write

MAGIC = b"logstack-site-backup-1\n"
# scrypt at 2^15 × 8: about 0.1 s and 32 MiB per attempt, so guessing a passphrase is slow
_SCRYPT = {"n": 1 << 15, "r": 8, "p": 1}
MAX_ARCHIVE = 1 << 30
MIN_PASSPHRASE = 12


@dataclass(frozen=True)
class ArchiveResult:
    """What an archive holds."""

    files: int
    size: int


def _key(passphrase: bytes, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, **_SCRYPT).derive(passphrase)


def _check_passphrase(passphrase: bytes | None) -> bytes:
    if passphrase is None:
        raise SecretsError("a passphrase is needed: --passphrase-file FILE or LOGSTACK_BACKUP_PASSPHRASE")
    if len(passphrase) < MIN_PASSPHRASE:
        raise SecretsError(f"the backup passphrase must have at least {MIN_PASSPHRASE} characters")
    return passphrase


def backup_site(site_dir: Path, output: Path, passphrase: bytes | None) -> ArchiveResult:
    """Write the encrypted archive of `site_dir` to `output` (mode 0600); links and special files are refused."""
    key_material = _check_passphrase(passphrase)
    buffer = io.BytesIO()
    files = 0
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(site_dir.rglob("*")):
            if output.resolve() == path.resolve():
                continue
            mode = path.lstat().st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise BadInputError(f"{path}: not a regular file or directory; not archived")
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(site_dir)))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if stat.S_ISREG(mode):
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
                files += 1
            else:
                tar.addfile(info)
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    sealed = AESGCM(_key(key_material, salt)).encrypt(nonce, buffer.getvalue(), MAGIC)
    data = MAGIC + salt + nonce + sealed
    atomic_write(output, data, mode=0o600)
    return ArchiveResult(files, len(data))


def restore_site(archive: Path, target: Path, passphrase: bytes | None) -> ArchiveResult:
    """Decrypt `archive` into the new directory `target` (it must not exist, or be empty)."""
    key_material = _check_passphrase(passphrase)
    try:
        if archive.stat().st_size > MAX_ARCHIVE:
            raise BadInputError(f"{archive}: larger than any site backup")
        data = archive.read_bytes()
    except OSError as exc:
        raise BadInputError(f"{archive}: cannot read: {exc.strerror}") from None
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 28 + 16:
        raise BadInputError(f"{archive}: not a logstack site backup")
    salt = data[len(MAGIC) : len(MAGIC) + 16]
    nonce = data[len(MAGIC) + 16 : len(MAGIC) + 28]
    try:
        plain = AESGCM(_key(key_material, salt)).decrypt(nonce, data[len(MAGIC) + 28 :], MAGIC)
    except InvalidTag:
        raise SecretsError(f"{archive}: wrong passphrase, or the archive was changed") from None
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BadInputError(f"{target}: exists and is not an empty directory; restore into a new one")
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = 0
    with tarfile.open(fileobj=io.BytesIO(plain), mode="r") as tar:
        members = tar.getmembers()
        for member in members:
            name = Path(member.name)
            if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
                raise BadInputError(f"{archive}: member {member.name!r} is not a plain file below the site")
        for member in members:
            path = target / member.name
            if member.isdir():
                path.mkdir(mode=member.mode & 0o777 | 0o700, parents=True, exist_ok=True)
                continue
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            source = tar.extractfile(member)
            atomic_write(path, source.read() if source is not None else b"", mode=member.mode & 0o777)
            os.utime(path, (member.mtime, member.mtime))
            files += 1
    return ArchiveResult(files, len(data))
