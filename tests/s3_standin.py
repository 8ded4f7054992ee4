"""An S3 stand-in: path-style PUT, GET and DELETE of objects and ListObjectsV2, as the Amazon S3 API Reference
describes them, and nothing more. Every request's Signature Version 4 is checked (403
SignatureDoesNotMatch otherwise) with the signer tests/test_s3.py proves against AWS's examples. A listing
page holds at most two keys, so continuation tokens are used (S3 may return fewer than max-keys)."""

from __future__ import annotations

import contextlib
import hashlib
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import ClassVar
from xml.sax.saxutils import escape

from logstack.store.s3 import authorization
from tests.http_servers import on_free_port

ACCESS, SECRET, REGION = "AKIDLOGSTACKTEST", "c2VjcmV0LWtleS1mb3ItdGVzdHM=", "eu-central-1"
PAGE = 2


class FakeS3(BaseHTTPRequestHandler):
    objects: ClassVar[dict[tuple[str, str], bytes]] = {}
    requests: ClassVar[list[tuple[str, str]]] = []

    def _signed(self, body: bytes) -> bool:
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        headers = {k: self.headers[k] for k in ("host", "x-amz-date", "x-amz-content-sha256")}
        try:
            when = datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except (TypeError, ValueError):
            return False
        path = urllib.parse.unquote(parts.path)
        digest = hashlib.sha256(body).hexdigest()
        expected = authorization(self.command, path, query, headers, digest, ACCESS, SECRET, REGION, when)
        return self.headers.get("Authorization") == expected and headers["x-amz-content-sha256"] == digest

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        self.requests.append((self.command, self.path))
        if not self._signed(body):
            return self._error(403, "SignatureDoesNotMatch")
        parts = urllib.parse.urlsplit(self.path)
        bucket, _, key = urllib.parse.unquote(parts.path).lstrip("/").partition("/")
        query = dict(urllib.parse.parse_qsl(parts.query))
        if self.command == "GET" and not key and query.get("list-type") == "2":
            return self._list(bucket, query)
        if self.command == "PUT":
            self.objects[(bucket, key)] = body
            return self._send(200, b"")
        if self.command == "GET":
            if (bucket, key) not in self.objects:
                return self._error(404, "NoSuchKey")
            return self._send(200, self.objects[(bucket, key)])
        if self.command == "DELETE":
            self.objects.pop((bucket, key), None)
            return self._send(204, b"")
        return self._error(400, "InvalidRequest")

    do_GET = do_PUT = do_DELETE = _handle

    def _list(self, bucket: str, query: dict[str, str]) -> None:
        prefix, start = query.get("prefix", ""), query.get("continuation-token", "")
        keys = sorted(k for b, k in self.objects if b == bucket and k.startswith(prefix) and k > start)
        page, truncated = keys[:PAGE], len(keys) > PAGE
        # encoding-type=url: keys come URL-encoded (S3 API Reference, ListObjectsV2 EncodingType)
        shown = (lambda k: urllib.parse.quote(k, safe="/")) if query.get("encoding-type") == "url" else escape
        xml = "".join(f"<Contents><Key>{shown(k)}</Key></Contents>" for k in page)
        more = f"<NextContinuationToken>{escape(page[-1])}</NextContinuationToken>" if truncated else ""
        text = (
            f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>{bucket}</Name>'
            f"<Prefix>{escape(prefix)}</Prefix><KeyCount>{len(page)}</KeyCount>"
            f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{more}{xml}</ListBucketResult>"
        )
        self._send(200, text.encode())

    def _error(self, status: int, code: str) -> None:
        self._send(status, f"<Error><Code>{code}</Code></Error>".encode())

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def fake_s3() -> Iterator[str]:
    """The stand-in on a free loopback port; yields its endpoint."""
    FakeS3.objects = {}
    FakeS3.requests = []
    with on_free_port(FakeS3) as endpoint:
        yield endpoint
