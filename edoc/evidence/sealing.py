"""CAdES seals: signing manifests and checkpoints, and verifying those signatures.

This module owns the archive's electronic seal: a CAdES-BES detached CMS signature (ETSI EN 319
122-1; RFC 5652 SignedData with the signingCertificateV2 attribute of RFC 5035) made with pyHanko
over a manifest or checkpoint, and its verification with pyHanko's CMS validation against the
archive's trust roots. Seals are what make a manifest attributable to the archive (真正性 in the
MHLW reading; 記名押印 for medical records needs such a signature plus an accredited timestamp).

Every seal must also pass ``openssl cms -verify`` (DESIGN.md, independent checks); the key is
ECDSA P-256 because OpenSSL 3.0 cannot verify Ed25519 CMS.

Speed (issue 8): profiles that seal every record's manifest need a seal in about a millisecond.
pyHanko stays the signer, but what is the same in every seal is formatted once and kept as DER:
the signingCertificateV2 attribute and the SignerInfo skeleton (sid, digest and signature
algorithms). The reason is asn1crypto: a value built from Python objects stays "mutated" for
good, and each ``dump()`` reads its contents twice, so a freshly built ESSCertIDv2 → IssuerSerial
→ GeneralNames → Name tree about a dozen levels deep in the ContentInfo was re-encoded thousands
of times per seal (~85 % of its cost). A value loaded from DER just re-emits its bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime

from asn1crypto import cms, core, keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pyhanko.sign.attributes import CMSAttributeProvider, SignedAttributeProviderSpec
from pyhanko.sign.general import (
    CMSExtractionError,
    SigningError,
    as_signing_certificate_v2,
    check_ess_certid,
    extract_certificate_info,
    extract_signer_info,
)
from pyhanko.sign.signers.pdf_cms import SimpleSigner, select_suitable_signing_md
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.generic_cms import (
    async_validate_detached_cms,
    get_signing_cert_attr,
)
from pyhanko_certvalidator.registry import SimpleCertificateStore
from pyhanko_certvalidator.util import get_pyca_cryptography_hash, process_pss_params

from edoc import clock as edoc_clock
from edoc.errors import SealError
from edoc.evidence.async_bridge import run_sync
from edoc.evidence.pki import PrivateKey, key_matches_certificate
from edoc.evidence.tsa import asn1_certificate, validation_context
from edoc.model.verdict import Check

log = logging.getLogger(__name__)

_CHECK = "seal"


def _utc_now() -> datetime:
    return edoc_clock.now()


class _LoadedKeySigner(SimpleSigner):
    """pyHanko's ``SimpleSigner`` with the already loaded key and the per-signer constants cached.

    ``SimpleSigner.sign_raw`` re-parses the DER private key on every signature (DESIGN.md
    measured ~86 ms for RSA-3072); this subclass signs with the key object it was given. It
    also takes the seal's signed attributes from ``SealAttributes`` (pyHanko's public
    ``signed_attr_prov_spec`` hook) and reuses the SignerInfo skeleton pyHanko formatted for it,
    leaving the assembly of attributes, SignerInfo and SignedData to pyHanko.
    """

    def __init__(
        self,
        cert: asn1_x509.Certificate,
        key: PrivateKey,
        chain: Sequence[asn1_x509.Certificate],
        clock: Callable[[], datetime],
    ) -> None:
        # SimpleSigner keeps a PrivateKeyInfo as part of its public interface; give it one,
        # although signing below never re-parses it.
        key_info = keys.PrivateKeyInfo.load(
            key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        super().__init__(
            signing_cert=cert,
            signing_key=key_info,
            cert_registry=SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
                list(chain)
            ),
        )
        self._key = key
        # With a spec set, pyHanko asks it for the signed attributes instead of building its
        # own CAdES spec (and a fresh signingCertificateV2 tree) on every signature.
        self.signed_attr_prov_spec = SealAttributes(cert, clock)
        self._signer_info_der: dict[str, bytes] = {}

    def signer_info(
        self, digest_algorithm: str, signed_attrs: cms.CMSAttributes, signature: bytes
    ) -> cms.SignerInfo:
        """pyHanko's SignerInfo (RFC 5652 §5.3) for this signer, formatted once per digest.

        Everything but signedAttrs and signature depends only on the signer certificate and
        the digest algorithm, so pyHanko's own result is kept as DER and those two are set.
        """
        skeleton = self._signer_info_der.get(digest_algorithm)
        if skeleton is None:
            formatted = super().signer_info(digest_algorithm, cms.CMSAttributes([]), b"")
            skeleton = self._signer_info_der[digest_algorithm] = formatted.dump()
        info = cms.SignerInfo.load(skeleton)
        info["signed_attrs"] = signed_attrs
        info["signature"] = signature
        return info

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm)
        hash_algorithm = get_pyca_cryptography_hash(digest_algorithm)
        key = self._key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(hash_algorithm))
        if mechanism["algorithm"].native == "rsassa_pss":
            pss_padding, pss_hash = process_pss_params(mechanism["parameters"])
            return key.sign(data, pss_padding, pss_hash)
        return key.sign(data, padding.PKCS1v15(), hash_algorithm)


class _AttributeFromDer(CMSAttributeProvider):
    """A signed attribute that is identical in every seal, kept as its DER encoding.

    Each seal gets a fresh lazy parse of the cached bytes, so no seal can alter what the next
    one signs, and asn1crypto re-emits the bytes as they are instead of re-encoding the tree.
    """

    def __init__(self, attribute: cms.CMSAttribute) -> None:
        self.attribute_type = attribute["type"].native
        self._der: bytes = attribute.dump()

    async def get_attribute(self, dry_run: bool = False) -> cms.CMSAttribute:
        return cms.CMSAttribute.load(self._der)


class _SigningTime(CMSAttributeProvider):
    """The signingTime attribute (RFC 5652 §11.3), read from the sealer's clock at each seal."""

    attribute_type = "signing_time"

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock

    async def build_attr_value(self, dry_run: bool = False) -> cms.Time:
        return _signing_time_value(self._clock())


