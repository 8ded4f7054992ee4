"""Where backups live: a directory on the server, or a bucket on S3.

GreptimeDB writes the data itself (COPY DATABASE ... TO '<location>'): for a directory as the greptime user,
for S3 with the keys given in the statement's CONNECTION clause (v1.1.4
src/common/datasource/src/object_store/s3.rs: access_key_id, secret_access_key, region, endpoint; the
bucket is the URL's host, the key prefix its path). logstack writes, lists and removes the manifests and
old backups through the same storage.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from logstack.base.errors import BadInputError
from logstack.base.validation import KEY_PREFIX_RE, S3_KEY_RE, s3_endpoint
from logstack.store.s3 import S3Bucket

MANIFEST = "logstack-backup.json"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_STAMP_RE = re.compile(r"\d{8}T\d{6}Z")


def is_stamp(name: str, now: dt.datetime) -> bool:
    """A name logstack gave a backup, of a time not after now (a later one is left alone)."""
    if not _STAMP_RE.fullmatch(name):
        return False
    try:
        when = dt.datetime.strptime(name, STAMP_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        return False
    return when <= now


class Storage(Protocol):
    def location(self, stamp: str) -> str: ...
    def connection(self) -> str: ...
    def secrets(self) -> tuple[str, ...]: ...
    def begin(self, stamp: str) -> None: ...
    def write_manifest(self, stamp: str, data: bytes) -> None: ...
    def listing(self, now: dt.datetime) -> tuple[list[str], list[str]]: ...
    def remove(self, stamp: str) -> None: ...


@dataclass(frozen=True)
class DirectoryStorage:
    """Backups in a directory on the server (the greptime user's)."""

    path: Path

    def location(self, stamp: str) -> str:
        return f"{self.path / stamp}/"

    def connection(self) -> str:
        return ""

    def secrets(self) -> tuple[str, ...]:
        return ()

    def begin(self, stamp: str) -> None:
        (self.path / stamp).mkdir(mode=0o750)

    def write_manifest(self, stamp: str, data: bytes) -> None:
        partial = self.path / stamp / f".{MANIFEST}.tmp"
        partial.write_bytes(data)
        os.replace(partial, self.path / stamp / MANIFEST)

    def listing(self, now: dt.datetime) -> tuple[list[str], list[str]]:
        """Complete and incomplete backups (directories named as logstack names them; no links)."""
        complete, incomplete = [], []
        for entry in self.path.iterdir():
            if is_stamp(entry.name, now) and not entry.is_symlink() and entry.is_dir():
                (complete if (entry / MANIFEST).is_file() else incomplete).append(entry.name)
        return complete, incomplete

    def remove(self, stamp: str) -> None:
        shutil.rmtree(self.path / stamp)


@dataclass(frozen=True)
class S3Storage:
    """Backups below a key prefix of an S3 bucket."""

    bucket: S3Bucket
    root: str  # key prefix, no leading or trailing '/'

    def __post_init__(self) -> None:
        for value in (self.bucket.access_key, self.bucket.secret_key, self.bucket.region):
            if not S3_KEY_RE.fullmatch(value):
                raise BadInputError("the S3 keys and region must be 1-256 characters of [A-Za-z0-9+/=._~-]")

    def _prefix(self, stamp: str = "") -> str:
        return "".join(p + "/" for p in (self.root, stamp) if p)

    def location(self, stamp: str) -> str:
        return f"s3://{self.bucket.bucket}/{self._prefix(stamp)}"

    def connection(self) -> str:
        b = self.bucket
        return (
            f" CONNECTION (ACCESS_KEY_ID = '{b.access_key}', SECRET_ACCESS_KEY = '{b.secret_key}', "
            f"REGION = '{b.region}', ENDPOINT = '{b.endpoint}')"
        )

    def secrets(self) -> tuple[str, ...]:
        return (self.bucket.access_key, self.bucket.secret_key)

    def begin(self, stamp: str) -> None:
        pass  # a prefix needs no making

    def write_manifest(self, stamp: str, data: bytes) -> None:
        self.bucket.put(self._prefix(stamp) + MANIFEST, data)

    def read_manifest(self, stamp: str) -> bytes:
        return self.bucket.get(self._prefix(stamp) + MANIFEST)

    def listing(self, now: dt.datetime) -> tuple[list[str], list[str]]:
        keys, _ = self.bucket.list(self._prefix())
        found: dict[str, bool] = {}
        for key in keys:
            stamp, _, rest = key[len(self._prefix()) :].partition("/")
            if is_stamp(stamp, now):
                found[stamp] = found.get(stamp, False) or rest == MANIFEST
        return [s for s, done in found.items() if done], [s for s, done in found.items() if not done]

    def remove(self, stamp: str) -> None:
        mine = self._prefix(stamp)
        keys, _ = self.bucket.list(mine)
        for key in sorted((k for k in keys if k.startswith(mine)), key=lambda k: k.endswith(MANIFEST)):
            self.bucket.delete(key)  # the manifest last: the backup counts as complete until it is gone


def s3_storage(url: str, endpoint: str | None, region: str, access_key: str, secret_key: str) -> S3Storage:
    """An `s3://bucket/prefix` location with its endpoint (default: AWS in `region`) and keys."""
    bucket, root = parse_s3(url)
    if endpoint is not None:
        try:
            endpoint = s3_endpoint(endpoint)
        except ValueError as exc:
            raise BadInputError(f"--s3-endpoint: {exc}") from None
    storage = S3Bucket(endpoint or f"https://s3.{region}.amazonaws.com", region, bucket, access_key, secret_key)
    return S3Storage(storage, root)


def parse_s3(url: str) -> tuple[str, str]:
    """(bucket, prefix) of an s3://bucket/prefix location: plain names, no '.', '..' or empty segments."""
    match = re.fullmatch(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.{0,200}))?", url.rstrip("/"))
    root = (match.group(2) or "") if match else ""
    if match is None or not KEY_PREFIX_RE.fullmatch(root):
        raise BadInputError(f"{url[:80]!r} is not an s3://bucket/prefix location of plain names")
    return match.group(1), root
