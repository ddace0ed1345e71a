"""The catalog contract: what every catalog database edoc supports must do, run against
SQLite (a file) and PostgreSQL (the suite's own server, a fresh database per test).

Schema creation and numbered migrations (an old catalog is brought up to date; a newer
one is refused), one writer at a time (the ledger's positions contiguous under concurrent
appends from several processes, one checkpoint chain), atomic rollback, the busy timeout,
string columns taking what SQLite always took, and the catalog features users see through
the CLI (counterparty fragment search, e-invoice columns, holds, access log) — the same
answers on both.
"""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from edoc.catalog import Catalog, engine, migrations, schema
from edoc.errors import CatalogError, ConfigError, EdocError
from tests.helpers import Edoc, jst_today_minus
from tests.postgres import PostgresServer, free_port

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty catalog database of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.sqlite'}"
        return
    pg: PostgresServer = request.getfixturevalue("postgres")
    name = pg.create_database()
    yield pg.url(name)
    pg.drop_database(name)


def _new(url: str, base: Path) -> Catalog:
    cat = Catalog(url, base)
    cat.create()
    return cat


def _leaf(n: int) -> dict[str, Any]:
    return {"event": "test", "entry": json.dumps({"n": n}), "leaf_hash": f"{n:064x}",
            "record_id": None, "version": None}


# -- schema and migrations --------------------------------------------------------------------

def test_a_new_catalog_is_at_the_newest_migration(catalog_url: str, tmp_path: Path) -> None:
    cat = _new(catalog_url, tmp_path)
    cat.check_schema()
    with cat.read() as c:
        assert migrations.stored_version(c) == schema.SCHEMA_VERSION
        assert migrations.pending(c) == []
        assert schema.counterparty_names_kept(c)
    with pytest.raises(ConfigError) as caught:
        cat.create()  # never a second catalog stamped over the first
    assert caught.value.code == "CATALOG_EXISTS"
    cat.dispose()


def _make_version_1(cat: Catalog) -> None:
    """What an edoc 0.1.0 catalog looks like: stamped 1, without the later tables, columns,
    indexes and trigger."""
    with cat.engine.begin() as c:
        for ix in ("ix_versions_invoice_number", "ix_versions_registration_number",
                   "ix_versions_search", "ix_records_live"):
            c.exec_driver_sql(f"DROP INDEX {ix}")
        if c.dialect.name == "postgresql":
            c.exec_driver_sql("DROP TRIGGER versions_counterparty ON versions")
        else:
            c.exec_driver_sql("DROP TRIGGER versions_counterparty_ins")
            c.exec_driver_sql("DROP TRIGGER versions_counterparty_upd")
        for table in ("counterparties", "registry_entries", "registry_imports"):
            c.exec_driver_sql(f"DROP TABLE {table}")
        for column in schema.ADDED_COLUMNS:
            c.exec_driver_sql(f"ALTER TABLE versions DROP COLUMN {column}")
        c.execute(schema.schema_info.update().values(version=1))


def test_an_old_catalog_is_migrated_when_opened(catalog_url: str, tmp_path: Path) -> None:
    cat = _new(catalog_url, tmp_path)
    _make_version_1(cat)
    row = {"record_id": "R1", "version": 1, "kind": "original", "manifest_key": "k",
           "manifest_sha256": "0" * 64, "profiles": "[]", "retain_until": "2036-01-01",
           "retain_until_at": "2036-01-01T00:00:00Z", "ingested_at": "2026-01-01T00:00:00Z",
           "ledger_index": 0, "counterparty": "株式会社山田商事",
           "counterparty_norm": schema.normalise_counterparty("株式会社山田商事")}
    with cat.engine.begin() as c:
        c.execute(sa.text(
            "INSERT INTO versions (record_id, version, kind, manifest_key, manifest_sha256, "
            "profiles, retain_until, retain_until_at, ingested_at, ledger_index, "
            "counterparty, counterparty_norm) VALUES (:record_id, :version, :kind, "
            ":manifest_key, :manifest_sha256, :profiles, :retain_until, :retain_until_at, "
            ":ingested_at, :ledger_index, :counterparty, :counterparty_norm)"), row)
    cat.dispose()
    old = Catalog(catalog_url, tmp_path)
    old.check_schema()  # a read-only command's open migrates too (new columns are read)
    with old.read() as c:
        assert migrations.stored_version(c) == schema.SCHEMA_VERSION
        names = schema.schema_names(c)
        assert {"ix_versions_search", "ix_records_live", "registry_entries",
                "counterparties"} <= names
        assert schema.counterparty_names_kept(c)
        assert [n for (n,) in c.execute(sa.select(schema.counterparties.c.name))] == [
            row["counterparty_norm"]]  # backfilled from versions
        have = {col["name"] for col in sa.inspect(c).get_columns("versions")}
    assert set(schema.ADDED_COLUMNS) <= have
    old.dispose()