def _signing_time_value(moment: datetime) -> cms.Time:
    """``moment`` as a CMS ``Time``: UTCTime for 1950–2049, GeneralizedTime otherwise.

    RFC 5652 §11.3 requires exactly this choice (pyHanko's provider always uses UTCTime, which
    cannot encode 2050 or later), both in UTC ("Z") and in whole seconds: GeneralizedTime there
    MUST NOT carry fractional seconds and UTCTime cannot, so the fraction is dropped.
    """
    utc = moment.astimezone(UTC).replace(microsecond=0)
    if 1950 <= utc.year <= 2049:
        return cms.Time({"utc_time": core.UTCTime(utc)})
    return cms.Time({"generalized_time": core.GeneralizedTime(utc)})


class SealAttributes(SignedAttributeProviderSpec):
    """The CAdES-BES signed attributes of a seal (ETSI EN 319 122-1 §5.2), constant part cached.

    pyHanko adds contentType and messageDigest itself (RFC 5652 §5.3, §11.1–11.2); this spec
    supplies signingTime (CAdES requires it, §5.2.1) and signingCertificateV2 (RFC 5035 §3,
    EN 319 122-1 §5.2.2.3), the same set pyHanko's own CAdES spec yields for non-PDF data.
    The ESSCertIDv2 uses SHA-256, RFC 5035's default hash algorithm, as pyHanko does.
    """

    def __init__(
        self, signing_cert: asn1_x509.Certificate, clock: Callable[[], datetime]
    ) -> None:
        signing_cert_v2 = cms.CMSAttribute(
            {
                "type": "signing_certificate_v2",
                "values": [as_signing_certificate_v2(signing_cert, "sha256")],
            }
        )
        self._signing_cert_v2 = _AttributeFromDer(signing_cert_v2)
        self._signing_time = _SigningTime(clock)

    def signed_attr_providers(
        self, data_digest: bytes, digest_algorithm: str
    ) -> Iterator[CMSAttributeProvider]:
        yield self._signing_cert_v2
        yield self._signing_time


