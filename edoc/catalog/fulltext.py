"""Statements of the derived full text (``texts``, ``text_grams``) and of the business-key
duplicate check (``DUPLICATE_SUSPECT``).

The text of a record is derived data: it is written after the record is committed, replaced
when a correction brings new content, deleted with the record by a purge and re-derived by
``catalog rebuild`` (``edoc.services.fulltext``). A fragment is found through the gram
postings (every distinct character and adjacent pair of the normalised text) and confirmed
by ``LIKE`` on the candidates' text, so one- and two-character Japanese fragments (東, ガス)
are index lookups, which a trigram index cannot give.

The business key of a record is (counterparty or 登録番号, transaction date, amount): an
active record with the same key and other bytes is a suspected duplicate (a rescan, or the
same invoice received as PDF and as XML). Both are answered from the existing indexes
(``ix_versions_search`` leads with date and amount; ``ix_versions_registration_number``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from edoc.catalog.engine import CatalogEngine, driver_insert
from edoc.catalog.schema import normalise_text, records, text_grams, texts, versions
from edoc.errors import CatalogError

#: Characters of normalised text indexed per record: the first pages carry what a clerk
#: searches for; a 500-page PDF must not write a million postings.
MAX_INDEXED_CHARS = 200_000


def grams(norm: str) -> set[str]:
    """The postings of a normalised text: every character, every adjacent pair."""
    return set(norm) | {norm[i:i + 2] for i in range(len(norm) - 1)}


def _like_substring(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def text_filter(fragment: str) -> sa.Select[Any]:
    """Record ids whose text contains ``fragment`` (normalised as the text was): gram
    postings first, ``LIKE`` on the candidates to confirm the order of the characters."""
    norm = normalise_text(fragment)
    g = text_grams
    if len(norm) <= 1:
        return sa.select(g.c.record_id).where(g.c.gram == norm)
    pairs = sorted({norm[i:i + 2] for i in range(len(norm) - 1)})
    candidates = (sa.select(g.c.record_id).where(g.c.gram.in_(pairs))
                  .group_by(g.c.record_id)
                  .having(sa.func.count() == len(pairs)))
    if len(norm) == 2:
        return candidates
    return sa.select(texts.c.record_id).where(
        texts.c.record_id.in_(candidates),
        texts.c.text_norm.like(_like_substring(norm), escape="\\"))


def text_test(fragment: str, record_id: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """Whether the record ``record_id`` has ``fragment`` in its text, as ``text_filter``
    answers it, for a walk that tests candidates one by one: a one- or two-character
    fragment is one posting, looked up by its key, instead of every record holding it
    gathered first (tens of thousands for a common character)."""
    norm = normalise_text(fragment)
    if len(norm) > 2:
        return record_id.in_(text_filter(fragment))
    g = text_grams
    return sa.exists().where(g.c.gram == norm, g.c.record_id == record_id)


#: Built once (one statement per stored record: building it per call cost more than running
#: it). A NULL key part matches nothing (``= NULL`` is never true).
_BUSINESS_KEY_MATCHES = (
    sa.select(versions.c.record_id, versions.c.registration_number)
    .join(records, sa.and_(records.c.record_id == versions.c.record_id,
                           records.c.latest_version == versions.c.version))
    .where(records.c.state == "active",
           versions.c.transaction_date == sa.bindparam("date"),
           versions.c.amount == sa.bindparam("amount"),
           versions.c.content_sha256 != sa.bindparam("sha"),
           sa.or_(versions.c.registration_number == sa.bindparam("number"),
                  versions.c.counterparty_norm == sa.bindparam("name"))))


@dataclass(frozen=True, slots=True)
class TextRow:
    """A record's derived text and how it was read."""

    record_id: str
    version: int
    source: str
    pages: int
    confidence: float | None
    text: str
    derived_at: str


@dataclass(frozen=True, slots=True)
class DuplicatePair:
    """Two active records with one business key and different bytes."""

    record_id: str
    other_record_id: str
    #: counterparty | registration_number: which part of the key matched
    matched_on: str
    transaction_date: str
    amount: int
    counterparty: str | None
    other_counterparty: str | None
    registration_number: str | None