def test_a_newer_catalog_is_refused(catalog_url: str, tmp_path: Path) -> None:
    cat = _new(catalog_url, tmp_path)
    with cat.engine.begin() as c:
        c.execute(schema.schema_info.update().values(version=schema.SCHEMA_VERSION + 1))
    with pytest.raises(ConfigError) as caught:
        Catalog(catalog_url, tmp_path).check_schema()
    assert caught.value.code == "CATALOG_SCHEMA"


def test_an_unreachable_catalog_is_unavailable(tmp_path: Path,
                                               postgres: PostgresServer) -> None:
    for url in (f"sqlite:///{tmp_path / 'absent.sqlite'}",
                f"postgresql://postgres@127.0.0.1:{postgres.port}/no_such_database"):
        with pytest.raises(ConfigError) as caught:
            Catalog(url, tmp_path).check_schema()
        assert caught.value.code == "CATALOG_UNAVAILABLE", url
    assert "database name, user and password" in (caught.value.hint or "")  # the URL's fault
    with pytest.raises(ConfigError):
        Catalog(f"postgresql://nobody@127.0.0.1:{postgres.port}/postgres",
                tmp_path).check_schema()
    empty = postgres.create_database()
    with pytest.raises(ConfigError) as caught:
        Catalog(postgres.url(empty), tmp_path).check_schema()
    assert caught.value.code == "CATALOG_UNAVAILABLE"
    assert "holds no edoc catalog" in caught.value.message


def test_a_postgresql_server_that_is_down_is_transient_not_misconfigured(
        tmp_path: Path) -> None:
    # A refused connection (a server restarting, a failover) may pass: a worker waits for it,
    # and the hint must not send an operator to rebuild a catalog that is fine.
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/edoc"
    with pytest.raises(CatalogError) as caught:
        Catalog(url, tmp_path).check_schema()
    assert not isinstance(caught.value, ConfigError)
    assert caught.value.code == "CATALOG_UNAVAILABLE"
    assert "PostgreSQL server up" in (caught.value.hint or "")
    assert "rebuild" not in (caught.value.hint or "")


def test_a_password_is_never_shown(tmp_path: Path) -> None:
    with pytest.raises(EdocError) as caught:
        Catalog("postgresql://edoc:s3cret-pw@127.0.0.1:1/x", tmp_path).check_new()
    assert "s3cret-pw" not in str(caught.value) and caught.value.code == "CATALOG_UNAVAILABLE"


# -- transactions -----------------------------------------------------------------------------

def test_a_failed_write_leaves_nothing(catalog_url: str, tmp_path: Path) -> None:
    cat = _new(catalog_url, tmp_path)
    with pytest.raises(RuntimeError), cat.transaction() as t:
        t.append_leaves([_leaf(0), _leaf(1)])
        raise RuntimeError("crash between statements")
    assert cat.ledger_state().leaves == 0
    assert cat.append_leaves([_leaf(0)]) == 0
    cat.dispose()


def test_long_strings_are_kept_as_sqlite_keeps_them(catalog_url: str, tmp_path: Path) -> None:
    """SQLite never enforced ``String(n)``; PostgreSQL columns are ``text`` so that no value
    SQLite took is refused there (a 200-character media type, a long intent owner)."""
    cat = _new(catalog_url, tmp_path)
    long_event = "e" * 200
    cat.append_leaves([{**_leaf(0), "event": long_event}])
    assert cat.ledger_entry(0) is not None and cat.ledger_entry(0).event == long_event  # type: ignore[union-attr]
    cat.dispose()


