"""A reused ``Sealer``: what it caches per signer must never leak from one seal into the next.

``Sealer`` keeps the signingCertificateV2 attribute and the SignerInfo skeleton as DER and reuses
them (issue 8). These tests seal several payloads with one ``Sealer`` at different clock values
and check every seal on its own: its own messageDigest and signingTime, the signer certificate
named by a hash computed here with hashlib, and ``openssl cms -verify`` plus ``verify_seal``.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from asn1crypto import cms, core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from edoc.evidence.pki import PrivateKey
from edoc.evidence.sealing import Sealer, signer_certificate, verify_seal
from edoc.model.verdict import Status
from tests.unit.test_sealing import Pki, make_pki, seal_cert

JST = timezone(timedelta(hours=9))
FIRST = b'{"record_id":"r-0001","version":1}'
SECOND = b'{"record_id":"r-0002","version":1}'

CADES_BES_ATTRIBUTES = {"content_type", "message_digest", "signing_time", "signing_certificate_v2"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("archive"), "Cache KK")


class Clock:
    """A clock the test sets by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _certify(pki: Pki, key: PrivateKey, name: str) -> x509.Certificate:
    """A seal certificate for ``key`` issued by the test root (a fresh serial every call)."""
    now = datetime.now(UTC)
    return seal_cert(pki, now - timedelta(minutes=5), now + timedelta(days=30), key=key,
                     name=name)


def _openssl_verifies(seal_der: bytes, data: bytes, ca: Path, tmp_path: Path) -> bool:
    seal_path = tmp_path / f"{hashlib.sha256(seal_der).hexdigest()}.p7s"
    data_path = tmp_path / f"{hashlib.sha256(data).hexdigest()}.bin"
    seal_path.write_bytes(seal_der)
    data_path.write_bytes(data)
    res = subprocess.run(
        [
            "openssl", "cms", "-verify", "-binary", "-inform", "DER",
            "-in", str(seal_path), "-content", str(data_path),
            "-CAfile", str(ca), "-purpose", "any", "-out", "/dev/null",
        ],
        capture_output=True, text=True, check=False,
    )
    return res.returncode == 0 and "Verification successful" in res.stderr


def _signer_info(seal_der: bytes) -> cms.SignerInfo:
    signer_infos = cms.ContentInfo.load(seal_der)["content"]["signer_infos"]
    assert len(signer_infos) == 1
    info: cms.SignerInfo = signer_infos[0]
    return info


def _attributes(seal_der: bytes) -> dict[str, core.Asn1Value]:
    """The signed attributes by type; each must occur once with exactly one value."""
    attrs = _signer_info(seal_der)["signed_attrs"]
    types = [a["type"].native for a in attrs]
    assert len(types) == len(set(types)), types
    assert all(len(a["values"]) == 1 for a in attrs)
    return {a["type"].native: a["values"][0] for a in attrs}


def _assert_names_certificate(seal_der: bytes, cert: x509.Certificate) -> None:
    """signingCertificateV2 (RFC 5035) and the SignerInfo sid both name exactly ``cert``."""
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    ess = _attributes(seal_der)["signing_certificate_v2"]["certs"]
    assert len(ess) == 1
    cert_id = ess[0]
    assert cert_id["hash_algorithm"]["algorithm"].native == "sha256"
    assert cert_id["cert_hash"].native == hashlib.sha256(cert_der).digest()
    issuer_serial = cert_id["issuer_serial"]
    assert issuer_serial["serial_number"].native == cert.serial_number
    issuer = issuer_serial["issuer"][0]
    assert issuer.name == "directory_name"
    assert issuer.chosen.untag().dump() == cert.issuer.public_bytes()
    sid = _signer_info(seal_der)["sid"].chosen
    assert sid["serial_number"].native == cert.serial_number
    assert sid["issuer"].dump() == cert.issuer.public_bytes()
    assert signer_certificate(seal_der) == cert


def test_seals_from_one_sealer_carry_their_own_time_and_digest(
    pki: Pki, tmp_path: Path
) -> None:
    clock = Clock(datetime(2026, 4, 1, 9, 0, 0, 750_000, tzinfo=UTC))
    sealer = Sealer(pki.seal_cert, pki.seal_key, [pki.root], clock=clock)
    first = sealer.seal(FIRST)
    # Same instant as 2026-04-02T01:30:15Z; the seal must state it in UTC.
    clock.now = datetime(2026, 4, 2, 10, 30, 15, tzinfo=JST)
    second = sealer.seal(SECOND)

    for seal_der, data, instant in (
        (first, FIRST, datetime(2026, 4, 1, 9, 0, 0, tzinfo=UTC)),
        (second, SECOND, datetime(2026, 4, 2, 1, 30, 15, tzinfo=UTC)),
    ):
        attrs = _attributes(seal_der)
        assert set(attrs) == CADES_BES_ATTRIBUTES
        assert attrs["content_type"].native == "data"
        assert attrs["message_digest"].native == hashlib.sha256(data).digest()
        signing_time = attrs["signing_time"]
        assert signing_time.name == "utc_time"
        assert signing_time.chosen.dump().endswith(b"Z")  # UTC, not a local offset
        assert signing_time.native == instant
        _assert_names_certificate(seal_der, pki.seal_cert)
        assert _openssl_verifies(seal_der, data, pki.paths.root_cert, tmp_path)
        check = verify_seal(data, seal_der, trust_roots=[pki.root])
        assert check.status is Status.PASS and check.code == "OK", check


