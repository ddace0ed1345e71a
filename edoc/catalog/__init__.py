"""The catalog: a derived, searchable index of records, versions, ledger and checkpoints.

SQLite (WAL, one writer at a time) by default, inside the archive directory; written with
SQLAlchemy Core so that a PostgreSQL URL is the only change for multi-user deployments. The
catalog is an index, not the source of truth: ``edoc catalog rebuild`` recreates it from the
object store, and ``edoc verify`` compares it with the sealed manifests.

Write transactions on SQLite begin with ``BEGIN IMMEDIATE`` so concurrent writers queue on
the busy timeout instead of failing half-way through (the ledger index must be assigned and
its row inserted atomically).

Catalogs made by an earlier edoc are brought up to date by the first write transaction of
each ``Catalog`` (``_upgrade``): indexes added since are created, and the ``counterparties``
table of distinct names is created and filled from ``versions``. A database trigger keeps
that table complete whichever code inserts a version (ingest, recovery, ``catalog rebuild``).
"""

from __future__ import annotations

import json
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from edoc.errors import CatalogError, ConfigError

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30

metadata = sa.MetaData()

schema_info = sa.Table(
    "schema_info", metadata,
    sa.Column("version", sa.Integer, nullable=False),
)

records = sa.Table(
    "records", metadata,
    sa.Column("record_id", sa.String(32), primary_key=True),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("latest_version", sa.Integer, nullable=False),
    #: active | deleted (tombstone is latest) | disposed (purged)
    sa.Column("state", sa.String(16), nullable=False),
)

