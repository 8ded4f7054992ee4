"""Third hardening round: peers that answer a byte at a time, a server that echoes credentials, archives
and files from places an attacker can write, hostile S3 listings, linked uploads, one S3 prefix pattern,
binary inventories. Each case failed before its fix."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import socket
import ssl
import stat
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import hypothesis
import hypothesis.strategies as st
import pytest
import yaml

from logstack.base.errors import LogstackError
from tests.alert_receivers import email_destination, self_signed
from tests.conftest import EXAMPLE, invoke

EVENT = [{"id": "e1", "severity": "alert", "type": "sudo", "lines": []}]


@contextlib.contextmanager
def dribbling(first: bytes, tls: tuple[Path, Path] | None = None, every: float = 0.2) -> Iterator[int]:
    """A peer on 127.0.0.1 that sends `first`, then one byte every `every` seconds: each read returns in
    time, the exchange never ends (for at most 15 s, then it stops by itself)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        try:
            if tls is not None:
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(*tls)
                conn = context.wrap_socket(conn, server_side=True)
            conn.sendall(first)
            end = time.monotonic() + 15
            while not stop.is_set() and time.monotonic() < end:
                conn.sendall(b"x")
                time.sleep(every)
        except OSError:
            pass
        finally:
            conn.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


def test_a_webhook_that_answers_a_byte_at_a_time_is_given_up_in_its_timeout(tmp_path):
    from logstack.alerts.send import DeliveryError, send
    from logstack.site.alerts import Webhook

    cert, key = self_signed(tmp_path)
    with dribbling(b"HTTP/1.1 200 OK\r\nX-Slow: ", tls=(cert, key)) as port:
        dest = Webhook(
            type="webhook", name="w", url=f"https://127.0.0.1:{port}/", ca_file=str(cert), retries=0, timeout=1
        )
        start = time.monotonic()
        with pytest.raises(DeliveryError, match="no answer within 2 s"):
            send(dest, {}, "site", EVENT)
    assert time.monotonic() - start < 4


def test_an_smtp_server_that_answers_a_byte_at_a_time_is_given_up(tmp_path):
    from logstack.alerts.send import DeliveryError, send

    cert, key = self_signed(tmp_path)
    with dribbling(b"220-", tls=(cert, key)) as port:
        dest = email_destination(port, tls="implicit", ca_file=str(cert), retries=1, timeout=1)
        start = time.monotonic()
        with pytest.raises(DeliveryError, match="no answer within 2 s"):
            send(dest, {}, "site", EVENT)
    assert time.monotonic() - start < 6  # two tries of 1 s and the back-off between them


def test_a_zabbix_trapper_that_answers_a_byte_at_a_time_is_given_up():
    from logstack.alerts.send import DeliveryError, send
    from logstack.site.alerts import Zabbix

    with dribbling(b"ZBXD\x01") as port:
        dest = Zabbix(type="zabbix", name="z", server="127.0.0.1", port=port, host="h", key="k", retries=0, timeout=1)
        start = time.monotonic()
        with pytest.raises(DeliveryError, match="no answer within 2 s"):
            send(dest, {}, "site", EVENT)
    assert time.monotonic() - start < 4


def test_s3_and_the_store_s_http_api_answering_a_byte_at_a_time_are_given_up():
    from logstack.base.errors import RuntimeFailure
    from logstack.store.greptime import DirectGreptimeHTTP
    from logstack.store.s3 import S3Bucket

    with dribbling(b"HTTP/1.1 200 OK\r\nX-Slow: ") as port:
        bucket = S3Bucket(f"http://127.0.0.1:{port}", "us-east-1", "b", "AKIDEXAMPLE", "secret", timeout=1)
        start = time.monotonic()
        with pytest.raises(RuntimeFailure, match=r"S3 127\.0\.0\.1"):
            bucket.get("key")
        assert time.monotonic() - start < 4
        api = DirectGreptimeHTTP("127.0.0.1", port, "admin", "pw", timeout=1)
        start = time.monotonic()
        with pytest.raises(RuntimeFailure, match=r"GreptimeDB at 127\.0\.0\.1"):
            api.request("GET", "/health")
        assert time.monotonic() - start < 4


