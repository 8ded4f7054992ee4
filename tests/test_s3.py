"""The S3 signature (AWS Signature Version 4) against the AWS documentation's own examples: "Signature
Calculations for the Authorization Header: Transferring Payload in a Single Chunk" (Amazon S3 API
Reference), example requests GET Object, PUT Object and GET Bucket (List Objects)."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from logstack.errors import BadInputError
from logstack.s3 import S3Bucket, authorization

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
