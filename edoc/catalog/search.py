"""The legal search (電帳法 検索要件: date range, amount range, counterparty) and the
record lists of period commands.

``search`` yields ``SearchRow``: a version row and its record's state, with the columns'
names as attributes; ``search_hits`` the same search as a hit list shows it (``SearchHitRow``:
the 検索要件 fields and which document it is, what ``edoc search`` and the web viewer list).

A counterparty or text fragment with a limit (a screen's page: ``--limit``, the web viewer's
200 + 1) must not fetch and sort every version a one-character fragment matches (東: 50,000
of a million). A count of the matching versions, bounded by ``DATE_WALK_FROM`` and read from
the fragment's index, chooses the plan: many matches, walk the versions in the search's own
order (``ix_versions_order``) and stop at the limit; few, sort the matches' keys
(``ix_versions_cp_search``, no row read) and look up the records of the first ones only.
Either way only the hits' rows are read. On SQLite the plan is pinned with ``INDEXED BY``
(it keeps no statistics); PostgreSQL gets the same statements without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.selectable import Alias
from sqlalchemy.sql.visitors import InternalTraversal

from edoc.catalog.fulltext import TextReads, text_filter, text_test
from edoc.catalog.records import VersionRow
from edoc.catalog.schema import (
    counterparties,
    normalise_counterparty,
    records,
    schema_names,
    versions,
)


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


@dataclass(slots=True)
class SearchHitRow:
    """A version that matched, with the columns a hit list shows: the 検索要件 fields and
    which document it is. Half of ``SearchRow``'s columns: decoding all 29 of a month's
    ~2,000 fragment hits (p95 at a million versions) was a third of that search's time
    (BENCHMARKS.md); a list needs no object keys, version ids or seal."""

    record_id: str
    version: int
    state: str
    transaction_date: str | None
    amount: int | None
    counterparty: str | None
    doc_type: str | None
    ledger_ref: str | None
    profiles: str
    retain_until: str
    content_sha256: str | None
    original_name: str | None
    invoice_number: str | None
    registration_number: str | None


def _hit_columns() -> tuple[sa.ColumnElement[Any], ...]:
    """``SearchHitRow``'s columns, in its field order."""
    return tuple(records.c.state if name == "state" else versions.c[name]
                 for name in SearchHitRow.__dataclass_fields__)


#: What a search statement selects.
_Columns = tuple[Any, ...]
#: ``versions`` whole, then the record's state (``SearchRow``).
_WHOLE: _Columns = (versions, records.c.state)
#: The hit list's columns (``SearchHitRow``).
_HITS: _Columns = _hit_columns()