class TextReads(CatalogEngine):
    """The full-text and duplicate operations of ``Catalog`` (through ``SearchReads``)."""

    def ensure_upgraded(self) -> None:
        """Bring an older catalog's schema up to date before a read of a table added since
        (its first write does it otherwise); read-only or busy: the read fails as before."""
        if not self._upgraded:
            with suppress(CatalogError), self.write():
                pass

    # -- full text ------------------------------------------------------------------------
    def put_text(self, *, record_id: str, version: int, source: str, pages: int,
                 confidence: float | None, text: str, derived_at: str) -> int:
        """Store (or replace) a record's text and its postings; returns the postings."""
        return self.put_texts([{
            "record_id": record_id, "version": version, "source": source, "pages": pages,
            "confidence": confidence, "text": text, "derived_at": derived_at}])

    def put_texts(self, items: Sequence[dict[str, Any]]) -> int:
        """Store (or replace) several records' texts and postings in one transaction (each
        item: ``put_text``'s keyword arguments); returns the postings written."""
        if not items:
            return 0
        rows: dict[str, dict[str, Any]] = {}  # the last text of a record given twice wins
        for item in items:
            norm = normalise_text(item["text"])[:MAX_INDEXED_CHARS]
            rows[item["record_id"]] = {**item, "text_norm": norm}
        # A few hundred postings per record: plain tuples to the driver (driver_insert).
        postings = [(g, rid) for rid, row in rows.items() for g in sorted(grams(row["text_norm"]))]
        ids = sorted(rows)
        with self.write() as c:
            c.execute(sa.delete(text_grams).where(text_grams.c.record_id.in_(ids)))
            c.execute(sa.delete(texts).where(texts.c.record_id.in_(ids)))
            c.execute(texts.insert(), list(rows.values()))
            if postings:
                c.exec_driver_sql(driver_insert(c, text_grams, ("gram", "record_id")),
                                  postings)
        return len(postings)

    def drop_texts(self, record_ids: Sequence[str]) -> int:
        """Delete the texts of ``record_ids`` (a purge); returns how many there were."""
        if not record_ids:
            return 0
        self.ensure_upgraded()
        with self.write() as c:
            c.execute(sa.delete(text_grams).where(text_grams.c.record_id.in_(record_ids)))
            return int(c.execute(sa.delete(texts).where(
                texts.c.record_id.in_(record_ids))).rowcount or 0)

    def drop_disposed_texts(self) -> int:
        """Delete any text whose record is disposed (what a purge that died between its
        catalog commit and ``drop_texts`` left)."""
        self.ensure_upgraded()
        gone = sa.select(records.c.record_id).where(records.c.state == "disposed")
        with self.write() as c:
            c.execute(sa.delete(text_grams).where(text_grams.c.record_id.in_(
                sa.select(texts.c.record_id).where(texts.c.record_id.in_(gone)))))
            return int(c.execute(sa.delete(texts).where(
                texts.c.record_id.in_(gone))).rowcount or 0)

    def text_of(self, record_id: str) -> TextRow | None:
        self.ensure_upgraded()
        t = texts
        stmt = sa.select(t.c.record_id, t.c.version, t.c.source, t.c.pages, t.c.confidence,
                         t.c.text, t.c.derived_at).where(t.c.record_id == record_id)
        with self.read() as c:
            row = c.execute(stmt).first()
        return TextRow(*row) if row is not None else None

    def text_record_ids(self) -> set[str]:
        self.ensure_upgraded()
        with self.read() as c:
            return {str(r) for (r,) in c.execute(sa.select(texts.c.record_id))}

    # -- duplicates by business key ----------------------------------------------------------
    def business_key_matches(self, *, transaction_date: str, amount: int,
                             counterparty_norm: str | None, registration_number: str | None,
                             content_sha256: str) -> list[tuple[str, str]]:
        """Active records (their latest version) with this date and amount and the same
        counterparty or 登録番号, whose content is other bytes: ``(record_id, matched_on)``."""
        out: dict[str, str] = {}
        with self.read() as c:
            for rid, number in c.execute(_BUSINESS_KEY_MATCHES, {
                    "date": transaction_date, "amount": amount, "sha": content_sha256,
                    "number": registration_number, "name": counterparty_norm}):
                # a match on both is reported as the 登録番号 (the stronger key)
                out[str(rid)] = ("registration_number" if registration_number and
                                 number == registration_number else "counterparty")
        return sorted(out.items())

    def duplicate_pairs(self, limit: int | None = None) -> list[DuplicatePair]:
        """Every pair of active records sharing a business key with different bytes, each
        pair once (lower record id first), in date order."""
        pairs: dict[tuple[str, str], DuplicatePair] = {}
        for matched_on, column in (("counterparty", "counterparty_norm"),
                                   ("registration_number", "registration_number")):
            for row in self._pairs_on(column):
                key = (row[0], row[1])
                if key not in pairs:
                    pairs[key] = DuplicatePair(row[0], row[1], matched_on, row[2], row[3],
                                               row[4], row[5], row[6])
        out = sorted(pairs.values(), key=lambda p: (p.transaction_date, p.record_id,
                                                    p.other_record_id))
        return out[:limit] if limit else out

    def _pairs_on(self, column: str) -> Iterable[tuple[Any, ...]]:
        a, b = versions.alias("a"), versions.alias("b")
        ra, rb = records.alias("ra"), records.alias("rb")
        stmt = (sa.select(a.c.record_id, b.c.record_id, a.c.transaction_date, a.c.amount,
                          a.c.counterparty, b.c.counterparty, a.c.registration_number)
                .join(ra, sa.and_(ra.c.record_id == a.c.record_id,
                                  ra.c.latest_version == a.c.version))
                .join(b, sa.and_(b.c.transaction_date == a.c.transaction_date,
                                 b.c.amount == a.c.amount,
                                 b.c[column] == a.c[column],
                                 b.c.record_id > a.c.record_id))
                .join(rb, sa.and_(rb.c.record_id == b.c.record_id,
                                  rb.c.latest_version == b.c.version))
                .where(ra.c.state == "active", rb.c.state == "active",
                       a.c[column].is_not(None), a.c.transaction_date.is_not(None),
                       a.c.amount.is_not(None),
                       b.c.content_sha256 != a.c.content_sha256))
        with self.read() as c:
            return [tuple(row) for row in c.execute(stmt)]
