"""CAdES seals: made with pyHanko, checked by ``openssl cms -verify`` and by ``verify_seal``."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edoc.errors import SealError
from edoc.evidence.pki import (
    PkiPaths,
    PrivateKey,
    generate_dev_pki,
    load_certificate,
    load_private_key,
)
from edoc.evidence.sealing import Sealer, signer_certificate, verify_seal
from edoc.model.verdict import Status

MANIFEST = (
    '{"content_sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",'
    '"counterparty":"株式会社サンプル","record_id":"r-0001","version":1}'
).encode()


@dataclass
class Pki:
    paths: PkiPaths
    root: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    seal_cert: x509.Certificate
    seal_key: ec.EllipticCurvePrivateKey

    def sealer(self, **kwargs: object) -> Sealer:
        return Sealer(self.seal_cert, self.seal_key, [self.root], **kwargs)  # type: ignore[arg-type]


def make_pki(directory: Path, organisation: str) -> Pki:
    paths = generate_dev_pki(directory / "keys", organisation=organisation)
    seal_key = load_private_key(paths.seal_key, None)
    root_key = load_private_key(paths.root_key, None)
    assert isinstance(seal_key, ec.EllipticCurvePrivateKey)
    assert isinstance(root_key, ec.EllipticCurvePrivateKey)
    return Pki(
        paths=paths,
        root=load_certificate(paths.root_cert),
        root_key=root_key,
        seal_cert=load_certificate(paths.seal_cert),
        seal_key=seal_key,
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("archive"), "Test KK")


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("elsewhere"), "Elsewhere KK")


@pytest.fixture(scope="module")
def seal(pki: Pki) -> bytes:
    return pki.sealer().seal(MANIFEST)


def _openssl_cms_verify(
    seal_der: bytes, data: bytes, ca: Path, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    seal_path = tmp_path / "seal.p7s"
    data_path = tmp_path / "data.bin"
    seal_path.write_bytes(seal_der)
    data_path.write_bytes(data)
    return subprocess.run(
        [
            "openssl", "cms", "-verify", "-binary", "-inform", "DER",
            "-in", str(seal_path), "-content", str(data_path),
            "-CAfile", str(ca), "-purpose", "any", "-out", "/dev/null",
        ],
        capture_output=True, text=True, check=False,
    )


def test_openssl_verifies_the_seal(pki: Pki, seal: bytes, tmp_path: Path) -> None:
    res = _openssl_cms_verify(seal, MANIFEST, pki.paths.root_cert, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Verification successful" in res.stderr


def test_openssl_rejects_altered_data_and_a_foreign_root(
    pki: Pki, other_pki: Pki, seal: bytes, tmp_path: Path
) -> None:
    altered = _openssl_cms_verify(seal, MANIFEST + b" ", pki.paths.root_cert, tmp_path)
    assert altered.returncode != 0
    foreign = _openssl_cms_verify(seal, MANIFEST, other_pki.paths.root_cert, tmp_path)
    assert foreign.returncode != 0


def test_verify_seal_passes(pki: Pki, seal: bytes) -> None:
    check = verify_seal(MANIFEST, seal, trust_roots=[pki.root])
    assert check.status is Status.PASS and check.code == "OK", check
    assert check.name == "seal"
    assert "edoc development seal (NOT ACCREDITED)" in check.detail


def test_seal_is_a_detached_cades_signature(pki: Pki, seal: bytes) -> None:
    info = cms.ContentInfo.load(seal)
    assert info["content_type"].native == "signed_data"
    signed_data = info["content"]
    assert signed_data["encap_content_info"]["content_type"].native == "data"
    assert signed_data["encap_content_info"]["content"].native is None  # detached
    signer = signed_data["signer_infos"][0]
    assert signer["signature_algorithm"]["algorithm"].native == "sha256_ecdsa"
    attrs = {a["type"].native: a["values"][0] for a in signer["signed_attrs"]}
    assert attrs["content_type"].native == "data"
    assert attrs["message_digest"].native == hashlib.sha256(MANIFEST).digest()
    cert_id = attrs["signing_certificate_v2"]["certs"][0]
    seal_der = pki.seal_cert.public_bytes(serialization.Encoding.DER)
    assert cert_id["cert_hash"].native == hashlib.sha256(seal_der).digest()
    assert attrs["signing_time"].native.tzinfo is not None
    embedded = {c.chosen.dump() for c in signed_data["certificates"]}
    assert seal_der in embedded
    assert pki.root.public_bytes(serialization.Encoding.DER) in embedded


def test_signing_time_comes_from_the_clock_in_utc(pki: Pki) -> None:
    instant = datetime(2026, 4, 1, 9, 0, 0, tzinfo=UTC)
    seal_der = pki.sealer(clock=lambda: instant).seal(MANIFEST)
    signer = cms.ContentInfo.load(seal_der)["content"]["signer_infos"][0]
    signing_time = next(
        a["values"][0] for a in signer["signed_attrs"] if a["type"].native == "signing_time"
    )
    assert signing_time.native == instant


def test_each_seal_is_a_fresh_signature(pki: Pki, seal: bytes) -> None:
    again = pki.sealer().seal(MANIFEST)
    assert again != seal  # ECDSA is randomised; both must verify
    assert verify_seal(MANIFEST, again, trust_roots=[pki.root]).code == "OK"


def test_altered_data_is_a_signature_failure(pki: Pki, seal: bytes) -> None:
    altered = MANIFEST.replace(b'"version":1', b'"version":2')
    assert altered != MANIFEST
    check = verify_seal(altered, seal, trust_roots=[pki.root])
    assert check.status is Status.FAIL
    assert check.code == "SEAL_SIGNATURE_INVALID", check


def test_altered_signature_is_a_signature_failure(pki: Pki, seal: bytes) -> None:
    signature = cms.ContentInfo.load(seal)["content"]["signer_infos"][0]["signature"].native
    at = seal.index(signature) + len(signature) // 2
    tampered = seal[:at] + bytes([seal[at] ^ 0x01]) + seal[at + 1 :]
    check = verify_seal(MANIFEST, tampered, trust_roots=[pki.root])
    assert check.code == "SEAL_SIGNATURE_INVALID", check


def test_seal_from_another_pki_is_untrusted(pki: Pki, other_pki: Pki) -> None:
    resealed = other_pki.sealer().seal(MANIFEST)
    check = verify_seal(MANIFEST, resealed, trust_roots=[pki.root])
    assert check.code == "SEAL_CHAIN_UNTRUSTED", check
    # The same seal is fine for whoever trusts that root: the failure above is about trust.
    assert verify_seal(MANIFEST, resealed, trust_roots=[other_pki.root]).code == "OK"
    assert verify_seal(MANIFEST, resealed, trust_roots=[pki.root, other_pki.root]).code == "OK"


def test_no_trust_roots_trusts_nothing(seal: bytes) -> None:
    assert verify_seal(MANIFEST, seal, trust_roots=[]).code == "SEAL_CHAIN_UNTRUSTED"


@pytest.mark.parametrize(
    "seal_der",
    [b"", b"garbage", b"\x30\x80\x00\x00", bytes(range(200))],
    ids=["empty", "text", "indefinite", "noise"],
)
def test_garbage_is_malformed(pki: Pki, seal_der: bytes) -> None:
    check = verify_seal(MANIFEST, seal_der, trust_roots=[pki.root])
    assert check.code == "SEAL_MALFORMED"
    assert check.status is Status.FAIL


def test_truncated_seal_is_malformed(pki: Pki, seal: bytes) -> None:
    check = verify_seal(MANIFEST, seal[:-40], trust_roots=[pki.root])
    assert check.code == "SEAL_MALFORMED"


def test_embedded_content_signature_is_not_a_seal(pki: Pki, tmp_path: Path) -> None:
    # An attached (non-detached) CMS made by openssl: well-formed, but not what edoc stores.
    data = tmp_path / "data.bin"
    data.write_bytes(MANIFEST)
    out = tmp_path / "attached.p7s"
    key = tmp_path / "seal.key"
    key.write_bytes(
        pki.seal_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    subprocess.run(
        [
            "openssl", "cms", "-sign", "-binary", "-nodetach", "-outform", "DER",
            "-in", str(data), "-signer", str(pki.paths.seal_cert), "-inkey", str(key),
            "-out", str(out),
        ],
        check=True, capture_output=True,
    )
    check = verify_seal(MANIFEST, out.read_bytes(), trust_roots=[pki.root])
    assert check.code == "SEAL_MALFORMED"
    assert "detached" in check.detail


def test_openssl_made_detached_signature_without_cades_attribute_is_malformed(
    pki: Pki, tmp_path: Path
) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(MANIFEST)
    key = tmp_path / "seal.key"
    key.write_bytes(
        pki.seal_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    out = tmp_path / "plain.p7s"
    subprocess.run(
        [
            "openssl", "cms", "-sign", "-binary", "-outform", "DER", "-in", str(data),
            "-signer", str(pki.paths.seal_cert), "-inkey", str(key), "-out", str(out),
        ],
        check=True, capture_output=True,
    )
    check = verify_seal(MANIFEST, out.read_bytes(), trust_roots=[pki.root])
    assert check.code == "SEAL_MALFORMED"
    assert "signingCertificateV2" in check.detail


def seal_cert(pki: Pki, not_before: datetime, not_after: datetime, *,
              key: PrivateKey | None = None, name: str = "short-lived seal"
              ) -> x509.Certificate:
    """A seal certificate (digitalSignature + nonRepudiation) issued by the test root for
    ``key`` (default: the PKI's seal key), with a fresh serial every call."""
    public = (key or pki.seal_key).public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(pki.root.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=True, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(pki.root_key, hashes.SHA256())
    )


def test_expired_seal_certificate_is_reported_and_moment_is_honoured(pki: Pki) -> None:
    now = datetime.now(UTC)
    start, end = now - timedelta(days=20), now - timedelta(days=10)
    cert = seal_cert(pki, start, end)
    seal_der = Sealer(cert, pki.seal_key, [pki.root]).seal(MANIFEST)
    check = verify_seal(MANIFEST, seal_der, trust_roots=[pki.root])
    assert check.code == "SEAL_CERT_EXPIRED", check
    # Checked at a time within the certificate's validity (e.g. a checkpoint's genTime).
    check = verify_seal(
        MANIFEST, seal_der, trust_roots=[pki.root], moment=now - timedelta(days=15)
    )
    assert check.code == "OK", check


def test_signer_certificate(pki: Pki, seal: bytes) -> None:
    assert signer_certificate(seal) == pki.seal_cert
    assert signer_certificate(b"garbage") is None
    assert signer_certificate(b"") is None


def test_sealer_refuses_a_key_that_is_not_the_certificates(pki: Pki) -> None:
    with pytest.raises(SealError) as err:
        Sealer(pki.seal_cert, pki.root_key, [pki.root])
    assert err.value.code == "SEAL_KEY_MISMATCH"


def test_sealing_never_reparses_the_private_key(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    sealer = pki.sealer()

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("private key re-parsed during sealing")

    # pyHanko's stock SimpleSigner.sign_raw calls this on every signature.
    monkeypatch.setattr(serialization, "load_der_private_key", forbidden)
    seal_der = sealer.seal(MANIFEST)
    monkeypatch.undo()
    assert verify_seal(MANIFEST, seal_der, trust_roots=[pki.root]).code == "OK"


def test_verification_works_from_async_code(pki: Pki, seal: bytes) -> None:
    async def main() -> str:
        sealed_here = pki.sealer().seal(MANIFEST)
        assert verify_seal(MANIFEST, sealed_here, trust_roots=[pki.root]).code == "OK"
        return verify_seal(MANIFEST, seal, trust_roots=[pki.root]).code

    assert asyncio.run(main()) == "OK"


def test_failed_verification_logs_no_warning_traceback(
    pki: Pki, other_pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    # A failed check is data (the Check); pyHanko's WARNING-with-traceback would reach the
    # user's terminal through logging.lastResort, so it must arrive at DEBUG at most.
    resealed = other_pki.sealer().seal(MANIFEST)
    with caplog.at_level(logging.DEBUG):
        assert verify_seal(MANIFEST, resealed, trust_roots=[pki.root]).code != "OK"
    assert caplog.records, "expected pyHanko's diagnostics at DEBUG"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