def _like_substring(text: str) -> str:
    """``%text%`` for ``LIKE … ESCAPE '\\'``: a name holding ``%`` or ``_`` matches itself."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


#: Versions a fragment must match (counted up to this bound, from an index) for a search
#: with a limit to walk the versions in date order and stop at the limit, rather than fetch
#: every matching version through the fragment's index and sort them. Walking costs about
#: limit x versions / matches index entries, fetching costs matches: measured on a million
#: versions, the two meet near here (BENCHMARKS.md, "Fragments with a limit").
DATE_WALK_FROM = 3000
#: The date walk: ``ix_versions_order`` gives the search's order itself, and holds the name.
ORDER_INDEX = "ix_versions_order"
#: The names' plan: each matching name's versions by date, answered from the index alone.
NAMES_INDEX = "ix_versions_cp_search"


class _IndexedAlias(Alias):
    """``versions AS s INDEXED BY ix`` on SQLite (whose planner, with no statistics, would
    otherwise fetch every matching version to sort them, or walk the dates for a rare
    name); the plain alias elsewhere (PostgreSQL plans from its statistics)."""

    __visit_name__ = "edoc_indexed_alias"
    inherit_cache = True
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy's cache key: the index named)
        *Alias._traverse_internals, ("index", InternalTraversal.dp_string)]
    index: str | None = None

    @classmethod
    def of(cls, table: sa.Table, name: str, index: str | None) -> _IndexedAlias:
        alias = cls._construct(table, name=name)
        alias.index = index
        return alias


@compiles(_IndexedAlias)
def _plain_alias(element: _IndexedAlias, compiler: Any, **kw: Any) -> str:
    return str(compiler.visit_alias(element, **kw))


@compiles(_IndexedAlias, "sqlite")
def _sqlite_alias(element: _IndexedAlias, compiler: Any, **kw: Any) -> str:
    text = str(compiler.visit_alias(element, **kw))
    return f"{text} INDEXED BY {element.index}" if element.index and kw.get("asfrom") else text


def _order(s: sa.FromClause) -> tuple[sa.ColumnElement[Any], ...]:
    return (s.c.transaction_date, s.c.record_id, s.c.version)


class SearchReads(TextReads):
    def search(self, q: SearchQuery) -> Iterator[SearchRow]:
        """The versions matching ``q``, whole (``versions`` then ``state``: VersionRow.of)."""
        for row in self._search_rows(q, _WHOLE):
            yield SearchRow(*row)

    def search_hits(self, q: SearchQuery) -> Iterator[SearchHitRow]:
        """The same search as ``search``, as a hit list shows it (``SearchHitRow``)."""
        for row in self._search_rows(q, _HITS):
            yield SearchHitRow(*row)

    def _search_rows(self, q: SearchQuery, columns: _Columns) -> Iterator[Any]:
        if q.limit and (q.counterparty or q.text):
            rows: list[Any] = []
            with self.read() as c:  # one snapshot for every try
                for stmt, final in self._limited_fragment_search(q, columns) or []:
                    rows = list(c.execute(stmt))
                    if final or len(rows) >= q.limit:
                        break
            yield from rows
            return
        with self.read() as c:
            yield from c.execute(self._search_statement(q, columns))

    def count_hits(self, q: SearchQuery) -> int:
        """How many versions ``search(q)`` yields without its limit, counted from the
        indexes (no row is fetched): what a screen shows as "N hits"."""
        if q.text:
            self.ensure_upgraded()
        s: sa.FromClause = versions.alias("s")
        rr = records.alias("rr")
        names_plan = bool(q.counterparty) and self._plan_indexes_ready()
        if names_plan:
            s = _IndexedAlias.of(versions, "s", NAMES_INDEX)
        stmt = (sa.select(sa.func.count()).select_from(
            s.join(rr, rr.c.record_id == s.c.record_id))
            .where(*self._conditions(q, s, rr)))
        with self.read() as c:
            return int(c.execute(stmt).scalar() or 0)

    def _plan_indexes_ready(self) -> bool:
        """Whether the plans' indexes exist and the names table is kept (a catalog made
        before them and opened read-only has neither until its first write)."""
        if not getattr(self, "_plan_ready", False):
            with self.read() as c:
                present = schema_names(c)
            self._plan_ready = ({ORDER_INDEX, NAMES_INDEX} <= present
                                and self._counterparty_names_ready())
        return self._plan_ready

    def _fragment_condition(self, q: SearchQuery, s: sa.FromClause) -> sa.ColumnElement[bool]:
        """The counterparty fragment's condition on ``s`` (else the text's)."""
        if q.counterparty:
            pattern = _like_substring(normalise_counterparty(q.counterparty))
            if self._counterparty_names_ready():
                return s.c.counterparty_norm.in_(sa.select(counterparties.c.name).where(
                    counterparties.c.name.like(pattern, escape="\\")))
            # an older catalog, read-only: a scan, as before the names table
            return s.c.counterparty_norm.like(pattern, escape="\\")
        return s.c.record_id.in_(text_filter(q.text or ""))

    def _conditions(self, q: SearchQuery, s: sa.FromClause, rr: sa.FromClause,
                    fragment: bool = True, walk: bool = False
                    ) -> list[sa.ColumnElement[bool]]:
        """The whole search on the versions ``s`` and their records ``rr`` (without the
        fragments and ranges if not ``fragment``: a caller applied them)."""
        out: list[sa.ColumnElement[bool]] = []
        if not q.all_versions:
            out.append(s.c.version == rr.c.latest_version)
        out.append(rr.c.state != "disposed" if q.include_deleted else rr.c.state == "active")
        if q.all_versions and not q.include_deleted:
            out.append(s.c.kind != "tombstone")
        if fragment:
            out.extend(self._key_conditions(q, s))
            if q.counterparty:
                out.append(self._fragment_condition(q, s))
        for column in ("doc_type", "ledger_ref", "invoice_number", "registration_number"):
            value = getattr(q, column)
            if value:
                out.append(s.c[column] == value)
        if q.profile:
            out.append(s.c.profiles.like(f'%"{q.profile}"%'))
        if q.text and (fragment or q.counterparty):  # else the fragment applied is the text
            # a walk tests its candidates one by one: each looks its posting up
            out.append(text_test(q.text, s.c.record_id) if walk
                       else s.c.record_id.in_(text_filter(q.text)))
        return out

    @staticmethod
    def _key_conditions(q: SearchQuery, s: sa.FromClause) -> list[sa.ColumnElement[bool]]:
        out: list[sa.ColumnElement[bool]] = []
        if q.date_from:
            out.append(s.c.transaction_date >= q.date_from.isoformat())
        if q.date_to:
            out.append(s.c.transaction_date <= q.date_to.isoformat())
        if q.min_amount is not None:
            out.append(s.c.amount >= q.min_amount)
        if q.max_amount is not None:
            out.append(s.c.amount <= q.max_amount)
        return out

    def _matches_up_to(self, q: SearchQuery, bound: int) -> int:
        """How many versions the fragment matches within the date and amount ranges,
        counted up to ``bound`` from the fragment's index (states not looked at)."""
        if q.counterparty:
            s = _IndexedAlias.of(versions, "s", NAMES_INDEX)
            pattern = _like_substring(normalise_counterparty(q.counterparty))
            some = sa.select(sa.literal(1)).select_from(s).where(
                s.c.counterparty_norm.in_(sa.select(counterparties.c.name).where(
                    counterparties.c.name.like(pattern, escape="\\"))),
                *self._key_conditions(q, s))
        else:
            some = sa.select(sa.literal(1)).select_from(
                text_filter(q.text or "").subquery())
        stmt = sa.select(sa.func.count()).select_from(some.limit(bound).subquery())
        with self.read() as c:
            return int(c.execute(stmt).scalar() or 0)

    def _limited_fragment_search(self, q: SearchQuery, columns: _Columns
                                 ) -> list[tuple[sa.Select[Any], bool]] | None:
        """A fragment search with a limit, as statements to try in turn, each with whether
        its answer is final even when short of the limit. None: the fragment matches
        nothing. Each statement finds the keys of the first ``limit`` hits by the plan that
        reads fewer index entries, then reads only those versions' rows."""
        if q.text:
            self.ensure_upgraded()
        if not self._plan_indexes_ready():
            return [(self._search_statement(q, columns), True)]
        matches = self._matches_up_to(q, max(DATE_WALK_FROM, 1))
        if matches == 0:
            return None
        rr = records.alias("rr")
        if matches >= DATE_WALK_FROM:
            # Many matches: the first come early in date order; walk, stop at the limit.
            s = _IndexedAlias.of(versions, "s", ORDER_INDEX)
            keys = (sa.select(s.c.record_id, s.c.version)
                    .select_from(s.join(rr, rr.c.record_id == s.c.record_id))
                    .where(*self._conditions(q, s, rr, walk=True))
                    .order_by(*_order(s)).limit(q.limit))
            return [(self._rows_of(keys, columns), True)]
        # Few: every match's key from the fragment's index, sorted; the records (a lookup
        # each, the dear part) of the first few only, which are hits unless deleted or
        # superseded; all of them if those hold fewer than ``limit`` hits.
        assert q.limit
        first = 2 * q.limit + 20
        tries = []
        # (a text's count is of records, not of versions: never taken as exhaustive)
        exhaustive = matches <= first and bool(q.counterparty)
        for bound in ((None, False),) if exhaustive else ((first, True), (None, False)):
            s = _IndexedAlias.of(versions, "s", NAMES_INDEX if q.counterparty else None)
            fragment = [self._fragment_condition(q, s), *self._key_conditions(q, s)]
            cand = sa.select(s.c.record_id, s.c.version, s.c.transaction_date).where(*fragment)
            c = cand.order_by(*_order(s)).limit(bound[0]).subquery("c")
            v2 = versions.alias("v2")
            keys = (sa.select(c.c.record_id, c.c.version)
                    .select_from(c.join(v2, sa.and_(v2.c.record_id == c.c.record_id,
                                                    v2.c.version == c.c.version))
                                 .join(rr, rr.c.record_id == c.c.record_id))
                    .where(*self._conditions(q, v2, rr, fragment=False))
                    .order_by(c.c.transaction_date, c.c.record_id, c.c.version)
                    .limit(q.limit))
            tries.append((self._rows_of(keys, columns), not bound[1]))
        return tries

    @staticmethod
    def _rows_of(keys: sa.Select[Any], columns: _Columns) -> sa.Select[Any]:
        v, r = versions, records
        return (sa.select(*columns).select_from(v).join(r, r.c.record_id == v.c.record_id)
                .where(sa.tuple_(v.c.record_id, v.c.version).in_(keys))
                .order_by(*_order(v)))

    def _row_keys(self, t: sa.FromClause, name: str) -> list[sa.ColumnElement[Any]]:
        """What a key subquery of ``_search_statement`` names a version row of ``t`` (called
        ``name`` in the statement) by. On SQLite its rowid: the hit's row is then one descent
        of the table's own b-tree, instead of the primary key index's and then the table's
        (p95 of a month's fragment search at a million versions, ~2,000 hits: SQLite time
        22 -> 17 ms with ``ix_records_live``, BENCHMARKS.md). Elsewhere the primary key."""
        if self.is_sqlite:
            return [sa.literal_column(f"{name}.rowid")]
        return [t.c.record_id, t.c.version]

    def _search_statement(self, q: SearchQuery, columns: _Columns = _WHOLE
                          ) -> sa.Select[Any]:
        v, r = versions, records
        stmt = sa.select(*columns).select_from(v).join(r, r.c.record_id == v.c.record_id)
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
        keys = sa.select(*self._row_keys(s, "s")).select_from(s)
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
            mine = self._row_keys(v, "versions")
            stmt = stmt.where((mine[0] if len(mine) == 1 else sa.tuple_(*mine)).in_(keys))
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
        return stmt

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