def test_a_writer_waits_for_the_write_lock_then_is_told_busy(
        catalog_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "BUSY_TIMEOUT_S", 1)
    holder, waiter = _new(catalog_url, tmp_path), Catalog(catalog_url, tmp_path)
    with holder.transaction() as t:
        t.append_leaves([_leaf(0)])
        with pytest.raises(CatalogError) as caught:
            waiter.append_leaves([_leaf(1)])
    assert caught.value.code == "CATALOG_BUSY"
    assert waiter.append_leaves([_leaf(1)]) == 1  # free again once the holder committed
    holder.dispose()
    waiter.dispose()


def _append_many(url: str, base: str, start: int, count: int) -> list[int]:
    cat = Catalog(url, Path(base))
    try:
        return [cat.append_leaves([_leaf(start + n)]) for n in range(count)]
    finally:
        cat.dispose()


def _checkpoint_many(url: str, base: str, count: int) -> None:
    """Append a leaf and checkpoint the tree it makes, ``count`` times: the way the commit
    protocol makes checkpoints (size and root read and written in one write transaction)."""
    cat = Catalog(url, Path(base))
    try:
        for n in range(count):
            with cat.transaction() as t:
                t.append_leaves([_leaf(10_000 + n)])
                size = t.next_ledger_index()
                prev = t.latest_checkpoint()
                if prev is None or prev.tree_size < size:
                    t.add_checkpoint(tree_size=size, root_hash=f"{size:064x}",
                                     created_at="x", gen_time="x",
                                     key=f"checkpoints/{size}.json")
    finally:
        cat.dispose()


def _in_processes(target: Callable[..., Any], argsets: list[tuple[Any, ...]]) -> list[Any]:
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters, as separate hosts
    with ctx.Pool(len(argsets)) as pool:
        return [r.get(timeout=300) for r in [pool.apply_async(target, a) for a in argsets]]


def test_concurrent_appends_from_processes_take_every_position_once(
        catalog_url: str, tmp_path: Path) -> None:
    _new(catalog_url, tmp_path).dispose()
    procs, each = 4, 25
    got = _in_processes(_append_many, [(catalog_url, str(tmp_path), p * 1000, each)
                                       for p in range(procs)])
    positions = sorted(i for chunk in got for i in chunk)
    assert positions == list(range(procs * each))  # no gap, no two leaves at one index
    cat = Catalog(catalog_url, tmp_path)
    state = cat.ledger_state()
    assert state.leaves == state.next_index == procs * each
    # every leaf is the one its writer put there
    for chunk, p in zip(got, range(procs), strict=True):
        for n, idx in enumerate(chunk):
            entry = cat.ledger_entry(idx)
            assert entry is not None and json.loads(entry.entry) == {"n": p * 1000 + n}
    cat.dispose()


def test_checkpoints_from_concurrent_processes_form_one_chain(
        catalog_url: str, tmp_path: Path) -> None:
    _new(catalog_url, tmp_path).dispose()
    _in_processes(_checkpoint_many, [(catalog_url, str(tmp_path), 10) for _ in range(3)])
    cat = Catalog(catalog_url, tmp_path)
    sizes = cat.checkpoint_sizes()
    # one checkpoint per append, each covering exactly the tree at its commit: 1, 2, ... 30
    assert sizes == list(range(1, 31))
    cat.dispose()


# -- features through the CLI -----------------------------------------------------------------

def _archive(tmp_path: Path, catalog_url: str) -> Edoc:
    e = Edoc(tmp_path / "archive")
    # the sqlite case names the default too: a --catalog-backend postgresql run adds none
    url = catalog_url if catalog_url.startswith("postgresql") else "sqlite:///catalog.sqlite"
    res = e("init", str(e.archive), "--catalog", url)
    assert res.exit_code == 0, res.output
    return e


