from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from logstack.base.errors import PKIError
from logstack.pki import PKI
from logstack.render.site_files import render_site
from logstack.site.inventory import load_inventory
from tests.conftest import invoke, mint_site
from tests.tlsutil import openssl_handshake, python_handshake

FQDN = "logs.example.com"


@pytest.fixture
def pki_site(site: Path):
    inv = load_inventory(site)
    return inv, mint_site(inv)


def _bundle(tmp_path: Path, pki: PKI, name: str = "bundle.pem") -> Path:
    path = tmp_path / name
    path.write_bytes(pki.ca_bundle_pem())
    return path


def _mtls(tmp_path, pki, client: str, hostname: str = FQDN, bundle: Path | None = None):
    bundle = bundle or _bundle(tmp_path, pki)
    return python_handshake(
        bundle,
        pki.cert_path("server"),
        pki.key_path("server"),
        pki.cert_path(client),
        pki.key_path(client),
        bundle,
        hostname,
    )


def test_ca_certificate_properties(pki_site):
    _, pki = pki_site
    ca = pki.ca_certificate("ca-1")
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign and not ku.digital_signature
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey) and ca.public_key().curve.name == "secp256r1"
    life = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert dt.timedelta(days=3650) <= life <= dt.timedelta(days=3651)


