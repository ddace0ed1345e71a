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


#: One business-key part as the run notes it: (transaction date, amount, part, value).
KeyPart = tuple[str, int, str, str]


class RunKeys:
    """The business keys noted so far by one ingest run, shared by all its workers.

    ``note`` is atomic: of two records with one key, whichever notes second sees the first.
    Every record of the run is noted before it is catalogued, and the catalog holds every
    record stored before the run, so a twin is found in one or the other whatever the
    order of the two records' commits. A run on worker processes serves one instance to
    all of them (``edoc.services.ingest_workers``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[KeyPart, list[tuple[str, str]]] = {}

    def note(self, parts: list[KeyPart], record_id: str, sha256: str
             ) -> list[tuple[str, str]]:
        """(other record, matched part) for each noted record with one of ``parts`` and
        other bytes; then note this one."""
        found: list[tuple[str, str]] = []
        with self._lock:
            for k in parts:
                for other, other_sha in self._seen.get(k, ()):
                    if other_sha != sha256:
                        found.append((other, k[2]))
                self._seen.setdefault(k, []).append((record_id, sha256))
        return found


class DuplicateWatch:
    """The business-key check of one ingest run, so two suspects in one batch (stored by
    parallel workers, neither yet in the catalog when the other is checked) still meet."""

    def __init__(self, catalog: Catalog, keys: RunKeys | None = None) -> None:
        self.catalog = catalog
        self._keys = keys if keys is not None else RunKeys()

    def check(self, body: Manifest, sha256: str, record_id: str) -> list[dict[str, str]]:
        """The ``DUPLICATE_SUSPECT`` warnings for a record about to be stored, and note its
        key for the rest of the run."""
        key = business_key(body)
        if key is None:
            return []
        parts = [(key.transaction_date, key.amount, part, value) for part, value in (
            ("counterparty", key.counterparty_norm),
            ("registration_number", key.registration_number)) if value]
        found = dict(self.catalog.business_key_matches(
            transaction_date=key.transaction_date, amount=key.amount,
            counterparty_norm=key.counterparty_norm,
            registration_number=key.registration_number, content_sha256=sha256))
        for other, part in self._keys.note(parts, record_id, sha256):
            found.setdefault(other, part)
        return [_warning(other, on) for other, on in sorted(found.items())]


def duplicate_pairs(catalog: Catalog, limit: int | None = None) -> list[DuplicatePair]:
    return catalog.duplicate_pairs(limit)
