"""``Catalog``: the one object services hold, and ``Transaction``, its typed write
transaction.

``Catalog`` is the engine (``edoc.catalog.engine``) plus the operations of each concern
module (records, search, ledger, holds, disposal, access); each of those runs in a
transaction of its own. When a service needs several statements in one transaction (a
checkpoint, a page of a purge) it opens ``catalog.transaction()`` and calls the typed
operations of ``Transaction`` on it — never a connection or a table.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from edoc.catalog import schema
from edoc.catalog.access import AccessReads, AccessWrites
from edoc.catalog.disposal import DisposalReads, DisposalSelection
from edoc.catalog.engine import WRITE_LOCK_KEY
from edoc.catalog.holds import HoldReads
from edoc.catalog.ledger import LedgerReads, LedgerWrites
from edoc.catalog.records import RecordReads
from edoc.catalog.search import SearchReads
from edoc.errors import CatalogError


class Transaction(LedgerWrites, AccessWrites, DisposalSelection):
    """The typed operations of one open catalog transaction."""


class Catalog(RecordReads, SearchReads, LedgerReads, HoldReads, DisposalReads, AccessReads):
    """Owns the catalog connection(s); every write goes through ``write()``."""

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One write transaction (``BEGIN IMMEDIATE``; on PostgreSQL the archive-wide
        advisory write lock, ``edoc.catalog.engine``): committed when the block ends,
        rolled back if it raises."""
        with self.write() as conn:
            yield Transaction(conn)

    @contextmanager
    def snapshot(self) -> Iterator[Transaction]:
        """One read transaction, for reads that must see one state (WAL snapshot)."""
        with self.read(consistent=True) as conn:
            yield Transaction(conn)

    def replace_all(self, rows: Mapping[str, Sequence[dict[str, Any]]], *, stamp: str
                    ) -> str | None:
        """PostgreSQL ``catalog rebuild``: in one transaction under the write lock, move
        the tables there are into a schema ``edoc_replaced_<stamp>`` (kept, as SQLite keeps
        the replaced file), create a fresh catalog and ``load`` ``rows``. Readers see the
        old catalog or the new one, never a half-filled one (DDL is transactional there).
        Returns the schema the old tables went to (None: there were none)."""
        if not self.is_postgresql:
            raise CatalogError("replace_all is the PostgreSQL rebuild", code="CATALOG_ERROR")
        replaced = None
        with self.engine.connect() as conn, conn.begin():
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")
            present = sorted(schema.schema_names(conn) & set(schema.metadata.tables))
            if present:
                replaced = f"edoc_replaced_{stamp}".lower()
                conn.exec_driver_sql(f'CREATE SCHEMA "{replaced}"')
                for name in present:  # names from the schema, none from input
                    conn.exec_driver_sql(f'ALTER TABLE "{name}" SET SCHEMA "{replaced}"')
            schema.create(conn)
            _load(conn, rows)
        self._upgraded, self._names_ready = True, None
        return replaced

    def load(self, rows: Mapping[str, Sequence[dict[str, Any]]]) -> None:
        """Bulk-insert ``rows`` by table name (in the order given), in one transaction:
        ``catalog rebuild`` filling a fresh catalog."""
        with self.write() as c:
            _load(c, rows)


def _load(conn: Any, rows: Mapping[str, Sequence[dict[str, Any]]]) -> None:
    for name, table_rows in rows.items():
        if table_rows:
            conn.execute(schema.metadata.tables[name].insert(), list(table_rows))
    fix_sequences(conn, {name for name, table_rows in rows.items() if table_rows})


def fix_sequences(conn: Any, filled: set[str]) -> None:
    """After rows were inserted with their own ids (rebuild, migrate): on PostgreSQL move
    each serial column's sequence past them, or the next insert would reuse an id."""
    if conn.dialect.name == "postgresql":
        for table in schema.metadata.sorted_tables:
            for col in table.columns:
                if col.autoincrement is True and col.primary_key and table.name in filled:
                    sql = (f"SELECT setval(pg_get_serial_sequence('{table.name}', "  # noqa: S608
                           f"'{col.name}'), GREATEST((SELECT max({col.name}) FROM "
                           f"{table.name}), 1))")  # the schema's own names, none from input
                    conn.exec_driver_sql(sql)