class Sealer:
    """Seals byte strings (canonical manifest or checkpoint JSON) with the archive's seal key.

    Build one per process and reuse it: the key, certificates, pyHanko signer and what is constant
    in every seal are prepared once, so a seal costs about a millisecond. ``clock`` supplies
    each seal's signingTime (read once per seal, encoded in UTC).
    """

    def __init__(
        self,
        cert: x509.Certificate,
        key: PrivateKey,
        chain: Sequence[x509.Certificate],
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise SealError(
                f"seal key is a {type(key).__name__}; edoc seals with ECDSA or RSA keys",
                code="SEAL_KEY_UNSUPPORTED",
            )
        if not key_matches_certificate(key, cert):
            raise SealError(
                f"seal key does not belong to certificate {cert.subject.rfc4514_string()}",
                code="SEAL_KEY_MISMATCH",
            )
        self.cert = cert
        cert_asn1 = asn1_certificate(cert)
        self._signer = _LoadedKeySigner(
            cert_asn1, key, [asn1_certificate(c) for c in chain], clock
        )
        self._md = select_suitable_signing_md(cert_asn1.public_key)

    def seal(self, data: bytes) -> bytes:
        """A DER CMS ContentInfo: a CAdES-BES detached signature over ``data``.

        Signed attributes: contentType, messageDigest, signingTime and signingCertificateV2
        (ETSI EN 319 122-1 §5.2); the signer certificate and chain are embedded.
        """
        try:
            content_info = run_sync(
                self._signer.async_sign_general_data(data, self._md, detached=True, use_cades=True)
            )
        except SigningError as e:
            raise SealError(f"sealing failed: {e}", code="SEAL_FAILED") from e
        der: bytes = content_info.dump()
        return der


def verify_seal(
    data: bytes,
    seal_der: bytes,
    *,
    trust_roots: Sequence[x509.Certificate],
    moment: datetime | None = None,
) -> Check:
    """Verify a detached CAdES seal over ``data``; never raises for a bad seal.

    ``moment`` is the time at which the seal certificate's chain must be valid (default: now).
    Old evidence should be checked at a time proven by its timestamp (e.g. the checkpoint's
    genTime), because seal certificates expire long before records do.

    Codes: ``OK``; ``SEAL_MALFORMED`` (not a parseable detached CAdES SignedData);
    ``SEAL_SIGNATURE_INVALID`` (the data or the signed attributes were altered, or the signing-
    certificate attribute names another certificate); ``SEAL_CHAIN_UNTRUSTED`` (the signer does
    not chain to ``trust_roots``, e.g. re-sealed with another key); ``SEAL_CERT_EXPIRED`` (the
    chain is not valid at ``moment``).
    """
    try:
        return _verify_seal(data, seal_der, trust_roots, moment)
    except Exception as e:  # never raise for a bad seal; say what broke instead
        log.debug("seal verification failed unexpectedly", exc_info=True)
        return Check.fail(_CHECK, "SEAL_MALFORMED", f"seal could not be processed: {e}")


def _load_signed_data(seal_der: bytes) -> cms.SignedData | str:
    """The SignedData of a seal, or a description of why there is none."""
    if not seal_der:
        return "empty seal"
    try:
        content_info = cms.ContentInfo.load(seal_der, strict=True)
        if content_info["content_type"].native != "signed_data":
            return f"ContentInfo holds {content_info['content_type'].native}, not signedData"
        signed_data = content_info["content"]
        signed_data["signer_infos"].native  # noqa: B018 - parse now, asn1crypto is lazy
        signed_data["encap_content_info"].native  # noqa: B018
    except Exception:
        return f"{len(seal_der)} bytes are not a DER CMS ContentInfo"
    if len(signed_data["signer_infos"]) != 1:
        return f"seal has {len(signed_data['signer_infos'])} signers, not 1"
    result: cms.SignedData = signed_data
    return result


def _verify_seal(
    data: bytes,
    seal_der: bytes,
    trust_roots: Sequence[x509.Certificate],
    moment: datetime | None,
) -> Check:
    signed_data = _load_signed_data(seal_der)
    if isinstance(signed_data, str):
        return Check.fail(_CHECK, "SEAL_MALFORMED", signed_data)
    if signed_data["encap_content_info"]["content"].native is not None:
        return Check.fail(_CHECK, "SEAL_MALFORMED", "seal is not detached (content embedded)")
    signer_info = extract_signer_info(signed_data)
    try:
        signer_cert = extract_certificate_info(signed_data).signer_cert
    except CMSExtractionError:
        return Check.fail(_CHECK, "SEAL_MALFORMED", "seal does not include its signer certificate")
    ess = get_signing_cert_attr(signer_info["signed_attrs"])
    if ess is None:
        # CAdES-BES (ETSI EN 319 122-1 §5.2.2.3) requires the signing-certificate attribute.
        return Check.fail(
            _CHECK, "SEAL_MALFORMED", "seal has no signingCertificateV2 attribute (not CAdES)"
        )
    if not check_ess_certid(signer_cert, ess["certs"][0]):
        return Check.fail(
            _CHECK,
            "SEAL_SIGNATURE_INVALID",
            "signingCertificateV2 attribute does not match the embedded signer certificate",
        )
    if not trust_roots:
        return Check.fail(_CHECK, "SEAL_CHAIN_UNTRUSTED", "no trust roots configured")

    context = validation_context(trust_roots, moment)
    try:
        status = run_sync(
            async_validate_detached_cms(data, signed_data, signer_validation_context=context)
        )
    except SignatureValidationError as e:
        return Check.fail(_CHECK, "SEAL_MALFORMED", f"CMS validation refused the seal: {e}")

    subject = signer_cert.subject.human_friendly
    if not status.valid:
        return Check.fail(
            _CHECK,
            "SEAL_SIGNATURE_INVALID",
            f"signature of {subject} over the seal's signed attributes does not verify",
        )
    if not status.intact:
        return Check.fail(
            _CHECK,
            "SEAL_SIGNATURE_INVALID",
            "data digest does not match the seal's messageDigest (data altered)",
        )
    problem = status.trust_problem_indic
    if problem is not None:
        name = getattr(problem, "name", str(problem))
        if name.startswith("CRYPTO_CONSTRAINTS"):
            return Check.fail(
                _CHECK,
                "SEAL_SIGNATURE_INVALID",
                f"seal uses an algorithm that is not accepted ({name})",
            )
        if name == "OUT_OF_BOUNDS_NO_POE" or (
            name == "CERTIFICATE_CHAIN_GENERAL_FAILURE"
            and _expired_in(status.validation_path, signer_cert, moment)
        ):
            when = (moment or _utc_now()).isoformat()
            return Check.fail(
                _CHECK,
                "SEAL_CERT_EXPIRED",
                f"seal certificate chain of {subject} is not valid at {when}",
            )
        return Check.fail(
            _CHECK,
            "SEAL_CHAIN_UNTRUSTED",
            f"seal certificate {subject} does not chain to a trusted root ({name})",
        )
    return Check.ok(_CHECK, f"sealed by {subject}")


def _expired_in(
    path: object, signer_cert: asn1_x509.Certificate, moment: datetime | None
) -> bool:
    at = moment or _utc_now()
    certs = [signer_cert]
    iter_certs = getattr(path, "iter_certs", None)
    if callable(iter_certs):
        certs.extend(iter_certs(include_root=True))
    for cert in certs:
        validity = cert["tbs_certificate"]["validity"]
        if not validity["not_before"].native <= at <= validity["not_after"].native:
            return True
    return False


def signer_certificate(seal_der: bytes) -> x509.Certificate | None:
    """The certificate that made a seal (for display and evidence bundles), or ``None``."""
    signed_data = _load_signed_data(seal_der)
    if isinstance(signed_data, str):
        return None
    try:
        cert = extract_certificate_info(signed_data).signer_cert
        return x509.load_der_x509_certificate(cert.dump())
    except (CMSExtractionError, ValueError, KeyError):
        return None
