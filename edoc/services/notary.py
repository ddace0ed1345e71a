"""The archive's signing and time-stamping identity, and the trust it verifies against.

``Notary`` loads the seal key once (DESIGN.md performance notes: re-parsing a key per seal
costs more than the seal), picks the time-stamping authority from ``edoc.toml`` (the embedded,
NOT ACCREDITED TSA, or any RFC 3161 HTTP TSA by URL), and knows the trust roots that seals
and tokens must chain to. Keys are loaded only when something is signed: verification needs
certificates, never private keys.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from edoc.config import ArchiveConfig
from edoc.errors import ConfigError
from edoc.evidence import pki
from edoc.model.verdict import Check


@dataclass(frozen=True)
class Stamp:
    """A sealed and timestamped object: the bytes, their CAdES seal and RFC 3161 response."""

    data: bytes
    seal: bytes
    tsr: bytes
    gen_time: datetime


class Notary:
    def __init__(self, cfg: ArchiveConfig) -> None:
        self.cfg = cfg
        self.paths = pki.PkiPaths.under(cfg.keys_path)

    # -- trust -----------------------------------------------------------------------------
    @functools.cached_property
    def trust_roots(self) -> list[x509.Certificate]:
        roots = [pki.load_certificate(self.paths.root_cert)]
        for extra in self.cfg.tsa.trust_roots:
            path = (self.cfg.dir / extra).resolve()
            try:
                roots.extend(x509.load_pem_x509_certificates(path.read_bytes()))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"tsa.trust_roots entry {extra} cannot be read: {exc}",
                                  code="CONFIG_INVALID") from None
        return roots

    @functools.cached_property
    def certificates(self) -> dict[str, x509.Certificate]:
        """The archive's own certificates, for evidence bundles."""
        return {
            "root-ca.pem": pki.load_certificate(self.paths.root_cert),
            "seal.pem": pki.load_certificate(self.paths.seal_cert),
            "tsa.pem": pki.load_certificate(self.paths.tsa_cert),
        }

    # -- signing ---------------------------------------------------------------------------
    @functools.cached_property
    def _sealer(self) -> object:
        from edoc.evidence.sealing import Sealer

        root = pki.load_certificate(self.paths.root_cert)
        cert = pki.load_certificate(self.paths.seal_cert)
        if self.cfg.seal_backend == "pkcs11" and self.cfg.pkcs11 is not None:
            from edoc.evidence.hsm import TokenSealer

            return TokenSealer(self.cfg.pkcs11, cert, [root])
        key = pki.load_private_key(self.paths.seal_key, self.cfg.passphrase())
        return Sealer(cert, key, [root])

    @functools.cached_property
    def _stamper(self) -> object:
        from edoc.evidence import tsa_embedded, tsa_transport

        t = self.cfg.tsa
        if t.kind == "embedded":
            key = pki.load_private_key(self.paths.tsa_key, self.cfg.passphrase())
            cert = pki.load_certificate(self.paths.tsa_cert)
            root = pki.load_certificate(self.paths.root_cert)
            responder = tsa_embedded.EmbeddedTsa(cert, key, [root],
                                        serial_file=self.cfg.keys_path / "tsa-serial")
            return tsa_transport.InProcessTimeStamper(responder)
        if t.kind == "http" and t.url:
            password = os.environ.get(t.password_env) if t.password_env else None
            ca = (self.cfg.dir / t.ca_file).resolve() if t.ca_file else None
            return tsa_transport.HttpTimeStamper(t.url, username=t.username, password=password,
                                       ca_file=ca, timeout=t.timeout)
        raise ConfigError(f"tsa.kind {t.kind!r} needs a url", code="CONFIG_INVALID",
                          hint="use kind = \"embedded\" or kind = \"http\" with url = ...")

    def ready_to_sign(self) -> None:
        """Load the seal key and the TSA now, so a run that could not seal stops before it
        stores anything (a wrong passphrase is a configuration error, exit 2)."""
        _ = self._sealer, self._stamper

    def seal(self, data: bytes) -> bytes:
        from edoc.evidence.hsm import TokenSealer
        from edoc.evidence.sealing import Sealer

        sealer = self._sealer
        assert isinstance(sealer, Sealer | TokenSealer)
        return sealer.seal(data)

    def timestamp(self, digest: bytes) -> tuple[bytes, datetime]:
        """An RFC 3161 response over ``digest`` (SHA-256) and its genTime."""
        from edoc.evidence import tsa

        result = tsa.request_timestamp(self._stamper, digest)  # type: ignore[arg-type]
        return result.response_der, result.gen_time

    def stamp(self, data: bytes) -> Stamp:
        """Seal ``data`` and timestamp it: the imprint is SHA-256 of ``data`` itself, so an
        auditor runs ``openssl ts -verify -data FILE`` on the very file they read."""
        import hashlib

        seal = self.seal(data)
        tsr, gen_time = self.timestamp(hashlib.sha256(data).digest())
        return Stamp(data, seal, tsr, gen_time)

    # -- verifying -------------------------------------------------------------------------
    def verify_timestamp(self, tsr: bytes, data: bytes) -> tuple[Check, datetime | None]:
        """The token's verdict and genTime (``catalog rebuild`` reads a checkpoint's time).
        Checkpoints are judged whole by ``edoc.evidence.checkpoint``."""
        import hashlib

        from edoc.evidence.tsa import verify_timestamp

        return verify_timestamp(tsr, digest=hashlib.sha256(data).digest(),
                                trust_roots=self.trust_roots)
