"""Counterparty search (取引先, 電帳法 検索要件) through the table of distinct names.

A clerk types part of a name, in whatever width the keyboard gives: the search normalises it
(NFKC + case folding) and matches it as a substring of the normalised names. These tests
check the results against a plain Python filter over the rows inserted, on a catalog made by
this edoc and on one made before the ``counterparties`` table existed.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from edoc.catalog import (
    Catalog,
    SearchQuery,
    counterparties,
    normalise_counterparty,
    records,
    versions,
)
from tests.helpers import Edoc, jst_today_minus
from tests.samples import scan_image

#: Names as clerks and suppliers write them: half-width kana, full-width Latin, spaces,
#: LIKE's wildcard characters, and one record with no counterparty at all.
NAMES = [
    "株式会社ﾔﾏﾀﾞ商事",      # half-width katakana
    "ヤマダ商事株式会社",     # full-width katakana
    "山田商店",
    "有限会社 山田 工務店",
    "ＡＣＭＥ Ｔｒａｄｉｎｇ",  # full-width Latin
    "Acme Holdings",
    "100%商事",
    "A_B 物産",
    "AxB 物産",
    None,
]


def _rows(n: int) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    now = datetime.now(UTC).isoformat()
    first = date(2024, 4, 1)
    for i in range(n):
        rid = f"T{i:025d}"
        name = NAMES[i % len(NAMES)]
        day = first + timedelta(days=i % 90)
        yield ({"record_id": rid, "created_at": now, "latest_version": 1, "state": "active"},
               {"record_id": rid, "version": 1, "kind": "original",
                "manifest_key": f"records/{rid}/v1/manifest.json", "manifest_sha256": "0" * 64,
                "profiles": '["general"]', "transaction_date": day.isoformat(),
                "amount": 1000 * (i % 7 + 1), "counterparty": name,
                "counterparty_norm": normalise_counterparty(name) if name else None,
                "retain_until": "2034-03-31", "retain_until_at": "2034-03-31T15:00:00+00:00",
                "ingested_at": now, "ledger_index": i})


def _new_catalog(directory: Path, n: int = 60) -> tuple[Catalog, list[dict[str, Any]]]:
    cat = Catalog("sqlite:///catalog.sqlite", directory)
    cat.create()
    pairs = list(_rows(n))
    with cat.write() as c:  # one bulk insert, as ``catalog rebuild`` writes them
        c.execute(records.insert(), [r for r, _ in pairs])
        c.execute(versions.insert(), [v for _, v in pairs])
    return cat, [v for _, v in pairs]


def _expected(rows: list[dict[str, Any]], q: SearchQuery) -> set[tuple[str, int]]:
    """The search's meaning, in Python: every filter given, the name as a substring."""
    needle = normalise_counterparty(q.counterparty or "")
    out = set()
    for r in rows:
        if q.counterparty and not (r["counterparty_norm"] and needle in r["counterparty_norm"]):
            continue
        if q.date_from and r["transaction_date"] < q.date_from.isoformat():
            continue
        if q.date_to and r["transaction_date"] > q.date_to.isoformat():
            continue
        if q.min_amount is not None and r["amount"] < q.min_amount:
            continue
        if q.max_amount is not None and r["amount"] > q.max_amount:
            continue
        out.add((r["record_id"], r["version"]))
    return out


def _found(cat: Catalog, q: SearchQuery) -> set[tuple[str, int]]:
    return {(r.record_id, r.version) for r in cat.search(q)}


def _names_in_table(cat: Catalog) -> set[str]:
    with cat.read() as c:
        return {n for (n,) in c.execute(sa.select(counterparties.c.name))}


def _make_old(db: Path) -> None:
    """What a catalog made before the table (and the covering index) looked like."""
    with sqlite3.connect(db) as c:
        c.executescript("DROP TRIGGER versions_counterparty_ins; "
                        "DROP TRIGGER versions_counterparty_upd; DROP TABLE counterparties; "
                        "DROP INDEX ix_versions_search;")


