"""The catalog reads of verification, the ledger audit and evidence bundles, as typed rows.

``edoc verify``, ``edoc ledger verify|prove|consistency|checkpoints``, ``edoc access-log``
and ``edoc evidence`` read the ledger, the checkpoints and the access log; their statements
live here so that the services and the bundle writer never build SQL themselves (only
``edoc.catalog`` imports SQLAlchemy). Every function takes the ``Catalog`` and returns plain
values or frozen dataclasses, never SQLAlchemy rows. Long reads are generators that hold one
read connection while they are consumed: the ledger can hold millions of entries, and
verification keeps only their leaf hashes.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import sqlalchemy as sa

from edoc.catalog.access import AccessRow
from edoc.catalog.core import Catalog
from edoc.catalog.ledger import CheckpointRow, LedgerEntry
from edoc.catalog.schema import access_log, checkpoints, ledger


def ledger_texts(catalog: Catalog, *, after: int | None = None, before: int | None = None
                 ) -> Generator[tuple[int, str], None, None]:
    """(index, entry text) of the ledger entries with ``after < idx < before``, in index
    order (either bound optional)."""
    stmt = sa.select(ledger.c.idx, ledger.c.entry).order_by(ledger.c.idx)
    if after is not None:
        stmt = stmt.where(ledger.c.idx > after)
    if before is not None:
        stmt = stmt.where(ledger.c.idx < before)
    with catalog.read() as c:
        for idx, entry in c.execute(stmt):
            yield int(idx), str(entry)


def ledger_rows(catalog: Catalog) -> list[LedgerEntry]:
    """Every ledger entry, in index order."""
    with catalog.read() as c:
        return [LedgerEntry(**r._mapping)
                for r in c.execute(sa.select(ledger).order_by(ledger.c.idx))]


def checkpoint_rows(catalog: Catalog) -> list[CheckpointRow]:
    """Every checkpoint the catalog records, by tree size."""
    with catalog.read() as c:
        return [CheckpointRow(**r._mapping)
                for r in c.execute(sa.select(checkpoints).order_by(checkpoints.c.tree_size))]


def _access(r: Any) -> AccessRow:
    return AccessRow(**r._mapping)


def access_rows(catalog: Catalog, date_from: str | None = None, date_to: str | None = None
                ) -> Iterator[AccessRow]:
    """Access-log entries with ``date_from <= at`` and ``at`` on or before the day
    ``date_to`` (ISO dates, either optional), in id order."""
    stmt = sa.select(access_log).order_by(access_log.c.id)
    if date_from:
        stmt = stmt.where(access_log.c.at >= date_from)
    if date_to:
        stmt = stmt.where(access_log.c.at < date_to + "T99")  # whole last day
    with catalog.read() as c:
        for r in c.execute(stmt):
            yield _access(r)


def access_range(catalog: Catalog, from_id: int, to_id: int) -> list[AccessRow]:
    """Access-log entries ``from_id..to_id`` (inclusive), in id order."""
    with catalog.read() as c:
        return [_access(r) for r in c.execute(
            sa.select(access_log).where(access_log.c.id >= from_id, access_log.c.id <= to_id)
            .order_by(access_log.c.id))]
