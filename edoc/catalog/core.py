"""``Catalog``: the one object services hold, and ``Transaction``, its typed write
transaction.

``Catalog`` is the engine (``edoc.catalog.engine``) plus the operations of each concern
module (records, search, ledger, holds, disposal, access); each of those runs in a
transaction of its own. When a service needs several statements in one transaction (a
checkpoint, a page of a purge) it opens ``catalog.transaction()`` and calls the typed
operations of ``Transaction`` on it — never a connection or a table.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from edoc.catalog import schema
from edoc.catalog.access import AccessReads, AccessWrites
from edoc.catalog.disposal import DisposalReads, DisposalSelection
from edoc.catalog.holds import HoldReads
from edoc.catalog.ledger import LedgerReads, LedgerWrites
from edoc.catalog.records import RecordReads
from edoc.catalog.search import SearchReads


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

    def load(self, rows: dict[str, Sequence[dict[str, Any]]]) -> None:
        """Bulk-insert ``rows`` by table name (in the order given), in one transaction:
        ``catalog rebuild`` filling a fresh catalog."""
        with self.write() as c:
            for name, table_rows in rows.items():
                if table_rows:
                    c.execute(schema.metadata.tables[name].insert(), list(table_rows))
