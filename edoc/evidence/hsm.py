"""Seal keys held in a PKCS#11 token (an HSM, a smart card, or SoftHSM2 for tests).

The private key is generated inside the token and never leaves it; edoc certifies its public
key with the archive's root CA and seals through pyHanko's ``PKCS11Signer``. EC keys need
``use_raw_mechanism=True``: tokens such as SoftHSM2 offer raw ``CKM_ECDSA`` but not the
hash-then-sign mechanisms, so pyHanko hashes and the token signs the digest.

Configuration (``[keys]`` in edoc.toml): ``seal_backend = "pkcs11"``, ``pkcs11_module`` (the
module's path), ``pkcs11_token`` (token label), ``pkcs11_key_label``, and ``pkcs11_pin_env``
(the environment variable holding the user PIN — never the PIN itself).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edoc import clock
from edoc.errors import ConfigError, SealError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True)
class TokenConfig:
    module: str
    token: str
    key_label: str = "edoc-seal"
    pin_env: str = "EDOC_PKCS11_PIN"

    def pin(self) -> str:
        pin = os.environ.get(self.pin_env)
        if not pin:
            raise ConfigError(f"the PKCS#11 user PIN is not set ({self.pin_env})",
                              code="PKCS11_PIN_REQUIRED",
                              hint=f"export {self.pin_env}=… (never put it in edoc.toml)")
        return pin


def _session(cfg: TokenConfig, *, rw: bool = False) -> Any:
    import pkcs11

    try:
        token = pkcs11.lib(cfg.module).get_token(token_label=cfg.token)
        return token.open(rw=rw, user_pin=cfg.pin())
    except ConfigError:
        raise
    except Exception as exc:  # python-pkcs11 raises many unrelated types; all mean "no token"
        raise ConfigError(f"cannot open PKCS#11 token {cfg.token!r} with {cfg.module}: "
                          f"{type(exc).__name__}", code="PKCS11_UNAVAILABLE",
                          hint="check the module path, token label and PIN") from None


def generate_key(cfg: TokenConfig) -> ec.EllipticCurvePublicKey:
    """A new P-256 key pair inside the token (refused if the label is taken)."""
    import pkcs11
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key
    from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

    session = _session(cfg, rw=True)
    try:
        existing = list(session.get_objects({pkcs11.Attribute.LABEL: cfg.key_label,
                                             pkcs11.Attribute.CLASS:
                                                 pkcs11.ObjectClass.PRIVATE_KEY}))
        if existing:
            raise ConfigError(f"token {cfg.token!r} already holds a key labelled "
                              f"{cfg.key_label!r}; refusing to replace it",
                              code="KEYS_EXIST", hint="choose another --pkcs11-key-label")
        params = session.create_domain_parameters(
            pkcs11.KeyType.EC, {pkcs11.Attribute.EC_PARAMS:
                                encode_named_curve_parameters("secp256r1")}, local=True)
        public, _private = params.generate_keypair(store=True, label=cfg.key_label)
        key = load_der_public_key(encode_ec_public_key(public))
    finally:
        session.close()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SealError("the token returned a non-EC public key", code="PKCS11_KEY_INVALID")
    return key


class TokenSealer:
    """``Sealer``'s interface, with the private key inside a PKCS#11 token."""

    def __init__(self, cfg: TokenConfig, cert: x509.Certificate,
                 chain: Sequence[x509.Certificate]) -> None:
        from pyhanko.sign.pkcs11 import PKCS11Signer

        from edoc.evidence.sealing import SealAttributes
        from edoc.evidence.tsa import asn1_certificate

        self.cert = cert
        self._session = _session(cfg)
        cert_asn1 = asn1_certificate(cert)
        self._signer = PKCS11Signer(
            self._session, key_label=cfg.key_label, signing_cert=cert_asn1,
            ca_chain=[asn1_certificate(c) for c in chain], use_raw_mechanism=True)
        # The same signed attributes as a seal made with a key file (``Sealer``).
        self._signer.signed_attr_prov_spec = SealAttributes(
            cert_asn1, lambda: clock.now())

    def seal(self, data: bytes) -> bytes:
        from edoc.evidence.async_bridge import run_sync

        try:
            content_info = run_sync(self._signer.async_sign_general_data(
                data, "sha256", detached=True, use_cades=True))
        except Exception as exc:
            raise SealError(f"sealing with the PKCS#11 token failed: {type(exc).__name__}",
                            code="SEAL_FAILED") from None
        der: bytes = content_info.dump()
        return der
