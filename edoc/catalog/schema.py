"""The catalog's schema: tables, indexes, the counterparty trigger, and the upgrade of
catalogs made by an earlier edoc.

The column names, types and index names here are the on-disk format of every catalog file
edoc ever wrote (tests/fixtures holds one made by the old release): change nothing here
without a schema version and an upgrade step. Catalogs made by an earlier edoc are brought
up to date by the first write transaction of each ``Catalog`` (``upgrade``): indexes added
since are created, and the ``counterparties`` table of distinct names is created and filled
from ``versions``. A database trigger keeps that table complete whichever code inserts a
version (ingest, recovery, ``catalog rebuild``).

Also here: how names are encoded in columns (``normalise_counterparty``); instants are
written with ``edoc.clock.utc_text``.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles

#: The number of the newest migration (``edoc.catalog.migrations``): what a new catalog is
#: stamped with in ``schema_info``. Catalogs made before the numbering say 1.
SCHEMA_VERSION = 9

metadata = sa.MetaData()


@compiles(sa.String, "postgresql")
def _pg_text(element: sa.String, compiler: Any, **kw: Any) -> str:
    """On PostgreSQL every string column is ``text``: SQLite never enforced the declared
    lengths (``String(32)``...), so a catalog must not refuse on PostgreSQL a value SQLite
    took; ``text`` and ``varchar(n)`` are stored and indexed alike there."""
    return "TEXT"

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
#: Every search joins each hit to its record for these two (only the latest version of an
#: active record is a hit): answered from this index alone, one b-tree descent instead of the
#: primary key's and then the table's (a month's fragment search at a million records,
#: ~2,000 hits: p95 22 -> 17 ms of SQLite time, BENCHMARKS.md).
sa.Index("ix_records_live", records.c.record_id, records.c.latest_version, records.c.state)

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
    #: From a JP PINT e-invoice (edoc.services.einvoice_fields): its number (ibt-001) and the
    #: seller's registration number (登録番号, ibt-031). Added after the first release, so
    #: ``upgrade`` adds them to an older catalog (``ADDED_COLUMNS``).
    sa.Column("invoice_number", sa.Text),
    sa.Column("registration_number", sa.String(64)),
    sa.PrimaryKeyConstraint("record_id", "version"),
)
#: Columns of ``versions`` added since the first release: nullable, no default, so adding one
#: is an instant ``ALTER TABLE … ADD COLUMN`` on SQLite and PostgreSQL alike.
ADDED_COLUMNS = ("invoice_number", "registration_number")
sa.Index("ix_versions_invoice_number", versions.c.invoice_number)
sa.Index("ix_versions_registration_number", versions.c.registration_number)
sa.Index("ix_versions_date", versions.c.transaction_date)
sa.Index("ix_versions_amount", versions.c.amount)
sa.Index("ix_versions_cp", versions.c.counterparty_norm)
sa.Index("ix_versions_ledger_ref", versions.c.ledger_ref)
sa.Index("ix_versions_sha", versions.c.content_sha256)
sa.Index("ix_versions_retain", versions.c.retain_until_at)
#: Covers the legal search (date range, amount range, counterparty): see edoc.catalog.search.
sa.Index("ix_versions_search", versions.c.transaction_date, versions.c.amount,
         versions.c.counterparty_norm, versions.c.record_id, versions.c.version)
#: A fragment search with a limit (``edoc.catalog.search``): the search's own order with the
#: name, so that a fragment most versions match walks the dates and stops at the limit...
sa.Index("ix_versions_order", versions.c.transaction_date, versions.c.record_id,
         versions.c.version, versions.c.counterparty_norm)
#: ...and one few versions match reads each matching name's versions (in a date range) from
#: the index alone, and sorts only their keys.
sa.Index("ix_versions_cp_search", versions.c.counterparty_norm, versions.c.transaction_date,
         versions.c.amount, versions.c.record_id, versions.c.version)

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

#: Versions being written (the commit protocol, ``edoc.services.commit``): reserved here
#: before any object is stored, deleted by the transaction that catalogues the version. A
#: row whose writer died is finished or dropped by the next run
#: (``edoc.services.commit.recover_intents``).
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

#: The NTA register of qualified invoice issuers (適格請求書発行事業者), as last imported
#: (``edoc registry import``, ``edoc.catalog.registry``): one row per row of the NTA's 全件データ
#: file, history rows included. Not evidence and not in the store: ``catalog rebuild`` leaves
#: it empty and it is imported again. No address of an individual (kind 1) is kept.
registry_entries = sa.Table(
    "registry_entries", metadata,
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("number", sa.String(14), nullable=False),
    sa.Column("process", sa.String(2), nullable=False),
    sa.Column("correct", sa.SmallInteger, nullable=False),
    sa.Column("kind", sa.SmallInteger, nullable=False),
    sa.Column("latest", sa.SmallInteger, nullable=False),
    sa.Column("registration_date", sa.String(10)),
    sa.Column("update_date", sa.String(10)),
    sa.Column("disposal_date", sa.String(10)),
    sa.Column("expire_date", sa.String(10)),
    sa.Column("name", sa.Text),
    sa.Column("trade_name", sa.Text),
    #: the head office address, corporations (kind 2) only
    sa.Column("address", sa.Text),
)
#: One lookup is one search of this index: the number, its latest=1 row first, then by sequence.
sa.Index("ix_registry_number", registry_entries.c.number, registry_entries.c.latest,
         registry_entries.c.seq)

#: Each import of the register: the newest row describes the one held.
registry_imports = sa.Table(
    "registry_imports", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("as_of", sa.String(10), nullable=False),
    sa.Column("imported_at", sa.String(40), nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("numbers", sa.BigInteger, nullable=False),
    #: JSON list of {"name", "sha256", "size", "rows"}
    sa.Column("files", sa.Text, nullable=False),
)

#: Accounts of the web viewer (``edoc serve``, ``edoc user add``: ``edoc.catalog.accounts``):
#: an argon2 hash, never a password; the failed-login count and lock-out live here so that a
#: restart does not reset them. Not evidence and not in the store: ``catalog rebuild`` leaves
#: the table empty and accounts are added again.
web_accounts = sa.Table(
    "web_accounts", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    #: auditor | staff | admin (``edoc.policy.roles`` decides what each may do)
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("disabled_at", sa.String(40)),
    sa.Column("failed_logins", sa.Integer, nullable=False, default=0),
    sa.Column("locked_until", sa.String(40)),
    sa.Column("last_login_at", sa.String(40)),
)

#: Sessions of the web viewer: the SHA-256 of the cookie's token (the token itself is never
#: stored), its account, its CSRF token and when it expires.
web_sessions = sa.Table(
    "web_sessions", metadata,
    sa.Column("token_sha256", sa.String(64), primary_key=True),
    sa.Column("account", sa.String(64), nullable=False, index=True),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("expires_at", sa.String(40), nullable=False),
)
#: the web viewer's tables, created on an older catalog by ``upgrade``
WEB_TABLES = (web_accounts, web_sessions)
#: The full text of a record's current content (``edoc.services.fulltext``): derived, not
#: evidence — never sealed, never in the store; ``catalog rebuild`` re-derives it from the
#: stored content and a purge deletes it with the record. One row per record: the text of
#: its latest version that has content (``version``).
texts = sa.Table(
    "texts", metadata,
    sa.Column("record_id", sa.String(32), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    #: einvoice | pdf-text | ocr
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("pages", sa.Integer, nullable=False),
    #: mean OCR word confidence, 0..1 (None: no OCR)
    sa.Column("confidence", sa.Float),
    #: as extracted (pages separated by a form feed)
    sa.Column("text", sa.Text, nullable=False),
    #: ``normalise_text``: what ``search --text`` matches
    sa.Column("text_norm", sa.Text, nullable=False),
    sa.Column("derived_at", sa.String(40), nullable=False),
)
#: The postings of ``texts``: each distinct character (unigram) and pair of adjacent
#: characters (bigram) of a record's normalised text. A trigram index cannot answer a one- or
#: two-character query (東, ガス: short Japanese names are the common case); with unigrams
#: and bigrams every fragment is an index lookup, then confirmed by ``LIKE`` on the few
#: candidates.
text_grams = sa.Table(
    "text_grams", metadata,
    sa.Column("gram", sa.String(2), nullable=False),
    sa.Column("record_id", sa.String(32), nullable=False),
    sa.PrimaryKeyConstraint("gram", "record_id"),
    # ~200 postings per e-invoice: on SQLite the primary key is the table itself, not an
    # index beside a rowid table (a third less written per posting, the catalog ~1/3
    # smaller; BENCHMARKS.md, 2026-12-07 afternoon). A catalog made before keeps its rowid
    # table, which answers the same statements. PostgreSQL ignores the option.
    sqlite_with_rowid=False,
)
sa.Index("ix_text_grams_record", text_grams.c.record_id)
#: Tables added since the first release that ``upgrade`` creates in an older catalog.
ADDED_TABLES = (texts, text_grams)

#: Who holds an archive-wide lock of a PostgreSQL catalog (``edoc.catalog.coordination``):
#: ``purge`` (host, pid, since — for a second purge's refusal) and ``local-store`` (the
#: host and directory whose local store the catalog indexes). Not evidence: rebuild leaves
#: it empty.
lock_holders = sa.Table(
    "lock_holders", metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("holder", sa.Text, nullable=False),
    sa.Column("since", sa.String(40), nullable=False),
)

SEARCH_COLUMNS = ("doc_type", "transaction_date", "amount", "counterparty", "ledger_ref")


def normalise_text(text: str) -> str:
    """Full text as ``search --text`` matches it: NFKC + case folding, white space removed
    (OCR and PDF text layers break lines and space characters arbitrarily, and Japanese
    has no spaces between words)."""
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


def normalise_counterparty(name: str) -> str:
    """NFKC + case folding: ｶﾌﾞｼｷｶﾞｲｼｬ, カブシキガイシャ and full-width Latin compare equal."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def dialect_insert(dialect: str) -> Any:
    """``insert`` of the dialect, for ``on_conflict_do_nothing`` (SQLite and PostgreSQL)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def schema_names(conn: Connection) -> set[str]:
    """Names of the tables, indexes and triggers the catalog holds."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return {str(n) for (n,) in conn.exec_driver_sql("SELECT name FROM sqlite_master")}
    if dialect == "postgresql":
        return {str(n) for (n,) in conn.exec_driver_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "UNION SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
            "UNION SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace")}
    inspector = sa.inspect(conn)
    names = set(inspector.get_table_names())
    for table in ("versions", "records"):
        if table in names:
            names.update(str(ix["name"]) for ix in inspector.get_indexes(table))
    return names


