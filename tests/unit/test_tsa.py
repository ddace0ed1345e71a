"""The embedded RFC 3161 TSA, the clients, and the token verifier.

Tokens are verified independently with ``openssl ts -verify``; tokens for the negative cases
that edoc's own TSA refuses to make (a TSA certificate without the EKU, genTime outside the
certificate) come from pyHanko's ``DummyTimeStamper``, a second, unrelated implementation.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from asn1crypto import algos, cms, keys, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore

from edoc.errors import ConfigError, TimestampError
from edoc.evidence.pki import (
    PkiPaths,
    generate_dev_pki,
    load_certificate,
    load_private_key,
)
from edoc.evidence.tsa import TimestampResult, request_timestamp, verify_timestamp
from edoc.evidence.tsa_embedded import EDOC_DEV_TSA_POLICY, EmbeddedTsa
from edoc.evidence.tsa_transport import HttpTimeStamper, InProcessTimeStamper
from edoc.model.verdict import Status

DOCUMENT = "請求書 No. 42, 110,000 円".encode()
DIGEST = hashlib.sha256(DOCUMENT).digest()


@dataclass
class Pki:
    paths: PkiPaths
    root: x509.Certificate
    tsa_cert: x509.Certificate
    tsa_key: ec.EllipticCurvePrivateKey
    root_key: ec.EllipticCurvePrivateKey
    dir: Path

    def tsa(self, serial_file: Path | None = None, **kwargs: object) -> EmbeddedTsa:
        return EmbeddedTsa(
            self.tsa_cert,
            self.tsa_key,
            [self.root],
            serial_file=serial_file or self.dir / "tsa.serial",
            **kwargs,  # type: ignore[arg-type]
        )


def _make_pki(directory: Path, organisation: str) -> Pki:
    paths = generate_dev_pki(directory / "keys", organisation=organisation)
    tsa_key = load_private_key(paths.tsa_key, None)
    root_key = load_private_key(paths.root_key, None)
    assert isinstance(tsa_key, ec.EllipticCurvePrivateKey)
    assert isinstance(root_key, ec.EllipticCurvePrivateKey)
    return Pki(
        paths=paths,
        root=load_certificate(paths.root_cert),
        tsa_cert=load_certificate(paths.tsa_cert),
        tsa_key=tsa_key,
        root_key=root_key,
        dir=directory,
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return _make_pki(tmp_path_factory.mktemp("archive"), "Test KK")


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return _make_pki(tmp_path_factory.mktemp("elsewhere"), "Elsewhere KK")


@pytest.fixture(scope="module")
def granted(pki: Pki) -> TimestampResult:
    return request_timestamp(InProcessTimeStamper(pki.tsa()), DIGEST)


def _openssl_ts_verify(
    data_path: Path, pki: Pki, digest: bytes, *, token: bool
) -> subprocess.CompletedProcess[str]:
    args = ["openssl", "ts", "-verify"]
    if token:
        args.append("-token_in")
    args += [
        "-in", str(data_path),
        "-digest", digest.hex(),
        "-CAfile", str(pki.paths.root_cert),
        "-untrusted", str(pki.paths.tsa_cert),
    ]
    return subprocess.run(args, capture_output=True, text=True, check=False)


def _request(
    digest: bytes = DIGEST,
    algorithm: str = "sha256",
    *,
    nonce: int | None = 0x1234_5678_9ABC,
    cert_req: bool = True,
    policy: str | None = None,
    extensions: bool = False,
) -> tsp.TimeStampReq:
    fields: dict[str, object] = {
        "version": "v1",
        "message_imprint": {
            "hash_algorithm": {"algorithm": algorithm},
            "hashed_message": digest,
        },
        "cert_req": cert_req,
    }
    if nonce is not None:
        fields["nonce"] = nonce
    if policy is not None:
        fields["req_policy"] = policy
    if extensions:
        fields["extensions"] = [
            {"extn_id": "1.2.3.4.5", "critical": False, "extn_value": b"\x05\x00"}
        ]
    return tsp.TimeStampReq(fields)


def _tst_info(resp: tsp.TimeStampResp) -> tsp.TSTInfo:
    return resp["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed


# --------------------------------------------------------------------------------------------
# EmbeddedTsa and openssl
# --------------------------------------------------------------------------------------------


def test_openssl_verifies_the_full_response(
    pki: Pki, granted: TimestampResult, tmp_path: Path
) -> None:
    resp_path = tmp_path / "resp.tsr"
    resp_path.write_bytes(granted.response_der)
    ok = _openssl_ts_verify(resp_path, pki, DIGEST, token=False)
    assert ok.returncode == 0 and "Verification: OK" in ok.stdout, ok.stdout + ok.stderr
    # Control: the same call with another digest must fail, or the check above proves nothing.
    other = hashlib.sha256(b"another document").digest()
    bad = _openssl_ts_verify(resp_path, pki, other, token=False)
    assert bad.returncode != 0


def test_openssl_verifies_the_bare_token(
    pki: Pki, granted: TimestampResult, tmp_path: Path
) -> None:
    token_path = tmp_path / "token.der"
    token_path.write_bytes(granted.token_der)
    ok = _openssl_ts_verify(token_path, pki, DIGEST, token=True)
    assert ok.returncode == 0 and "Verification: OK" in ok.stdout, ok.stdout + ok.stderr


def test_openssl_rejects_our_token_under_another_root(
    pki: Pki, other_pki: Pki, granted: TimestampResult, tmp_path: Path
) -> None:
    token_path = tmp_path / "token.der"
    token_path.write_bytes(granted.token_der)
    res = subprocess.run(
        [
            "openssl", "ts", "-verify", "-token_in", "-in", str(token_path),
            "-digest", DIGEST.hex(), "-CAfile", str(other_pki.paths.root_cert),
        ],
        capture_output=True, text=True, check=False,
    )
    assert res.returncode != 0


def test_token_fields_follow_rfc3161(pki: Pki, granted: TimestampResult) -> None:
    token = cms.ContentInfo.load(granted.token_der)
    signed_data = token["content"]
    assert signed_data["version"].native == "v3"
    tst = signed_data["encap_content_info"]["content"].parsed
    assert tst["version"].native == "v1"
    assert tst["policy"].dotted == EDOC_DEV_TSA_POLICY == granted.policy
    assert tst["message_imprint"]["hashed_message"].native == DIGEST
    assert tst["accuracy"]["seconds"].native == 1
    assert tst["serial_number"].native == granted.serial
    assert tst["gen_time"].native == granted.gen_time
    assert tst["tsa"].chosen.human_friendly == granted.tsa_name
    assert "NOT ACCREDITED" in granted.tsa_name

    signer = signed_data["signer_infos"][0]
    assert signer["signature_algorithm"]["algorithm"].native == "sha256_ecdsa"
    attrs = {a["type"].native: a["values"][0] for a in signer["signed_attrs"]}
    assert attrs["content_type"].native == "tst_info"
    assert attrs["message_digest"].native == hashlib.sha256(
        signed_data["encap_content_info"]["content"].contents
    ).digest()
    # ESSCertIDv2 (RFC 5816): the SHA-256 of the TSA certificate, computed here independently.
    cert_id = attrs["signing_certificate_v2"]["certs"][0]
    tsa_der = pki.tsa_cert.public_bytes(serialization.Encoding.DER)
    assert cert_id["cert_hash"].native == hashlib.sha256(tsa_der).digest()
    assert cert_id["hash_algorithm"]["algorithm"].native == "sha256"
    assert "signing_time" in attrs

    embedded = {c.chosen.dump() for c in signed_data["certificates"]}
    assert tsa_der in embedded
    assert pki.root.public_bytes(serialization.Encoding.DER) in embedded


def test_response_embeds_the_token_byte_for_byte(granted: TimestampResult) -> None:
    resp = tsp.TimeStampResp.load(granted.response_der)
    assert resp["status"]["status"].native == "granted"
    assert resp["time_stamp_token"].dump() == granted.token_der


def test_gen_time_has_millisecond_precision_in_utc(pki: Pki, tmp_path: Path) -> None:
    instant = (pki.tsa_cert.not_valid_before_utc + timedelta(days=1)).replace(
        microsecond=535_897
    )
    tsa = pki.tsa(tmp_path / "serial", clock=lambda: instant)
    gen_time = _tst_info(tsa.respond(_request()))["gen_time"]
    expected = instant.strftime("%Y%m%d%H%M%S").encode() + b".535Z"
    assert gen_time.contents == expected
    # A clock in another zone is converted to UTC, not mislabelled.
    jst = instant.astimezone(ZoneInfo("Asia/Tokyo"))
    assert jst.hour != instant.hour
    tsa = pki.tsa(tmp_path / "serial", clock=lambda: jst)
    assert _tst_info(tsa.respond(_request()))["gen_time"].contents == expected


def test_nonce_is_echoed_and_absent_when_not_sent(pki: Pki, tmp_path: Path) -> None:
    tsa = pki.tsa(tmp_path / "serial")
    with_nonce = tsa.respond(_request(nonce=0xDEAD_BEEF_CAFE))
    assert _tst_info(with_nonce)["nonce"].native == 0xDEAD_BEEF_CAFE
    without = tsa.respond(_request(nonce=None))
    assert _tst_info(without)["nonce"].native is None


def test_certificates_are_included_only_on_cert_req(pki: Pki, tmp_path: Path) -> None:
    tsa = pki.tsa(tmp_path / "serial")
    with_certs = tsa.respond(_request(cert_req=True))["time_stamp_token"]["content"]
    assert len(with_certs["certificates"]) == 2
    without = tsa.respond(_request(cert_req=False))["time_stamp_token"]["content"]
    assert without["certificates"].native is None


def test_serials_increase_strictly_across_instances_sharing_a_file(
    pki: Pki, tmp_path: Path
) -> None:
    serial_file = tmp_path / "shared.serial"
    first, second = pki.tsa(serial_file), pki.tsa(serial_file)
    serials = [
        _tst_info(tsa.respond(_request()))["serial_number"].native
        for tsa in (first, second, first, second, second, first)
    ]
    assert serials == sorted(serials)
    assert len(set(serials)) == len(serials)
    assert serial_file.read_text().strip() == str(serials[-1])


def test_serials_stay_unique_under_concurrent_use(pki: Pki, tmp_path: Path) -> None:
    serial_file = tmp_path / "busy.serial"
    tsas = [pki.tsa(serial_file) for _ in range(4)]

    def issue(tsa: EmbeddedTsa) -> list[int]:
        return [_tst_info(tsa.respond(_request()))["serial_number"].native for _ in range(15)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(issue, tsas))
    every = [s for r in results for s in r]
    assert sorted(every) == list(range(1, 61))
    for r in results:
        assert r == sorted(r)


def test_serial_continues_after_restart_and_refuses_a_corrupt_file(
    pki: Pki, tmp_path: Path
) -> None:
    serial_file = tmp_path / "serial"
    serial_file.write_text("41\n")
    assert _tst_info(pki.tsa(serial_file).respond(_request()))["serial_number"].native == 42
    serial_file.write_text("forty-two\n")
    resp = pki.tsa(serial_file).respond(_request())
    assert resp["status"]["status"].native == "rejection"
    assert resp["status"]["fail_info"].native == {"system_failure"}
    assert serial_file.read_text() == "forty-two\n"


@pytest.mark.parametrize(
    ("algorithm", "digest"),
    [
        ("sha1", hashlib.sha1(DOCUMENT).digest()),
        ("md5", hashlib.md5(DOCUMENT).digest()),
        ("1.2.3.4.5.6", DIGEST),
    ],
)
def test_weak_or_unknown_hash_is_rejected_with_bad_alg(
    pki: Pki, tmp_path: Path, algorithm: str, digest: bytes
) -> None:
    resp = pki.tsa(tmp_path / "serial").respond(_request(digest, algorithm))
    assert resp["status"]["status"].native == "rejection"
    assert resp["status"]["fail_info"].native == {"bad_alg"}
    assert resp["time_stamp_token"].native is None
    assert not (tmp_path / "serial").exists()  # no serial number spent on a rejection


def test_openssl_reads_the_rejection(pki: Pki, tmp_path: Path) -> None:
    sha1 = hashlib.sha1(DOCUMENT).digest()
    resp_path = tmp_path / "rejected.tsr"
    resp_path.write_bytes(pki.tsa(tmp_path / "serial").respond(_request(sha1, "sha1")).dump())
    res = subprocess.run(
        ["openssl", "ts", "-reply", "-in", str(resp_path), "-text"],
        capture_output=True, text=True, check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "Rejected" in res.stdout and "unrecognized or unsupported algorithm" in res.stdout


@pytest.mark.parametrize(
    ("request_factory", "fail_info"),
    [
        (lambda: _request(DIGEST[:20]), "bad_data_format"),
        (lambda: _request(hashlib.sha512(DOCUMENT).digest(), "sha384"), "bad_data_format"),
        (lambda: _request(policy="1.2.3.4.5"), "unaccepted_policy"),
        (lambda: _request(extensions=True), "unaccepted_extensions"),
        (lambda: tsp.TimeStampReq.load(bytes.fromhex("3003020101")), "bad_data_format"),
        (lambda: tsp.TimeStampReq.load(b"\x30\x05\x02\x01\x01\xff\xff"), "bad_data_format"),
    ],
    ids=["short-imprint", "long-imprint", "policy", "extension", "no-imprint", "garbage"],
)
def test_bad_requests_get_a_rejection_not_an_exception(
    pki: Pki,
    tmp_path: Path,
    request_factory: Callable[[], tsp.TimeStampReq],
    fail_info: str,
) -> None:
    resp = pki.tsa(tmp_path / "serial").respond(request_factory())
    assert resp["status"]["status"].native == "rejection"
    assert resp["status"]["fail_info"].native == {fail_info}
    assert resp["status"]["status_string"].native


def test_our_own_policy_may_be_requested(pki: Pki, tmp_path: Path) -> None:
    resp = pki.tsa(tmp_path / "serial").respond(_request(policy=EDOC_DEV_TSA_POLICY))
    assert resp["status"]["status"].native == "granted"


def test_tsa_refuses_to_stamp_outside_its_certificate_validity(
    pki: Pki, tmp_path: Path
) -> None:
    after_expiry = pki.tsa_cert.not_valid_after_utc + timedelta(seconds=1)
    tsa = pki.tsa(tmp_path / "serial", clock=lambda: after_expiry)
    resp = tsa.respond(_request())
    assert resp["status"]["status"].native == "rejection"
    assert resp["status"]["fail_info"].native == {"system_failure"}
    with pytest.raises(TimestampError) as err:
        request_timestamp(InProcessTimeStamper(tsa), DIGEST)
    assert err.value.code == "TSA_REJECTED"
    assert "renew" in str(err.value)


def test_tsa_refuses_a_certificate_without_the_eku_or_a_foreign_key(pki: Pki) -> None:
    no_eku, _ = _issue_tsa_cert(pki, eku=None)
    with pytest.raises(ConfigError) as err:
        EmbeddedTsa(no_eku, pki.tsa_key, [pki.root], serial_file=pki.dir / "x")
    assert err.value.code == "TSA_CERT_UNSUITABLE"
    with pytest.raises(ConfigError) as err:
        EmbeddedTsa(pki.tsa_cert, pki.root_key, [pki.root], serial_file=pki.dir / "x")
    assert err.value.code == "TSA_CERT_UNSUITABLE"


# --------------------------------------------------------------------------------------------
# request_timestamp
# --------------------------------------------------------------------------------------------


def test_request_timestamp_returns_what_the_token_says(pki: Pki, tmp_path: Path) -> None:
    instant = (pki.tsa_cert.not_valid_before_utc + timedelta(hours=5)).replace(
        microsecond=456_000
    )
    stamper = InProcessTimeStamper(pki.tsa(tmp_path / "serial", clock=lambda: instant))
    result = request_timestamp(stamper, DIGEST)
    assert result.gen_time == instant
    assert result.serial == 1
    assert result.policy == EDOC_DEV_TSA_POLICY
    assert result.tsa_name.startswith("Common Name: edoc development TSA (NOT ACCREDITED)")
    assert request_timestamp(stamper, DIGEST).serial == 2


def test_request_timestamp_supports_sha384_and_sha512(pki: Pki, tmp_path: Path) -> None:
    stamper = InProcessTimeStamper(pki.tsa(tmp_path / "serial"))
    for md in ("sha384", "sha512"):
        digest = hashlib.new(md, DOCUMENT).digest()
        result = request_timestamp(stamper, digest, md)
        check, _ = verify_timestamp(
            result.token_der, digest=digest, trust_roots=[pki.root], md=md
        )
        assert check.code == "OK", check


def test_request_timestamp_refuses_a_digest_of_the_wrong_length(pki: Pki) -> None:
    with pytest.raises(TimestampError) as err:
        request_timestamp(InProcessTimeStamper(pki.tsa()), DIGEST[:16])
    assert err.value.code == "TSA_REQUEST_INVALID"
    with pytest.raises(TimestampError) as err:
        request_timestamp(InProcessTimeStamper(pki.tsa()), DIGEST[:20], "sha1")
    assert err.value.code == "TSA_REQUEST_INVALID"


class _ReplayingTsa(EmbeddedTsa):
    """A broken TSA that answers every request with its first response (wrong nonce)."""

    _first: tsp.TimeStampResp | None = None

    def respond(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        if self._first is None:
            self._first = super().respond(req)
        return self._first


def test_request_timestamp_detects_a_replayed_response(pki: Pki, tmp_path: Path) -> None:
    tsa = _ReplayingTsa(pki.tsa_cert, pki.tsa_key, [pki.root], serial_file=tmp_path / "s")
    stamper = InProcessTimeStamper(tsa)
    request_timestamp(stamper, DIGEST)
    with pytest.raises(TimestampError) as err:
        request_timestamp(stamper, DIGEST)
    assert err.value.code == "TSA_RESPONSE_INVALID"
    assert "nonce" in str(err.value)


def test_in_process_stamper_works_through_pyhanko_async_api(pki: Pki, tmp_path: Path) -> None:
    import asyncio

    stamper = InProcessTimeStamper(pki.tsa(tmp_path / "serial"))
    token = asyncio.run(stamper.async_timestamp(DIGEST, "sha256"))
    check, _ = verify_timestamp(token.dump(), digest=DIGEST, trust_roots=[pki.root])
    assert check.code == "OK", check


# --------------------------------------------------------------------------------------------
# verify_timestamp
# --------------------------------------------------------------------------------------------


def test_verify_accepts_response_and_token(pki: Pki, granted: TimestampResult) -> None:
    for der in (granted.response_der, granted.token_der):
        check, gen_time = verify_timestamp(der, digest=DIGEST, trust_roots=[pki.root])
        assert check.status is Status.PASS and check.code == "OK", check
        assert check.name == "timestamp"
        assert gen_time == granted.gen_time


def test_verify_reports_a_different_digest(pki: Pki, granted: TimestampResult) -> None:
    other = hashlib.sha256(DOCUMENT + b" (altered)").digest()
    check, gen_time = verify_timestamp(granted.token_der, digest=other, trust_roots=[pki.root])
    assert check.code == "TSA_IMPRINT_MISMATCH"
    assert check.status is Status.FAIL
    assert check.expected == f"sha256:{other.hex()}"
    assert check.found == f"sha256:{DIGEST.hex()}"
    assert gen_time is None


def test_verify_reports_a_digest_algorithm_mismatch(pki: Pki, granted: TimestampResult) -> None:
    check, _ = verify_timestamp(
        granted.token_der,
        digest=hashlib.sha384(DOCUMENT).digest(),
        trust_roots=[pki.root],
        md="sha384",
    )
    assert check.code == "TSA_IMPRINT_MISMATCH"


def test_verify_reports_a_token_from_another_root(
    pki: Pki, other_pki: Pki, tmp_path: Path
) -> None:
    foreign = request_timestamp(InProcessTimeStamper(other_pki.tsa(tmp_path / "s")), DIGEST)
    check, gen_time = verify_timestamp(foreign.token_der, digest=DIGEST, trust_roots=[pki.root])
    assert check.code == "TSA_CHAIN_UNTRUSTED", check
    assert gen_time is None
    # ...and the same token is fine for whoever trusts that root.
    check, _ = verify_timestamp(foreign.token_der, digest=DIGEST, trust_roots=[other_pki.root])
    assert check.code == "OK", check


def test_verify_with_no_trust_roots_trusts_nothing(granted: TimestampResult) -> None:
    check, _ = verify_timestamp(granted.token_der, digest=DIGEST, trust_roots=[])
    assert check.code == "TSA_CHAIN_UNTRUSTED"


def _flip_inside(der: bytes, marker: bytes, offset: int = 0) -> bytes:
    at = der.index(marker) + offset
    return der[:at] + bytes([der[at] ^ 0x01]) + der[at + 1 :]


def test_verify_reports_an_altered_tst_info(pki: Pki, granted: TimestampResult) -> None:
    # Change the last digit of genTime's year inside the encapsulated TSTInfo: the signature
    # is intact, but messageDigest no longer matches the content.
    gen_time_text = granted.gen_time.strftime("%Y%m%d%H%M%S").encode()
    tampered = _flip_inside(granted.token_der, gen_time_text, 3)
    assert tampered != granted.token_der
    check, _ = verify_timestamp(tampered, digest=DIGEST, trust_roots=[pki.root])
    assert check.code == "TSA_SIGNATURE_INVALID", check


def test_verify_reports_an_altered_signature(pki: Pki, granted: TimestampResult) -> None:
    token = cms.ContentInfo.load(granted.token_der)
    signature = token["content"]["signer_infos"][0]["signature"].native
    tampered = _flip_inside(granted.token_der, signature, len(signature) // 2)
    check, _ = verify_timestamp(tampered, digest=DIGEST, trust_roots=[pki.root])
    assert check.code == "TSA_SIGNATURE_INVALID", check


def test_verify_reports_an_altered_signed_attribute(pki: Pki, granted: TimestampResult) -> None:
    token = cms.ContentInfo.load(granted.token_der)
    signer = token["content"]["signer_infos"][0]
    signing_time = next(
        a for a in signer["signed_attrs"] if a["type"].native == "signing_time"
    )
    tampered = _flip_inside(granted.token_der, signing_time.dump(), len(signing_time.dump()) - 3)
    check, _ = verify_timestamp(tampered, digest=DIGEST, trust_roots=[pki.root])
    assert check.code == "TSA_SIGNATURE_INVALID", check


@pytest.mark.parametrize(
    "der",
    [b"", b"\x00", b"not a token at all", b"\x30\x03\x02\x01\x01", bytes(range(256))],
    ids=["empty", "zero", "text", "tiny-sequence", "noise"],
)
def test_verify_reports_garbage_as_malformed(pki: Pki, der: bytes) -> None:
    check, gen_time = verify_timestamp(der, digest=DIGEST, trust_roots=[pki.root])
    assert check.code == "TSA_TOKEN_MALFORMED"
    assert gen_time is None


def test_verify_reports_a_rejection_response_as_malformed(pki: Pki, tmp_path: Path) -> None:
    sha1 = hashlib.sha1(DOCUMENT).digest()
    rejection = pki.tsa(tmp_path / "serial").respond(_request(sha1, "sha1")).dump()
    check, _ = verify_timestamp(rejection, digest=DIGEST, trust_roots=[pki.root])
    assert check.code == "TSA_TOKEN_MALFORMED"
    assert "rejection" in check.detail


def test_verify_reports_a_truncated_token_as_malformed(pki: Pki, granted: TimestampResult) -> None:
    check, _ = verify_timestamp(
        granted.token_der[: len(granted.token_der) // 2], digest=DIGEST, trust_roots=[pki.root]
    )
    assert check.code == "TSA_TOKEN_MALFORMED"


def test_verify_reports_a_token_without_certificates_as_malformed(
    pki: Pki, tmp_path: Path
) -> None:
    resp = pki.tsa(tmp_path / "serial").respond(_request(cert_req=False))
    check, _ = verify_timestamp(resp.dump(), digest=DIGEST, trust_roots=[pki.root])
    assert check.code == "TSA_TOKEN_MALFORMED"
    assert "certReq" in check.detail


# -- tokens edoc's TSA would refuse to make, from pyHanko's DummyTimeStamper ------------------


def _issue_tsa_cert(
    pki: Pki,
    *,
    eku: bool | None = True,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
) -> tuple[x509.Certificate, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]:
    """A TSA certificate signed by ``pki``'s root; ``eku``: True critical, False non-critical,
    None absent."""
    key = key or pki.tsa_key
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test TSA")]))
        .issuer_name(pki.root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=30))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(pki.root_key.public_key()),
            critical=False,
        )
    )
    if eku is not None:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=eku
        )
    return builder.sign(pki.root_key, hashes.SHA256()), key


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    # DummyTimeStamper signs with RSA only.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _dummy_token(
    pki: Pki, cert: x509.Certificate, key: rsa.RSAPrivateKey, at: datetime | None = None
) -> bytes:
    cert_asn1 = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    key_info = keys.PrivateKeyInfo.load(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    root_asn1 = asn1_x509.Certificate.load(pki.root.public_bytes(serialization.Encoding.DER))
    stamper = DummyTimeStamper(
        cert_asn1,
        key_info,
        SimpleCertificateStore.from_certs([root_asn1]),  # type: ignore[no-untyped-call]
        fixed_dt=at,
    )
    # request_timestamp goes through the same nonce and imprint checks as for any TSA.
    return request_timestamp(stamper, DIGEST).token_der


def test_a_correct_foreign_implementation_token_verifies(
    pki: Pki, rsa_key: rsa.RSAPrivateKey
) -> None:
    cert, _ = _issue_tsa_cert(pki, key=rsa_key)
    token = _dummy_token(pki, cert, rsa_key)
    check, gen_time = verify_timestamp(token, digest=DIGEST, trust_roots=[pki.root])
    assert check.code == "OK", check
    assert gen_time is not None


def test_verify_reports_a_tsa_certificate_without_eku(
    pki: Pki, rsa_key: rsa.RSAPrivateKey
) -> None:
    cert, _ = _issue_tsa_cert(pki, eku=None, key=rsa_key)
    check, _ = verify_timestamp(
        _dummy_token(pki, cert, rsa_key), digest=DIGEST, trust_roots=[pki.root]
    )
    assert check.code == "TSA_EKU_MISSING", check


def test_verify_reports_a_non_critical_eku(pki: Pki, rsa_key: rsa.RSAPrivateKey) -> None:
    cert, _ = _issue_tsa_cert(pki, eku=False, key=rsa_key)
    check, _ = verify_timestamp(
        _dummy_token(pki, cert, rsa_key), digest=DIGEST, trust_roots=[pki.root]
    )
    assert check.code == "TSA_EKU_MISSING", check
    assert "non-critical" in check.detail


def test_verify_reports_gen_time_after_the_tsa_certificate_expired(
    pki: Pki, rsa_key: rsa.RSAPrivateKey
) -> None:
    now = datetime.now(UTC)
    cert, _ = _issue_tsa_cert(
        pki, key=rsa_key, not_before=now - timedelta(days=10), not_after=now - timedelta(days=5)
    )
    token = _dummy_token(pki, cert, rsa_key, at=now - timedelta(days=1))
    check, gen_time = verify_timestamp(token, digest=DIGEST, trust_roots=[pki.root])
    assert check.code == "TSA_CERT_EXPIRED", check
    assert gen_time is None


def test_validity_is_judged_at_gen_time_not_today(pki: Pki, rsa_key: rsa.RSAPrivateKey) -> None:
    # The TSA certificate has expired since, but was valid when the token was made: the token
    # stays valid (RFC 3161 §4, and what lets archives outlive TSA certificates).
    now = datetime.now(UTC)
    cert, _ = _issue_tsa_cert(
        pki, key=rsa_key, not_before=now - timedelta(days=10), not_after=now - timedelta(days=5)
    )
    token = _dummy_token(pki, cert, rsa_key, at=now - timedelta(days=7))
    check, gen_time = verify_timestamp(token, digest=DIGEST, trust_roots=[pki.root])
    assert check.code == "OK", check
    assert gen_time is not None and gen_time < now - timedelta(days=6)


# --------------------------------------------------------------------------------------------
# HttpTimeStamper against a real HTTP server
# --------------------------------------------------------------------------------------------


@dataclass
class TsaServer:
    url: str
    tsa: EmbeddedTsa
    connections: int = 0
    requests: int = 0
    authorizations: list[str | None] = field(default_factory=list)
    required_auth: str | None = None
    content_type: str = "application/timestamp-reply"


@pytest.fixture
def tsa_server(pki: Pki, tmp_path: Path) -> Iterator[TsaServer]:
    state = TsaServer(url="", tsa=pki.tsa(tmp_path / "http.serial"))
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so session reuse is observable
        # http.server writes headers and body separately; with Nagle on, each kept-alive
        # request would stall ~40 ms on the client's delayed ACK.
        disable_nagle_algorithm = True

        def setup(self) -> None:
            super().setup()
            with lock:
                state.connections += 1  # one handler instance per TCP connection

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            auth = self.headers.get("Authorization")
            with lock:
                state.requests += 1
                state.authorizations.append(auth)
            if state.required_auth is not None and auth != state.required_auth:
                self._send(401, b"", "text/plain")
                return
            assert self.headers["Content-Type"] == "application/timestamp-query"
            reply = state.tsa.respond(tsp.TimeStampReq.load(body)).dump()
            self._send(200, reply, state.content_type)

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/tsa"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_http_stamper_reuses_one_connection(pki: Pki, tsa_server: TsaServer) -> None:
    with HttpTimeStamper(tsa_server.url, timeout=5) as stamper:
        results = [request_timestamp(stamper, DIGEST) for _ in range(4)]
    assert tsa_server.requests == 4
    assert tsa_server.connections == 1
    assert [r.serial for r in results] == [1, 2, 3, 4]
    check, _ = verify_timestamp(results[-1].response_der, digest=DIGEST, trust_roots=[pki.root])
    assert check.code == "OK", check


def test_separate_stampers_open_separate_connections(tsa_server: TsaServer) -> None:
    # Control for the test above: the counter does see new connections.
    for _ in range(3):
        with HttpTimeStamper(tsa_server.url, timeout=5) as stamper:
            request_timestamp(stamper, DIGEST)
    assert tsa_server.connections == 3


def test_http_stamper_sends_basic_auth(tsa_server: TsaServer) -> None:
    tsa_server.required_auth = "Basic " + base64.b64encode(b"edoc:s3cret").decode()
    with HttpTimeStamper(
        tsa_server.url, username="edoc", password="s3cret", timeout=5
    ) as stamper:
        request_timestamp(stamper, DIGEST)
    with HttpTimeStamper(
        tsa_server.url, username="edoc", password="wrong-pw", timeout=5
    ) as stamper, pytest.raises(TimestampError) as err:
        request_timestamp(stamper, DIGEST)
    assert err.value.code == "TSA_HTTP_ERROR"
    assert "401" in str(err.value)
    assert "wrong-pw" not in str(err.value)
    assert err.value.hint is not None and "password" in err.value.hint


def test_http_stamper_rejects_a_wrong_content_type(tsa_server: TsaServer) -> None:
    tsa_server.content_type = "text/html"
    with HttpTimeStamper(tsa_server.url, timeout=5) as stamper, pytest.raises(
        TimestampError
    ) as err:
        request_timestamp(stamper, DIGEST)
    assert err.value.code == "TSA_RESPONSE_INVALID"
    assert "text/html" in str(err.value)


def test_http_stamper_reports_a_tsa_rejection(
    pki: Pki, tsa_server: TsaServer, tmp_path: Path
) -> None:
    expired = pki.tsa_cert.not_valid_after_utc + timedelta(days=1)
    tsa_server.tsa = pki.tsa(tmp_path / "serial", clock=lambda: expired)
    with HttpTimeStamper(tsa_server.url, timeout=5) as stamper, pytest.raises(
        TimestampError
    ) as err:
        request_timestamp(stamper, DIGEST)
    assert err.value.code == "TSA_REJECTED"
    assert "system_failure" in str(err.value) and "renew" in str(err.value)


def test_http_stamper_reports_a_closed_port_as_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on the port any more.
    url = f"http://clerk:hunter2@127.0.0.1:{port}/tsa?apikey=topsecret"
    with HttpTimeStamper(url, timeout=2) as stamper, pytest.raises(TimestampError) as err:
        request_timestamp(stamper, DIGEST)
    assert err.value.code == "TSA_UNREACHABLE"
    message = str(err.value)
    assert f"http://127.0.0.1:{port}/tsa" in message
    assert "hunter2" not in message and "topsecret" not in message and "clerk" not in message
    assert "refused" in message.lower()
    assert "\n" not in message


def test_http_stamper_reports_a_silent_server_as_unreachable() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the TCP handshake, never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/tsa"
        with HttpTimeStamper(url, timeout=0.3) as stamper, pytest.raises(TimestampError) as err:
            request_timestamp(stamper, DIGEST)
    assert err.value.code == "TSA_UNREACHABLE"
    assert "no answer within 0.3 s" in str(err.value)


def test_http_stamper_works_through_pyhanko_async_api(pki: Pki, tsa_server: TsaServer) -> None:
    import asyncio

    with HttpTimeStamper(tsa_server.url, timeout=5) as stamper:
        token = asyncio.run(stamper.async_timestamp(DIGEST, "sha256"))
    check, _ = verify_timestamp(token.dump(), digest=DIGEST, trust_roots=[pki.root])
    assert check.code == "OK", check


def test_embedded_tsa_answers_requests_built_by_pyhanko(pki: Pki, tmp_path: Path) -> None:
    stamper = InProcessTimeStamper(pki.tsa(tmp_path / "serial"))
    nonce, req = stamper.request_cms(DIGEST, "sha256")  # type: ignore[no-untyped-call]
    resp = pki.tsa(tmp_path / "serial").respond(req)
    assert _tst_info(resp)["nonce"].native == nonce
    assert isinstance(req["message_imprint"]["hash_algorithm"], algos.DigestAlgorithm)