versions = sa.Table(
    "versions", metadata,
    sa.Column("record_id", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("content_sha256", sa.String(64)),
    sa.Column("content_size", sa.BigInteger),
    sa.Column("media_type", sa.String(100)),
    sa.Column("original_name", sa.Text),
    sa.Column("content_key", sa.Text),
    sa.Column("content_version_id", sa.Text),
    sa.Column("manifest_key", sa.Text, nullable=False),
    sa.Column("manifest_version_id", sa.Text),
    sa.Column("manifest_sha256", sa.String(64), nullable=False),
    sa.Column("seal_key", sa.Text),
    sa.Column("profiles", sa.Text, nullable=False),
    sa.Column("document_class", sa.String(16)),
    sa.Column("doc_type", sa.String(64)),
    sa.Column("transaction_date", sa.String(10)),
    sa.Column("amount", sa.BigInteger),
    sa.Column("counterparty", sa.Text),
    sa.Column("counterparty_norm", sa.Text),
    sa.Column("ledger_ref", sa.Text),
    sa.Column("retain_until", sa.String(10), nullable=False),
    sa.Column("retain_until_at", sa.String(40), nullable=False),
    sa.Column("ingested_at", sa.String(40), nullable=False),
    sa.Column("ledger_index", sa.Integer, nullable=False),
    sa.Column("disposed_at", sa.String(40)),
    sa.PrimaryKeyConstraint("record_id", "version"),
)
sa.Index("ix_versions_date", versions.c.transaction_date)
sa.Index("ix_versions_amount", versions.c.amount)
sa.Index("ix_versions_cp", versions.c.counterparty_norm)
sa.Index("ix_versions_ledger_ref", versions.c.ledger_ref)
sa.Index("ix_versions_sha", versions.c.content_sha256)
sa.Index("ix_versions_retain", versions.c.retain_until_at)
#: Covers the legal search (date range, amount range, counterparty): see Catalog.search.
sa.Index("ix_versions_search", versions.c.transaction_date, versions.c.amount,
         versions.c.counterparty_norm, versions.c.record_id, versions.c.version)

#: Distinct normalised counterparty names (a few thousand in a company's lifetime, against
#: millions of versions). A substring search (clerks type 山田商事 for 株式会社山田商事) scans
#: this table and then looks the matching names up through ``ix_versions_cp`` instead of
#: scanning ``versions`` (BENCHMARKS.md part 3). Kept complete by a trigger on ``versions``
#: (``_UPKEEP_DDL``), in the transaction that inserts the version.
counterparties = sa.Table(
    "counterparties", metadata,
    sa.Column("name", sa.Text, primary_key=True),
)

#: The trigger(s) that add a version's ``counterparty_norm`` to ``counterparties``, per
#: dialect; a trigger rather than a call in each writer, so that no insert into ``versions``
#: (ingest, ``doctor --repair``'s adoption, the bulk insert of ``catalog rebuild``, a
#: fixture) can leave a name unsearchable. Names are never removed: a purge keeps the
#: version row (with its counterparty) too, and a stale name only matches no row.
_UPKEEP_DDL: dict[str, tuple[str, ...]] = {
    "sqlite": (
        "CREATE TRIGGER IF NOT EXISTS versions_counterparty_ins AFTER INSERT ON versions "
        "WHEN NEW.counterparty_norm IS NOT NULL BEGIN "
        "INSERT OR IGNORE INTO counterparties (name) VALUES (NEW.counterparty_norm); END",
        "CREATE TRIGGER IF NOT EXISTS versions_counterparty_upd "
        "AFTER UPDATE OF counterparty_norm ON versions "
        "WHEN NEW.counterparty_norm IS NOT NULL BEGIN "
        "INSERT OR IGNORE INTO counterparties (name) VALUES (NEW.counterparty_norm); END",
    ),
    "postgresql": (
        "CREATE OR REPLACE FUNCTION edoc_counterparty_upkeep() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN IF NEW.counterparty_norm IS NOT NULL THEN "
        "INSERT INTO counterparties (name) VALUES (NEW.counterparty_norm) "
        "ON CONFLICT DO NOTHING; END IF; RETURN NULL; END $$",
        "DROP TRIGGER IF EXISTS versions_counterparty ON versions",
        "CREATE TRIGGER versions_counterparty AFTER INSERT OR UPDATE OF counterparty_norm "
        "ON versions FOR EACH ROW EXECUTE FUNCTION edoc_counterparty_upkeep()",
    ),
}
#: the names _UPKEEP_DDL creates, per dialect: all present means the table is kept complete
_UPKEEP_NAMES: dict[str, frozenset[str]] = {
    "sqlite": frozenset({"counterparties", "versions_counterparty_ins",
                         "versions_counterparty_upd"}),
    "postgresql": frozenset({"counterparties", "versions_counterparty"}),
}

ledger = sa.Table(
    "ledger", metadata,
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("event", sa.String(24), nullable=False),
    sa.Column("record_id", sa.String(32)),
    sa.Column("version", sa.Integer),
    sa.Column("leaf_hash", sa.String(64), nullable=False),
    sa.Column("entry", sa.Text, nullable=False),
    sa.Column("stored", sa.Boolean, nullable=False, default=False),
)
sa.Index("ix_ledger_record", ledger.c.record_id, ledger.c.version)

checkpoints = sa.Table(
    "checkpoints", metadata,
    sa.Column("tree_size", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("root_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("gen_time", sa.String(40), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
)

holds = sa.Table(
    "holds", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("record_id", sa.String(32), nullable=False, index=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("case_ref", sa.Text),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("placed_at", sa.String(40), nullable=False),
    sa.Column("released_at", sa.String(40)),
    sa.Column("release_reason", sa.Text),
    sa.Column("released_by", sa.Text),
)

disposal_runs = sa.Table(
    "disposal_runs", metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("started_at", sa.String(40), nullable=False),
    #: the TSA genTime that served as "now" for selection
    sa.Column("now", sa.String(40), nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    #: running | certified
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("certificate_key", sa.Text),
    sa.Column("finished_at", sa.String(40)),
)

disposal_items = sa.Table(
    "disposal_items", metadata,
    sa.Column("run_id", sa.String(32), nullable=False),
    sa.Column("record_id", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    #: pending | disposed | refused
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("entry", sa.Text, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("disposed_at", sa.String(40)),
    sa.PrimaryKeyConstraint("run_id", "record_id", "version"),
)

#: Versions being written (the ingest commit protocol, ``edoc.services.ingest``): reserved
#: here before
#: any object is stored, deleted by the transaction that catalogues the version. A row whose
#: writer died is finished or dropped by the next run (``edoc.services.ingest.recover_intents``).
intents = sa.Table(
    "intents", metadata,
    sa.Column("record_id", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("event", sa.String(24), nullable=False),
    #: the record's state once the version is catalogued
    sa.Column("state", sa.String(16), nullable=False),
    #: a new record's content digest: the duplicate check sees versions still being written
    sa.Column("content_sha256", sa.String(64), index=True),
    #: whether this version stores content of its own (else it reuses an earlier object)
    sa.Column("own_content", sa.Boolean, nullable=False),
    sa.Column("manifest", sa.Text, nullable=False),
    sa.Column("seal", sa.Boolean, nullable=False),
    #: the ledger event, exactly as it will be logged
    sa.Column("entry", sa.Text, nullable=False),
    #: the ``versions`` row as JSON, less what only the store and the ledger assign
    sa.Column("row", sa.Text, nullable=False),
    sa.Column("owner", sa.String(120), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.PrimaryKeyConstraint("record_id", "version"),
)

access_log = sa.Table(
    "access_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("record_ids", sa.Text, nullable=False),
    sa.Column("detail", sa.Text),
)

SEARCH_COLUMNS = ("doc_type", "transaction_date", "amount", "counterparty", "ledger_ref")

# -- statements of the ingest path, built once ---------------------------------------------------
# Every ingested record runs the statements below (duplicate lookups, the write intent, the
# record, its version and its ledger leaf). A statement built per call, e.g.
# ``select(...).where(versions.c.sha256 == x)``, is coerced, generated and cache-keyed anew
# each time before SQLAlchemy even finds its compiled form in the engine's cache: measured
# with ``py-spy --gil`` at 8 files in flight, that was a visible share of the GIL time
# (issue 8). Built once with ``bindparam()``s, a statement memoizes its cache key and each
# call only binds a parameter dict. They are plain SQLAlchemy Core, compiled per dialect by
# the engine: the same on SQLite and PostgreSQL. Executing one does not change it, so threads
# share them. An INSERT without ``values()`` takes its columns from the parameter dict.

#: A record that is active and holds content with digest ``:sha256`` (the duplicate check).
ACTIVE_RECORD_BY_SHA = (
    sa.select(versions.c.record_id)
    .join(records, records.c.record_id == versions.c.record_id)
    .where(versions.c.content_sha256 == sa.bindparam("sha256"), records.c.state == "active")
    .limit(1))
#: A version being written (an intent) of a new record with content digest ``:sha256``.
INTENT_BY_SHA = (sa.select(intents.c.record_id)
                 .where(intents.c.content_sha256 == sa.bindparam("sha256")).limit(1))
#: Record ``:record_id``'s latest version and state.
RECORD_HEAD = (sa.select(records.c.latest_version, records.c.state)
               .where(records.c.record_id == sa.bindparam("record_id")))
#: Who writes version ``:version`` of record ``:record_id``, if anyone.
INTENT_OWNER = sa.select(intents.c.owner).where(
    intents.c.record_id == sa.bindparam("record_id"),
    intents.c.version == sa.bindparam("version"))
INSERT_INTENT = intents.insert()
#: Drop the intent for version ``:version`` of ``:record_id`` (rowcount 0: it was gone).
DELETE_INTENT = intents.delete().where(
    intents.c.record_id == sa.bindparam("record_id"),
    intents.c.version == sa.bindparam("version"))
INSERT_RECORD = records.insert()
#: Move record ``:rid`` to version ``:latest_version`` in state ``:state``. (The WHERE's
#: parameter may not share a column's name: SQLAlchemy keeps those for the SET clause.)
MOVE_RECORD = (records.update().where(records.c.record_id == sa.bindparam("rid"))
               .values(latest_version=sa.bindparam("latest_version"),
                       state=sa.bindparam("state")))
INSERT_VERSION = versions.insert()
#: The columns ``INSERT_VERSION`` takes. An INSERT without ``values()`` silently drops a key
#: that names no column (``.values(**row)`` refused it), so callers check with ``stray_columns``.
VERSION_COLUMNS = frozenset(versions.c.keys())

LEDGER_TOP = sa.select(sa.func.max(ledger.c.idx))
INSERT_LEDGER = ledger.insert()


def stray_columns(row: dict[str, object], columns: frozenset[str]) -> list[str]:
    """Keys of ``row`` that name no column: a search field spelt wrong would otherwise be
    lost without a word (the 検索要件 columns must be filled from the manifest)."""
    return sorted(row.keys() - columns)


def normalise_counterparty(name: str) -> str:
    """NFKC + case folding: ｶﾌﾞｼｷｶﾞｲｼｬ, カブシキガイシャ and full-width Latin compare equal."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def utc_text(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def version_row(m: dict[str, Any], *, manifest_sha256: str,
                content_ref: tuple[str | None, str | None], seal_key: str | None,
                manifest_version_id: str | None = None, ledger_index: int | None = None
                ) -> dict[str, Any]:
    """The ``versions`` row for manifest ``m``: every searchable column comes from the sealed
    manifest, the one mapping used by ingest, recovery and ``catalog rebuild`` alike."""
    from edoc.model import canonical

    c = m.get("content") or {}
    meta = m.get("metadata") or {}
    ret = m["retention"]
    return {
        "record_id": m["record_id"], "version": m["version"], "kind": m["kind"],
        "content_sha256": c.get("sha256"), "content_size": c.get("size"),
        "media_type": c.get("media_type"), "original_name": c.get("original_name"),
        "content_key": content_ref[0], "content_version_id": content_ref[1],
        "manifest_key": f"records/{m['record_id']}/v{m['version']}/manifest.json",
        "manifest_version_id": manifest_version_id, "manifest_sha256": manifest_sha256,
        "seal_key": seal_key,
        "profiles": canonical.dumps(list(m["profiles"])).decode(),
        "document_class": m.get("document_class"), "doc_type": m.get("doc_type"),
        "transaction_date": meta.get("transaction_date"), "amount": meta.get("amount"),
        "counterparty": meta.get("counterparty"),
        "counterparty_norm": normalise_counterparty(meta["counterparty"])
        if meta.get("counterparty") else None,
        "ledger_ref": meta.get("ledger_ref"),
        "retain_until": ret["retain_until"],
        "retain_until_at": utc_text(datetime.fromisoformat(ret["until_at"])),
        "ingested_at": m["ingested_at"], "ledger_index": ledger_index, "disposed_at": None,
    }


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
    include_deleted: bool = False
    all_versions: bool = False
    limit: int | None = None


def _dialect_insert(dialect: str) -> Any:
    """``insert`` of the dialect, for ``on_conflict_do_nothing`` (SQLite and PostgreSQL)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def _like_substring(text: str) -> str:
    """``%text%`` for ``LIKE … ESCAPE '\\'``: a name holding ``%`` or ``_`` matches itself."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _sqlite_url(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        return prefix + str((base / url[len(prefix):]).resolve())
    return url


class Catalog:
    """Owns the catalog connection(s); every write goes through ``write()``."""

    def __init__(self, url: str, base_dir: Path) -> None:
        self.url = _sqlite_url(url, base_dir)
        self.is_sqlite = self.url.startswith("sqlite")
        self._write_lock = threading.RLock()
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_S, "isolation_level": None}
        try:
            self.engine: Engine = sa.create_engine(self.url, **kwargs)
        except sa.exc.ArgumentError as exc:
            raise CatalogError(f"catalog url is invalid: {exc}", code="CONFIG_INVALID") from None
        if self.is_sqlite:
            event.listen(self.engine, "connect", self._on_connect)
            event.listen(self.engine, "begin", self._on_begin)
        #: whether this process has brought the schema up to date (``_upgrade``)
        self._upgraded = False
        #: whether ``counterparties`` exists and is kept complete (None: not looked yet)
        self._names_ready: bool | None = None

    @staticmethod
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        cur.close()

    @staticmethod
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front (see docstring); readers begin deferred, so
        # in WAL mode they read a snapshot and never block or wait for a writer.
        if conn.get_execution_options().get("edoc_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    def create(self) -> None:
        with self.write() as c:
            metadata.create_all(c)
            c.execute(schema_info.insert().values(version=SCHEMA_VERSION))
            self._upgrade(c)
        self._names_ready = None

    # -- schema upgrades (catalogs made by an earlier edoc) --------------------------------------
    @staticmethod
    def _schema_names(conn: Connection) -> set[str]:
        """Names of the tables, indexes and triggers the catalog holds."""
        dialect = conn.dialect.name
        if dialect == "sqlite":
            return {str(n) for (n,) in conn.exec_driver_sql("SELECT name FROM sqlite_master")}
        if dialect == "postgresql":
            return {str(n) for (n,) in conn.exec_driver_sql(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "UNION SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                "UNION SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")}
        inspector = sa.inspect(conn)
        names = set(inspector.get_table_names())
        if "versions" in names:
            names.update(str(ix["name"]) for ix in inspector.get_indexes("versions"))
        return names

    def _upgrade(self, conn: Connection) -> None:
        """Inside a write transaction: create what this edoc's schema has and an older
        catalog lacks. Indexes of ``versions`` added since (``ix_versions_search``: ~1 s per
        million rows, once); the ``counterparties`` table, its trigger, and its names
        backfilled from ``versions`` in the same transaction, so a search never sees the
        table half filled. Cheap when nothing is missing (one read of the schema)."""
        dialect = conn.dialect.name
        present = self._schema_names(conn)
        if "versions" not in present:
            return  # an empty database: create() makes everything
        for ix in sorted(versions.indexes, key=lambda i: str(i.name)):
            if ix.name not in present:
                ix.create(conn)
        if dialect not in _UPKEEP_DDL:
            return  # no trigger: search scans versions, as before the table existed
        if _UPKEEP_NAMES[dialect] <= present:
            return
        counterparties.create(conn, checkfirst=True)
        for ddl in _UPKEEP_DDL[dialect]:
            conn.exec_driver_sql(ddl)
        insert = _dialect_insert(dialect)
        conn.execute(insert(counterparties).from_select(
            ["name"], sa.select(versions.c.counterparty_norm).distinct()
            .where(versions.c.counterparty_norm.is_not(None))).on_conflict_do_nothing())

    def _counterparty_names_ready(self) -> bool:
        if self._names_ready is None:
            with self.read() as c:
                dialect = c.dialect.name
                self._names_ready = (dialect in _UPKEEP_NAMES
                                     and _UPKEEP_NAMES[dialect] <= self._schema_names(c))
        return self._names_ready

    def check_schema(self) -> None:
        hint = "run 'edoc catalog rebuild' to recreate it from storage"
        if self.is_sqlite:
            path = Path(self.url.removeprefix("sqlite:///"))
            if not path.is_file():  # never let sqlite create an empty catalog silently
                raise ConfigError(f"catalog {path} is missing", code="CATALOG_UNAVAILABLE",
                                  hint=hint)
        try:
            with self.engine.connect() as c:
                found = c.execute(sa.select(schema_info.c.version)).scalar()
        except sa.exc.OperationalError as exc:
            raise ConfigError(f"catalog cannot be opened: {exc.orig}",
                              code="CATALOG_UNAVAILABLE", hint=hint) from None
        except sa.exc.DatabaseError as exc:
            raise ConfigError(f"catalog is not a database: {exc.orig}",
                              code="CATALOG_UNAVAILABLE", hint=hint) from None
        if found != SCHEMA_VERSION:
            raise ConfigError(f"catalog schema is version {found}; this edoc needs "
                              f"{SCHEMA_VERSION}", code="CATALOG_SCHEMA")

    @contextmanager
    def write(self) -> Iterator[Connection]:
        # Threads of one process queue here rather than in SQLite: its busy handler sleeps
        # in steps of up to 100 ms, so threads contending on BEGIN IMMEDIATE wait far longer
        # than the lock is held (measured: 43 % of an 8-thread S3 ingest's time). Other
        # processes still wait in SQLite's busy handler.
        with self._write_lock, self._write_transaction() as conn:
            yield conn

    @contextmanager
    def _write_transaction(self) -> Iterator[Connection]:
        try:
            with self.engine.connect().execution_options(edoc_write=True) as conn, \
                    conn.begin():
                first = not self._upgraded
                if first:
                    self._upgrade(conn)
                yield conn
            if first:  # committed (a rollback undoes the upgrade too): look again at search
                self._upgraded, self._names_ready = True, None
        except sa.exc.OperationalError as exc:
            if "readonly" in str(exc.orig):
                raise CatalogError(f"catalog is read-only ({exc.orig}); nothing changed",
                                   code="CATALOG_READ_ONLY",
                                   hint="run edoc where the archive directory is writable"
                                   ) from None
            if "locked" in str(exc.orig) or "busy" in str(exc.orig):
                raise CatalogError(
                    f"catalog is busy: another edoc process held the write lock for more "
                    f"than {BUSY_TIMEOUT_S} s", code="CATALOG_BUSY",
                    hint="wait for the other run to finish, then retry") from None
            raise CatalogError(f"catalog write failed: {exc.orig}",
                               code="CATALOG_ERROR") from None

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()

    # -- ledger ----------------------------------------------------------------------------
    @staticmethod
    def next_ledger_index(conn: Connection) -> int:
        top = conn.execute(LEDGER_TOP).scalar()
        return 0 if top is None else int(top) + 1

    @staticmethod
    def append_ledger(conn: Connection, *, event_type: str, entry: str, leaf_hash: str,
                      record_id: str | None = None, version: int | None = None) -> int:
        return Catalog.append_ledger_many(conn, [{
            "event": event_type, "entry": entry, "leaf_hash": leaf_hash,
            "record_id": record_id, "version": version}])

    @staticmethod
    def append_ledger_many(conn: Connection, leaves: Sequence[dict[str, Any]]) -> int:
        """Append ``leaves`` (``event``, ``entry``, ``leaf_hash``, ``record_id``,
        ``version``) at the next ledger indices, in order, inside the caller's write
        transaction; returns the first index. Index assignment lives here only: it must be
        atomic with the insert (module docstring)."""
        first = Catalog.next_ledger_index(conn)
        conn.execute(INSERT_LEDGER, [
            {"idx": first + n, "stored": False, "record_id": None, "version": None, **leaf}
            for n, leaf in enumerate(leaves)])
        return first

    # -- search ----------------------------------------------------------------------------
    def search(self, q: SearchQuery) -> Iterator[sa.Row[Any]]:
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
        if q.profile:
            stmt = stmt.where(v.c.profiles.like(f'%"{q.profile}"%'))
        stmt = stmt.order_by(v.c.transaction_date, v.c.record_id, v.c.version)
        if q.limit:
            stmt = stmt.limit(q.limit)
        with self.read() as c:
            yield from c.execute(stmt)

    def find_by_sha(self, sha256: str) -> str | None:
        """The active record holding content with this SHA-256, if any."""
        with self.read() as c:
            found = c.execute(ACTIVE_RECORD_BY_SHA, {"sha256": sha256}).scalar()
            return None if found is None else str(found)

    def version_rows(self, record_id: str) -> list[sa.Row[Any]]:
        stmt = sa.select(versions).where(versions.c.record_id == record_id).order_by(
            versions.c.version)
        with self.read() as c:
            return list(c.execute(stmt))

    def versions_with_entries(self, record_ids: Sequence[str]
                              ) -> dict[str, list[sa.Row[Any]]]:
        """The version rows of ``record_ids`` (each record's in version order), each with the
        text of its ledger entry as ``ledger_entry`` (None when the catalog lacks it), in one
        query: period verification reads a chunk of records at a time instead of two
        queries per version. Records without versions are absent from the result."""
        out: dict[str, list[sa.Row[Any]]] = {}
        ids = sorted(set(record_ids))
        stmt = (sa.select(versions, ledger.c.entry.label("ledger_entry"))
                .outerjoin(ledger, ledger.c.idx == versions.c.ledger_index)
                .where(versions.c.record_id.in_(sa.bindparam("ids", expanding=True)))
                .order_by(versions.c.record_id, versions.c.version))
        with self.read() as c:
            # ≤ 500 ids a statement: older SQLite builds allow 999 bound parameters
            for start in range(0, len(ids), 500):
                for row in c.execute(stmt, {"ids": ids[start:start + 500]}):
                    out.setdefault(row.record_id, []).append(row)
        return out

    def checkpoint_sizes(self) -> list[int]:
        """Every checkpoint's tree size, ascending."""
        with self.read() as c:
            return [int(n) for (n,) in c.execute(
                sa.select(checkpoints.c.tree_size).order_by(checkpoints.c.tree_size))]

    def record_row(self, record_id: str) -> sa.Row[Any] | None:
        with self.read() as c:
            return c.execute(sa.select(records).where(records.c.record_id == record_id)).first()

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

    def ledger_entry(self, idx: int) -> sa.Row[Any] | None:
        with self.read() as c:
            return c.execute(sa.select(ledger).where(ledger.c.idx == idx)).first()

    def checkpoint_covering(self, ledger_index: int) -> sa.Row[Any] | None:
        stmt = (sa.select(checkpoints).where(checkpoints.c.tree_size > ledger_index)
                .order_by(checkpoints.c.tree_size).limit(1))
        with self.read() as c:
            return c.execute(stmt).first()

    def latest_checkpoint(self) -> sa.Row[Any] | None:
        stmt = sa.select(checkpoints).order_by(checkpoints.c.tree_size.desc()).limit(1)
        with self.read() as c:
            return c.execute(stmt).first()

    def log_access(self, *, actor: str, action: str, record_ids: Sequence[str],
                   detail: dict[str, Any] | None = None, at: datetime) -> None:
        with self.write() as c:
            c.execute(access_log.insert().values(
                at=utc_text(at), actor=actor, action=action,
                record_ids=json.dumps(list(record_ids)),
                detail=json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else None))