@contextlib.contextmanager
def echoing_smtp(cert: Path, key: Path) -> Iterator[int]:
    """An implicit-TLS SMTP server that refuses AUTH by echoing the whole AUTH line back (as some do)."""
    listener = socket.create_server(("127.0.0.1", 0))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def serve() -> None:
        try:
            raw, _ = listener.accept()
        except OSError:
            return
        with context.wrap_socket(raw, server_side=True) as conn, conn.makefile("rwb") as f:
            f.write(b"220 echo ESMTP\r\n")
            f.flush()
            for line in iter(f.readline, b""):
                if line.upper().startswith(b"EHLO"):
                    f.write(b"250-echo\r\n250 AUTH PLAIN\r\n")
                elif line.upper().startswith(b"AUTH"):  # echoed on a continuation line, then hex-encoded
                    f.write(
                        b"535-5.7.8 you sent:\r\n535-"
                        + line.strip()
                        + b"\r\n535 "
                        + line.strip().hex().encode()
                        + b"\r\n"
                    )
                else:
                    f.write(b"250 ok\r\n")
                f.flush()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def test_scrub_finds_base64_credentials_however_aligned():
    from logstack.base.redaction import scrub

    token = base64.b64encode(b"\0alerts\0S3cret-Passw0rd-123").decode()
    for text in (f"AUTH PLAIN {token}", f"sent:\\n{token}", f"x{token}y", f"ab{token}"):
        assert "<secret>" in scrub(text, ("S3cret-Passw0rd-123",)), text


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=4, max_size=24),
    st.binary(max_size=12),
    st.binary(max_size=12),
    st.sampled_from(["", "x", "ab", "\\n", " "]),
    st.booleans(),
)
def test_scrub_finds_a_secret_base64_encoded_wherever_it_ends(secret, before, after, glued, padded):
    """The secret at the very end of what was encoded (an HTTP Basic credential `user:password`): the last
    group of four characters holds its last bytes, with or without its `=` padding."""
    from logstack.base.redaction import scrub

    token = base64.b64encode(before + secret.encode() + after).decode()
    token = token if padded else token.rstrip("=")
    said = scrub(f"Basic {glued}{token} end", (secret,))
    assert secret not in said and token not in said


def test_an_smtp_server_echoing_the_auth_line_puts_no_credential_in_the_error(tmp_path):
    from logstack.alerts.send import DeliveryError, send

    password = "S3cret-Passw0rd-123"
    cert, key = self_signed(tmp_path)
    with echoing_smtp(cert, key) as port:
        dest = email_destination(port, tls="implicit", username="alerts", ca_file=str(cert), retries=0, timeout=5)
        with pytest.raises(DeliveryError) as failed:
            send(dest, {"password": password}, "site", EVENT)
    text = str(failed.value)
    assert text.endswith("SMTPAuthenticationError 535")  # from AUTH on, the reply code only
    assert "you sent" not in text and password not in text
    assert base64.b64encode(b"\0alerts\0" + password.encode()).decode() not in text
    assert base64.b64encode(password.encode()).decode()[:12] not in text


# ---- files from places an attacker can write


def _kinds(tmp_path: Path) -> dict[str, Path]:
    regular = tmp_path / "regular"
    regular.write_bytes(b"{}")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to("/dev/zero")
    directory = tmp_path / "dir"
    directory.mkdir()
    sparse = tmp_path / "sparse"
    with sparse.open("wb") as handle:
        handle.truncate(3 * 1024**3)  # 3 GiB of nothing
    return {"fifo": fifo, "zero-link": link, "dir": directory, "sparse": sparse, "device": Path("/dev/zero")}


