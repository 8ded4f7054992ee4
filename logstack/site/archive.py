"""An encrypted archive of the site directory (inventory, secrets, PKI with the CA key, signing keys, state).

The archive is a tar of the directory, encrypted with AES-256-GCM under a key derived from a passphrase with
scrypt (the `cryptography` library's primitives): without the passphrase it reveals nothing but its size,
and any change to it makes restoring fail. Restoring writes into a new directory only, and refuses members
that are not plain files or directories or that would land outside it.
"""

from __future__ import annotations

import io
import math
import os
import secrets
import shutil
import sqlite3
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from logstack.base.errors import BadInputError, SecretsError
from logstack.base.fsutil import atomic_write
from logstack.base.safe_read import read_file

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
            if path.name.endswith((".sqlite-wal", ".sqlite-shm", ".sqlite-journal")):
                continue  # a state's own side files: its snapshot below holds what they had committed
            mode = path.lstat().st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise BadInputError(f"{path}: not a regular file or directory; not archived")
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(site_dir)))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if stat.S_ISREG(mode):
                data = _consistent(path) if path.suffix == ".sqlite" else None
                if data is not None:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                else:
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


def _consistent(path: Path) -> bytes | None:
    """An SQLite state as of its last commit, through SQLite's backup API: an analysis committing while the
    archive is made cannot leave a torn copy. None when the file is not a database SQLite reads."""
    with tempfile.TemporaryDirectory(prefix="logstack-archive-") as tmp:
        copy = Path(tmp) / "copy.sqlite"
        try:
            source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
            try:
                with sqlite3.connect(copy) as target:
                    source.backup(target)
                target.close()
            finally:
                source.close()
        except sqlite3.Error:
            return None
        return copy.read_bytes()


def restore_site(archive: Path, target: Path, passphrase: bytes | None) -> ArchiveResult:
    """Decrypt `archive` into the new directory `target` (it must not exist, or be empty)."""
    key_material = _check_passphrase(passphrase)
    try:
        data = read_file(archive, "site backup", MAX_ARCHIVE, follow_links=True)
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
    members = _checked_members(archive, plain)
    created = not target.exists()
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        try:
            files = _extract(plain, members, target)
        except OSError as exc:  # what the checks could not foresee on this file system
            raise BadInputError(f"{archive}: cannot restore it here: {exc.strerror or exc}") from None
    except BaseException:
        # a restore that fails leaves nothing half-written: the directory was new or empty
        for child in target.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        if created:
            target.rmdir()
        raise
    return ArchiveResult(files, len(data))


# What a site holds: a few thousand small files (facts, certificates, state); far less than these.
MAX_MEMBERS = 100_000
MAX_MEMBER = 256 * 1024 * 1024
MAX_TOTAL = 1024 * 1024 * 1024


def _checked_members(archive: Path, plain: bytes) -> list[tarfile.TarInfo]:
    """Every member, checked before anything is written: count, kind, name and size (sparse ones refused)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(plain), mode="r") as tar:
            members = []
            for member in tar:
                members.append(member)
                if len(members) > MAX_MEMBERS:
                    raise BadInputError(f"{archive}: more than {MAX_MEMBERS} members; not a site backup")
    except (tarfile.TarError, OSError, EOFError, ValueError, OverflowError, UnicodeError) as exc:
        raise BadInputError(f"{archive}: not a readable site archive ({type(exc).__name__})") from None
    seen: set[str] = set()
    files: set[str] = set()
    total = 0
    for member in members:
        name = Path(member.name)
        plain_file = member.isreg() and not member.issparse()
        if (
            not member.name
            or "\0" in member.name
            or name.is_absolute()
            or ".." in name.parts
            or name.as_posix() in (".", "")
            or any(len(part.encode()) > 255 for part in name.parts)
            or not (plain_file or member.isdir())
            or name.as_posix() in seen
            or not math.isfinite(member.mtime)
            # a file where a directory must be, for this member or one before it
            or any(parent.as_posix() in files for parent in name.parents)
            # a file where a directory was, for a member before it
            or (plain_file and any(s.startswith(name.as_posix() + "/") for s in seen))
        ):
            raise BadInputError(f"{archive}: member {member.name[:80]!r} is not a plain file below the site")
        seen.add(name.as_posix())
        if plain_file:
            files.add(name.as_posix())
        if member.size > MAX_MEMBER or member.size < 0:
            raise BadInputError(f"{archive}: member {member.name[:80]!r} is larger than any site file")
        total += member.size
        if total > MAX_TOTAL:
            raise BadInputError(f"{archive}: holds more than any site ({MAX_TOTAL >> 30} GiB)")
    return members


def _extract(plain: bytes, members: list[tarfile.TarInfo], target: Path) -> int:
    files = 0
    with tarfile.open(fileobj=io.BytesIO(plain), mode="r") as tar:
        for member in members:
            path = target / member.name
            if member.isdir():
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
                continue
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            source = tar.extractfile(member)
            content = source.read(member.size + 1) if source is not None else b""
            if len(content) != member.size:
                raise BadInputError(f"member {member.name[:80]!r}: its data is not its stated size")
            # never more than the owner's read and write and others' read: no set-id, execute or shared write
            atomic_write(path, content, mode=member.mode & 0o644)
            os.utime(path, (member.mtime, member.mtime))
            files += 1
    return files
