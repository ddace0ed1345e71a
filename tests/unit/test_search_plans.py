"""The search's plans give the search's meaning: same rows, same order, whatever plan runs.

``Catalog.search`` (and ``search_hits``, the same search with a hit list's columns) answers
a counterparty or text fragment by one of two plans (the matching names' or texts' own
index, or a walk of the versions in date order that stops at the
limit: ``edoc.catalog.search``), chosen by how many versions the fragment matches. Each plan
is forced in turn here, on a generated catalog with several versions per record, deleted
and disposed records, tombstones, missing dates, amounts and names, and many versions on one
day (so the order's later keys decide), and every result is compared, in order, with a
brute-force filter over the rows inserted.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

import edoc.catalog.search as search_module
from edoc.catalog import (
    Catalog,
    SearchHitRow,
    SearchQuery,
    normalise_counterparty,
    records,
    versions,
)
from edoc.catalog.fulltext import grams
from edoc.catalog.schema import normalise_text, text_grams, texts

NAMES = ["株式会社東京ガス", "東邦商事", "ガス山田", "山田商店", "有限会社 東 工務店", "ＡＣＭＥ",
         "acme 東", "100%東", "A_B", "北海道電力", "ﾔﾏﾀﾞ商事", None]
WORDS = ["ガス料金", "水道", "東京", "領収書", "合計", "電気", "山田", "コピー用紙"]
FIRST = date(2024, 1, 1)


def _catalog(directory: Path, n: int = 400, seed: int = 3
             ) -> tuple[Catalog, list[dict[str, Any]], dict[str, str]]:
    """``n`` records of 1-3 versions; returns the catalog, every version row joined with
    its record's state and latest version, and each record's text."""
    rnd = random.Random(seed)
    now = datetime.now(UTC).isoformat()
    recs, vers, text_of = [], [], {}
    for i in range(n):
        rid = f"P{rnd.randrange(10**6):06d}{i:04d}"  # ids not in insertion order
        count = rnd.choice((1, 1, 1, 2, 3))
        state = rnd.choice(("active",) * 6 + ("deleted", "disposed"))
        recs.append({"record_id": rid, "created_at": now, "latest_version": count,
                     "state": state})
        for ver in range(1, count + 1):
            tomb = state == "deleted" and ver == count
            name = rnd.choice(NAMES)
            day = None if rnd.random() < 0.05 else FIRST + timedelta(days=rnd.randrange(40))
            amount = None if rnd.random() < 0.05 else rnd.choice((500, 1000, 2500, 8000))
            vers.append({
                "record_id": rid, "version": ver, "kind": "tombstone" if tomb else "original",
                "manifest_key": f"records/{rid}/v{ver}/manifest.json",
                "manifest_sha256": "0" * 64, "profiles": '["general"]',
                "transaction_date": day.isoformat() if day else None, "amount": amount,
                "counterparty": name,
                "counterparty_norm": normalise_counterparty(name) if name else None,
                "retain_until": "2034-03-31", "retain_until_at": "2034-03-31T15:00:00+00:00",
                "ingested_at": now, "ledger_index": len(vers)})
        if rnd.random() < 0.7:
            text_of[rid] = "".join(rnd.sample(WORDS, 3))
    cat = Catalog("sqlite:///catalog.sqlite", directory)
    cat.create()
    with cat.write() as c:
        c.execute(records.insert(), recs)
        c.execute(versions.insert(), vers)
        for rid, body in text_of.items():
            norm = normalise_text(body)
            c.execute(texts.insert().values(
                record_id=rid, version=1, source="pdf-text", pages=1, confidence=None,
                text=body, text_norm=norm, derived_at=now))
            c.execute(text_grams.insert(), [{"gram": g, "record_id": rid}
                                            for g in grams(norm)])
    state = {r["record_id"]: (r["state"], r["latest_version"]) for r in recs}
    rows = [dict(v, state=state[v["record_id"]][0], latest=state[v["record_id"]][1])
            for v in vers]
    return cat, rows, text_of


def _expected(rows: list[dict[str, Any]], text_of: dict[str, str], q: SearchQuery
              ) -> list[tuple[str, int]]:
    """``Catalog.search``'s meaning, in Python (SQLite's order: a missing date first)."""
    needle = normalise_counterparty(q.counterparty or "")
    words = normalise_text(q.text or "")
    out = []
    for r in rows:
        if not q.all_versions and r["version"] != r["latest"]:
            continue
        if r["state"] == "disposed" or (r["state"] == "deleted" and not q.include_deleted):
            continue
        if q.all_versions and not q.include_deleted and r["kind"] == "tombstone":
            continue
        if q.counterparty and not (r["counterparty_norm"] and needle in r["counterparty_norm"]):
            continue
        if q.text and words not in normalise_text(text_of.get(r["record_id"], "\0")):
            continue
        day, amount = r["transaction_date"], r["amount"]
        if q.date_from and (day is None or day < q.date_from.isoformat()):
            continue
        if q.date_to and (day is None or day > q.date_to.isoformat()):
            continue
        if q.min_amount is not None and (amount is None or amount < q.min_amount):
            continue
        if q.max_amount is not None and (amount is None or amount > q.max_amount):
            continue
        out.append(r)
    out.sort(key=lambda r: (r["transaction_date"] is not None, r["transaction_date"] or "",
                            r["record_id"], r["version"]))
    found = [(r["record_id"], r["version"]) for r in out]
    return found[:q.limit] if q.limit else found


def _queries() -> Iterator[SearchQuery]:
    fragments = ["東", "ガス", "山田", "商", "ﾔﾏﾀﾞ", "ＡＣＭＥ", "%", "_", "A_B", "電力", "不在",
                 "x", "東京ガス"]
    ranges: list[dict[str, Any]] = [
        {}, {"date_from": FIRST + timedelta(days=5), "date_to": FIRST + timedelta(days=12)},
        {"date_from": FIRST + timedelta(days=30)}, {"date_to": FIRST + timedelta(days=3)},
        {"min_amount": 1000, "max_amount": 2500}, {"min_amount": 8000},
        {"date_from": FIRST + timedelta(days=1), "date_to": FIRST + timedelta(days=20),
         "max_amount": 1000}]
    for i, fragment in enumerate(fragments):
        for j, extra in enumerate(ranges):
            for limit in (None, 1, 7, 50):
                flags = (i + j + (limit or 0)) % 4
                yield SearchQuery(counterparty=fragment, limit=limit,
                                  include_deleted=flags in (1, 3), all_versions=flags >= 2,
                                  **extra)


def _text_queries() -> Iterator[SearchQuery]:
    for fragment in ["東", "ガス", "水道", "料金", "京領", "不在", "ス"]:
        for limit in (None, 3, 40):
            yield SearchQuery(text=fragment, limit=limit)
            yield SearchQuery(text=fragment, limit=limit, counterparty="東")
            yield SearchQuery(text=fragment, limit=limit, date_from=FIRST + timedelta(days=9))


def _found(cat: Catalog, q: SearchQuery) -> list[tuple[str, int]]:
    """The keys ``search`` finds; ``search_hits`` (the hit list's columns) must find the
    same versions in the same order, each field as the whole row holds it."""
    whole = list(cat.search(q))
    hits = list(cat.search_hits(q))
    names = [f.name for f in dataclasses.fields(SearchHitRow)]
    assert [dataclasses.astuple(h) for h in hits] == \
        [tuple(getattr(r, n) for n in names) for r in whole], q
    return [(r.record_id, r.version) for r in whole]


@pytest.fixture
def generated(tmp_path: Path) -> tuple[Catalog, list[dict[str, Any]], dict[str, str]]:
    return _catalog(tmp_path)


@pytest.mark.parametrize("plan", ["as-chosen", "by-names", "by-date"])
def test_counterparty_plans_agree_with_the_definition(
        generated: tuple[Catalog, list[dict[str, Any]], dict[str, str]],
        monkeypatch: pytest.MonkeyPatch, plan: str) -> None:
    cat, rows, text_of = generated
    if plan != "as-chosen":  # the threshold of the choice, forced to either side
        monkeypatch.setattr(search_module, "DATE_WALK_FROM", 0 if plan == "by-date" else 10**9)
    some = 0
    for q in _queries():
        want = _expected(rows, text_of, q)
        assert _found(cat, q) == want, q
        some += bool(want)
    assert some > 200  # most queries find something: the comparison is not of empty lists


@pytest.mark.parametrize("plan", ["as-chosen", "by-texts", "by-date"])
def test_text_plans_agree_with_the_definition(
        generated: tuple[Catalog, list[dict[str, Any]], dict[str, str]],
        monkeypatch: pytest.MonkeyPatch, plan: str) -> None:
    cat, rows, text_of = generated
    if plan != "as-chosen":
        monkeypatch.setattr(search_module, "DATE_WALK_FROM", 0 if plan == "by-date" else 10**9)
    some = 0
    for q in _text_queries():
        want = _expected(rows, text_of, q)
        assert _found(cat, q) == want, q
        some += bool(want)
    assert some > 30


def test_count_is_the_number_of_hits(
        generated: tuple[Catalog, list[dict[str, Any]], dict[str, str]]) -> None:
    cat, rows, text_of = generated
    for q in list(_queries())[::5] + list(_text_queries()):
        unlimited = SearchQuery(**{**q.__dict__, "limit": None})
        assert cat.count_hits(q) == len(_expected(rows, text_of, unlimited)), q


def _statements(cat: Catalog, q: SearchQuery) -> list[str]:
    seen: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(cat.engine, "before_cursor_execute", capture)
    try:
        list(cat.search(q))
    finally:
        event.remove(cat.engine, "before_cursor_execute", capture)
    return seen


def test_a_many_name_fragment_with_a_limit_walks_the_dates(
        generated: tuple[Catalog, list[dict[str, Any]], dict[str, str]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan is the one chosen: the date walk names its index (SQLite), the names' plan
    its own; a fragment no name holds runs no search of the versions at all."""
    cat, _, _ = generated
    monkeypatch.setattr(search_module, "DATE_WALK_FROM", 0)
    walked = _statements(cat, SearchQuery(counterparty="東", limit=10))
    assert any("INDEXED BY ix_versions_order" in s for s in walked), walked
    monkeypatch.setattr(search_module, "DATE_WALK_FROM", 10**9)
    by_names = _statements(cat, SearchQuery(counterparty="東", limit=10))
    assert any("INDEXED BY ix_versions_cp_search" in s for s in by_names), by_names
    assert not any("INDEXED BY ix_versions_order" in s for s in by_names), by_names
    assert not any("FROM versions" in s and "JOIN records" in s
                   for s in _statements(cat, SearchQuery(counterparty="不在", limit=10)))


def test_an_older_catalog_opened_read_only_still_answers(tmp_path: Path) -> None:
    """A catalog without the plans' indexes (made before them, not yet written to) is
    searched without naming them."""
    cat, rows, text_of = _catalog(tmp_path, n=120)
    with cat.write() as c:
        for name in ("ix_versions_order", "ix_versions_cp_search", "ix_records_live"):
            c.exec_driver_sql(f"DROP INDEX {name}")
    cat.dispose()
    old = Catalog("sqlite:///catalog.sqlite", tmp_path)
    for q in [SearchQuery(counterparty="東", limit=5), SearchQuery(counterparty="ガス"),
              SearchQuery(text="ガス", limit=5)]:
        assert _found(old, q) == _expected(rows, text_of, q)
    with old.write():  # the first write creates them
        pass
    with old.read() as c:
        have = {n for (n,) in c.execute(sa.text("SELECT name FROM sqlite_master"))}
    assert {"ix_versions_order", "ix_versions_cp_search", "ix_records_live"} <= have