def _readers(site: Path) -> dict[str, Callable[[Path], object]]:
    from logstack.alerts.delivery import load_config
    from logstack.base.safe_read import read_file
    from logstack.integrity.seal_chain import read_chain, read_head
    from logstack.site.host_facts import load_facts
    from logstack.site.secrets import read_passphrase
    from logstack.store.backup import storage_from_options
    from logstack.store.greptime import read_password

    def facts(path: Path) -> object:
        target = site / "state" / "facts" / "web1.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        target.symlink_to(path)
        return load_facts(site, "web1")

    return {
        "facts cache": facts,
        "passphrase file": lambda p: read_passphrase(None, p),
        "alerts file": lambda p: load_config(p, None),
        "seal chain": lambda p: read_chain(p, b"k" * 32),
        "chain head": lambda p: read_head(p, b"k" * 32),
        "s3 credentials": lambda p: storage_from_options(None, "s3://bucket/prefix", None, "us-east-1", p),
        "db password file": read_password,
        "any": lambda p: read_file(p, "x", 1024),
    }


@pytest.mark.skipif(os.geteuid() != 0, reason="reads /dev/zero as any user can, but makes a 3 GiB sparse file")
def test_every_input_path_refuses_what_is_not_a_small_regular_file_in_one_line(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    kinds = _kinds(tmp_path)
    for reader_name, reader in _readers(site).items():
        for kind, path in kinds.items():
            done: list[object] = []

            def run(reader: Callable[[Path], object] = reader, path: Path = path, done: list[object] = done) -> None:
                try:
                    reader(path)
                    done.append("read")
                except LogstackError as exc:
                    done.append(exc)

            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            worker.join(5)
            assert done, f"{reader_name} hung on a {kind}"
            assert isinstance(done[0], LogstackError), f"{reader_name} read a {kind}: {done[0]}"
            named = str(path) if reader_name != "facts cache" else "facts"  # there the link itself is refused
            assert "\n" not in str(done[0]) and named in str(done[0]), (reader_name, kind, done[0])


def test_a_facts_cache_that_is_a_link_is_refused(tmp_path):
    from logstack.site.host_facts import load_facts

    real = tmp_path / "real.json"
    real.write_text("{}")
    facts = tmp_path / "state" / "facts"
    facts.mkdir(parents=True)
    (facts / "web1.json").symlink_to(real)
    with pytest.raises(LogstackError, match="symbolic link"):
        load_facts(tmp_path, "web1")


# ---- site archives


def _archive(tmp_path: Path, members: Callable[[tarfile.TarFile], None], passphrase: bytes) -> Path:
    """An archive as site-backup writes one (logstack's own encryption), holding `members`."""
    import secrets as random

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from logstack.site import archive

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        members(tar)
    salt, nonce = random.token_bytes(16), random.token_bytes(12)
    sealed = AESGCM(archive._key(passphrase, salt)).encrypt(nonce, buffer.getvalue(), archive.MAGIC)
    path = tmp_path / "site.backup"
    path.write_bytes(archive.MAGIC + salt + nonce + sealed)
    return path


PASSPHRASE = b"a long enough passphrase"


def _file(tar: tarfile.TarFile, name: str, data: bytes = b"x", **changes: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in changes.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data))


def _info(name: str, **changes: object) -> tarfile.TarInfo:
    """A member header only: its stated size need not be there (as a hostile archive has it)."""
    info = tarfile.TarInfo(name)
    for key, value in changes.items():
        setattr(info, key, value)
    return info


def _sparse(tar: tarfile.TarFile) -> None:
    # a 1.5 GB file of nothing: GNU sparse, its map saying all of it is a hole
    info = _info("state/huge", type=tarfile.GNUTYPE_SPARSE, sparse=[(0, 0)], size=0)
    tar.addfile(info)