@pytest.mark.parametrize("typed", ["ヤマダ", "ﾔﾏﾀﾞ", "山田", "ａｃｍｅ", "ACME", "acme t",
                                   "%", "_", "A_B", "商事", "nobody"])
def test_substring_search_across_widths(tmp_path: Path, typed: str) -> None:
    cat, rows = _new_catalog(tmp_path)
    q = SearchQuery(counterparty=typed)
    want = _expected(rows, q)
    assert _found(cat, q) == want
    if typed in ("ヤマダ", "ﾔﾏﾀﾞ"):  # both widths of both spellings, and nothing else
        names = {r["counterparty"] for r in rows if (r["record_id"], 1) in want}
        assert names == {"株式会社ﾔﾏﾀﾞ商事", "ヤマダ商事株式会社"}
    if typed == "%":  # a wildcard typed is a character searched for
        assert {r["counterparty"] for r in rows if (r["record_id"], 1) in want} == {"100%商事"}


def test_names_table_holds_each_distinct_name_once(tmp_path: Path) -> None:
    cat, rows = _new_catalog(tmp_path)
    assert _names_in_table(cat) == {r["counterparty_norm"] for r in rows
                                    if r["counterparty_norm"]}
    with cat.write() as c:  # a later version of a record, and a changed column
        c.execute(versions.insert().values(
            dict(rows[0], version=2, counterparty="新しい取引先",
                 counterparty_norm=normalise_counterparty("新しい取引先"))))
        c.execute(versions.update().where(versions.c.record_id == rows[1]["record_id"])
                  .values(counterparty_norm="改名後"))
    assert {"新しい取引先", "改名後"} <= _names_in_table(cat)


def test_name_only_search_goes_through_the_table(tmp_path: Path) -> None:
    cat, rows = _new_catalog(tmp_path)
    assert _found(cat, SearchQuery(counterparty="山田商店"))
    with cat.write() as c:  # a name missing from the table is not found by name alone...
        c.execute(counterparties.delete().where(counterparties.c.name == "山田商店"))
    assert not _found(cat, SearchQuery(counterparty="山田商店"))
    # ...while a date range keeps the covering-index path over the versions themselves
    q = SearchQuery(counterparty="山田商店", date_from=date(2024, 4, 1),
                    date_to=date(2024, 12, 31))
    assert _found(cat, q) == _expected(rows, q) != set()


@pytest.mark.parametrize("q", [
    SearchQuery(counterparty="山田", date_from=date(2024, 4, 10), date_to=date(2024, 5, 10)),
    SearchQuery(counterparty="山田", date_from=date(2024, 5, 1)),
    SearchQuery(counterparty="acme", min_amount=2000, max_amount=5000),
    SearchQuery(counterparty="商事", min_amount=3000),
    SearchQuery(counterparty="物産", date_from=date(2024, 4, 1), date_to=date(2024, 6, 30),
                min_amount=1000, max_amount=4000),
], ids=["date-range", "date-from", "amount-range", "amount-min", "all-three"])
def test_combined_filters_match_the_definition(tmp_path: Path, q: SearchQuery) -> None:
    cat, rows = _new_catalog(tmp_path)
    want = _expected(rows, q)
    assert want, "the query should have hits in this fixture"
    assert _found(cat, q) == want