def counterparty_names_kept(conn: Connection) -> bool:
    """Whether ``counterparties`` exists and its trigger keeps it complete."""
    dialect = conn.dialect.name
    return dialect in _UPKEEP_NAMES and _UPKEEP_NAMES[dialect] <= schema_names(conn)


def create(conn: Connection) -> None:
    """Inside a write transaction: every table and index of an empty catalog."""
    metadata.create_all(conn)
    conn.execute(schema_info.insert().values(version=SCHEMA_VERSION))
    keep_counterparty_names(conn)


def stored_version(conn: Connection) -> Any:
    """The schema version the catalog says it has (its last migration's number)."""
    return conn.execute(sa.select(sa.func.max(schema_info.c.version))).scalar()


def upgrade(conn: Connection) -> None:
    """Inside a write transaction: bring an older catalog up to date — the numbered
    migrations of ``edoc.catalog.migrations`` past its ``schema_info.version`` (indexes
    added since, the e-invoice columns, the registry tables, the ``counterparties`` table
    and its trigger), then any table of this schema it lacks. Cheap when nothing is
    missing (a read of ``schema_info`` and of the schema's names)."""
    from edoc.catalog import migrations

    migrations.upgrade(conn)


def keep_counterparty_names(conn: Connection) -> None:
    """The ``counterparties`` table, its trigger, and its names backfilled from
    ``versions`` in the same transaction, so a search never sees the table half filled.
    Nothing on a dialect without a trigger (search then scans versions) or when present."""
    dialect = conn.dialect.name
    if dialect not in _UPKEEP_DDL:
        return  # no trigger: search scans versions, as before the table existed
    if _UPKEEP_NAMES[dialect] <= schema_names(conn):
        return
    counterparties.create(conn, checkfirst=True)
    for ddl in _UPKEEP_DDL[dialect]:
        conn.exec_driver_sql(ddl)
    insert = dialect_insert(dialect)
    conn.execute(insert(counterparties).from_select(
        ["name"], sa.select(versions.c.counterparty_norm).distinct()
        .where(versions.c.counterparty_norm.is_not(None))).on_conflict_do_nothing())


def columns_missing(conn: Connection) -> bool:
    """Whether ``versions`` lacks a column of ``ADDED_COLUMNS`` (an older catalog)."""
    have = {str(col["name"]) for col in sa.inspect(conn).get_columns("versions")}
    return not set(ADDED_COLUMNS) <= have


def add_columns(conn: Connection) -> None:
    """``ALTER TABLE versions ADD COLUMN`` for each of ``ADDED_COLUMNS`` an older catalog
    lacks (before the indexes on them are created)."""
    have = {str(col["name"]) for col in sa.inspect(conn).get_columns("versions")}
    for name in ADDED_COLUMNS:
        if name not in have:
            col = versions.c[name]
            kind = col.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE versions ADD COLUMN {name} {kind}")