@pytest.mark.parametrize(
    ("members", "why"),
    [
        (_sparse, "not a plain file"),
        (lambda tar: _file(tar, "../escape"), "not a plain file"),
        (lambda tar: _file(tar, "/etc/passwd"), "not a plain file"),
        (lambda tar: _file(tar, "link", type=tarfile.SYMTYPE, linkname="/etc/shadow"), "not a plain file"),
        (lambda tar: _file(tar, "dev", type=tarfile.CHRTYPE), "not a plain file"),
        (lambda tar: (_file(tar, "a"), _file(tar, "a")), "not a plain file"),
    ],
)
def test_a_hostile_archive_member_is_refused_before_anything_is_written(tmp_path, members, why):
    from logstack.site.archive import restore_site

    path = _archive(tmp_path, members, PASSPHRASE)
    target = tmp_path / "restored"
    with pytest.raises(LogstackError, match=why):
        restore_site(path, target, PASSPHRASE)
    assert not target.exists()


def test_a_member_larger_than_any_site_file_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    from logstack.site import archive

    monkeypatch.setattr(archive, "MAX_MEMBER", 1000)
    path = _archive(tmp_path, lambda tar: _file(tar, "state/big", b"x" * 2000), PASSPHRASE)
    with pytest.raises(LogstackError, match="larger than any site file"):
        archive.restore_site(path, tmp_path / "restored", PASSPHRASE)
    assert not (tmp_path / "restored").exists()


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(garbage=st.binary(min_size=1, max_size=600), cut=st.integers(0, 4000))
def test_a_malformed_archive_is_a_one_line_error_and_leaves_nothing(tmp_path_factory, garbage, cut):
    from logstack.site.archive import restore_site

    base = tmp_path_factory.mktemp("malformed")

    def members(tar: tarfile.TarFile) -> None:
        _file(tar, "inventory.yaml", b"site: x\n")
        _file(tar, "state/a", b"a" * 100)

    path = _archive(base, members, PASSPHRASE)
    raw = bytearray(path.read_bytes())
    # corrupt the plain text: decrypt, change, encrypt again (as an attacker with the passphrase could)
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from logstack.site import archive

    head = len(archive.MAGIC)
    salt, nonce = bytes(raw[head : head + 16]), bytes(raw[head + 16 : head + 28])
    aead = AESGCM(archive._key(PASSPHRASE, salt))
    plain = bytearray(aead.decrypt(nonce, bytes(raw[head + 28 :]), archive.MAGIC))
    at = cut % max(1, len(plain))
    plain[at : at + len(garbage)] = garbage
    path.write_bytes(archive.MAGIC + salt + nonce + aead.encrypt(nonce, bytes(plain), archive.MAGIC))
    target = base / "restored"
    try:
        restore_site(path, target, PASSPHRASE)
    except LogstackError as exc:
        assert "\n" not in str(exc)
        assert not target.exists()


# ---- S3 listings, uploads, prefixes, inventories


def test_retention_never_deletes_a_key_that_climbs_out_of_the_backups(monkeypatch):
    from logstack.store.s3 import below

    prefix = "site1/"
    assert below("site1/20260101T000000Z/manifest.json", prefix)
    for key in (
        "site1/20200101T000000Z/../../victim/data",
        "site1/20200101T000000Z/./x",
        "site1//x",
        "other/20200101T000000Z/x",
        "site1/\x00x",
    ):
        assert not below(key, prefix), key


def test_a_listing_larger_than_any_site_s_is_refused(monkeypatch):
    from logstack.base.errors import RuntimeFailure
    from logstack.store import s3

    bucket = s3.S3Bucket("http://127.0.0.1:9", "us-east-1", "b", "AKIDEXAMPLE", "secret")
    page = (
        "<ListBucketResult><IsTruncated>true</IsTruncated>"
        + "".join(f"<Key>site1/{i:08d}</Key>" for i in range(1000))
        + "<NextContinuationToken>{token}</NextContinuationToken></ListBucketResult>"
    )
    calls = iter(range(10_000))
    monkeypatch.setattr(s3.S3Bucket, "request", lambda *a, **k: page.replace("{token}", str(next(calls))).encode())
    with pytest.raises(RuntimeFailure, match="larger than any site"):
        bucket.list("site1/")
    assert next(calls) <= 102  # stopped at the key bound, long before the page bound


