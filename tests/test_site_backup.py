"""Site backups: an encrypted archive of the site directory that restores byte for byte, and nothing else."""

from __future__ import annotations

import io
import secrets
import tarfile

import pytest

from logstack.base.errors import BadInputError, SecretsError
from logstack.pki import PKI
from logstack.site.archive import MAGIC, backup_site, restore_site
from logstack.site.inventory import load_inventory
from tests.conftest import invoke

PASS = b"correct horse battery staple"


def _tree(root):
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode & 0o777) for p in root.rglob("*") if p.is_file()
    }


def test_round_trip_restores_every_file_byte_identical(site, runner, tmp_path):
    invoke(runner, "init", str(site.parent))
    PKI.for_inventory(load_inventory(site)).init_ca()
    (site.parent / "state").mkdir(exist_ok=True)
    (site.parent / "state" / "seals.jsonl").write_bytes(secrets.token_bytes(300))
    archive = tmp_path / "site.backup"
    result = runner.invoke(
        __import__("logstack.cli", fromlist=["app"]).app,
        ["site-backup", "-i", str(site), "-o", str(archive)],
        env={"LOGSTACK_BACKUP_PASSPHRASE": PASS.decode()},
    )
    assert result.exit_code == 0, result.output
    assert PASS.decode() not in result.output
    assert archive.stat().st_mode & 0o777 == 0o600
    data = archive.read_bytes()
    assert data.startswith(MAGIC)
    ca_key = next(p for p in site.parent.rglob("*.key"))
    assert ca_key.read_bytes()[:40] not in data  # encrypted, not merely packed
    restored = tmp_path / "restored"
    done = runner.invoke(
        __import__("logstack.cli", fromlist=["app"]).app,
        ["site-restore", str(archive), "--to", str(restored)],
        env={"LOGSTACK_BACKUP_PASSPHRASE": PASS.decode()},
    )
    assert done.exit_code == 0, done.output
    assert _tree(restored) == _tree(site.parent)


def test_a_wrong_passphrase_or_a_changed_archive_is_refused(site, tmp_path):
    archive = tmp_path / "site.backup"
    backup_site(site.parent, archive, PASS)
    with pytest.raises(SecretsError, match="wrong passphrase"):
        restore_site(archive, tmp_path / "a", b"not the passphrase at all")
    data = bytearray(archive.read_bytes())
    data[-5] ^= 1
    archive.write_bytes(bytes(data))
    with pytest.raises(SecretsError, match="wrong passphrase, or the archive was changed"):
        restore_site(archive, tmp_path / "b", PASS)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_restore_never_overwrites_and_never_leaves_its_directory(site, tmp_path):
    archive = tmp_path / "site.backup"
    backup_site(site.parent, archive, PASS)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep").write_text("mine")
    with pytest.raises(BadInputError, match="not an empty directory"):
        restore_site(archive, occupied, PASS)
    assert (occupied / "keep").read_text() == "mine"
    # an archive (made with the key, as by whoever has the passphrase) holding a member outside its root
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from logstack.site.archive import _key

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    salt, nonce = b"s" * 16, b"n" * 12
    hostile = tmp_path / "hostile.backup"
    hostile.write_bytes(MAGIC + salt + nonce + AESGCM(_key(PASS, salt)).encrypt(nonce, buffer.getvalue(), MAGIC))
    with pytest.raises(BadInputError, match="not a plain file below the site"):
        restore_site(hostile, tmp_path / "c", PASS)
    assert not (tmp_path / "escape").exists()


def test_a_short_or_missing_passphrase_is_refused(site, tmp_path):
    with pytest.raises(SecretsError, match="at least"):
        backup_site(site.parent, tmp_path / "x", b"short")
    with pytest.raises(SecretsError, match="passphrase is needed"):
        backup_site(site.parent, tmp_path / "x", None)