def _plan(cat: Catalog, q: SearchQuery) -> str:
    """SQLite's plan for the statement ``Catalog.search`` runs for ``q``."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(cat.engine, "before_cursor_execute", capture)
    try:
        list(cat.search(q))
    finally:
        event.remove(cat.engine, "before_cursor_execute", capture)
    statement, parameters = seen[-1]
    with cat.read() as c:
        rows = c.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        return "\n".join(str(r[-1]) for r in rows)


def test_query_plans(tmp_path: Path) -> None:
    """Name alone: the names table, then ix_versions_cp; with a date range: the covering
    index (measured faster for that shape at a million rows). Never a scan of versions."""
    # Without ANALYZE statistics (edoc runs none) SQLite plans from the schema alone, so a
    # small catalog gets the plan a large one does.
    cat, _ = _new_catalog(tmp_path)
    name_only = _plan(cat, SearchQuery(counterparty="山田"))
    assert "ix_versions_cp" in name_only and "counterparties" in name_only
    combined = _plan(cat, SearchQuery(counterparty="山田", date_from=date(2024, 4, 1),
                                      date_to=date(2024, 4, 30), min_amount=1000,
                                      max_amount=3000))
    assert "COVERING INDEX ix_versions_search" in combined
    for plan in (name_only, combined):
        assert "SCAN versions" not in plan and "SCAN s" not in plan, plan


def test_catalog_made_before_the_table(tmp_path: Path) -> None:
    cat, rows = _new_catalog(tmp_path)
    cat.dispose()
    _make_old(tmp_path / "catalog.sqlite")
    old = Catalog("sqlite:///catalog.sqlite", tmp_path)
    q = SearchQuery(counterparty="ﾔﾏﾀﾞ")
    # opened for reading only: the table is missing, the search still answers (by a scan)
    assert _found(old, q) == _expected(rows, q) != set()
    with old.write():  # the first write brings the catalog up to date
        pass
    assert _names_in_table(old) == {r["counterparty_norm"] for r in rows
                                    if r["counterparty_norm"]}
    with sqlite3.connect(tmp_path / "catalog.sqlite") as c:
        indexes = {n for (n,) in c.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "ix_versions_search" in indexes
    for typed in ("ヤマダ", "ACME", "A_B"):
        q = SearchQuery(counterparty=typed)
        assert _found(old, q) == _expected(rows, q) != set()
    with old.write() as c:  # and new versions keep it complete from now on
        c.execute(records.insert().values(record_id="NEW", created_at="x", latest_version=1,
                                          state="active"))
        c.execute(versions.insert().values(dict(rows[0], record_id="NEW",
                                                counterparty="ｽｽﾞｷ", counterparty_norm="スズキ")))
    assert _found(old, SearchQuery(counterparty="スズキ")) == {("NEW", 1)}


def test_every_two_character_needle_agrees_with_the_definition(tmp_path: Path) -> None:
    cat, rows = _new_catalog(tmp_path)
    names = {r["counterparty_norm"] for r in rows if r["counterparty_norm"]}
    needles = {n[i:i + 2] for n in names for i in range(len(n) - 1)}
    for needle in itertools.islice(sorted(needles), 80):
        q = SearchQuery(counterparty=needle)
        assert _found(cat, q) == _expected(rows, q), needle


def test_cli_finds_other_width_on_an_old_archive(tmp_path: Path) -> None:
    edoc = Edoc(tmp_path / "archive")
    assert edoc("init", str(edoc.archive)).exit_code == 0
    scan = tmp_path / "r.png"
    scan_image(scan, dpi=200, mode="RGB", fmt="PNG")
    code, doc = edoc.json("ingest", str(scan), "--profile", "general", "--date",
                          jst_today_minus(1), "--counterparty", "株式会社ﾔﾏﾀﾞ商事")
    assert code == 0, doc
    rid = doc["results"][0]["record_id"]

    def search(typed: str) -> list[str]:
        code, found = edoc.json("search", "--counterparty", typed)
        assert code == 0, found
        return [r["record_id"] for r in found["records"]]

    assert search("ヤマダ") == [rid]
    _make_old(edoc.archive / "catalog.sqlite")
    assert search("ﾔﾏﾀﾞ") == [rid]  # answered by a scan, then...
    with edoc.db() as c:  # ...that command's access log entry brought the table back
        assert c.execute("SELECT name FROM counterparties").fetchall() == [("株式会社ヤマダ商事",)]
    assert search("ﾔﾏﾀﾞ商事") == [rid]
    assert search("佐藤") == []