def test_a_linked_wheel_is_uploaded_as_the_file_it_names(tmp_path):
    from logstack.provision.logstack_install import _tar

    real = tmp_path / "real.whl"
    real.write_bytes(b"wheel bytes")
    link = tmp_path / "logstack-0.1.0-py3-none-any.whl"
    link.symlink_to(real)
    with tarfile.open(fileobj=io.BytesIO(_tar([link]))) as tar:
        (member,) = tar.getmembers()
        assert member.isreg() and member.name == link.name
        assert tar.extractfile(member).read() == b"wheel bytes"


@pytest.mark.parametrize("root", ["../../etc", "a/../b", "./x", "/abs"])
def test_object_storage_and_backup_roots_share_one_pattern(tmp_path, runner, root):
    for section in ("store", "backup"):
        doc = yaml.safe_load(EXAMPLE.read_text())
        if section == "store":
            doc["server"]["store"] = {"type": "standalone", "object_storage": {"bucket": "audit-logs", "root": root}}
        else:
            doc["server"]["backup"] = {"s3": {"bucket": "audit-logs", "root": root}}
        path = tmp_path / "inventory.yaml"
        path.write_text(yaml.safe_dump(doc))
        result = invoke(runner, "render", "-i", path, "-o", tmp_path / "out")
        assert result.exit_code == 2 and "root" in result.output and "key prefix" in result.output, result.output


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"\x00\x01\xff\xfe garbage", "not UTF-8"),
        (b"site: x\x00\x01 garbage", "not YAML text"),
        (b"site: x\nserver:\n\tname: a\n", "a tab character"),
    ],
)
def test_a_binary_or_tabbed_inventory_is_a_one_line_usage_error(tmp_path, runner, content, said):
    path = tmp_path / "inventory.yaml"
    path.write_bytes(content)
    result = invoke(runner, "render", "-i", path, "-o", tmp_path / "out")
    assert result.exit_code == 2 and said in result.output and len(result.output.strip().splitlines()) == 1


def test_scheduled_units_have_a_run_limit_sized_from_the_alert_destinations(tmp_path, runner):
    out = tmp_path / "out"
    assert invoke(runner, "render", "-i", EXAMPLE, "-o", out).exit_code == 0
    units = out / "server" / "etc" / "systemd" / "system"
    analyze = (units / "logstack-analyze.service").read_text()
    limit = int(analyze.split("TimeoutStartSec=")[1].split()[0])
    doc = yaml.safe_load(EXAMPLE.read_text())
    tries = sum((d.get("retries", 2) + 1) * (d.get("timeout", 10) + 13) for d in doc["server"]["alerts"])
    assert limit == 30 * 60 + tries
    for unit in ("logstack-seal.service", "logstack-backup.service"):
        assert "TimeoutStartSec=" in (units / unit).read_text()
    assert stat.S_ISREG((units / "logstack-analyze.service").stat().st_mode)


# ---- found by review of this round


def test_a_body_sent_a_byte_at_a_time_is_given_up_by_s3_and_the_store_client():
    from logstack.base.errors import RuntimeFailure
    from logstack.store.greptime import DirectGreptimeHTTP
    from logstack.store.s3 import S3Bucket

    with dribbling(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", every=0.3) as port:
        for call in (
            lambda: S3Bucket(f"http://127.0.0.1:{port}", "us-east-1", "b", "AKIDEXAMPLE", "secret", timeout=1).get("k"),
            lambda: DirectGreptimeHTTP("127.0.0.1", port, "admin", "pw", timeout=1).request("GET", "/health"),
        ):
            start = time.monotonic()
            with pytest.raises(RuntimeFailure):
                call()
            assert time.monotonic() - start < 3


@pytest.mark.parametrize(
    "members",
    [
        lambda tar: (_file(tar, "a"), _file(tar, "a/b")),  # a file where a directory must be
        lambda tar: (_file(tar, "a"), tar.addfile(_info("a/b", type=tarfile.DIRTYPE))),
        lambda tar: (_file(tar, "d/x"), _file(tar, "d")),
        lambda tar: _file(tar, "."),
        lambda tar: _file(tar, "x" * 300),
    ],
)
def test_members_the_file_system_would_refuse_are_refused_first(tmp_path, members):
    from logstack.site.archive import restore_site

    path = _archive(tmp_path, members, PASSPHRASE)
    with pytest.raises(LogstackError, match=r"not a plain file below the site|not a readable site archive"):
        restore_site(path, tmp_path / "restored", PASSPHRASE)
    assert not (tmp_path / "restored").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["site.backup"]


def test_restored_files_never_get_more_than_owner_write_and_others_read(tmp_path):
    from logstack.site.archive import restore_site

    def members(tar: tarfile.TarFile) -> None:
        _file(tar, "secrets.yaml", b"x", mode=0o666)
        _file(tar, "pki/ca.key", b"k", mode=0o4777)

    restore_site(_archive(tmp_path, members, PASSPHRASE), tmp_path / "r", PASSPHRASE)
    assert stat.S_IMODE((tmp_path / "r" / "secrets.yaml").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "r" / "pki" / "ca.key").stat().st_mode) == 0o644


