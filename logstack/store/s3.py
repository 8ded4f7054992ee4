"""The few S3 calls backups need (put, get, list, delete), signed with AWS Signature Version 4.

Why our own code and not boto3: four calls on one bucket, path-style as GreptimeDB's own S3 backend uses it
(opendal; v1.1.4 src/common/datasource/src/object_store/s3.rs), against ~80 MB of boto3/botocore on every
server. The signature follows the AWS S3 documentation ("Signature Calculations for the Authorization
Header: Transferring Payload in a Single Chunk"); tests/test_s3.py checks it against the documentation's
own example. https is required, except to a loopback endpoint (an S3-compatible service on the machine).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
import ipaddress
import re
import ssl
import urllib.parse
from dataclasses import dataclass, field

from logstack.base.deadline import within_exchange
from logstack.base.errors import BadInputError, RuntimeFailure

MAX_OBJECT = 16 * 1024 * 1024  # what logstack reads of one object (a manifest)
MAX_PAGES = 200  # of one listing: a site's backups are a few thousand keys
MAX_KEYS = 100_000
MAX_LISTING = 64 * 1024 * 1024  # bytes of all its pages
_UNRESERVED = "-_.~"


def _quote(value: str, slash: bool = False) -> str:
    return urllib.parse.quote(value, safe=_UNRESERVED + ("/" if slash else ""))


def signing_key(secret: str, date: str, region: str, service: str = "s3") -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def authorization(
    method: str,
    path: str,
    query: dict[str, str],
    headers: dict[str, str],
    payload_sha256: str,
    access_key: str,
    secret: str,
    region: str,
    when: dt.datetime,
) -> str:
    """The Authorization header of one request; `headers` must hold host, x-amz-date and
    x-amz-content-sha256 (and every other header to sign)."""
    names = sorted(h.lower() for h in headers)
    lowered = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
    canonical = "\n".join(
        [
            method,
            _quote(path, slash=True),
            "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items())),
            "".join(f"{name}:{lowered[name]}\n" for name in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    date = when.strftime("%Y%m%d")
    scope = f"{date}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", when.strftime("%Y%m%dT%H%M%SZ"), scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    signature = hmac.new(signing_key(secret, date, region), to_sign.encode(), hashlib.sha256).hexdigest()
    return f"AWS4-HMAC-SHA256 Credential={access_key}/{scope},SignedHeaders={';'.join(names)},Signature={signature}"


@dataclass(frozen=True)
class S3Bucket:
    """A bucket reached path-style at `endpoint` with a key pair."""

    endpoint: str
    region: str
    bucket: str
    access_key: str
    secret_key: str = field(repr=False)
    timeout: float = 60.0

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.endpoint)
        loopback = False
        try:
            loopback = ipaddress.ip_address(parts.hostname or "").is_loopback
        except ValueError:
            loopback = parts.hostname == "localhost"
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise BadInputError(f"{self.endpoint}: an S3 endpoint must be https:// (http only on loopback)")

    def request(self, method: str, key: str, query: dict[str, str] | None = None, body: bytes = b"") -> bytes:
        """One signed request; the answer's body, or a RuntimeFailure naming the status (never a key)."""
        parts = urllib.parse.urlsplit(self.endpoint)
        path = f"/{self.bucket}/{key}" if key else f"/{self.bucket}"
        query = query or {}
        now = dt.datetime.now(dt.UTC)
        digest = hashlib.sha256(body).hexdigest()
        headers = {"host": parts.netloc, "x-amz-date": now.strftime("%Y%m%dT%H%M%SZ"), "x-amz-content-sha256": digest}
        headers["Authorization"] = authorization(
            method, path, query, dict(headers), digest, self.access_key, self.secret_key, self.region, now
        )
        # the query as it was signed (%20, never +)
        encoded = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items()))
        target = _quote(path, slash=True) + ("?" + encoded if encoded else "")
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(parts.netloc, timeout=self.timeout, context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(parts.netloc, timeout=self.timeout)

        def exchange() -> tuple[http.client.HTTPResponse, bytes]:
            conn.request(method, target, body=body or None, headers=headers)
            answer = conn.getresponse()
            return answer, answer.read(MAX_OBJECT + 1)

        try:  # the timeout bounds the whole request, not each read (a slow peer cannot hold a backup)
            answer, data = within_exchange(self.timeout, conn, exchange)
        except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
            raise RuntimeFailure(f"S3 {parts.hostname}: {type(exc).__name__}") from None
        if answer.status >= 300:
            code = re.search(rb"<Code>([A-Za-z]{1,60})</Code>", data)
            detail = f" {code.group(1).decode()}" if code else ""
            raise RuntimeFailure(
                f"S3 {parts.hostname}: {method} {self.bucket}/{key[:200]}: HTTP {answer.status}{detail}"
            )
        if len(data) > MAX_OBJECT:
            raise RuntimeFailure(f"S3 {parts.hostname}: {self.bucket}/{key[:200]} is larger than logstack reads")
        return data

    def put(self, key: str, data: bytes) -> None:
        self.request("PUT", key, body=data)

    def get(self, key: str) -> bytes:
        return self.request("GET", key)

    def delete(self, key: str) -> None:
        self.request("DELETE", key)

    def list(self, prefix: str, delimiter: str = "") -> tuple[list[str], list[str]]:
        """Keys and common prefixes below `prefix` (ListObjectsV2, every page; keys URL-encoded by S3 and
        decoded here). A key outside the prefix is never returned, whatever the server answers."""
        keys: list[str] = []
        prefixes: list[str] = []
        token = ""
        seen: set[str] = set()
        size = 0
        for _ in range(MAX_PAGES):
            query = {"list-type": "2", "prefix": prefix, "encoding-type": "url"}
            if delimiter:
                query["delimiter"] = delimiter
            if token:
                query["continuation-token"] = token
            raw = self.request("GET", "", query)
            size += len(raw)
            page = raw.decode("utf-8", "replace")
            keys += [urllib.parse.unquote(k) for k in re.findall(r"<Key>([^<]*)</Key>", page)]
            if len(keys) + len(prefixes) > MAX_KEYS or size > MAX_LISTING:
                raise RuntimeFailure(f"S3: the listing of {self.bucket}/{prefix[:100]} is larger than any site's")
            prefixes += [
                urllib.parse.unquote(p) for p in re.findall(r"<CommonPrefixes>\s*<Prefix>([^<]*)</Prefix>", page)
            ]
            more = re.search(r"<NextContinuationToken>([^<]*)</NextContinuationToken>", page)
            if "<IsTruncated>true</IsTruncated>" not in page or more is None:
                return [k for k in keys if below(k, prefix)], [p for p in prefixes if below(p, prefix)]
            token = _unescape(more.group(1))
            if token in seen:
                raise RuntimeFailure(f"S3: the listing of {self.bucket}/{prefix[:100]} repeats itself")
            seen.add(token)
        raise RuntimeFailure(f"S3: the listing of {self.bucket}/{prefix[:100]} has more than {MAX_PAGES} pages")


def below(key: str, prefix: str) -> bool:
    """Whether a listed key (decoded) lies below `prefix` as it reads: no `.`, `..` or empty segment after it
    (`…/20200101T000000Z/../../victim` is not below the backups), printable, at most S3's 1024 bytes."""
    if not key.startswith(prefix) or len(key.encode()) > 1024 or not key.isprintable():
        return False
    rest = key[len(prefix) :].rstrip("/")
    return all(part not in ("", ".", "..") for part in rest.split("/")) if rest else True


def _unescape(text: str) -> str:
    return (
        text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", '"')
        .replace("&apos;", "'")
        .replace("&amp;", "&")
    )
