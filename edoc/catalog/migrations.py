"""Numbered schema migrations: one mechanism for SQLite and PostgreSQL catalogs.

``schema_info.version`` holds the number of the last migration a catalog has had. A new
catalog is made at the newest schema in one go (``schema.create``) and stamped with
``SCHEMA_VERSION``; an older one is brought up to date by the first write transaction of
each ``Catalog`` (``upgrade``), which runs every migration past its number, in order, in
that one transaction — on PostgreSQL DDL is transactional, so a failed upgrade leaves the
catalog as it was; on SQLite the steps are each idempotent, so a rerun finishes the job.

Catalogs made before the numbering (every edoc up to 0.1.x, tests/fixtures'
legacy-archive-0.1.0 among them) say version 1 whatever they hold: some already have the
later tables, columns or indexes. So each step creates only what is missing.

A migration never rewrites evidence: the catalog is an index (``edoc catalog rebuild``
recreates it from the store), and a step may only add tables, columns, indexes, triggers,
or fill a derived table from rows already there.

To change the schema: add the table/column to ``edoc.catalog.schema``, append a
``Migration`` here with the next number, and raise ``schema.SCHEMA_VERSION`` to it. A new
*table* alone needs no step: ``upgrade`` creates any table of the schema a catalog lacks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edoc.catalog import schema


@dataclass(frozen=True, slots=True)
class Migration:
    number: int
    title: str
    apply: Callable[[Connection], None]


def _baseline(conn: Connection) -> None:
    """1: the first release's tables (a catalog at version 1 has them)."""


def _registry_tables(conn: Connection) -> None:
    present = schema.schema_names(conn)
    for table in (schema.registry_entries, schema.registry_imports):  # `edoc registry`
        if table.name not in present:
            table.create(conn)


def _einvoice_columns(conn: Connection) -> None:
    schema.add_columns(conn)


def _versions_indexes(conn: Connection) -> None:
    # ix_versions_search: ~1 s per million rows, once
    present = schema.schema_names(conn)
    for ix in sorted(schema.versions.indexes, key=lambda i: str(i.name)):
        if ix.name not in present:
            ix.create(conn)


def _records_indexes(conn: Connection) -> None:
    # ix_records_live: under a second per million records, once
    present = schema.schema_names(conn)
    for ix in sorted(schema.records.indexes, key=lambda i: str(i.name)):
        if ix.name not in present:
            ix.create(conn)


def _counterparty_names(conn: Connection) -> None:
    schema.keep_counterparty_names(conn)


def _lock_holders(conn: Connection) -> None:
    schema.lock_holders.create(conn, checkfirst=True)


def _web_viewer_tables(conn: Connection) -> None:
    for table in schema.WEB_TABLES:  # `edoc serve`, `edoc user add`
        table.create(conn, checkfirst=True)


def _full_text_tables(conn: Connection) -> None:
    for table in schema.ADDED_TABLES:  # the derived full text (search --text)
        table.create(conn, checkfirst=True)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "the first release's tables", _baseline),
    Migration(2, "the NTA register tables (edoc registry)", _registry_tables),
    Migration(3, "e-invoice number and registration number columns", _einvoice_columns),
    Migration(4, "the legal-search and e-invoice indexes of versions", _versions_indexes),
    Migration(5, "the counterparties table of distinct names and its trigger",
              _counterparty_names),
    Migration(6, "lock_holders: who holds an archive-wide lock (PostgreSQL coordination)",
              _lock_holders),
    Migration(7, "web_accounts and web_sessions: the web viewer's accounts", _web_viewer_tables),
    Migration(8, "texts and text_grams: the derived full text and its index", _full_text_tables),
    Migration(9, "ix_records_live: a record's state and latest version from an index",
              _records_indexes),
)
assert [m.number for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
assert MIGRATIONS[-1].number == schema.SCHEMA_VERSION, "raise schema.SCHEMA_VERSION"


def stored_version(conn: Connection) -> int | None:
    """The catalog's migration number (None: no ``schema_info`` row)."""
    found = conn.execute(sa.select(sa.func.max(schema.schema_info.c.version))).scalar()
    return None if found is None else int(found)


def pending(conn: Connection) -> list[Migration]:
    """The migrations a catalog has not had yet."""
    found = stored_version(conn) or 0
    return [m for m in MIGRATIONS if m.number > found]


def upgrade(conn: Connection) -> list[int]:
    """Inside a write transaction: run the pending migrations in order and stamp the
    catalog; then create whatever derived object of the schema it still lacks — a table
    added without a migration of its own, an index of ``versions``, the counterparty
    trigger (a catalog whose index was dropped by hand regains it). Returns the numbers
    run. Cheap when nothing is missing (a read of ``schema_info`` and of the names)."""
    present = schema.schema_names(conn)
    if "versions" not in present:
        return []  # an empty database: schema.create makes everything
    ran: list[int] = []
    for m in pending(conn):
        m.apply(conn)
        ran.append(m.number)
    if ran:
        conn.execute(schema.schema_info.update().values(version=ran[-1]))
        present = schema.schema_names(conn)
    missing = [t for t in schema.metadata.sorted_tables if t.name not in present]
    if missing:
        schema.metadata.create_all(conn, tables=missing)
    if any(ix.name not in present for ix in schema.versions.indexes):
        _versions_indexes(conn)
    if any(ix.name not in present for ix in schema.records.indexes):
        _records_indexes(conn)
    schema.keep_counterparty_names(conn)  # nothing when its names are all present
    return ran
