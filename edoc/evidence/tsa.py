"""RFC 3161 time-stamp tokens: requesting one, accepting the answer, verifying it.

This module owns the token *mechanism*, independent of how a TSA is reached:

* ``request_timestamp`` — one synchronous request with a nonce through any pyHanko
  ``TimeStamper`` (``edoc.evidence.tsa_transport``: in-process or HTTP), returning the full
  response (what ``openssl ts -verify -in`` takes) and the token.
* ``verify_timestamp`` — checks a token against a digest and trust roots, delegating the CMS and
  path-validation work to pyHanko / pyhanko-certvalidator, and returns a ``Check``; it never
  raises for a bad token.
* the asn1crypto helpers every evidence module shares (``asn1_certificate``,
  ``validation_context``, the RFC-correct ``TimeStampResp``).

Issuing tokens (edoc's embedded development TSA) is ``edoc.evidence.tsa_embedded``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.sign.general import (
    CMSExtractionError,
    check_ess_certid,
    extract_certificate_info,
    extract_signer_info,
)
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.generic_cms import get_signing_cert_attr, validate_tst_signed_data
from pyhanko_certvalidator import ValidationContext

from edoc.errors import TimestampError
from edoc.evidence.async_bridge import run_sync
from edoc.model.verdict import Check

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


class _DemoteToDebug(logging.Filter):
    """pyHanko logs each failed CMS validation as a WARNING with a traceback. edoc reports those
    outcomes as ``Check`` results, so the records are demoted to DEBUG: they stay in a debug log
    but never reach a clerk's terminal (not even through ``logging.lastResort``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING:
            record.levelno = logging.DEBUG
            record.levelname = "DEBUG"
        return True


logging.getLogger("pyhanko.sign.validation.generic_cms").addFilter(_DemoteToDebug())


#: Message-imprint hash algorithms the embedded TSA accepts, with their digest lengths. SHA-1 and
#: MD5 are refused: a token over a collidable imprint proves nothing about the document.
ACCEPTED_IMPRINT_HASHES: dict[str, int] = {"sha256": 32, "sha384": 48, "sha512": 64}


@functools.lru_cache(maxsize=256)
def _asn1_from_der(der: bytes) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(der)


def asn1_certificate(cert: x509.Certificate) -> asn1_x509.Certificate:
    """The asn1crypto form of a ``cryptography`` certificate (cached: trust roots repeat)."""
    return _asn1_from_der(cert.public_bytes(serialization.Encoding.DER))


def validation_context(
    trust_roots: Sequence[x509.Certificate], moment: datetime | None
) -> ValidationContext:
    """A certvalidator context that trusts exactly ``trust_roots`` and never goes online.

    Revocation is soft-fail: the development PKI publishes no CRL or OCSP, and an archive must
    stay verifiable offline (evidence bundles are checked without network access).
    """
    return ValidationContext(
        trust_roots=[asn1_certificate(c) for c in trust_roots],
        allow_fetching=False,
        revocation_mode="soft-fail",
        moment=moment,
    )


