"""Development PKI: layout, permissions, extensions, passphrases, renewal.

Extensions are read back with ``cryptography`` and cross-checked with the ``openssl`` CLI, which
applies RFC 3161's rules for TSA certificates on its own (``-purpose timestampsign``).
"""

from __future__ import annotations

import os
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edoc.errors import ConfigError
from edoc.evidence.pki import (
    PkiPaths,
    generate_dev_pki,
    issue_tsa_certificate,
    key_matches_certificate,
    load_certificate,
    load_private_key,
)

PASSPHRASE = b"correct horse battery staple"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    return generate_dev_pki(
        tmp_path_factory.mktemp("archive") / "keys",
        organisation="株式会社テスト商事",
        passphrase=PASSPHRASE,
    )


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, check=False
    )


def test_layout_uses_the_fixed_file_names(pki: PkiPaths) -> None:
    keys_dir = pki.root_cert.parent
    assert sorted(p.name for p in keys_dir.iterdir()) == [
        "root-ca.key",
        "root-ca.pem",
        "seal.key",
        "seal.pem",
        "tsa.key",
        "tsa.pem",
    ]
    assert PkiPaths.under(keys_dir) == pki


def test_key_files_are_0600_and_certificates_0644(pki: PkiPaths) -> None:
    for key in (pki.root_key, pki.seal_key, pki.tsa_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    for cert in (pki.root_cert, pki.seal_cert, pki.tsa_cert):
        assert stat.S_IMODE(cert.stat().st_mode) == 0o644, cert


def test_key_files_are_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        paths = generate_dev_pki(tmp_path / "keys", organisation="Umask KK")
    finally:
        os.umask(old)
    assert stat.S_IMODE(paths.seal_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.seal_cert.stat().st_mode) == 0o644


def test_keys_are_encrypted_pkcs8_and_openssl_can_decrypt_them(pki: PkiPaths) -> None:
    pem = pki.tsa_key.read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    ok = _openssl("pkey", "-in", pki.tsa_key, "-passin", f"pass:{PASSPHRASE.decode()}", "-noout")
    assert ok.returncode == 0, ok.stderr
    bad = _openssl("pkey", "-in", pki.tsa_key, "-passin", "pass:wrong", "-noout")
    assert bad.returncode != 0


def test_tsa_certificate_has_only_timestamping_eku_marked_critical(pki: PkiPaths) -> None:
    cert = load_certificate(pki.tsa_cert)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical
    assert list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature
    assert not ku.value.key_cert_sign
    # OpenSSL's own RFC 3161 §2.3 check: the purpose requires exactly the critical EKU.
    res = _openssl(
        "verify", "-CAfile", pki.root_cert, "-purpose", "timestampsign", pki.tsa_cert
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_seal_certificate_has_critical_signature_and_non_repudiation(pki: PkiPaths) -> None:
    cert = load_certificate(pki.seal_cert)
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature and ku.value.content_commitment
    assert not ku.value.key_cert_sign
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert not bc.value.ca
    res = _openssl("verify", "-CAfile", pki.root_cert, pki.seal_cert)
    assert res.returncode == 0, res.stdout + res.stderr
    # The seal certificate is not a TSA certificate.
    res = _openssl(
        "verify", "-CAfile", pki.root_cert, "-purpose", "timestampsign", pki.seal_cert
    )
    assert res.returncode != 0


def test_root_is_a_critical_ca_that_signs_certificates(pki: PkiPaths) -> None:
    root = load_certificate(pki.root_cert)
    bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = root.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    assert root.subject == root.issuer


def test_key_identifiers_link_each_leaf_to_the_root(pki: PkiPaths) -> None:
    root = load_certificate(pki.root_cert)
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    for path in (pki.seal_cert, pki.tsa_cert):
        leaf = load_certificate(path)
        aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        assert aki.key_identifier == root_ski.digest
        leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        assert leaf.issuer == root.subject


def test_every_certificate_says_not_accredited_and_names_the_organisation(
    pki: PkiPaths,
) -> None:
    for path in (pki.root_cert, pki.seal_cert, pki.tsa_cert):
        cert = load_certificate(path)
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        org = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
        assert "NOT ACCREDITED" in cn and "development" in cn
        assert org == "株式会社テスト商事"
    tsa_cn = load_certificate(pki.tsa_cert).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert tsa_cn[0].value == "edoc development TSA (NOT ACCREDITED)"


def test_all_keys_are_ecdsa_p256_and_match_their_certificates(pki: PkiPaths) -> None:
    for cert_path, key_path in (
        (pki.root_cert, pki.root_key),
        (pki.seal_cert, pki.seal_key),
        (pki.tsa_cert, pki.tsa_key),
    ):
        key = load_private_key(key_path, PASSPHRASE)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert key.curve.name == "secp256r1"
        assert key_matches_certificate(key, load_certificate(cert_path))
    assert not key_matches_certificate(
        load_private_key(pki.seal_key, PASSPHRASE), load_certificate(pki.tsa_cert)
    )


def test_refuses_to_overwrite_existing_keys(pki: PkiPaths) -> None:
    before = {p: p.read_bytes() for p in pki.all()}
    with pytest.raises(ConfigError) as err:
        generate_dev_pki(pki.root_cert.parent, organisation="Other KK")
    assert err.value.code == "KEYS_EXIST"
    assert {p: p.read_bytes() for p in pki.all()} == before


def test_refuses_when_a_single_key_file_is_present(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    (keys_dir / "seal.key").write_bytes(b"someone else's key")
    with pytest.raises(ConfigError) as err:
        generate_dev_pki(keys_dir, organisation="Test KK")
    assert err.value.code == "KEYS_EXIST"
    assert "seal.key" in str(err.value)
    assert sorted(p.name for p in keys_dir.iterdir()) == ["seal.key"]
    assert (keys_dir / "seal.key").read_bytes() == b"someone else's key"


def test_wrong_passphrase_is_a_one_line_config_error(pki: PkiPaths) -> None:
    with pytest.raises(ConfigError) as err:
        load_private_key(pki.seal_key, b"not the passphrase")
    assert err.value.code == "KEY_PASSPHRASE_WRONG"
    assert err.value.exit_code == 2
    assert "\n" not in str(err.value)
    assert str(pki.seal_key) in str(err.value)


def test_missing_passphrase_is_reported_as_required(pki: PkiPaths) -> None:
    with pytest.raises(ConfigError) as err:
        load_private_key(pki.seal_key, None)
    assert err.value.code == "KEY_PASSPHRASE_REQUIRED"
    assert "\n" not in str(err.value)


def test_unreadable_key_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_private_key(tmp_path / "absent.key", None)
    assert err.value.code == "KEY_UNREADABLE"
    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError) as err:
        load_private_key(garbage, None)
    assert err.value.code == "KEY_UNREADABLE"
    with pytest.raises(ConfigError) as err:
        load_certificate(garbage)
    assert err.value.code == "CERT_UNREADABLE"


def test_unencrypted_pki_round_trip(tmp_path: Path) -> None:
    paths = generate_dev_pki(tmp_path / "keys", organisation="Plain KK")
    assert paths.seal_key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    key = load_private_key(paths.seal_key, None)
    assert key_matches_certificate(key, load_certificate(paths.seal_cert))


def test_validity_follows_now_and_the_requested_periods(tmp_path: Path) -> None:
    now = datetime(2025, 4, 1, 9, 30, 15, 999_999, tzinfo=UTC)
    paths = generate_dev_pki(
        tmp_path / "keys",
        organisation="Clock KK",
        now=now,
        tsa_validity=timedelta(days=30),
        seal_validity=timedelta(days=60),
    )
    tsa = load_certificate(paths.tsa_cert)
    seal = load_certificate(paths.seal_cert)
    root = load_certificate(paths.root_cert)
    start = datetime(2025, 4, 1, 9, 30, 15, tzinfo=UTC)
    assert tsa.not_valid_before_utc == start
    assert tsa.not_valid_after_utc == start + timedelta(days=30)
    assert seal.not_valid_after_utc == start + timedelta(days=60)
    # The root outlives the leaves it signs.
    assert root.not_valid_after_utc > seal.not_valid_after_utc


def test_organisation_longer_than_x520_bound_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        generate_dev_pki(tmp_path / "keys", organisation="x" * 65)
    assert err.value.code == "ORGANISATION_INVALID"
    assert not (tmp_path / "keys").exists()


def test_naive_now_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="naive"):
        generate_dev_pki(
            tmp_path / "keys",
            organisation="Naive KK",
            now=datetime(2025, 1, 1),
        )


def test_tsa_certificate_renewal_keeps_key_and_archives_old_certificate(tmp_path: Path) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    paths = generate_dev_pki(
        tmp_path / "keys", organisation="Renew KK", passphrase=PASSPHRASE, now=start
    )
    old = load_certificate(paths.tsa_cert)
    old_key = paths.tsa_key.read_bytes()

    renewed_at = datetime(2026, 6, 1, 12, tzinfo=UTC)
    issue_tsa_certificate(
        paths, validity=timedelta(hours=1), passphrase=PASSPHRASE, now=renewed_at
    )
    new = load_certificate(paths.tsa_cert)
    assert new.serial_number != old.serial_number
    assert new.not_valid_before_utc == renewed_at
    assert new.not_valid_after_utc == renewed_at + timedelta(hours=1)
    assert new.public_key() == old.public_key()
    assert paths.tsa_key.read_bytes() == old_key
    assert stat.S_IMODE(paths.tsa_cert.stat().st_mode) == 0o644
    archived = paths.tsa_cert.with_name(f"tsa.{old.serial_number:x}.pem")
    assert load_certificate(archived) == old
    eku = new.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    res = _openssl(
        "verify",
        "-CAfile", paths.root_cert,
        "-purpose", "timestampsign",
        "-attime", str(int((renewed_at + timedelta(minutes=30)).timestamp())),
        paths.tsa_cert,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_renewal_needs_the_root_passphrase(tmp_path: Path) -> None:
    paths = generate_dev_pki(tmp_path / "keys", organisation="Renew KK", passphrase=PASSPHRASE)
    before = paths.tsa_cert.read_bytes()
    with pytest.raises(ConfigError) as err:
        issue_tsa_certificate(paths, validity=timedelta(days=1), passphrase=b"wrong")
    assert err.value.code == "KEY_PASSPHRASE_WRONG"
    assert paths.tsa_cert.read_bytes() == before


def test_renewal_may_not_outlive_the_root(tmp_path: Path) -> None:
    paths = generate_dev_pki(
        tmp_path / "keys",
        organisation="Renew KK",
        tsa_validity=timedelta(days=10),
        seal_validity=timedelta(days=10),
        root_validity=timedelta(days=20),
    )
    before = paths.tsa_cert.read_bytes()
    with pytest.raises(ConfigError) as err:
        issue_tsa_certificate(paths, validity=timedelta(days=30), passphrase=None)
    assert err.value.code == "PKI_VALIDITY_INVALID"
    assert paths.tsa_cert.read_bytes() == before


def test_overlong_passphrase_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        generate_dev_pki(tmp_path / "keys", organisation="Long KK", passphrase=b"x" * 1024)
    assert err.value.code == "KEY_PASSPHRASE_INVALID"
    assert not (tmp_path / "keys").exists()
