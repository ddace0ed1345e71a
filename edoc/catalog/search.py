"""The legal search (電帳法 検索要件: date range, amount range, counterparty) and the
record lists of period commands.

``search`` yields ``SearchRow``: a version row and its record's state, with the columns'
names as attributes (cli.py renders them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from edoc.catalog.fulltext import TextReads, text_filter
from edoc.catalog.records import VersionRow
from edoc.catalog.schema import counterparties, normalise_counterparty, records, versions


@dataclass(frozen=True)
class SearchQuery:
    date_from: date | None = None
    date_to: date | None = None
    min_amount: int | None = None
    max_amount: int | None = None
    counterparty: str | None = None
    doc_type: str | None = None
    ledger_ref: str | None = None
    profile: str | None = None
    #: exact matches on an e-invoice's number and the seller's registration number
    invoice_number: str | None = None
    registration_number: str | None = None
    #: a fragment of the record's derived full text (``edoc.catalog.fulltext``)
    text: str | None = None
    include_deleted: bool = False
    all_versions: bool = False
    limit: int | None = None


@dataclass(slots=True)
class SearchRow(VersionRow):
    """A version that matched, and its record's state (active | deleted)."""

    state: str = "active"


def _like_substring(text: str) -> str:
    """``%text%`` for ``LIKE … ESCAPE '\\'``: a name holding ``%`` or ``_`` matches itself."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class SearchReads(TextReads):
    def search(self, q: SearchQuery) -> Iterator[SearchRow]:
        v, r = versions, records
        stmt = sa.select(v, r.c.state).join(r, r.c.record_id == v.c.record_id)
        if not q.all_versions:
            stmt = stmt.where(v.c.version == r.c.latest_version)
        if q.include_deleted:
            stmt = stmt.where(r.c.state != "disposed")
        else:
            stmt = stmt.where(r.c.state == "active")
        if q.all_versions and not q.include_deleted:
            stmt = stmt.where(v.c.kind != "tombstone")
        # The legal search columns (date, amount, counterparty: 電帳法 検索要件) are matched in
        # a subquery answered from ix_versions_search alone; only the hits' rows are read
        # (measured on a million records: p95 27 ms -> 2.4 ms, BENCHMARKS.md).
        s = versions.alias("s")
        keys = sa.select(s.c.record_id, s.c.version)
        narrowed = False
        if q.date_from:
            keys = keys.where(s.c.transaction_date >= q.date_from.isoformat())
            narrowed = True
        if q.date_to:
            keys = keys.where(s.c.transaction_date <= q.date_to.isoformat())
            narrowed = True
        if q.min_amount is not None:
            keys = keys.where(s.c.amount >= q.min_amount)
            narrowed = True
        if q.max_amount is not None:
            keys = keys.where(s.c.amount <= q.max_amount)
            narrowed = True
        if q.counterparty:
            pattern = _like_substring(normalise_counterparty(q.counterparty))
            dated = q.date_from is not None or q.date_to is not None
            if dated or not self._counterparty_names_ready():
                # With a date range, ix_versions_search answers the LIKE from the index
                # entries of the range: 2.3 ms p95 at a million records, against 97 ms when
                # the names drive the search through ix_versions_cp instead (measured).
                keys = keys.where(s.c.counterparty_norm.like(pattern, escape="\\"))
                narrowed = True
            else:
                # Without one: LIKE over the few thousand distinct names, then those names
                # through ix_versions_cp, instead of a LIKE on every version (a full scan:
                # p95 226-521 ms at a million records, BENCHMARKS.md part 3; now ~20 ms).
                names = sa.select(counterparties.c.name).where(
                    counterparties.c.name.like(pattern, escape="\\"))
                if narrowed:
                    # an amount range too: the names lead (p95 375 -> 133 ms, measured)
                    keys = keys.where(s.c.counterparty_norm.in_(names))
                else:
                    stmt = stmt.where(v.c.counterparty_norm.in_(names))
        if narrowed:
            stmt = stmt.where(sa.tuple_(v.c.record_id, v.c.version).in_(keys))
        if q.doc_type:
            stmt = stmt.where(v.c.doc_type == q.doc_type)
        if q.ledger_ref:
            stmt = stmt.where(v.c.ledger_ref == q.ledger_ref)
        if q.invoice_number:
            stmt = stmt.where(v.c.invoice_number == q.invoice_number)
        if q.registration_number:
            stmt = stmt.where(v.c.registration_number == q.registration_number)
        if q.profile:
            stmt = stmt.where(v.c.profiles.like(f'%"{q.profile}"%'))
        if q.text:
            self.ensure_upgraded()
            stmt = stmt.where(v.c.record_id.in_(text_filter(q.text)))
        stmt = stmt.order_by(v.c.transaction_date, v.c.record_id, v.c.version)
        if q.limit:
            stmt = stmt.limit(q.limit)
        with self.read() as c:
            for row in c.execute(stmt):
                yield SearchRow(*row)  # ``versions`` whole, then ``state`` (VersionRow.of)

    def record_ids(self, date_from: date | None = None, date_to: date | None = None
                   ) -> Iterator[str]:
        stmt = sa.select(records.c.record_id).order_by(records.c.record_id)
        if date_from or date_to:
            sub = sa.select(versions.c.record_id).distinct()
            if date_from:
                sub = sub.where(versions.c.transaction_date >= date_from.isoformat())
            if date_to:
                sub = sub.where(versions.c.transaction_date <= date_to.isoformat())
            stmt = stmt.where(records.c.record_id.in_(sub))
        with self.read() as c:
            for (rid,) in c.execute(stmt):
                yield str(rid)

    def count_records(self, date_from: date | None = None, date_to: date | None = None) -> int:
        stmt = sa.select(sa.func.count(sa.distinct(versions.c.record_id)))
        if date_from:
            stmt = stmt.where(versions.c.transaction_date >= date_from.isoformat())
        if date_to:
            stmt = stmt.where(versions.c.transaction_date <= date_to.isoformat())
        with self.read() as c:
            return int(c.execute(stmt).scalar() or 0)
