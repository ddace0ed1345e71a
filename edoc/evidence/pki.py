"""The development PKI: a root CA, the seal certificate and the embedded TSA's certificate.

This module owns the key material an archive creates for itself at ``edoc init`` and how it is
read back: generation with ``cryptography`` (ECDSA P-256 throughout, because OpenSSL 3.0 — the
auditors' independent verifier — cannot check Ed25519 CMS), the file layout under
``<archive>/keys/``, file permissions, passphrase handling and renewal of the TSA certificate.

Every certificate says in its subject that it is a development certificate and NOT ACCREDITED:
records timestamped by the embedded TSA are not timestamped by a 総務大臣認定 service, and
anything that shows the chain to a person must make that obvious. Production archives point
edoc at an accredited RFC 3161 TSA instead and add that TSA's CA to the trust roots.

Key files are PEM PKCS#8, encrypted with the best available scheme when a passphrase is given,
created with mode 0600 from the start (``os.open`` with ``O_EXCL``; never chmod-ed afterwards,
so no window exists where they are readable by others) and never overwritten.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edoc import clock
from edoc.errors import ConfigError

#: The private key types edoc can sign with (seals and the embedded TSA).
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

ROOT_CN = "edoc development root CA (NOT ACCREDITED)"
SEAL_CN = "edoc development seal (NOT ACCREDITED)"
TSA_CN = "edoc development TSA (NOT ACCREDITED)"
#: Organisational unit on every development certificate, so the label survives even where a
#: viewer shows only O/OU.
DEV_OU = "edoc development PKI - NOT ACCREDITED"

# RFC 5280 Appendix A upper bound (ub-organization-name).
_MAX_ORGANISATION = 64
# OpenSSL's PEM password limit, which cryptography enforces when encrypting.
_MAX_PASSPHRASE = 1023
_KEY_MODE = 0o600
_CERT_MODE = 0o644


@dataclass(frozen=True)
class PkiPaths:
    """Where an archive's key material lives (all under ``<archive>/keys/``)."""

    root_cert: Path
    root_key: Path
    seal_cert: Path
    seal_key: Path
    tsa_cert: Path
    tsa_key: Path

    @classmethod
    def under(cls, keys_dir: Path) -> PkiPaths:
        return cls(
            root_cert=keys_dir / "root-ca.pem",
            root_key=keys_dir / "root-ca.key",
            seal_cert=keys_dir / "seal.pem",
            seal_key=keys_dir / "seal.key",
            tsa_cert=keys_dir / "tsa.pem",
            tsa_key=keys_dir / "tsa.key",
        )

    def all(self) -> tuple[Path, ...]:
        return (
            self.root_cert,
            self.root_key,
            self.seal_cert,
            self.seal_key,
            self.tsa_cert,
            self.tsa_key,
        )