class TimeStampResp(tsp.TimeStampResp):  # type: ignore[misc]  # asn1crypto is untyped
    """``TimeStampResp`` with ``timeStampToken OPTIONAL`` as RFC 3161 §2.4.2 defines it.

    asn1crypto 1.5 declares the token mandatory, so a rejection (status only) can be neither
    encoded nor parsed with ``tsp.TimeStampResp``; this subclass fixes the field list and is
    still a ``tsp.TimeStampResp`` for pyHanko.
    """

    _fields = [  # noqa: RUF012 - asn1crypto's class-level field spec
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def as_timestamp_resp(resp: tsp.TimeStampResp) -> TimeStampResp:
    """Re-read a response from another client with the RFC-correct field list."""
    if isinstance(resp, TimeStampResp):
        return resp
    reloaded: TimeStampResp = TimeStampResp.load(resp.dump())
    return reloaded

# --------------------------------------------------------------------------------------------
# Requesting a timestamp
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimestampResult:
    """A granted timestamp, as stored beside the evidence it covers."""

    #: The full DER TimeStampResp — what ``openssl ts -verify -in`` takes.
    response_der: bytes
    #: The DER ContentInfo token (``openssl ts -verify -token_in``); RFC 3161 §2.4.2.
    token_der: bytes
    gen_time: datetime
    serial: int
    policy: str
    tsa_name: str


def request_timestamp(stamper: TimeStamper, digest: bytes, md: str = "sha256") -> TimestampResult:
    """Timestamp ``digest`` (computed with ``md``) and check the answer belongs to the request.

    Checks status, nonce, message imprint and hash algorithm (RFC 3161 §2.4.2); the token's
    signature and chain are left to ``verify_timestamp``. Raises ``TimestampError``.
    """
    expected_len = ACCEPTED_IMPRINT_HASHES.get(md)
    if expected_len is None or len(digest) != expected_len:
        raise TimestampError(
            f"cannot timestamp a {len(digest)}-byte {md} digest; edoc timestamps "
            f"{', '.join(f'{k} ({v} bytes)' for k, v in ACCEPTED_IMPRINT_HASHES.items())}",
            code="TSA_REQUEST_INVALID",
        )
    nonce, req = stamper.request_cms(digest, md)  # type: ignore[no-untyped-call]
    sync_request = getattr(stamper, "request_tsa_response", None)
    try:
        if callable(sync_request):
            # edoc's own stampers answer synchronously: skip building an event loop per token.
            resp = sync_request(req)
        else:
            resp = run_sync(stamper.async_request_tsa_response(req))
    except TimestampError:
        raise
    except OSError as e:
        raise TimestampError(
            f"timestamp request failed: {e}", code="TSA_UNREACHABLE"
        ) from e
    return _accept_response(resp, nonce, digest, md)


def _accept_response(
    resp: tsp.TimeStampResp, nonce: int | None, digest: bytes, md: str
) -> TimestampResult:
    try:
        resp = as_timestamp_resp(resp)
        status = resp["status"]["status"].native
        if status not in ("granted", "granted_with_mods"):
            texts = resp["status"]["status_string"].native or []
            fail_info = sorted(resp["status"]["fail_info"].native or [])
            raise TimestampError(
                f"TSA refused the request: status {status}, "
                f"failInfo {', '.join(fail_info) or 'none'}"
                + (f", \"{'; '.join(texts)}\"" if texts else ""),
                code="TSA_REJECTED",
            )
        token = resp["time_stamp_token"]
        if isinstance(token, core.Void):
            raise ValueError("granted response without a token")
        tst_info = token["content"]["encap_content_info"]["content"].parsed
        if not isinstance(tst_info, tsp.TSTInfo):
            raise ValueError("token does not encapsulate a TSTInfo")
        got_nonce = tst_info["nonce"].native
        imprint = tst_info["message_imprint"]
        got_md = imprint["hash_algorithm"]["algorithm"].native
        got_digest = imprint["hashed_message"].native
        gen_time = tst_info["gen_time"].native
        serial = tst_info["serial_number"].native
        policy = tst_info["policy"].dotted
        tsa_name = _tsa_name(token, tst_info)
    except TimestampError:
        raise
    except Exception as e:  # asn1crypto parses lazily and raises many types
        raise TimestampError(
            f"TSA response is not a well-formed RFC 3161 TimeStampResp: {e}",
            code="TSA_RESPONSE_INVALID",
        ) from e
    # RFC 3161 §2.4.2: the nonce MUST be echoed; a different one means a replayed or misrouted
    # response.
    if nonce is not None and got_nonce != nonce:
        raise TimestampError(
            f"TSA response nonce {got_nonce} does not match the request's {nonce}",
            code="TSA_RESPONSE_INVALID",
        )
    if got_md != md or got_digest != digest:
        raise TimestampError(
            f"TSA timestamped {got_md}:{_hex(got_digest)}, but {md}:{digest.hex()} was sent",
            code="TSA_RESPONSE_INVALID",
        )
    return TimestampResult(
        response_der=resp.dump(),
        token_der=token.dump(),
        gen_time=gen_time.astimezone(UTC),
        serial=serial,
        policy=policy,
        tsa_name=tsa_name,
    )


def _hex(value: object) -> str:
    return value.hex() if isinstance(value, bytes) else repr(value)


def _tsa_name(token: cms.ContentInfo, tst_info: tsp.TSTInfo) -> str:
    tsa = tst_info["tsa"]
    if tsa.native is not None:
        if tsa.name == "directory_name":
            return str(tsa.chosen.human_friendly)
        return str(tsa.native)
    try:
        return str(extract_certificate_info(token["content"]).signer_cert.subject.human_friendly)
    except (CMSExtractionError, ValueError, KeyError):
        return ""


# --------------------------------------------------------------------------------------------
# Verifying a timestamp
# --------------------------------------------------------------------------------------------

_CHECK = "timestamp"


class _Malformed(Exception):
    pass


def verify_timestamp(
    response_or_token_der: bytes,
    *,
    digest: bytes,
    trust_roots: Sequence[x509.Certificate],
    md: str = "sha256",
) -> tuple[Check, datetime | None]:
    """Check a TimeStampResp or bare token against ``digest`` and ``trust_roots``.

    Checks, in this order (the first failure decides the code): the structure
    (``TSA_TOKEN_MALFORMED``); the CMS signature over the signed attributes, messageDigest
    against the encapsulated TSTInfo and the ESS signing-certificate attribute against the
    signer certificate (``TSA_SIGNATURE_INVALID``); a path from the signer certificate to one of
    ``trust_roots`` valid at genTime (``TSA_CHAIN_UNTRUSTED``, ``TSA_CERT_EXPIRED``); a
    critical extended key usage of exactly id-kp-timeStamping, RFC 3161 §2.3
    (``TSA_EKU_MISSING``); and finally the message imprint against ``digest``
    (``TSA_IMPRINT_MISMATCH``). Returns the check and, when it passed, the token's genTime.
    Never raises for a bad token.
    """
    try:
        return _verify_timestamp(response_or_token_der, digest, trust_roots, md)
    except _Malformed as e:
        return Check.fail(_CHECK, "TSA_TOKEN_MALFORMED", str(e)), None
    except Exception as e:  # never raise for a bad token; the detail says what broke
        log.debug("timestamp verification failed unexpectedly", exc_info=True)
        return (
            Check.fail(
                _CHECK, "TSA_TOKEN_MALFORMED", f"token could not be processed: {e}"
            ),
            None,
        )


def parse_token(response_or_token_der: bytes) -> cms.ContentInfo:
    """The token (ContentInfo) from a DER TimeStampResp or a bare token; ``ValueError`` if
    neither."""
    try:
        return _parse_token(response_or_token_der)
    except _Malformed as e:
        raise ValueError(str(e)) from e


def _parse_token(der: bytes) -> cms.ContentInfo:
    if not der:
        raise _Malformed("empty input is not a timestamp token")
    try:
        token = cms.ContentInfo.load(der, strict=True)
        if token["content_type"].native != "signed_data":
            raise _Malformed(
                f"ContentInfo holds {token['content_type'].native}, not signedData"
            )
    except _Malformed:
        raise
    except Exception:
        try:
            resp = TimeStampResp.load(der, strict=True)
            status = resp["status"]["status"].native
            token = resp["time_stamp_token"]
        except Exception as e:
            raise _Malformed(
                f"{len(der)} bytes are neither a DER TimeStampResp nor a timestamp token"
            ) from e
        if status not in ("granted", "granted_with_mods") or isinstance(token, core.Void):
            raise _Malformed(f"TimeStampResp has status {status} and no token") from None
    try:
        signed_data = token["content"]
        tst_info = signed_data["encap_content_info"]["content"].parsed
        # Parse the TSTInfo and the signer info fully now, so a malformed token is reported as
        # such rather than tripping a later step (asn1crypto parses lazily).
        if isinstance(tst_info, tsp.TSTInfo):
            tst_info.native  # noqa: B018
        signed_data["signer_infos"].native  # noqa: B018
    except Exception as e:
        raise _Malformed(f"token SignedData does not parse: {e}") from e
    if signed_data["encap_content_info"]["content_type"].native != "tst_info" or not isinstance(
        tst_info, tsp.TSTInfo
    ):
        raise _Malformed("token SignedData does not encapsulate a TSTInfo")
    if len(signed_data["signer_infos"]) != 1:
        # RFC 3161 §2.4.2: the token is signed by the TSA alone.
        raise _Malformed(f"token has {len(signed_data['signer_infos'])} signers, not 1")
    return token


def _verify_timestamp(
    der: bytes, digest: bytes, trust_roots: Sequence[x509.Certificate], md: str
) -> tuple[Check, datetime | None]:
    token = _parse_token(der)
    signed_data = token["content"]
    tst_info = signed_data["encap_content_info"]["content"].parsed
    gen_time: datetime = tst_info["gen_time"].native.astimezone(UTC)
    signer_info = extract_signer_info(signed_data)
    try:
        signer_cert = extract_certificate_info(signed_data).signer_cert
    except CMSExtractionError as e:
        raise _Malformed(
            "token does not include the TSA certificate (request it with certReq)"
        ) from e

    # RFC 3161 §2.4.1 requires the ESS signingCertificate attribute; RFC 5816 allows the v2
    # form. It binds the signature to this certificate, so a substituted certificate fails.
    ess = get_signing_cert_attr(signer_info["signed_attrs"])
    if ess is None:
        raise _Malformed("token has no ESS signingCertificate(V2) attribute (RFC 3161 §2.4.1)")
    if not check_ess_certid(signer_cert, ess["certs"][0]):
        return (
            Check.fail(
                _CHECK,
                "TSA_SIGNATURE_INVALID",
                "ESS signing-certificate attribute does not match the certificate that signed "
                "the token",
            ),
            None,
        )

    if not trust_roots:
        return (
            Check.fail(_CHECK, "TSA_CHAIN_UNTRUSTED", "no trust roots configured"),
            None,
        )

    imprint = tst_info["message_imprint"]
    token_md = imprint["hash_algorithm"]["algorithm"].native
    token_digest = imprint["hashed_message"].native
    context = validation_context(trust_roots, gen_time)
    try:
        status = run_sync(
            validate_tst_signed_data(
                signed_data,
                context,
                # The imprint is compared below with its own code; here pyHanko only checks the
                # signature and messageDigest, so "intact" means exactly that.
                expected_tst_imprint=lambda _algo: token_digest,
            )
        )
    except SignatureValidationError as e:
        raise _Malformed(f"token rejected by CMS validation: {e.failure_message}") from e

    subject = signer_cert.subject.human_friendly
    if not status["valid"]:
        return (
            Check.fail(
                _CHECK,
                "TSA_SIGNATURE_INVALID",
                f"signature of {subject} over the token's signed attributes does not verify",
            ),
            None,
        )
    if not status["intact"]:
        return (
            Check.fail(
                _CHECK,
                "TSA_SIGNATURE_INVALID",
                "messageDigest attribute does not match the encapsulated TSTInfo "
                "(token altered)",
            ),
            None,
        )

    trust_problem = status.get("trust_problem_indic")
    problem_name = getattr(trust_problem, "name", str(trust_problem))
    if trust_problem is not None and problem_name.startswith("CRYPTO_CONSTRAINTS"):
        return (
            Check.fail(
                _CHECK,
                "TSA_SIGNATURE_INVALID",
                f"token signature uses an algorithm not accepted ({problem_name})",
            ),
            None,
        )
    if trust_problem is not None and problem_name == "NO_CERTIFICATE_CHAIN_FOUND":
        return (
            Check.fail(
                _CHECK,
                "TSA_CHAIN_UNTRUSTED",
                f"TSA certificate {subject} does not chain to a trusted root",
            ),
            None,
        )
    eku_problem = tsa_eku_problem(signer_cert)
    if eku_problem is not None:
        detail = f"TSA certificate {subject} {eku_problem}"
        return Check.fail(_CHECK, "TSA_EKU_MISSING", detail), None
    if trust_problem is not None:
        path = status.get("validation_path")
        path_certs = [signer_cert]
        if path is not None:
            path_certs.extend(path.iter_certs(include_root=True))
        for cert in path_certs:
            validity = cert["tbs_certificate"]["validity"]
            not_before = validity["not_before"].native
            not_after = validity["not_after"].native
            if not not_before <= gen_time <= not_after:
                return (
                    Check.fail(
                        _CHECK,
                        "TSA_CERT_EXPIRED",
                        f"certificate {cert.subject.human_friendly} is valid "
                        f"{not_before:%Y-%m-%dT%H:%M:%SZ} to {not_after:%Y-%m-%dT%H:%M:%SZ}, "
                        f"not at genTime {gen_time.isoformat()}",
                        expected=f"valid at {gen_time.isoformat()}",
                        found=f"{not_before.isoformat()} .. {not_after.isoformat()}",
                    ),
                    None,
                )
        return (
            Check.fail(
                _CHECK,
                "TSA_CHAIN_UNTRUSTED",
                f"TSA certificate {subject} failed path validation at genTime ({problem_name})",
            ),
            None,
        )

    if token_md != md or token_digest != digest:
        return (
            Check.fail(
                _CHECK,
                "TSA_IMPRINT_MISMATCH",
                "token timestamps a different digest than the one given",
                expected=f"{md}:{digest.hex()}",
                found=f"{token_md}:{_hex(token_digest)}",
            ),
            None,
        )
    serial = tst_info["serial_number"].native
    policy = tst_info["policy"].dotted
    return (
        Check.ok(
            _CHECK,
            f"genTime {gen_time.isoformat()}, serial {serial}, policy {policy}, "
            f"TSA {subject}",
        ),
        gen_time,
    )


def tsa_eku_problem(cert: asn1_x509.Certificate) -> str | None:
    """RFC 3161 §2.3: exactly one EKU, id-kp-timeStamping, in a critical extension."""
    for ext in cert["tbs_certificate"]["extensions"]:
        if ext["extn_id"].native == "extended_key_usage":
            purposes = ext["extn_value"].parsed.native
            if purposes != ["time_stamping"]:
                return f"has extended key usage {', '.join(purposes)}, not only timeStamping"
            if not ext["critical"].native:
                return "has the timeStamping extended key usage in a non-critical extension"
            return None
    return "has no extended key usage extension (timeStamping required)"
