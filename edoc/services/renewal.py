"""Evidence renewal: keep every record provable after its TSA certificate expires.

An RFC 3161 token is verifiable while its TSA certificate is (about ten years), but
corporate-tax records with a loss year, Companies Act books and medical records are kept
longer. Before a TSA certificate expires, ``renew`` appends a ``renew`` leaf for every
checkpoint whose token depends on it — the leaf carries the SHA-256 of the checkpoint's
JSON, seal and token — and then checkpoints the tree with a fresh token. The old evidence is
thereby covered by a newer timestamp, archive-timestamp style (the same idea as the
JIS X 5093 / ETSI archive timestamp), and verification accepts an expired token when such a
renewal chain ends in a token that is still valid.

For the embedded TSA, ``renew`` first re-issues the TSA certificate if it would expire
before the chosen date (the key stays; the old certificate is kept beside it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from edoc import clock
from edoc.errors import EdocError, ObjectMissing
from edoc.evidence.ledger import event_entry, leaf_hex
from edoc.services.archive import Archive
from edoc.services.checkpoint import make_checkpoint
from edoc.storage import layout

#: Renew what expires within this horizon when no date is given.
DEFAULT_HORIZON = timedelta(days=365)
TSA_CERT_VALIDITY = timedelta(days=3650)


def token_expiry(tsr: bytes) -> datetime | None:
    """notAfter of the TSA certificate inside a token (None if it carries none)."""
    from edoc.evidence.tsa import parse_token

    try:
        token = parse_token(tsr)
    except ValueError:
        return None
    signed = token["content"]
    for cert in signed["certificates"] or []:
        c = cert.chosen
        ext = c.extended_key_usage_value
        if ext is not None and "time_stamping" in ext.native:
            not_after: datetime = c["tbs_certificate"]["validity"]["not_after"].native
            return not_after.astimezone(UTC)
    return None


def evidence_files(archive: Archive, size: int) -> dict[str, bytes]:
    return {ext: archive.store.read(layout.checkpoint_key(size, ext))
            for ext in ("json", "p7s", "tsr")}


def renewal_entries(archive: Archive) -> dict[int, list[tuple[int, dict[str, Any]]]]:
    """Checkpoint size → [(leaf index, renew entry)] for every renewal in the ledger."""
    out: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for idx, entry in archive.catalog.entries_of_event("renew"):
        e = json.loads(entry)
        out.setdefault(int(e["tree_size"]), []).append((idx, e))
    return out


def digests(files: dict[str, bytes]) -> dict[str, str]:
    return {f"{ext}_sha256": hashlib.sha256(data).hexdigest() for ext, data in files.items()}


@dataclass
class RenewSummary:
    before: datetime
    tsa_certificate_reissued: bool = False
    renewed: list[int] = field(default_factory=list)
    checkpoint: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"before": self.before.isoformat(timespec="seconds"),
                "tsa_certificate_reissued": self.tsa_certificate_reissued,
                "renewed_checkpoints": self.renewed, "checkpoint": self.checkpoint}


def renew(archive: Archive, before: datetime | None = None) -> RenewSummary:
    a = archive
    now = clock.now()
    horizon = before or now + DEFAULT_HORIZON
    summary = RenewSummary(before=horizon)
    if a.cfg.tsa.kind == "embedded":
        from edoc.evidence import pki

        paths = a.notary.paths
        current = pki.load_certificate(paths.tsa_cert).not_valid_after_utc
        if current <= horizon:
            root_end = pki.load_certificate(paths.root_cert).not_valid_after_utc
            validity = min(TSA_CERT_VALIDITY, root_end - now - timedelta(days=1))
            if now + validity <= horizon:
                raise EdocError(f"the development root CA expires {root_end.date()}; a TSA "
                                f"certificate cannot be valid past {horizon.date()}",
                                code="PKI_ROOT_EXPIRING",
                                hint="renew with an accredited TSA (tsa.kind = http)")
            pki.issue_tsa_certificate(paths, validity=validity, passphrase=a.cfg.passphrase())
            a.notary = type(a.notary)(a.cfg)  # reload: the stamper caches the old cert
            summary.tsa_certificate_reissued = True
    sizes = a.catalog.checkpoint_sizes()
    renewals = renewal_entries(a)
    entries = []
    for size in sizes:
        try:
            files = evidence_files(a, size)
        except ObjectMissing:
            continue  # reported by `ledger verify`; nothing here to renew
        expiry = token_expiry(files["tsr"])
        if expiry is None or expiry > horizon:
            continue
        if _renewed_beyond(a, size, horizon, renewals, files):
            continue
        entries.append(event_entry("renew", now, tree_size=size,
                                   tsa_not_after=expiry.isoformat(), **digests(files)))
        summary.renewed.append(size)
    if entries:
        # One transaction: the renewals of a run are logged together or not at all.
        a.catalog.append_leaves([{"event": "renew", "entry": e.decode(),
                                  "leaf_hash": leaf_hex(e)} for e in entries])
        cp = make_checkpoint(a.catalog, a.store, a.notary, min_retain=now + timedelta(days=1))
        summary.checkpoint = cp.tree_size if cp else None
    return summary


def _renewed_beyond(a: Archive, size: int, horizon: datetime,
                    renewals: dict[int, list[tuple[int, dict[str, Any]]]],
                    files: dict[str, bytes]) -> bool:
    """Already covered by a renewal whose own checkpoint's token outlives ``horizon``."""
    want = digests(files)
    for idx, e in renewals.get(size, []):
        if any(e.get(k) != v for k, v in want.items()):
            continue
        cover = a.catalog.checkpoint_covering(idx)
        if cover is None:
            continue
        expiry = token_expiry(evidence_files(a, cover.tree_size)["tsr"])
        if expiry is not None and expiry > horizon:
            return True
    return False