def test_a_restore_is_recorded_before_its_copy_so_it_never_loads_twice():
    import json

    from logstack.base.errors import BadInputError
    from logstack.store.restore import restore
    from tests.test_backup import SHOWN

    class Store:
        def __init__(self) -> None:
            self.sent: list[str] = []
            self.records: list[str] = []

        def sql(self, statement: str, **_: object) -> dict:
            self.sent.append(statement)
            if statement.startswith("INSERT INTO"):
                self.records.append(statement)
            return {"output": [{"affectedrows": 5}]}

        def rows(self, statement: str) -> list[list[object]]:
            if statement.startswith("SELECT schema_name"):
                return [["vector"]] if self.sent else []
            if statement.startswith("SELECT table_name"):
                return [["logs"], ["logstack_backups"]] if self.sent else []
            if statement.startswith("SELECT count(*)"):
                return [[sum(1 for r in self.records if "'restoring:2026" in r)]]
            return []

    store = Store()
    manifest = {"version": 1, "database": "vector", "created": "2026-01-01T00:00:00Z", "rows": 5}
    manifest["tables"] = {"logs": SHOWN}  # made without a backup table: logstack makes its own
    read = lambda _: json.dumps(manifest).encode()  # noqa: E731
    restore(store, "vector", "/b", read, known_tables=("logs", "logstack_backups"))
    copies = [i for i, s in enumerate(store.sent) if s.startswith("COPY DATABASE")]
    restoring = [i for i, s in enumerate(store.sent) if "'restoring:" in s]
    assert restoring and copies and restoring[0] < copies[0]
    assert any("CREATE TABLE IF NOT EXISTS `vector`.`logstack_backups`" in s for s in store.sent)
    with pytest.raises(BadInputError, match="restored into this store already"):
        restore(store, "vector", "/b", read, known_tables=("logs", "logstack_backups"))


def test_a_fifo_in_place_of_a_facts_cache_or_an_alert_ca_file_hangs_nothing(tmp_path):
    from logstack.alerts.send import DeliveryError, send
    from logstack.site.alerts import Webhook
    from logstack.site.host_facts import HostFacts, facts_path, load_facts, save_facts

    path = facts_path(tmp_path, "web1")
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    done: list[object] = []
    worker = threading.Thread(target=lambda: done.append(save_facts(tmp_path, "web1", HostFacts(arch="x"))))
    worker.daemon = True
    worker.start()
    worker.join(5)
    assert done and load_facts(tmp_path, "web1") == HostFacts(arch="x")  # replaced, never read
    fifo = tmp_path / "ca.pem"
    os.mkfifo(fifo)
    dest = Webhook(type="webhook", name="w", url="https://127.0.0.1:9/", ca_file=str(fifo), retries=0, timeout=1)
    start = time.monotonic()
    with pytest.raises(DeliveryError, match="ca_file"):
        send(dest, {}, "site", EVENT)
    assert time.monotonic() - start < 3