def generate_dev_pki(
    keys_dir: Path,
    *,
    organisation: str,
    passphrase: bytes | None = None,
    tsa_validity: timedelta = timedelta(days=3650),
    seal_validity: timedelta = timedelta(days=3650),
    now: datetime | None = None,
    root_validity: timedelta | None = None,
    seal_public_key: ec.EllipticCurvePublicKey | None = None,
) -> PkiPaths:
    """Create the root CA, seal and TSA keys and certificates in ``keys_dir``.

    ``seal_public_key``: the seal key lives in a PKCS#11 token; certify that public key
    instead of generating a seal key file.

    Refuses (``KEYS_EXIST``) if any of the six files is already there: keys are never
    overwritten. With a non-empty ``passphrase`` the keys are encrypted (PKCS#8, the best scheme
    ``cryptography`` offers); ``None`` or ``b""`` leaves them unencrypted. ``root_validity``
    defaults to the longer leaf validity plus ten years, so that ``openssl ts -verify`` and
    ``openssl cms -verify`` (which check the chain at the current time) keep working for old
    evidence after the leaves are renewed.
    """
    _check_organisation(organisation)
    now = _utc(now)
    paths = PkiPaths.under(keys_dir)
    existing = [p for p in paths.all() if p.exists()]
    if existing:
        raise ConfigError(
            f"{existing[0]} already exists; refusing to overwrite key material",
            code="KEYS_EXIST",
            hint="keys are never overwritten; move the old keys directory away first",
        )
    if passphrase is not None and len(passphrase) > _MAX_PASSPHRASE:
        raise ConfigError(
            f"key passphrase has {len(passphrase)} bytes; at most {_MAX_PASSPHRASE} are supported",
            code="KEY_PASSPHRASE_INVALID",
        )
    if root_validity is None:
        root_validity = max(tsa_validity, seal_validity) + timedelta(days=3650)
    if root_validity < max(tsa_validity, seal_validity):
        raise ConfigError(
            f"root CA validity {root_validity.days} days is shorter than a leaf validity "
            f"({max(tsa_validity, seal_validity).days} days); the root must outlive its leaves",
            code="PKI_VALIDITY_INVALID",
        )

    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name(ROOT_CN, organisation)
    root_cert = (
        _builder(
            root_name, root_name, root_key.public_key(), root_key.public_key(), now, root_validity
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(key_cert_sign=True, crl_sign=True),
            critical=True,
        )
        .sign(root_key, _signing_hash(root_key))
    )

    # With a PKCS#11 token the seal key is generated inside the token and never leaves it:
    # only its public key is certified here, and no seal.key file is written.
    seal_key: ec.EllipticCurvePrivateKey | None = (
        None if seal_public_key is not None else ec.generate_private_key(ec.SECP256R1()))
    seal_public = seal_public_key if seal_public_key is not None else (
        seal_key.public_key() if seal_key is not None else None)
    assert seal_public is not None
    seal_cert = (
        _builder(
            _name(SEAL_CN, organisation), root_name, seal_public,
            root_key.public_key(), now, seal_validity,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # A seal vouches for the content of a manifest or checkpoint: nonRepudiation
        # (contentCommitment, RFC 5280 §4.2.1.3) alongside digitalSignature.
        .add_extension(
            _key_usage(digital_signature=True, content_commitment=True),
            critical=True,
        )
        .sign(root_key, _signing_hash(root_key))
    )

    tsa_key = ec.generate_private_key(ec.SECP256R1())
    tsa_cert = _tsa_certificate(tsa_key, root_key, root_cert, organisation, now, tsa_validity)

    # Everything is built before anything is written; if a write fails, the files this call
    # created are removed again, so a retry does not stop at KEYS_EXIST over a half-made PKI.
    created: list[Path] = []
    try:
        for key_path, key, cert_path, cert in (
            (paths.root_key, root_key, paths.root_cert, root_cert),
            (paths.seal_key, seal_key, paths.seal_cert, seal_cert),
            (paths.tsa_key, tsa_key, paths.tsa_cert, tsa_cert),
        ):
            if key is not None:
                _write_key(key_path, key, passphrase)
                created.append(key_path)
            _write_cert(cert_path, cert)
            created.append(cert_path)
        _fsync_dir(keys_dir)
    except BaseException:
        for path in created:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return paths


def issue_tsa_certificate(
    paths: PkiPaths,
    *,
    validity: timedelta,
    passphrase: bytes | None,
    now: datetime | None = None,
) -> None:
    """Re-issue the embedded TSA's certificate (renewal, or a short validity for tests).

    The TSA key is kept (key files are never overwritten); a new certificate for it is signed by
    the root CA. The certificate it replaces is kept beside it as ``tsa.<serial hex>.pem`` so
    that the archive still holds every TSA certificate it ever used, although tokens also carry
    their own copy (edoc always asks for certReq, RFC 3161 §2.4.1).
    """
    now = _utc(now)
    root_key = load_private_key(paths.root_key, passphrase)
    root_cert = load_certificate(paths.root_cert)
    tsa_key = load_private_key(paths.tsa_key, passphrase)
    organisation = _organisation_of(root_cert)
    if now + validity > root_cert.not_valid_after_utc:
        raise ConfigError(
            f"a TSA certificate valid until {now + validity:%Y-%m-%d} would outlive the root CA "
            f"(valid until {root_cert.not_valid_after_utc:%Y-%m-%d})",
            code="PKI_VALIDITY_INVALID",
        )
    new_cert = _tsa_certificate(tsa_key, root_key, root_cert, organisation, now, validity)
    if paths.tsa_cert.exists():
        old = load_certificate(paths.tsa_cert)
        archived = paths.tsa_cert.with_name(f"tsa.{old.serial_number:x}.pem")
        if not archived.exists():
            _write_cert(archived, old)
    tmp = paths.tsa_cert.with_name(f".tsa.pem.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    _write_cert(tmp, new_cert)
    tmp.replace(paths.tsa_cert)
    _fsync_dir(paths.tsa_cert.parent)


def load_private_key(path: Path, passphrase: bytes | None) -> PrivateKey:
    """Load a PEM (or DER) private key; every failure is a one-line ``ConfigError``."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(
            f"cannot read private key {path}: {e.strerror or e}",
            code="KEY_UNREADABLE",
        ) from e
    loader = (
        serialization.load_pem_private_key
        if data.lstrip().startswith(b"-----")
        else serialization.load_der_private_key
    )
    try:
        # First without a password: cryptography raises TypeError for an encrypted key, which
        # tells "no passphrase" apart from "wrong passphrase" without guessing from headers.
        key = loader(data, password=None)
    except TypeError as e:
        if passphrase is None:
            raise ConfigError(
                f"private key {path} is encrypted and no passphrase was given",
                code="KEY_PASSPHRASE_REQUIRED",
                hint="give the key passphrase (see edoc.toml) and retry",
            ) from e
        try:
            key = loader(data, password=passphrase)
        except ValueError as e2:
            raise ConfigError(
                f"the passphrase given does not decrypt private key {path}",
                code="KEY_PASSPHRASE_WRONG",
            ) from e2
    except ValueError as e:
        raise ConfigError(
            f"private key {path} is not a readable PEM/DER private key",
            code="KEY_UNREADABLE",
        ) from e
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ConfigError(
            f"private key {path} is a {type(key).__name__}; edoc signs with ECDSA or RSA keys",
            code="KEY_TYPE_UNSUPPORTED",
        )
    return key


def load_certificate(path: Path) -> x509.Certificate:
    """Load one PEM (or DER) certificate; failure is a one-line ``ConfigError``."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(
            f"cannot read certificate {path}: {e.strerror or e}",
            code="CERT_UNREADABLE",
        ) from e
    try:
        if data.lstrip().startswith(b"-----"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as e:
        raise ConfigError(
            f"{path} is not a readable PEM/DER X.509 certificate",
            code="CERT_UNREADABLE",
        ) from e


def key_matches_certificate(key: PrivateKey, cert: x509.Certificate) -> bool:
    """Whether ``key`` is the private half of ``cert``'s public key."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return key.public_key().public_bytes(der, spki) == cert.public_key().public_bytes(der, spki)


def _tsa_certificate(
    tsa_key: PrivateKey,
    root_key: PrivateKey,
    root_cert: x509.Certificate,
    organisation: str,
    now: datetime,
    validity: timedelta,
) -> x509.Certificate:
    return (
        _builder(
            _name(TSA_CN, organisation), root_cert.subject, tsa_key.public_key(),
            root_key.public_key(), now, validity,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        # RFC 3161 §2.3: the TSA certificate MUST carry exactly one extended key usage,
        # id-kp-timeStamping, and the extension MUST be critical.
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
        )
        .sign(root_key, _signing_hash(root_key))
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    issuer_public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    now: datetime,
    validity: timedelta,
) -> x509.CertificateBuilder:
    if validity <= timedelta(0):
        raise ConfigError(
            f"certificate validity {validity} is not positive", code="PKI_VALIDITY_INVALID"
        )
    # X.509 times have one-second resolution (RFC 5280 §4.1.2.5); truncate so notBefore is
    # never after the moment the caller asked for.
    start = now.replace(microsecond=0)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + validity)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key),
            critical=False,
        )
    )


def _key_usage(
    *,
    digital_signature: bool = False,
    content_commitment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, DEV_OU),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _organisation_of(cert: x509.Certificate) -> str:
    values = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    value = values[0].value if values else "edoc"
    return value if isinstance(value, str) else value.decode()


def _check_organisation(organisation: str) -> None:
    if not organisation.strip() or len(organisation) > _MAX_ORGANISATION:
        raise ConfigError(
            f"organisation name has {len(organisation)} characters; a certificate's O "
            f"needs 1 to {_MAX_ORGANISATION} (RFC 5280 ub-organization-name)",
            code="ORGANISATION_INVALID",
        )


def _signing_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return clock.now()
    if now.tzinfo is None:
        raise ValueError("naive datetime given; edoc keeps time in timezone-aware UTC")
    return now.astimezone(UTC)


def _write_key(path: Path, key: PrivateKey, passphrase: bytes | None) -> None:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    _write_new(path, pem, _KEY_MODE, code="KEYS_EXIST")


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    _write_new(path, cert.public_bytes(serialization.Encoding.PEM), _CERT_MODE, code="KEYS_EXIST")


def _write_new(path: Path, data: bytes, mode: int, *, code: str) -> None:
    # O_EXCL: creation and the existence check are one atomic step, so two concurrent
    # `edoc init` runs cannot both write a key. The mode applies at creation (the umask can
    # only narrow it), so a key file is never readable by others, not even briefly.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as e:
        raise ConfigError(
            f"{path} already exists; refusing to overwrite key material", code=code
        ) from e
    try:
        if mode == _CERT_MODE:
            # Certificates are public: make them 0644 regardless of a restrictive umask.
            os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