def test_archive_features_answer_alike(catalog_url: str, tmp_path: Path) -> None:
    e = _archive(tmp_path, catalog_url)
    names = ["株式会社山田商事", "ﾔﾏﾀﾞ商店", "ACME_50%", "鈴木工業"]
    ids = {}
    for n, name in enumerate(names):
        f = tmp_path / f"doc{n}.txt"
        f.write_text(f"document {n}", encoding="utf-8")
        code, res = e.ingest_one(f, "--profile", "general", "--counterparty", name,
                                 "--date", jst_today_minus(n + 1), "--amount", str(1000 * (n + 1)),
                                 "--doc-type", "invoice")
        assert code == 0, res
        ids[name] = res["record_id"]

    def found(*args: str) -> set[str]:
        code, doc = e.json("search", *args)
        assert code == 0, doc
        return {r["record_id"] for r in doc["records"]}

    assert found("--counterparty", "山田") == {ids["株式会社山田商事"]}
    assert found("--counterparty", "ヤマダ") == {ids["ﾔﾏﾀﾞ商店"]}  # NFKC
    assert found("--counterparty", "_50%") == {ids["ACME_50%"]}  # LIKE wildcards literal
    assert found("--counterparty", "acme") == {ids["ACME_50%"]}  # case folded
    assert found("--min-amount", "2000", "--max-amount", "3000") == {
        ids["ﾔﾏﾀﾞ商店"], ids["ACME_50%"]}
    rid = ids["鈴木工業"]
    assert e("hold", rid, "--reason", "audit").exit_code == 0
    code, doc = e.json("holds")
    assert code == 0 and [h["record_id"] for h in doc["holds"]] == [rid]
    assert e("delete", ids["ACME_50%"], "--reason", "entered twice").exit_code == 0
    assert found("--counterparty", "acme") == set()
    code, doc = e.json("verify", "--all")
    assert code == 0, doc
    code, doc = e.json("ledger", "verify")
    assert code == 0, doc
    assert e.version_count() == len(names) + 1  # the tombstone


def test_the_catalog_is_where_edoc_toml_says(catalog_url: str, tmp_path: Path) -> None:
    e = _archive(tmp_path, catalog_url)
    text = (e.archive / "edoc.toml").read_text(encoding="utf-8")
    if catalog_url.startswith("postgresql"):
        assert f'url = "{catalog_url}"' in text
        assert not (e.archive / "catalog.sqlite").exists()
    else:
        assert (e.archive / "catalog.sqlite").is_file()
        with sqlite3.connect(e.archive / "catalog.sqlite") as db:
            assert db.execute("SELECT version FROM schema_info").fetchone() == (
                schema.SCHEMA_VERSION,)


def test_init_refuses_a_catalog_it_cannot_use_and_leaves_nothing(tmp_path: Path,
                                                                   postgres: PostgresServer
                                                                   ) -> None:
    for url, code in (("mysql://u@h/db", "CONFIG_INVALID"),
                      (f"postgresql://postgres@127.0.0.1:{postgres.port}/absent_db",
                       "CATALOG_UNAVAILABLE")):
        e = Edoc(tmp_path / code)
        rc, doc = e.json("init", str(e.archive), "--catalog", url)
        assert rc != 0 and doc["error"]["code"] == code, doc
        assert not (e.archive / "keys").exists() and not (e.archive / "edoc.toml").exists()


def test_edoc_catalog_url_is_the_default_of_init(tmp_path: Path, postgres: PostgresServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    url = postgres.url(postgres.create_database())
    monkeypatch.setenv("EDOC_CATALOG_URL", url)
    e = Edoc(tmp_path / "a")
    rc, doc = e.json("init", str(e.archive), "--catalog", url.replace("postgresql://",
                                                                        "postgres://"))
    assert rc == 0 and doc["catalog"] == "postgresql", doc
    from edoc.config import StorageConfig
    from edoc.services.setup import create_archive  # the service reads the variable

    second = postgres.url(postgres.create_database())
    monkeypatch.setenv("EDOC_CATALOG_URL", second)
    made = create_archive(tmp_path / "b", organisation="", fiscal_year_end=None,
                          default_retention=(), storage=StorageConfig())
    assert made.catalog_kind == "postgresql"
    assert f'url = "{second}"' in (tmp_path / "b" / "edoc.toml").read_text(encoding="utf-8")
