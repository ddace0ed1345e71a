"""edoc's embedded RFC 3161 responder: a small development TSA called in-process.

``EmbeddedTsa`` answers ``TimeStampReq`` messages (RFC 3161 §2.4.1) with ``TimeStampResp``
(§2.4.2), signed with the archive's TSA key (asn1crypto + cryptography). Its certificate says
NOT ACCREDITED and its policy OID is edoc's private development policy: tokens from it prove
nothing to a tax office that a 総務大臣認定 timestamp would; production archives reach an
accredited TSA through ``edoc.evidence.tsa_transport.HttpTimeStamper`` instead.
This module is the mechanism of *issuing*; how a token is requested is transport's business.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pyhanko.sign.general import (
    as_signing_certificate_v2,
)

from edoc import clock as edoc_clock
from edoc.errors import ConfigError
from edoc.evidence.pki import PrivateKey, key_matches_certificate
from edoc.evidence.tsa import (
    ACCEPTED_IMPRINT_HASHES,
    TimeStampResp,
    asn1_certificate,
    tsa_eku_problem,
)

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


#: The policy edoc's embedded TSA states in every token (TSTInfo.policy, RFC 3161 §2.4.2):
#: edoc's private, non-accredited development policy. It only says "issued by an edoc embedded
#: TSA"; it makes no claim of accreditation, clock traceability or key protection.
#: The OID is a UUID-derived OID under the 2.25 arc (ITU-T X.667), which needs no registration
#: and cannot collide with anyone else's policy.
EDOC_DEV_TSA_POLICY = "2.25.45101948282859012514183875841942755682"


def _attribute(attr_type: str, value: object) -> cms.CMSAttribute:
    """A single-valued CMS attribute (RFC 5652 §5.3)."""
    return cms.CMSAttribute({"type": attr_type, "values": [value]})


def _utc_now() -> datetime:
    return edoc_clock.now()

# --------------------------------------------------------------------------------------------
# The embedded TSA
# --------------------------------------------------------------------------------------------


class _Rejection(Exception):
    def __init__(self, fail_info: str, text: str) -> None:
        super().__init__(text)
        self.fail_info = fail_info
        self.text = text


class EmbeddedTsa:
    """edoc's own RFC 3161 time-stamping authority (development use: NOT ACCREDITED).

    ``respond`` turns a ``TimeStampReq`` into a ``TimeStampResp``; it never raises for a bad
    request but answers ``rejection`` with the PKIFailureInfo RFC 3161 §2.4.2 prescribes.
    Serial numbers come from ``serial_file``, incremented under an ``fcntl`` lock and synced to
    disk before the token is released, so they are unique and strictly increasing across every
    process and ``EmbeddedTsa`` instance sharing the file (RFC 3161 §2.4.2: serialNumber MUST be
    unique for each token issued by a given TSA, also after an interruption).
    """

    def __init__(
        self,
        cert: x509.Certificate,
        key: PrivateKey,
        chain: Sequence[x509.Certificate],
        *,
        policy_oid: str = EDOC_DEV_TSA_POLICY,
        serial_file: Path,
        clock: Callable[[], datetime] = _utc_now,
        accuracy: timedelta = timedelta(seconds=1),
    ) -> None:
        self.cert = cert
        self.policy_oid = policy_oid
        self.serial_file = serial_file
        self._clock = clock
        # Everything that does not depend on the request is prepared once: a token must stay
        # cheap (DESIGN.md: ~1.5 ms in-process).
        cert_asn1 = asn1_certificate(cert)
        # Refuse a misconfiguration at start-up instead of issuing tokens nobody can validate.
        unsuitable = tsa_eku_problem(cert_asn1)
        if unsuitable is None and not key_matches_certificate(key, cert):
            unsuitable = "does not match the TSA private key"
        if unsuitable is not None:
            raise ConfigError(
                f"TSA certificate {cert.subject.rfc4514_string()} {unsuitable}",
                code="TSA_CERT_UNSUITABLE",
            )
        self._not_before = cert.not_valid_before_utc
        self._not_after = cert.not_valid_after_utc
        # asn1crypto re-encodes any structure it built itself on every dump(), recursively, and
        # objects shared between tokens accumulate that cost; the constant parts are therefore
        # kept as DER and re-loaded per token (loading is lazy and dumps the bytes unchanged).
        self._sid_der = cms.SignerIdentifier(
            {
                "issuer_and_serial_number": cms.IssuerAndSerialNumber(
                    {"issuer": cert_asn1.issuer, "serial_number": cert_asn1.serial_number}
                )
            }
        ).dump()
        # RFC 5816 §2.2.1 / RFC 5035: identify the TSA certificate by its SHA-256 hash
        # (ESSCertIDv2) instead of the SHA-1 ESSCertID of RFC 3161 §2.4.1.
        self._signing_cert_attr_der = _attribute(
            "signing_certificate_v2", as_signing_certificate_v2(cert_asn1)
        ).dump()
        seen = {cert_asn1.sha256}
        embedded = [cert_asn1]
        for c in chain:
            c_asn1 = asn1_certificate(c)
            if c_asn1.sha256 not in seen:
                seen.add(c_asn1.sha256)
                embedded.append(c_asn1)
        self._certificates_der = cms.CertificateSet(
            [cms.CertificateChoices({"certificate": c}) for c in embedded]
        ).dump()
        self._tsa_name_der = asn1_x509.GeneralName({"directory_name": cert_asn1.subject}).dump()
        self._accuracy_der = _accuracy(accuracy).dump()
        self._sign, self._digest_name, sig_algo = _signing_function(key)
        self._digest_algorithm_der = algos.DigestAlgorithm(
            {"algorithm": self._digest_name}
        ).dump()
        self._signature_algorithm_der = algos.SignedDigestAlgorithm({"algorithm": sig_algo}).dump()

    def respond(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        """Answer one request (RFC 3161 §2.4.2). Never raises for a bad request."""
        try:
            self._check_request(req)
            gen_time = self._gen_time()
            serial = self._next_serial()
            return self._grant(req, gen_time, serial)
        except _Rejection as r:
            return _rejection(r.fail_info, r.text)

    # -- request checks ----------------------------------------------------------------------

    def _check_request(self, req: tsp.TimeStampReq) -> None:
        try:
            version = req["version"].native
            imprint = req["message_imprint"]
            algorithm = imprint["hash_algorithm"]["algorithm"].native
            hashed = imprint["hashed_message"].native
            policy_field = req["req_policy"]
            req_policy = None if isinstance(policy_field, core.Void) else policy_field.dotted
            extensions = req["extensions"].native
            req["nonce"].native  # noqa: B018 - parse now so a malformed nonce is rejected here
            req["cert_req"].native  # noqa: B018
        except Exception as e:  # asn1crypto parses lazily and raises many types
            raise _Rejection("bad_data_format", f"malformed TimeStampReq: {e}") from e
        if version not in ("v1", 1):
            raise _Rejection("bad_data_format", f"TimeStampReq version {version} is not v1")
        expected_len = ACCEPTED_IMPRINT_HASHES.get(algorithm)
        if expected_len is None:
            raise _Rejection(
                "bad_alg",
                f"message imprint algorithm {algorithm} is not accepted; "
                f"use one of {', '.join(ACCEPTED_IMPRINT_HASHES)}",
            )
        if not isinstance(hashed, bytes) or len(hashed) != expected_len:
            found = len(hashed) if isinstance(hashed, bytes) else "no"
            raise _Rejection(
                "bad_data_format",
                f"message imprint has {found} bytes, {algorithm} needs {expected_len}",
            )
        if req_policy is not None and req_policy != self.policy_oid:
            raise _Rejection(
                "unaccepted_policy",
                f"policy {req_policy} is not offered; this TSA issues under {self.policy_oid}",
            )
        if extensions:
            # RFC 3161 §2.4.1: an extension the server does not recognise SHALL cause a
            # failure (unacceptedExtension), whether or not it is marked critical.
            raise _Rejection("unaccepted_extensions", "request extensions are not supported")

    def _gen_time(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise _Rejection("system_failure", "TSA clock returned a naive datetime")
        now = now.astimezone(UTC)
        # genTime to the millisecond (RFC 3161 §2.4.2 allows fractions of a second).
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if not self._not_before <= now <= self._not_after:
            # A TSA must not vouch for a time its own certificate does not cover: outside the
            # validity period (RFC 5280 §4.1.2.5) the certificate vouches for nothing, so such a
            # token could never be validated.
            raise _Rejection(
                "system_failure",
                f"TSA certificate is valid {self._not_before:%Y-%m-%dT%H:%M:%SZ} to "
                f"{self._not_after:%Y-%m-%dT%H:%M:%SZ}, not at {now:%Y-%m-%dT%H:%M:%SZ}; "
                "renew it",
            )
        return now

    def _next_serial(self) -> int:
        try:
            fd = os.open(self.serial_file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise _Rejection(
                "system_failure", f"cannot open serial file {self.serial_file}: {e.strerror}"
            ) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.pread(fd, 64, 0).strip()
            try:
                last = int(raw) if raw else 0
            except ValueError as e:
                # Never restart from 0: serial numbers must stay unique (RFC 3161 §2.4.2).
                raise _Rejection(
                    "system_failure", f"serial file {self.serial_file} is corrupt"
                ) from e
            serial = last + 1
            data = b"%d\n" % serial
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            os.fdatasync(fd)
            return serial
        except OSError as e:
            raise _Rejection(
                "system_failure", f"cannot update serial file {self.serial_file}: {e.strerror}"
            ) from e
        finally:
            os.close(fd)  # also releases the flock

    # -- token construction ------------------------------------------------------------------

    def _grant(self, req: tsp.TimeStampReq, gen_time: datetime, serial: int) -> tsp.TimeStampResp:
        tst_fields: dict[str, Any] = {
            "version": "v1",
            "policy": self.policy_oid,
            # The imprint is echoed byte for byte (RFC 3161 §2.4.2: same value as in the request).
            "message_imprint": tsp.MessageImprint.load(req["message_imprint"].dump()),
            "serial_number": serial,
            "gen_time": gen_time,
            "accuracy": tsp.Accuracy.load(self._accuracy_der),
            "tsa": asn1_x509.GeneralName.load(self._tsa_name_der),
        }
        nonce = req["nonce"].native
        if nonce is not None:
            tst_fields["nonce"] = nonce
        tst_info_der = tsp.TSTInfo(tst_fields).dump()
        digest = hashes.Hash(_HASHES[self._digest_name]())
        digest.update(tst_info_der)
        # RFC 5652 §5.3 / RFC 3161 §2.4.1: content type, message digest, and the ESS signing
        # certificate; signingTime (RFC 5652 §11.3) is informative only, genTime is what counts.
        signed_attrs = cms.CMSAttributes(
            [
                _attribute("content_type", "tst_info"),
                _attribute("signing_time", cms.Time({"utc_time": gen_time})),
                _attribute("message_digest", digest.finalize()),
                cms.CMSAttribute.load(self._signing_cert_attr_der),
            ]
        )
        signature = self._sign(signed_attrs.dump())
        digest_algorithm = algos.DigestAlgorithm.load(self._digest_algorithm_der)
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier.load(self._sid_der),
                "digest_algorithm": digest_algorithm,
                "signed_attrs": signed_attrs,
                "signature_algorithm": algos.SignedDigestAlgorithm.load(
                    self._signature_algorithm_der
                ),
                "signature": signature,
            }
        )
        signed_data: dict[str, Any] = {
            # v3: the encapsulated content type is not id-data (RFC 5652 §5.1).
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm.load(self._digest_algorithm_der)],
            "encap_content_info": {
                "content_type": "tst_info",
                "content": cms.ParsableOctetString(tst_info_der),
            },
            "signer_infos": [signer_info],
        }
        if req["cert_req"].native:
            signed_data["certificates"] = cms.CertificateSet.load(self._certificates_der)
        token = cms.ContentInfo(
            {"content_type": "signed_data", "content": cms.SignedData(signed_data)}
        )
        return TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token})


_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def _signing_function(key: PrivateKey) -> tuple[Callable[[bytes], bytes], str, str]:
    """(sign(data), CMS digest algorithm, signature algorithm) for the TSA key."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        # RFC 5753 §7.1.3 / RFC 5758 §3.2: ecdsa-with-SHAxxx, hash sized to the curve.
        name = "sha384" if key.curve.key_size > 256 else "sha256"
        if key.curve.key_size > 384:
            name = "sha512"
        algo = ec.ECDSA(_HASHES[name]())
        return (lambda data: key.sign(data, algo)), name, f"{name}_ecdsa"
    if isinstance(key, rsa.RSAPrivateKey):
        return (
            lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256()),
            "sha256",
            "sha256_rsa",
        )
    raise TypeError(f"unsupported TSA key type {type(key).__name__}")


def _accuracy(accuracy: timedelta) -> tsp.Accuracy:
    micros_total = int(accuracy / timedelta(microseconds=1))
    if micros_total <= 0:
        raise ValueError("TSA accuracy must be positive")
    seconds, rest = divmod(micros_total, 1_000_000)
    millis, micros = divmod(rest, 1000)
    fields: dict[str, int] = {}
    if seconds:
        fields["seconds"] = seconds
    if millis:
        fields["millis"] = millis
    if micros:
        fields["micros"] = micros
    return tsp.Accuracy(fields)


def _rejection(fail_info: str, text: str) -> tsp.TimeStampResp:
    return TimeStampResp(
        {
            "status": {
                "status": "rejection",
                "status_string": [text],
                "fail_info": tsp.PKIFailureInfo({fail_info}),
            }
        }
    )
