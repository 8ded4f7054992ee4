"""The S3 signature (AWS Signature Version 4) against the AWS documentation's own examples: "Signature
Calculations for the Authorization Header: Transferring Payload in a Single Chunk" (Amazon S3 API
Reference), example requests GET Object, PUT Object and GET Bucket (List Objects)."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from logstack.base.errors import BadInputError
from logstack.store.s3 import S3Bucket, authorization

KEY, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
WHEN = dt.datetime(2013, 5, 24, tzinfo=dt.UTC)
EMPTY = hashlib.sha256(b"").hexdigest()
HOST = "examplebucket.s3.amazonaws.com"


def _signature(header: str) -> str:
    return header.rsplit("Signature=", 1)[1]


def test_get_object_example():
    headers = {"Host": HOST, "Range": "bytes=0-9", "x-amz-content-sha256": EMPTY, "x-amz-date": "20130524T000000Z"}
    header = authorization("GET", "/test.txt", {}, headers, EMPTY, KEY, SECRET, "us-east-1", WHEN)
    assert "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date" in header
    assert _signature(header) == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"


def test_put_object_example():
    body = b"Welcome to Amazon S3."
    digest = hashlib.sha256(body).hexdigest()
    headers = {
        "Host": HOST,
        "Date": "Fri, 24 May 2013 00:00:00 GMT",
        "x-amz-date": "20130524T000000Z",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "x-amz-content-sha256": digest,
    }
    header = authorization("PUT", "/test$file.text", {}, headers, digest, KEY, SECRET, "us-east-1", WHEN)
    assert _signature(header) == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"


def test_list_objects_example():
    headers = {"Host": HOST, "x-amz-date": "20130524T000000Z", "x-amz-content-sha256": EMPTY}
    header = authorization("GET", "/", {"max-keys": "2", "prefix": "J"}, headers, EMPTY, KEY, SECRET, "us-east-1", WHEN)
    assert _signature(header) == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"


@pytest.mark.parametrize("endpoint", ["http://s3.example.com", "ftp://127.0.0.1", "http://192.0.2.1:9000"])
def test_plain_http_only_on_loopback(endpoint):
    with pytest.raises(BadInputError, match="must be https"):
        S3Bucket(endpoint, "us-east-1", "b", "k", "s")
    S3Bucket("http://127.0.0.1:9000", "us-east-1", "b", "k", "s")


def test_retention_with_no_prefix_and_keys_of_any_characters(tmp_path):
    """Backups at the bucket's top (root ""), keys with characters XML and URLs escape: listed, kept and
    removed exactly; nothing outside a backup's own prefix is touched."""
    import datetime as _dt

    from logstack.store.backup import prune
    from logstack.store.backup_targets import MANIFEST, s3_storage
    from tests.s3_standin import ACCESS, REGION, SECRET, FakeS3, fake_s3

    with fake_s3() as endpoint:
        for stamp in ("20261101T020000Z", "20261102T020000Z", "20261201T020000Z"):
            FakeS3.objects[("bkt", f"{stamp}/{MANIFEST}")] = b"{}"
            FakeS3.objects[("bkt", f"{stamp}/odd & <name> +=%.parquet")] = b""
        FakeS3.objects[("bkt", "other-app/important.db")] = b"keep me"
        storage = s3_storage("s3://bkt", endpoint, REGION, ACCESS, SECRET)
        now = _dt.datetime(2026, 12, 1, 3, tzinfo=_dt.UTC)
        assert sorted(storage.listing(now)[0]) == ["20261101T020000Z", "20261102T020000Z", "20261201T020000Z"]
        removed, problems = prune(storage, 2, 0, now)
        assert removed == ["20261101T020000Z"] and problems == []
        assert sorted(k for _, k in FakeS3.objects) == sorted(
            [
                "other-app/important.db",
                f"20261102T020000Z/{MANIFEST}",
                "20261102T020000Z/odd & <name> +=%.parquet",
                f"20261201T020000Z/{MANIFEST}",
                "20261201T020000Z/odd & <name> +=%.parquet",
            ]
        )


def test_a_listing_that_never_ends_or_strays_outside_its_prefix():
    """A server that repeats its continuation token, or answers keys the prefix does not hold."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from logstack.base.errors import RuntimeFailure

    class Looping(BaseHTTPRequestHandler):
        def do_GET(self):
            body = (
                b"<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>same</NextContinuationToken>"
                b"<Contents><Key>b/x</Key></Contents><Contents><Key>other-app/important.db</Key></Contents>"
                b"</ListBucketResult>"
            )
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Looping)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        bucket = S3Bucket(f"http://127.0.0.1:{server.server_address[1]}", "us-east-1", "bkt", "k", "s")
        with pytest.raises(RuntimeFailure, match="repeats itself"):
            bucket.list("b/")
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "location",
    ["s3://bkt/a/../b", "s3://bkt/a//b", "s3://bkt/x', PATTERN = '.*') --", "s3://Bkt/x", "s3://bkt/./x"],
)
def test_an_s3_location_is_plain_names(location):
    from logstack.store.backup_targets import parse_s3

    with pytest.raises(BadInputError, match="not an s3://bucket/prefix location"):
        parse_s3(location)


def test_an_endpoint_from_the_command_line_is_checked_too():
    from logstack.store.backup_targets import s3_storage

    with pytest.raises(BadInputError, match="--s3-endpoint"):
        s3_storage("s3://bkt/x", "https://x.example/'), ENABLE_VIRTUAL_HOST_STYLE = ('true", "us-east-1", "a", "b")
