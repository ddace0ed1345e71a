"""Ledger leaves and checkpoints in the catalog: their rows, and the statements over them.

The ledger's index is assigned here only (``append_ledger_many``): it must be atomic with
the insert, inside the caller's write transaction (``BEGIN IMMEDIATE``, see
``edoc.catalog.engine``), or two writers would take the same index. What a leaf or a
checkpoint *means* (event JSON, RFC 9162 leaf hashes, the checkpoint document) is
``edoc.evidence.ledger``; this module only stores and finds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edoc.catalog.engine import CatalogEngine, TransactionBase
from edoc.catalog.schema import checkpoints, ledger, versions

LEDGER_TOP = sa.select(sa.func.max(ledger.c.idx))
INSERT_LEDGER = ledger.insert()


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """A row of ``ledger``: one leaf, its event JSON and whether it is in the store."""

    idx: int
    event: str
    record_id: str | None
    version: int | None
    leaf_hash: str
    entry: str
    stored: bool


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    """A row of ``checkpoints``: a sealed, timestamped tree head and its store key."""

    tree_size: int
    root_hash: str
    created_at: str
    gen_time: str
    key: str

    def as_dict(self) -> dict[str, Any]:
        return {"tree_size": self.tree_size, "root_hash": self.root_hash,
                "created_at": self.created_at, "gen_time": self.gen_time, "key": self.key}


@dataclass(frozen=True, slots=True)
class LedgerState:
    """What of the ledger waits for the store or a checkpoint (steps 4-5 of the commit
    protocol, ``edoc.services.commit``)."""

    #: leaves not yet written to the store
    unstored: int
    #: rows in ``ledger``
    leaves: int
    #: the index the next leaf gets (``leaves`` unless the ledger has a gap)
    next_index: int
    #: the largest checkpointed tree size (0: none)
    checkpointed: int


def _checkpoint(row: Any) -> CheckpointRow | None:
    return None if row is None else CheckpointRow(**row._mapping)


def next_ledger_index(conn: Connection) -> int:
    top = conn.execute(LEDGER_TOP).scalar()
    return 0 if top is None else int(top) + 1


def append_ledger(conn: Connection, *, event_type: str, entry: str, leaf_hash: str,
                  record_id: str | None = None, version: int | None = None) -> int:
    return append_ledger_many(conn, [{
        "event": event_type, "entry": entry, "leaf_hash": leaf_hash,
        "record_id": record_id, "version": version}])


def append_ledger_many(conn: Connection, leaves: Sequence[dict[str, Any]]) -> int:
    """Append ``leaves`` (``event``, ``entry``, ``leaf_hash``, ``record_id``,
    ``version``) at the next ledger indices, in order, inside the caller's write
    transaction; returns the first index. Index assignment lives here only: it must be
    atomic with the insert (module docstring)."""
    first = next_ledger_index(conn)
    conn.execute(INSERT_LEDGER, [
        {"idx": first + n, "stored": False, "record_id": None, "version": None, **leaf}
        for n, leaf in enumerate(leaves)])
    return first


def longest_retention(conn: Connection) -> datetime | None:
    """The latest retain-until of any version: how long ledger evidence must be kept."""
    latest = conn.execute(sa.select(sa.func.max(versions.c.retain_until_at))).scalar()
    return datetime.fromisoformat(str(latest)) if latest else None


def latest_checkpoint(conn: Connection) -> CheckpointRow | None:
    return _checkpoint(conn.execute(
        sa.select(checkpoints).order_by(checkpoints.c.tree_size.desc()).limit(1)).first())


class LedgerReads(CatalogEngine):
    """Reads of the ledger and checkpoints, each in its own read transaction."""

    # Kept as static methods of ``Catalog`` for callers written against it.
    next_ledger_index = staticmethod(next_ledger_index)
    append_ledger = staticmethod(append_ledger)
    append_ledger_many = staticmethod(append_ledger_many)

    def checkpoint_sizes(self) -> list[int]:
        """Every checkpoint's tree size, ascending."""
        with self.read() as c:
            return [int(n) for (n,) in c.execute(
                sa.select(checkpoints.c.tree_size).order_by(checkpoints.c.tree_size))]

    def ledger_entry(self, idx: int) -> LedgerEntry | None:
        with self.read() as c:
            row = c.execute(sa.select(ledger).where(ledger.c.idx == idx)).first()
        return None if row is None else LedgerEntry(**row._mapping)

    def checkpoint_covering(self, ledger_index: int) -> CheckpointRow | None:
        stmt = (sa.select(checkpoints).where(checkpoints.c.tree_size > ledger_index)
                .order_by(checkpoints.c.tree_size).limit(1))
        with self.read() as c:
            return _checkpoint(c.execute(stmt).first())

    def latest_checkpoint(self) -> CheckpointRow | None:
        with self.read() as c:
            return latest_checkpoint(c)

    def ledger_state(self) -> LedgerState:
        with self.read() as c:
            unstored = c.execute(sa.select(sa.func.count()).select_from(ledger)
                                 .where(ledger.c.stored.is_(False))).scalar() or 0
            leaves = c.execute(sa.select(sa.func.count()).select_from(ledger)).scalar() or 0
            size = next_ledger_index(c)
            top = c.execute(sa.select(sa.func.max(checkpoints.c.tree_size))).scalar() or 0
        return LedgerState(int(unstored), int(leaves), size, int(top))

    def first_unstored_leaf(self) -> int | None:
        """The lowest index of a leaf not yet in the store."""
        with self.read() as c:
            first = c.execute(sa.select(ledger.c.idx).where(ledger.c.stored.is_(False))
                              .order_by(ledger.c.idx).limit(1)).scalar()
        return None if first is None else int(first)

    def unstored_leaves(self, after: int, limit: int) -> list[tuple[int, str]]:
        """(index, entry) of up to ``limit`` leaves past ``after`` not yet in the store."""
        with self.read() as c:
            return [(int(idx), str(entry)) for idx, entry in c.execute(
                sa.select(ledger.c.idx, ledger.c.entry)
                .where(ledger.c.stored.is_(False), ledger.c.idx > after)
                .order_by(ledger.c.idx).limit(limit))]

    def mark_leaves_stored(self, indices: Sequence[int]) -> None:
        with self.write() as c:
            c.execute(ledger.update().where(ledger.c.idx.in_(list(indices)))
                      .values(stored=True))

    def entries_of_event(self, event_type: str) -> list[tuple[int, str]]:
        """(index, entry) of every leaf of ``event_type``, in ledger order."""
        with self.read() as c:
            return [(int(idx), str(entry)) for idx, entry in c.execute(
                sa.select(ledger.c.idx, ledger.c.entry).where(ledger.c.event == event_type)
                .order_by(ledger.c.idx))]

    def longest_retention(self, *, undisposed: bool = False) -> datetime | None:
        """The latest retain-until of any version (``undisposed``: of versions not purged)."""
        stmt = sa.select(sa.func.max(versions.c.retain_until_at))
        if undisposed:
            stmt = stmt.where(versions.c.disposed_at.is_(None))
        with self.read() as c:
            latest = c.execute(stmt).scalar()
        return datetime.fromisoformat(str(latest)) if latest else None

    def append_leaves(self, leaves: Sequence[dict[str, Any]]) -> int:
        """``append_ledger_many`` in a transaction of its own; the first index."""
        with self.write() as c:
            return append_ledger_many(c, leaves)