def test_leaf_certificates_names_and_usages(pki_site):
    _, pki = pki_site
    server = x509.load_pem_x509_certificate(pki.cert_pem("server"))
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [FQDN, "logs-alt.example.com"]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["192.0.2.10"]
    assert list(server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    web1 = x509.load_pem_x509_certificate(pki.cert_pem("web1"))
    assert web1.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "web1"
    assert web1.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    ) == ["web1.example.com"]
    assert list(web1.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    db1 = x509.load_pem_x509_certificate(pki.cert_pem("db1"))  # no fqdn: no SAN at all
    with pytest.raises(x509.ExtensionNotFound):
        db1.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    serials = {r.serial for r in pki.registry.certs}
    assert len(serials) == len(pki.registry.certs)
    # Vector needs PKCS#8 keys
    for name in ("server", "web1"):
        assert pki.key_pem(name).startswith(b"-----BEGIN PRIVATE KEY-----")


def test_file_modes(pki_site):
    _, pki = pki_site
    assert stat.S_IMODE(pki.root.stat().st_mode) == 0o700
    for path in (pki.ca_key_path("ca-1"), pki.key_path("server"), pki.key_path("web1"), pki.index_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_key_gets_mode_before_it_has_a_name(tmp_path, monkeypatch):
    # With a permissive umask a naive write would leave a 0644 key for a moment.
    from logstack.base.fsutil import atomic_write

    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(stat.S_IMODE(os.stat(src).st_mode))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    old = os.umask(0)
    try:
        atomic_write(tmp_path / "k.key", b"secret", mode=0o600)
    finally:
        os.umask(old)
    assert seen == [0o600]
    assert stat.S_IMODE((tmp_path / "k.key").stat().st_mode) == 0o600


def test_registry_contents(pki_site):
    _, pki = pki_site
    index = json.loads(pki.index_path.read_text())
    rec = next(r for r in index["certs"] if r["name"] == "web1")
    assert set(rec) == {
        "serial",
        "kind",
        "name",
        "subject",
        "sans",
        "fingerprint",
        "not_before",
        "not_after",
        "ca",
        "status",
    }
    assert rec["status"] == "valid" and rec["ca"] == "ca-1" and rec["subject"] == "CN=web1,O=example-corp"
    cert = x509.load_pem_x509_certificate(pki.cert_pem("web1"))
    assert rec["fingerprint"] == cert.fingerprint(hashes.SHA256()).hex(":").upper()
    assert int(rec["serial"], 16) == cert.serial_number


def test_registry_survives_crash_during_save(pki_site, monkeypatch):
    inv, pki = pki_site
    before = pki.index_path.read_bytes()

    def crash(src, dst):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        pki.issue_client(inv.host("web1"))
    monkeypatch.undo()
    assert pki.index_path.read_bytes() == before
    assert not [p for p in pki.root.rglob("*.tmp")]
    fresh = PKI.for_inventory(inv)
    assert fresh.registry.current("web1") is not None  # old registry still loads


def test_mutual_tls_with_python_ssl(tmp_path, pki_site):
    _, pki = pki_site
    outcome = _mtls(tmp_path, pki, "web1")
    assert outcome.ok, outcome
    assert outcome.peer_cn == "web1"


def test_mutual_tls_with_openssl(tmp_path, pki_site):
    _, pki = pki_site
    bundle = _bundle(tmp_path, pki)
    ok, transcript = openssl_handshake(
        bundle,
        pki.cert_path("server"),
        pki.key_path("server"),
        pki.cert_path("web2"),
        pki.key_path("web2"),
        bundle,
        FQDN,
    )
    assert ok, transcript
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(bundle), "-purpose", "sslclient", str(pki.cert_path("web2"))],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0 and ": OK" in verify.stdout
    as_client = subprocess.run(
        ["openssl", "verify", "-CAfile", str(bundle), "-purpose", "sslclient", str(pki.cert_path("server"))],
        capture_output=True,
        text=True,
    )
    assert as_client.returncode != 0


def test_hostname_not_in_sans_is_refused(tmp_path, pki_site):
    _, pki = pki_site
    outcome = _mtls(tmp_path, pki, "web1", hostname="evil.example.net")
    assert not outcome.ok and "hostname" in outcome.client_error.lower()
    bundle = _bundle(tmp_path, pki)
    ok, transcript = openssl_handshake(
        bundle,
        pki.cert_path("server"),
        pki.key_path("server"),
        pki.cert_path("web1"),
        pki.key_path("web1"),
        bundle,
        "evil.example.net",
    )
    assert not ok and "hostname mismatch" in transcript


def test_client_from_another_ca_is_refused(tmp_path, pki_site):
    inv, pki = pki_site
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = PKI(other_dir, inv.spec.pki, "other")
    other.init_ca()
    other.issue_client(inv.host("web1"))
    bundle = _bundle(tmp_path, pki)
    peers = (
        bundle,
        pki.cert_path("server"),
        pki.key_path("server"),
        other.cert_path("web1"),
        other.key_path("web1"),
        bundle,
        FQDN,
    )
    outcome = python_handshake(*peers)
    assert not outcome.ok and "certificate verify failed" in outcome.server_error
    ok, transcript = openssl_handshake(*peers)
    assert not ok and "unable to get local issuer certificate" in transcript


def _expired_client(tmp_path: Path, pki: PKI) -> tuple[Path, Path]:
    ca_cert, ca_key = pki.load_ca("ca-1")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web1")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now - dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "expired.pem", tmp_path / "expired.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_expired_client_is_refused(tmp_path, pki_site):
    _, pki = pki_site
    cert, key = _expired_client(tmp_path, pki)
    bundle = _bundle(tmp_path, pki)
    outcome = python_handshake(bundle, pki.cert_path("server"), pki.key_path("server"), cert, key, bundle, FQDN)
    assert not outcome.ok and "expired" in outcome.server_error
    ok, transcript = openssl_handshake(bundle, pki.cert_path("server"), pki.key_path("server"), cert, key, bundle, FQDN)
    assert not ok and "certificate has expired" in transcript


def test_server_certificate_used_as_client_is_refused(tmp_path, pki_site):
    _, pki = pki_site
    outcome = _mtls(tmp_path, pki, "server")
    assert not outcome.ok and "unsuitable certificate purpose" in outcome.server_error
    bundle = _bundle(tmp_path, pki)
    ok, transcript = openssl_handshake(
        bundle,
        pki.cert_path("server"),
        pki.key_path("server"),
        pki.cert_path("server"),
        pki.key_path("server"),
        bundle,
        FQDN,
    )
    assert not ok and "unsuitable certificate purpose" in transcript


def test_revoked_host_stops_working_after_rotation_and_retire(tmp_path, pki_site, runner):
    inv, pki = pki_site
    site = inv.path
    stolen_cert, stolen_key = tmp_path / "stolen.pem", tmp_path / "stolen.key"
    stolen_cert.write_bytes(pki.cert_pem("web2"))
    stolen_key.write_bytes(pki.key_pem("web2"))

    result = invoke(runner, "certs", "revoke", "web2", "-i", site)
    assert result.exit_code == 0 and "keeps working until its CA is retired" in result.stdout
    # Vector has no CRL: until rotation the revoked certificate still completes the handshake.
    assert python_handshake(
        _bundle(tmp_path, PKI.for_inventory(inv)),
        pki.cert_path("server"),
        pki.key_path("server"),
        stolen_cert,
        stolen_key,
        _bundle(tmp_path, pki),
        FQDN,
    ).ok

    assert invoke(runner, "ca", "rotate", "-i", site).exit_code == 0
    pki = PKI.for_inventory(inv)
    assert [c.status for c in pki.registry.cas] == ["previous", "active"]
    overlap = _bundle(tmp_path, pki, "overlap.pem")
    # during the overlap both generations are trusted
    early = invoke(runner, "ca", "retire-old", "-i", site)
    assert early.exit_code == 2 and "web1" in early.stderr and "db1" in early.stderr and "web2" not in early.stderr
    listing = json.loads(invoke(runner, "certs", "list", "--format", "json", "-i", site).stdout)
    assert {r["name"] for r in listing if r["on_old_ca"] and r["status"] == "valid"} == {"server", "web1", "db1"}
    for host in ("web1", "db1"):
        pki.issue_client(inv.host(host))
    assert pki.registry.current("web1").ca == "ca-2"
    assert python_handshake(
        overlap,
        pki.cert_path("server"),
        pki.key_path("server"),
        pki.cert_path("web1"),
        pki.key_path("web1"),
        overlap,
        FQDN,
    ).ok
    with pytest.raises(PKIError, match="revoked"):
        pki.needs_client(inv.host("web2"))

    assert invoke(runner, "ca", "retire-old", "-i", site).exit_code == 0
    pki = PKI.for_inventory(inv)
    assert pki.registry.current("server").ca == "ca-2"
    files = {(f.machine, f.path): f.content for f in render_site(inv, pki=pki)}
    receiver_bundle = tmp_path / "receiver-ca.pem"
    receiver_bundle.write_bytes(files[("server", "/etc/vector/tls/ca.pem")])
    assert receiver_bundle.read_bytes() == pki.ca_cert_path("ca-2").read_bytes()
    server_cert = tmp_path / "server.pem"
    server_cert.write_bytes(files[("server", "/etc/vector/tls/server.pem")])

    refused = python_handshake(
        receiver_bundle, server_cert, pki.key_path("server"), stolen_cert, stolen_key, receiver_bundle, FQDN
    )
    assert not refused.ok and "certificate verify failed" in refused.server_error
    ok, transcript = openssl_handshake(
        receiver_bundle, server_cert, pki.key_path("server"), stolen_cert, stolen_key, receiver_bundle, FQDN
    )
    assert not ok and "unable to get local issuer certificate" in transcript
    for host in ("web1", "db1"):  # re-enrolled hosts keep working
        assert python_handshake(
            receiver_bundle,
            server_cert,
            pki.key_path("server"),
            pki.cert_path(host),
            pki.key_path(host),
            receiver_bundle,
            FQDN,
        ).ok


def test_encrypted_ca_key_needs_the_passphrase(site, tmp_path, runner, monkeypatch):
    monkeypatch.setenv("LOGSTACK_CA_PASSPHRASE", "correct horse battery staple")
    assert invoke(runner, "ca", "init", "-i", site).exit_code == 0
    pki = PKI.for_inventory(load_inventory(site))
    assert pki.ca_key_path("ca-1").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(pki.ca_key_path("ca-1").read_bytes(), password=None)
    monkeypatch.delenv("LOGSTACK_CA_PASSPHRASE")
    no_pass = invoke(runner, "certs", "renew", "web1", "-i", site)
    assert no_pass.exit_code == 2 and "encrypted" in no_pass.stderr and "LOGSTACK_CA_PASSPHRASE" in no_pass.stderr
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    bad = invoke(runner, "certs", "renew", "web1", "-i", site, "--passphrase-file", wrong)
    assert bad.exit_code == 2 and "wrong CA passphrase" in bad.stderr
    good = tmp_path / "good"
    good.write_text("correct horse battery staple\n")
    ok = invoke(runner, "certs", "renew", "web1", "-i", site, "--passphrase-file", good)
    assert ok.exit_code == 0, ok.output
    assert "correct horse" not in ok.stdout + ok.stderr


def test_rsa_key_type_from_inventory(site):
    text = site.read_text().replace("key_type: ecdsa-p256", "key_type: rsa-3072")
    site.write_text(text)
    inv = load_inventory(site)
    pki = PKI.for_inventory(inv)
    pki.init_ca()
    pki.issue_client(inv.host("web1"))
    key = serialization.load_pem_private_key(pki.key_pem("web1"), password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 3072


def test_certs_check_renew_and_list(pki_site, runner):
    inv, pki = pki_site
    site = inv.path
    quiet = invoke(runner, "certs", "check", "--within", "30d", "-i", site)
    assert quiet.exit_code == 0
    soon = invoke(runner, "certs", "check", "--within", "400d", "-i", site)
    assert soon.exit_code == 1
    assert {line.split()[1] for line in soon.stdout.splitlines()} == {"server", "web1", "web2", "db1"}
    bad = invoke(runner, "certs", "check", "--within", "soon", "-i", site)
    assert bad.exit_code == 2 and "--within" in bad.stderr

    old = pki.registry.current("web1")
    old_key = pki.key_pem("web1")
    none = invoke(runner, "certs", "renew", "--all", "--within", "30d", "-i", site)
    assert none.exit_code == 0 and "nothing to renew" in none.stdout
    renewed = invoke(runner, "certs", "renew", "web1", "-i", site)
    assert renewed.exit_code == 0
    fresh = PKI.for_inventory(inv)
    new = fresh.registry.current("web1")
    assert new.serial != old.serial and new.sans == old.sans and fresh.key_pem("web1") != old_key
    assert [r.status for r in fresh.registry.certs if r.name == "web1"] == ["superseded", "valid"]
    unknown = invoke(runner, "certs", "renew", "nosuch", "-i", site)
    assert unknown.exit_code == 2 and "no host named 'nosuch'" in unknown.stderr
    text = invoke(runner, "certs", "list", "-i", site).stdout
    assert "web1" in text and "valid" in text and "superseded" not in text
    assert "superseded" in invoke(runner, "certs", "list", "--history", "-i", site).stdout
