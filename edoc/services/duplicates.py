"""Duplicates by business key: the same transaction stored twice as different bytes.

The content-hash check (``DUPLICATE_CONTENT``) refuses the same bytes twice. A rescan of a
receipt, or one invoice received both as PDF and as XML, is other bytes with the same
business key — counterparty (or the issuer's 登録番号) + transaction date + amount. Such a
record is not refused: both may be legitimate (two identical purchases on one day), and
電子帳簿保存法 asks to keep what was received. It is stored with the warning
``DUPLICATE_SUSPECT`` naming the other record, sealed in its manifest (``warnings``), and
``search --duplicates`` lists every such pair of active records (``Catalog.duplicate_pairs``,
computed from the catalog as it is now, so a deleted twin drops out of the list).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from edoc.catalog import Catalog, normalise_counterparty
from edoc.catalog.fulltext import DuplicatePair
from edoc.model.manifest import Manifest

DUPLICATE_SUSPECT = "DUPLICATE_SUSPECT"


@dataclass(frozen=True)
class BusinessKey:
    transaction_date: str
    amount: int
    counterparty_norm: str | None
    registration_number: str | None


def business_key(body: Manifest) -> BusinessKey | None:
    """A manifest's business key, if it has date, amount and counterparty or 登録番号."""
    m = body.metadata
    if m.transaction_date is None or m.amount is None:
        return None
    cp = normalise_counterparty(m.counterparty) if m.counterparty else None
    if cp is None and m.registration_number is None:
        return None
    return BusinessKey(m.transaction_date, m.amount, cp, m.registration_number)


def _warning(other: str, matched_on: str) -> dict[str, str]:
    what = "登録番号" if matched_on == "registration_number" else "counterparty"
    return {"code": DUPLICATE_SUSPECT, "rule": "edoc:business-key", "record_id": other,
            "message": f"record {other} has the same {what}, transaction date and amount "
                       "but other bytes (a rescan, or the same invoice as PDF and XML?)"}


class DuplicateWatch:
    """The business keys of one ingest run, so two suspects in one batch (stored by parallel
    workers, neither yet in the catalog when the other is checked) still meet."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, int, str, str], list[tuple[str, str]]] = {}

    def check(self, body: Manifest, sha256: str, record_id: str) -> list[dict[str, str]]:
        """The ``DUPLICATE_SUSPECT`` warnings for a record about to be stored, and note its
        key for the rest of the run."""
        key = business_key(body)
        if key is None:
            return []
        parts = [(part, value) for part, value in (
            ("counterparty", key.counterparty_norm),
            ("registration_number", key.registration_number)) if value]
        with self._lock:
            found = dict(self.catalog.business_key_matches(
                transaction_date=key.transaction_date, amount=key.amount,
                counterparty_norm=key.counterparty_norm,
                registration_number=key.registration_number, content_sha256=sha256))
            for part, value in parts:
                k = (key.transaction_date, key.amount, part, value)
                for other, other_sha in self._seen.get(k, ()):
                    if other_sha != sha256:
                        found.setdefault(other, part)
                self._seen.setdefault(k, []).append((record_id, sha256))
        return [_warning(other, on) for other, on in sorted(found.items())]


def duplicate_pairs(catalog: Catalog, limit: int | None = None) -> list[DuplicatePair]:
    return catalog.duplicate_pairs(limit)
