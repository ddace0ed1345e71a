"""Moving a catalog into PostgreSQL: ``edoc catalog migrate --to`` (an existing SQLite
archive, the 0.1.0 legacy one among them) and ``edoc catalog rebuild`` from the store alone
into PostgreSQL; each verified with ``verify --all`` and ``ledger verify`` afterwards."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.helpers import Edoc, catalog_url, drop_catalog, jst_today_minus, legacy_archive
from tests.postgres import PostgresServer


def _ingest(e: Edoc, tmp_path: Path, n: int, name: str) -> str:
    f = tmp_path / f"{name}-{n}.txt"
    f.write_text(f"{name} document {n}", encoding="utf-8")
    code, res = e.ingest_one(f, "--date", jst_today_minus(n + 1), "--counterparty",
                             f"株式会社{name}", "--amount", str(100 * (n + 1)))
    assert code == 0, res
    return str(res["record_id"])


def _everything_verifies(e: Edoc) -> int:
    code, doc = e.json("verify", "--all")
    assert code == 0, doc
    code, led = e.json("ledger", "verify")
    assert code == 0, led
    return len(doc["reports"])


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_sqlite_archive_moves_to_postgresql(postgres: PostgresServer, tmp_path: Path
                                              ) -> None:
    e = Edoc(tmp_path / "archive")
    assert e("init", str(e.archive), "--catalog", "sqlite:///catalog.sqlite").exit_code == 0
    ids = [_ingest(e, tmp_path, n, "山田商事") for n in range(3)]
    assert e("hold", ids[0], "--reason", "tax audit").exit_code == 0
    assert e("delete", ids[1], "--reason", "entered twice").exit_code == 0
    assert e.json("search", "--counterparty", "山田")[0] == 0  # an access-log row too
    before = _everything_verifies(e)
    old_file = _sha(e.archive / "catalog.sqlite")
    url = postgres.url(postgres.create_database())
    code, doc = e.json("catalog", "migrate", "--to", url)
    assert code == 0 and doc["switched"] and doc["ledger_ok"], doc
    assert doc["tables"]["versions"] == 4 and doc["tables"]["holds"] == 1
    assert doc["versions_verified"] == before and doc["versions_failed"] == 0
    assert catalog_url(e.archive) == url
    assert _sha(e.archive / "catalog.sqlite") == old_file  # the way back, untouched
    assert _everything_verifies(e) == before
    code, doc = e.json("search", "--counterparty", "山田")
    assert {r["record_id"] for r in doc["records"]} == {ids[0], ids[2]}  # ids[1] deleted
    code, doc = e.json("holds")
    assert [h["record_id"] for h in doc["holds"]] == [ids[0]]
    # it goes on in PostgreSQL: a new record, a new hold id past the copied ones
    new = _ingest(e, tmp_path, 9, "鈴木工業")
    assert e("hold", new, "--reason", "second").exit_code == 0
    code, doc = e.json("holds")
    assert sorted(h["id"] for h in doc["holds"]) == [1, 2]
    assert _everything_verifies(e) == before + 1
    with e.db() as db:
        assert db.execute("SELECT count(*) FROM ledger").fetchone()[0] >= 5


def test_search_finds_held_records_after_the_move_too(postgres: PostgresServer,
                                                      tmp_path: Path) -> None:
    e = Edoc(tmp_path / "archive")
    assert e("init", str(e.archive), "--catalog", "sqlite:///catalog.sqlite").exit_code == 0
    rid = _ingest(e, tmp_path, 0, "山田商事")
    assert e("hold", rid, "--reason", "audit").exit_code == 0
    code, doc = e.json("catalog", "migrate", "--to", postgres.url(postgres.create_database()))
    assert code == 0, doc
    code, doc = e.json("search", "--counterparty", "ヤマダ")  # no match: NFKC, not reading
    assert doc["records"] == []
    code, doc = e.json("search", "--counterparty", "山田")
    assert [r["record_id"] for r in doc["records"]] == [rid]


def test_a_migration_never_shares_a_catalog(postgres: PostgresServer, tmp_path: Path) -> None:
    first = Edoc(tmp_path / "first")
    taken = postgres.url(postgres.create_database())
    assert first("init", str(first.archive), "--catalog", taken).exit_code == 0
    e = Edoc(tmp_path / "archive")
    assert e("init", str(e.archive), "--catalog", "sqlite:///catalog.sqlite").exit_code == 0
    _ingest(e, tmp_path, 0, "山田商事")
    code, doc = e.json("catalog", "migrate", "--to", taken)
    assert code != 0 and doc["error"]["code"] == "CATALOG_EXISTS", doc
    assert catalog_url(e.archive) == "sqlite:///catalog.sqlite"
    _everything_verifies(e)


def test_the_legacy_archive_moves_to_postgresql(postgres: PostgresServer,
                                                tmp_path: Path) -> None:
    with legacy_archive(tmp_path) as e:
        before = _everything_verifies(e)  # the 0.1.0 catalog, migrated in place first
        code, doc = e.json("catalog", "migrate", "--to",
                           postgres.url(postgres.create_database()))
        assert code == 0 and doc["switched"], doc
        assert _everything_verifies(e) == before == 5


@pytest.mark.parametrize("lost", [True, False], ids=["catalog-lost", "catalog-replaced"])
def test_rebuild_into_postgresql_from_the_store_alone(
        postgres: PostgresServer, tmp_path: Path, lost: bool) -> None:
    e = Edoc(tmp_path / "archive")
    url = postgres.url(postgres.create_database())
    assert e("init", str(e.archive), "--catalog", url).exit_code == 0
    ids = [_ingest(e, tmp_path, n, "東京商事") for n in range(3)]
    assert e("hold", ids[0], "--reason", "audit").exit_code == 0
    assert e("correct", ids[1], "--amount", "999", "--reason", "typo").exit_code == 0
    before = _everything_verifies(e)
    if lost:
        drop_catalog(e.archive)  # every table of the database gone
        code, doc = e.json("search")
        assert code != 0 and doc["error"]["code"] == "CATALOG_UNAVAILABLE", doc
    code, doc = e.json("catalog", "rebuild")
    assert code == 0, doc
    assert doc["records"] == 3 and doc["versions"] == 4 and doc["holds"] == 1
    if lost:
        assert doc["replaced"] is None
    else:
        assert str(doc["replaced"]).startswith("schema edoc_replaced_")
    assert _everything_verifies(e) == before
    code, doc = e.json("search", "--counterparty", "東京")
    assert {r["record_id"] for r in doc["records"]} == set(ids)
    assert _ingest(e, tmp_path, 7, "後続") not in ids  # and it takes new records
    code, doc = e.json("holds")
    assert [h["id"] for h in doc["holds"]] == [1]