class LedgerWrites(TransactionBase):
    """Ledger and checkpoint operations inside one write transaction."""

    def next_ledger_index(self) -> int:
        return next_ledger_index(self.conn)

    def append_leaf(self, *, event_type: str, entry: str, leaf_hash: str,
                    record_id: str | None = None, version: int | None = None) -> int:
        return append_ledger(self.conn, event_type=event_type, entry=entry,
                             leaf_hash=leaf_hash, record_id=record_id, version=version)

    def append_leaves(self, leaves: Sequence[dict[str, Any]]) -> int:
        return append_ledger_many(self.conn, leaves)

    def leaf_hashes(self, size: int) -> list[bytes]:
        """The leaf hashes of the tree of ``size`` leaves, in index order."""
        return [bytes.fromhex(h) for (h,) in self.conn.execute(
            sa.select(ledger.c.leaf_hash).where(ledger.c.idx < size).order_by(ledger.c.idx))]

    def latest_checkpoint(self) -> CheckpointRow | None:
        return latest_checkpoint(self.conn)

    def checkpoint(self, tree_size: int) -> CheckpointRow:
        row = self.conn.execute(sa.select(checkpoints)
                                .where(checkpoints.c.tree_size == tree_size)).one()
        return CheckpointRow(**row._mapping)

    def add_checkpoint(self, *, tree_size: int, root_hash: str, created_at: str,
                       gen_time: str, key: str) -> None:
        self.conn.execute(checkpoints.insert().values(
            tree_size=tree_size, root_hash=root_hash, created_at=created_at,
            gen_time=gen_time, key=key))

    def longest_retention(self) -> datetime | None:
        return longest_retention(self.conn)
