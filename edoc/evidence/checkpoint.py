"""The one checkpoint verifier: is this tree head sealed, timestamped and readable?

A checkpoint is the JSON ``{"tree_size": n, "root_hash": hex, ...}`` of the ledger's Merkle
tree (RFC 9162 §2.1), sealed with a detached CAdES signature (RFC 5652 SignedData, ETSI EN
319 122-1) and timestamped with an RFC 3161 token whose message imprint is SHA-256 of the
JSON bytes. The archive's verifier (``edoc verify``), the ledger audit (``edoc ledger
verify``) and the offline bundle verifier (``edoc verify-bundle``) all judge checkpoints
here, from bytes they read themselves (store objects or ZIP members), against the trust roots
they were given; each keeps its own per-run cache, so a checkpoint is verified once per run.

``verify_stamp`` is the same seal + timestamp pair for any stamped JSON (disposal
certificates are stamped the same way, see ``Notary.stamp``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from edoc.evidence import merkle
from edoc.evidence.sealing import verify_seal
from edoc.evidence.tsa import verify_timestamp
from edoc.model import canonical
from edoc.model.verdict import Check


@dataclass(frozen=True)
class StampVerdict:
    """The seal and the timestamp of one stamped file, and the token's genTime (None when the
    token did not verify)."""

    seal: Check
    timestamp: Check
    gen_time: datetime | None


def verify_stamp(data: bytes, seal: bytes, tsr: bytes, *,
                 trust_roots: Sequence[x509.Certificate],
                 seal_at_gen_time: bool = True) -> StampVerdict:
    """Check ``seal`` (CAdES, detached) and ``tsr`` (RFC 3161, imprint = SHA-256 of ``data``).

    ``seal_at_gen_time``: judge the seal certificate's chain at the token's genTime, so a seal
    made while its certificate was valid stays valid after it expires (what the archive does
    for checkpoints); False judges it as of now (what ``openssl cms -verify`` does, and so the
    offline bundle verifier and disposal certificates)."""
    ts_check, gen_time = verify_timestamp(tsr, digest=hashlib.sha256(data).digest(),
                                          trust_roots=trust_roots)
    seal_check = verify_seal(data, seal, trust_roots=trust_roots,
                             moment=gen_time if seal_at_gen_time else None)
    return StampVerdict(seal_check, ts_check, gen_time)


@dataclass(frozen=True)
class CheckpointVerdict:
    """What a checkpoint's three files say.

    The tree head is read two ways, as the callers always have: ``root_hash``/``tree_size``
    with ``malformed`` (the stated root as text, what the catalog and the ledger audit compare
    with) and ``root`` with ``root_problem`` (the stated root as exactly 32 bytes, what an
    inclusion path must reach, RFC 9162 §2.1.3.2)."""

    seal: Check
    timestamp: Check
    gen_time: datetime | None
    #: the parsed JSON (None when it is not JSON)
    body: Any
    root_hash: str | None
    tree_size: int | None
    #: why ``root_hash`` or ``tree_size`` could not be read (the exception's text), or None
    malformed: str | None
    root: bytes | None
    root_problem: str | None


def verify_checkpoint(data: bytes, seal: bytes, tsr: bytes, *,
                      trust_roots: Sequence[x509.Certificate],
                      seal_at_gen_time: bool = True) -> CheckpointVerdict:
    """The verdict on one checkpoint; never raises for a bad one (every finding is data)."""
    stamp = verify_stamp(data, seal, tsr, trust_roots=trust_roots,
                         seal_at_gen_time=seal_at_gen_time)
    body: Any = None
    parse_error: ValueError | None = None
    try:
        body = canonical.loads(data)
    except ValueError as exc:
        parse_error = exc
    root_hash, tree_size, malformed = _stated(body, parse_error)
    root, root_problem = _root_bytes(body, parse_error)
    return CheckpointVerdict(stamp.seal, stamp.timestamp, stamp.gen_time, body, root_hash,
                             tree_size, malformed, root, root_problem)


def _stated(body: Any, parse_error: ValueError | None
            ) -> tuple[str | None, int | None, str | None]:
    if parse_error is not None:
        return None, None, str(parse_error)
    root_hash: str | None = None
    try:
        root_hash = str(body["root_hash"])
        return root_hash, int(body["tree_size"]), None
    except (ValueError, KeyError, TypeError) as exc:
        return root_hash, None, str(exc)


def _root_bytes(body: Any, parse_error: ValueError | None) -> tuple[bytes | None, str | None]:
    if parse_error is not None:
        return None, f"checkpoint JSON unreadable ({parse_error})"
    root: bytes | None = None
    try:
        root = bytes.fromhex(body["root_hash"])
        int(body["tree_size"])
    except (ValueError, KeyError, TypeError) as exc:
        return root, f"checkpoint JSON unreadable ({exc})"
    if len(root) != merkle.HASH_SIZE:
        return None, "root_hash is not 32 bytes"
    return root, None