def test_a_seal_fails_against_the_other_seals_data(pki: Pki, tmp_path: Path) -> None:
    sealer = Sealer(pki.seal_cert, pki.seal_key, [pki.root])
    first, second = sealer.seal(FIRST), sealer.seal(SECOND)
    assert _openssl_verifies(first, FIRST, pki.paths.root_cert, tmp_path)
    assert _openssl_verifies(second, SECOND, pki.paths.root_cert, tmp_path)
    assert not _openssl_verifies(first, SECOND, pki.paths.root_cert, tmp_path)
    assert not _openssl_verifies(second, FIRST, pki.paths.root_cert, tmp_path)
    assert verify_seal(SECOND, first, trust_roots=[pki.root]).code == "SEAL_SIGNATURE_INVALID"
    assert verify_seal(FIRST, second, trust_roots=[pki.root]).code == "SEAL_SIGNATURE_INVALID"


def test_each_sealer_names_its_own_certificate(pki: Pki, tmp_path: Path) -> None:
    # Two certificates for the same key: only the certificate identity differs, so a cache
    # shared between sealers (or keyed by the key) would name the wrong one.
    other_cert = _certify(pki, pki.seal_key, "edoc second seal certificate")
    assert other_cert.serial_number != pki.seal_cert.serial_number
    sealers = [
        (Sealer(pki.seal_cert, pki.seal_key, [pki.root]), pki.seal_cert),
        (Sealer(other_cert, pki.seal_key, [pki.root]), other_cert),
    ]
    for _ in range(2):  # interleaved, and each sealer used more than once
        for sealer, cert in sealers:
            seal_der = sealer.seal(FIRST)
            _assert_names_certificate(seal_der, cert)
            assert verify_seal(FIRST, seal_der, trust_roots=[pki.root]).code == "OK"
    assert _openssl_verifies(seal_der, FIRST, pki.paths.root_cert, tmp_path)


def test_signed_attributes_are_der(pki: Pki) -> None:
    # RFC 5652 §5.4: the signature is over the DER encoding of the attributes; asn1crypto
    # re-encodes from scratch with force=True, sorting the SET OF (X.690 §11.6).
    seal_der = Sealer(pki.seal_cert, pki.seal_key, [pki.root]).seal(FIRST)
    as_set = _signer_info(seal_der)["signed_attrs"].untag().dump()
    assert cms.CMSAttributes.load(as_set, strict=True).dump(force=True) == as_set


@pytest.mark.parametrize(
    ("make_key", "signature_algorithm", "digest"),
    [
        (lambda: ec.generate_private_key(ec.SECP384R1()), "sha384_ecdsa", "sha384"),
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
         "sha256_rsa", "sha256"),
    ],
    ids=["ecdsa-p384", "rsa-2048-pkcs1v15"],
)
def test_other_key_types_seal_repeatedly(
    pki: Pki,
    tmp_path: Path,
    make_key: Callable[[], PrivateKey],
    signature_algorithm: str,
    digest: str,
) -> None:
    key = make_key()
    cert = _certify(pki, key, f"edoc {signature_algorithm} seal")
    sealer = Sealer(cert, key, [pki.root])
    for data in (FIRST, SECOND):  # the second seal reuses the cached SignerInfo skeleton
        seal_der = sealer.seal(data)
        info = _signer_info(seal_der)
        assert info["signature_algorithm"]["algorithm"].native == signature_algorithm
        assert info["digest_algorithm"]["algorithm"].native == digest
        assert _attributes(seal_der)["message_digest"].native == hashlib.new(digest, data).digest()
        _assert_names_certificate(seal_der, cert)
        assert _openssl_verifies(seal_der, data, pki.paths.root_cert, tmp_path)
        assert verify_seal(data, seal_der, trust_roots=[pki.root]).code == "OK"
    if isinstance(key, rsa.RSAPrivateKey):
        # RSA seals stay PKCS#1 v1.5: check the signature over the SET OF encoding of the
        # signed attributes (RFC 5652 §5.4) with that padding, independently of pyHanko.
        key.public_key().verify(
            info["signature"].native,
            info["signed_attrs"].untag().dump(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )


@pytest.mark.parametrize(
    ("instant", "choice"),
    [
        (datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC), "utc_time"),
        (datetime(2050, 1, 1, 0, 0, 0, tzinfo=UTC), "generalized_time"),
    ],
)
def test_signing_time_encoding_follows_rfc5652(
    pki: Pki, tmp_path: Path, instant: datetime, choice: str
) -> None:
    # RFC 5652 §11.3: UTCTime up to 2049, GeneralizedTime from 2050 on.
    seal_der = Sealer(pki.seal_cert, pki.seal_key, [pki.root], clock=lambda: instant).seal(FIRST)
    signing_time = _attributes(seal_der)["signing_time"]
    assert signing_time.name == choice
    assert signing_time.native == instant
    assert _openssl_verifies(seal_der, FIRST, pki.paths.root_cert, tmp_path)
    assert verify_seal(FIRST, seal_der, trust_roots=[pki.root]).code == "OK"


def test_seals_made_in_parallel_keep_their_own_digest(pki: Pki) -> None:
    sealer = Sealer(pki.seal_cert, pki.seal_key, [pki.root])
    payloads = [b'{"record_id":"r-%04d"}' % i for i in range(16)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        seals = list(pool.map(sealer.seal, payloads))
    for data, seal_der in zip(payloads, seals, strict=True):
        assert _attributes(seal_der)["message_digest"].native == hashlib.sha256(data).digest()
        _assert_names_certificate(seal_der, pki.seal_cert)
    for data, seal_der in list(zip(payloads, seals, strict=True))[::5]:
        assert verify_seal(data, seal_der, trust_roots=[pki.root]).code == "OK"
