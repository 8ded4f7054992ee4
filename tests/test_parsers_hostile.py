"""Files logstack parses that someone else may have written: the seal chain, its head record, the verification
record, the signing key ring and site backups. Whatever they hold, reading them gives a result or one of
logstack's own errors (a one-line message, a named exit code), never an exception of the parser."""

from __future__ import annotations

import json
import string

import hypothesis
from hypothesis import strategies as st

from logstack.base.errors import LogstackError
from logstack.integrity.keyring import KeyRing, load_keyring, save_keyring
from logstack.integrity.seal_chain import last_verification, read_chain, read_head
from logstack.site.archive import MAGIC, restore_site

KEY = b"k" * 32

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
_seal_like = st.fixed_dictionaries(
    {
        "seq": st.one_of(st.integers(-2, 3), st.text(max_size=3)),
        "hour": st.one_of(st.text(max_size=30), st.just("2026-12-01T06:00:00Z"), st.integers()),
        "hosts": st.one_of(_json_values, st.dictionaries(st.text(max_size=5), st.lists(_json_values, max_size=3))),
        "prev": st.one_of(st.text(max_size=5), st.integers()),
        "sealed_at": _json_values,
        "hash": st.text(alphabet=string.hexdigits, max_size=64),
        "mac": st.text(alphabet=string.hexdigits, max_size=64),
    }
)
_contents = st.one_of(
    st.binary(max_size=300),
    _json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(_seal_like.map(json.dumps), max_size=3).map(lambda lines: "\n".join(lines).encode()),
)


def _quietly(read, *args):
    try:
        read(*args)
    except LogstackError as exc:
        assert "\n" not in str(exc)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(data=_contents)
def test_seal_chain_head_and_verification_files(tmp_path_factory, data):
    state = tmp_path_factory.mktemp("state")
    for name in ("seals.jsonl", "seals.head", "last-verification.json"):
        (state / name).write_bytes(data)
    _quietly(read_chain, state / "seals.jsonl", KEY)
    _quietly(read_head, state / "seals.head", KEY)
    result = last_verification(state, KEY, 0)
    assert result is None or isinstance(result, str)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(data=_contents)
def test_key_ring(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("site") / "signing-keys.json"
    path.write_bytes(data)
    path.chmod(0o600)
    _quietly(load_keyring, path)


def test_a_saved_key_ring_reads_back(tmp_path):
    import datetime as dt

    ring = KeyRing(seal_key=KEY)
    ring.mint("web1", dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    path = tmp_path / "signing-keys.json"
    save_keyring(path, ring)
    again = load_keyring(path)
    assert again.seal_key == KEY and again.current("web1").key == ring.current("web1").key


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(tail=st.binary(max_size=200), with_magic=st.booleans())
def test_site_backup_archives(tmp_path_factory, tail, with_magic):
    base = tmp_path_factory.mktemp("restore")
    archive = base / "site.backup"
    archive.write_bytes((MAGIC if with_magic else b"") + tail)
    _quietly(restore_site, archive, base / "out", b"a passphrase long enough")
    assert not (base / "out").exists() or not any((base / "out").iterdir())
