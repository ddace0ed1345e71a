"""The catalog statements of the ingest path, built once with bind parameters (issue 8).

What is pinned here: each prebuilt statement does what the statement built per call did
(duplicate lookups see active records and in-flight intents, a new version needs the
latest one and a free slot, cataloguing writes the record, version and ledger leaf and
drops the intent); a second record runs the very same statement objects as the first
(nothing rebuilt per record); the statements compile for PostgreSQL with the parameters
their callers bind; and a group commit of one job needs no savepoint yet is undone whole
when it raises.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from edoc.catalog import (
    ACTIVE_RECORD_BY_SHA,
    DELETE_INTENT,
    INSERT_INTENT,
    INSERT_LEDGER,
    INSERT_RECORD,
    INSERT_VERSION,
    INTENT_BY_SHA,
    INTENT_OWNER,
    LEDGER_TOP,
    MOVE_RECORD,
    RECORD_HEAD,
    Catalog,
    intents,
    ledger,
    records,
    version_row,
    versions,
)
from edoc.catalog.group_commit import GroupCommitter
from edoc.errors import DuplicateContent, EdocError
from edoc.evidence.ledger import event_entry, leaf_hex
from edoc.model import canonical, ids
from edoc.model.manifest import Manifest
from edoc.services.archive import Archive, init_archive
from edoc.services.commit import _catalogue, _Intent, _reserve

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
UNTIL = NOW + timedelta(days=7 * 366)


@pytest.fixture()
def archive(tmp_path: Path) -> Iterator[Archive]:
    a = init_archive(tmp_path / "archive", organisation="statements test")
    yield a
    a.catalog.dispose()


def _intent(n: int, *, record_id: str | None = None, version: int = 1, state: str = "active",
            sha256: str | None = None) -> _Intent:
    """A version as ``commit_version`` would announce it (manifest, ledger entry, row)."""
    rid = record_id or ids.new_record_id()
    sha = sha256 or hashlib.sha256(f"scan {n}".encode()).hexdigest()
    body: dict[str, Any] = {
        "record_id": rid, "version": version, "kind": "original",
        "ingested_at": NOW.isoformat(),
        "content": {"sha256": sha, "size": 1000 + n, "media_type": "image/jpeg",
                    "original_name": f"scan{n}.jpg"},
        "profiles": ["general"], "document_class": "general", "doc_type": "invoice",
        "metadata": {"transaction_date": "2026-04-01", "amount": 1000 + n,
                     "counterparty": f"株式会社テスト{n}", "ledger_ref": f"L-{n}"},
        "retention": {"retain_until": UNTIL.date().isoformat(),
                      "until_at": UNTIL.isoformat()},
    }
    manifest = canonical.dumps(body)
    manifest_sha = hashlib.sha256(manifest).hexdigest()
    row = version_row(Manifest.from_json(body), manifest_sha256=manifest_sha,
                      content_ref=(f"records/{rid}/v{version}/content", None), seal_key=None)
    entry = event_entry("ingest" if version == 1 else "correct", NOW, record_id=rid,
                        version=version, manifest_sha256=manifest_sha, content_sha256=sha)
    return _Intent(rid, version, "ingest" if version == 1 else "correct", state,
                   sha if version == 1 else None, True, manifest, False, entry, row)


def _store(archive: Archive, intent: _Intent) -> None:
    _reserve(archive, intent)
    assert _catalogue(archive, intent, f"cv-{intent.record_id}", f"mv-{intent.record_id}")


def _count(catalog: Catalog, table: sa.Table) -> int:
    with catalog.read() as c:
        return int(c.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _head(catalog: Catalog, record_id: str) -> tuple[int, str]:
    row = catalog.record_row(record_id)
    assert row is not None
    return int(row.latest_version), str(row.state)


def test_find_by_sha_sees_active_records_only(archive: Archive) -> None:
    first, other = _intent(1), _intent(2)
    _store(archive, first)
    _store(archive, other)
    sha = first.content_sha256
    assert sha is not None
    assert archive.catalog.find_by_sha(sha) == first.record_id
    assert archive.catalog.find_by_sha(hashlib.sha256(b"never stored").hexdigest()) is None
    # A deletion (a tombstone version moving the record to "deleted") frees the content.
    _store(archive, _intent(1, record_id=first.record_id, version=2, state="deleted"))
    assert _head(archive.catalog, first.record_id) == (2, "deleted")
    assert archive.catalog.find_by_sha(sha) is None
    # Moving one record moved no other.
    assert _head(archive.catalog, other.record_id) == (1, "active")
    assert archive.catalog.find_by_sha(str(other.content_sha256)) == other.record_id


def test_reserve_refuses_content_being_stored_then_stored(archive: Archive) -> None:
    first = _intent(7)
    _reserve(archive, first)
    with pytest.raises(DuplicateContent, match="being stored by another run") as racing:
        _reserve(archive, _intent(7))
    assert racing.value.record_id == first.record_id
    assert _count(archive.catalog, intents) == 1  # the refused intent left no row

    assert _catalogue(archive, first, "cv", "mv")
    with pytest.raises(DuplicateContent, match="has the same SHA-256") as stored:
        _reserve(archive, _intent(7))
    assert stored.value.record_id == first.record_id
    assert _count(archive.catalog, intents) == 0
    assert _count(archive.catalog, records) == 1


def test_a_new_version_needs_the_latest_version_and_a_free_slot(archive: Archive) -> None:
    v1 = _intent(3)
    rid = v1.record_id
    _store(archive, v1)
    with pytest.raises(EdocError, match="v3 is taken") as skipped:
        _reserve(archive, _intent(3, record_id=rid, version=3))
    assert skipped.value.code == "RECORD_CHANGED"
    v2 = _intent(4, record_id=rid, version=2)
    _reserve(archive, v2)
    with pytest.raises(EdocError, match="v2 is taken"):
        _reserve(archive, _intent(5, record_id=rid, version=2))  # another run's v2
    assert _head(archive.catalog, rid) == (1, "active")  # reserving changes no record
    assert _catalogue(archive, v2, None, "mv2")
    assert _head(archive.catalog, rid) == (2, "active")


def test_cataloguing_writes_record_version_and_consecutive_leaves(archive: Archive) -> None:
    stored = [_intent(n) for n in range(3)]
    for intent in stored:
        _store(archive, intent)
    with archive.catalog.read() as c:
        leaves = list(c.execute(sa.select(ledger).order_by(ledger.c.idx)))
        rows = {r.record_id: r for r in c.execute(sa.select(versions))}
    assert [leaf.idx for leaf in leaves] == [0, 1, 2]
    for leaf, intent in zip(leaves, stored, strict=True):
        assert (leaf.record_id, leaf.version, leaf.event) == (intent.record_id, 1, "ingest")
        assert leaf.entry == intent.entry.decode()
        assert leaf.leaf_hash == leaf_hex(intent.entry)
        assert leaf.stored is False
        found = rows[intent.record_id]._asdict()
        expected = dict(intent.row, content_version_id=f"cv-{intent.record_id}",
                        manifest_version_id=f"mv-{intent.record_id}", ledger_index=leaf.idx)
        assert found == expected
    assert _count(archive.catalog, intents) == 0


def test_cataloguing_an_intent_that_is_gone_changes_nothing(archive: Archive) -> None:
    assert not _catalogue(archive, _intent(9), "cv", "mv")  # never reserved (or recovered)
    for table in (records, versions, ledger):
        assert _count(archive.catalog, table) == 0


def test_a_second_record_runs_the_same_statement_objects(archive: Archive) -> None:
    executed: list[list[object]] = []

    def seen(conn: Connection, clause: object, *args: object) -> None:
        if isinstance(clause, sa.sql.ClauseElement):
            executed[-1].append(clause)

    _store(archive, _intent(0))  # the first write of a Catalog brings the schema up to date
    event.listen(archive.catalog.engine, "before_execute", seen)
    try:
        for n in (1, 2):
            executed.append([])
            intent = _intent(n)
            assert archive.catalog.find_by_sha(str(intent.content_sha256)) is None
            _store(archive, intent)
    finally:
        event.remove(archive.catalog.engine, "before_execute", seen)
    first, second = ({id(s) for s in run} for run in executed)
    prebuilt = {id(s) for s in (ACTIVE_RECORD_BY_SHA, INTENT_BY_SHA, INSERT_INTENT,
                                DELETE_INTENT, INSERT_RECORD, LEDGER_TOP, INSERT_LEDGER,
                                INSERT_VERSION)}
    assert second == first == prebuilt
    assert len(executed[1]) == 9  # find, 2 lookups + intent, delete + record + 2 ledger + version


# Every prebuilt statement with the parameters its callers bind.
_BINDS: list[tuple[Any, set[str]]] = [
    (ACTIVE_RECORD_BY_SHA, {"sha256"}),
    (INTENT_BY_SHA, {"sha256"}),
    (RECORD_HEAD, {"record_id"}),
    (INTENT_OWNER, {"record_id", "version"}),
    (DELETE_INTENT, {"record_id", "version"}),
    (MOVE_RECORD, {"rid", "latest_version", "state"}),
]


@pytest.mark.parametrize("dialect", [postgresql.dialect(), sqlite.dialect()],
                         ids=["postgresql", "sqlite"])
@pytest.mark.parametrize(("stmt", "binds"), _BINDS, ids=lambda v: "")
def test_statements_compile_with_the_parameters_callers_bind(
        dialect: sa.Dialect, stmt: Any, binds: set[str]) -> None:
    compiled = stmt.compile(dialect=dialect)
    # Every name a caller passes is a parameter; any other parameter has its value built in.
    assert binds <= set(compiled.params)
    unbound = {k for k, v in compiled.params.items() if v is None}
    assert unbound == binds


def test_move_record_changes_only_the_named_record(tmp_path: Path) -> None:
    cat = Catalog("sqlite:///catalog.sqlite", tmp_path)
    cat.create()
    try:
        with cat.write() as c:
            for rid in ("a", "b"):
                c.execute(INSERT_RECORD, {"record_id": rid, "created_at": "x",
                                          "latest_version": 1, "state": "active"})
            moved = c.execute(MOVE_RECORD, {"rid": "a", "latest_version": 2,
                                            "state": "deleted"}).rowcount
        assert moved == 1
        assert _head(cat, "a") == (2, "deleted")
        assert _head(cat, "b") == (1, "active")
    finally:
        cat.dispose()


def _insert_record(rid: str) -> Any:
    def work(c: Connection) -> str:
        c.execute(INSERT_RECORD, {"record_id": rid, "created_at": "x", "latest_version": 1,
                                  "state": "active"})
        return rid
    return work


def test_a_group_of_one_runs_without_a_savepoint_and_is_undone_whole(
        tmp_path: Path) -> None:
    cat = Catalog("sqlite:///catalog.sqlite", tmp_path)
    cat.create()
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(cat.engine, "before_cursor_execute", seen)
    gc = GroupCommitter(cat)
    refused = DuplicateContent("same SHA-256 as record r1")

    def fails(c: Connection) -> None:
        _insert_record("half")(c)
        raise refused

    try:
        assert gc.run(_insert_record("r1")) == "r1"
        with pytest.raises(DuplicateContent) as raised:
            gc.run(fails)
        assert raised.value is refused  # its own error, in its own thread
        assert gc.run(_insert_record("r2")) == "r2"  # the catalog is usable after it
        with cat.read() as c:
            stored = set(c.execute(sa.select(records.c.record_id)).scalars())
        assert stored == {"r1", "r2"}  # "half" was rolled back with its transaction
        assert not [s for s in statements if "SAVEPOINT" in s.upper()]
    finally:
        event.remove(cat.engine, "before_cursor_execute", seen)
        cat.dispose()


def test_a_row_with_a_key_that_names_no_column_is_refused_whole(archive: Archive) -> None:
    """A prebuilt INSERT takes its columns from the parameters and would drop a misspelt
    search field without a word; cataloguing refuses the version instead."""
    intent = _intent(7)
    _reserve(archive, intent)
    intent.row["counter_party"] = intent.row.pop("counterparty")
    with pytest.raises(EdocError) as caught:
        _catalogue(archive, intent, "cv", "mv")
    assert caught.value.code == "CATALOG_SCHEMA_MISMATCH"
    assert "counter_party" in caught.value.message
    for table in (records, versions, ledger):
        assert _count(archive.catalog, table) == 0
    assert _count(archive.catalog, intents) == 1  # left for recovery, as it was


def test_row_types_are_built_positionally_in_column_order() -> None:
    # VersionRow.of / SearchRow / VersionWithEntry take a row's values by position: the
    # field order must be the ``versions`` column order, plus the one column each adds.
    from dataclasses import fields

    from edoc.catalog.records import VersionRow, VersionWithEntry
    from edoc.catalog.schema import versions
    from edoc.catalog.search import SearchRow

    columns = [c.name for c in versions.columns]
    assert [f.name for f in fields(VersionRow)] == columns
    assert [f.name for f in fields(VersionWithEntry)] == [*columns, "ledger_entry"]
    assert [f.name for f in fields(SearchRow)] == [*columns, "state"]


def test_text_postings_are_their_own_primary_key_on_sqlite(archive: Archive) -> None:
    """New SQLite catalogs keep the text postings WITHOUT ROWID (a third smaller); putting,
    replacing and dropping a record's text works on it as on the rowid table before."""
    with archive.catalog.engine.connect() as c:
        sql = c.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE name = 'text_grams'").scalar_one()
    assert "WITHOUT ROWID" in sql
    row = {"record_id": "R1", "version": 1, "source": "einvoice", "pages": 1,
           "confidence": None, "derived_at": "2026-12-07T00:00:00Z"}
    assert archive.catalog.put_texts([{**row, "text": "東京ガス"}]) == 7  # 4 chars, 3 pairs
    assert archive.catalog.put_texts([{**row, "text": "東邦"}]) == 3  # replaced, not added
    with archive.catalog.engine.connect() as c:
        grams = sorted(g for (g,) in c.exec_driver_sql("SELECT gram FROM text_grams"))
    assert grams == sorted(["東", "邦", "東邦"])
    assert archive.catalog.drop_texts(["R1"]) == 1
    with archive.catalog.engine.connect() as c:
        assert c.exec_driver_sql("SELECT count(*) FROM text_grams").scalar_one() == 0
