"""Legal holds: placed and released per record, each with its ledger leaf.

A hold freezes disposal however old the record is; purge checks ``holds`` when it selects
and again just before it deletes (``edoc.catalog.disposal``).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from edoc.catalog.engine import CatalogEngine
from edoc.catalog.ledger import append_ledger
from edoc.catalog.schema import holds


@dataclass(frozen=True, slots=True)
class HoldRow:
    """A row of ``holds`` (field order is the table's: ``list_holds`` emits it as is)."""

    id: int
    record_id: str
    reason: str
    case_ref: str | None
    actor: str
    placed_at: str
    released_at: str | None
    release_reason: str | None
    released_by: str | None


class HoldReads(CatalogEngine):
    def place_hold(self, record_id: str, *, reason: str, case_ref: str | None, actor: str,
                   placed_at: str, entry: str, leaf_hash: str) -> int | None:
        """The hold and its ``hold`` leaf, in one transaction; the new hold's id."""
        with self.write() as c:
            inserted = c.execute(holds.insert().values(
                record_id=record_id, reason=reason, case_ref=case_ref, actor=actor,
                placed_at=placed_at)).inserted_primary_key
            hid = inserted[0] if inserted else None
            append_ledger(c, event_type="hold", entry=entry, leaf_hash=leaf_hash,
                          record_id=record_id)
        return hid

    def active_hold_ids(self, record_id: str) -> list[int]:
        with self.read() as c:
            return [int(h) for (h,) in c.execute(sa.select(holds.c.id).where(
                holds.c.record_id == record_id, holds.c.released_at.is_(None)))]

    def release_holds(self, record_id: str, *, released_at: str, reason: str, actor: str,
                      entry: str, leaf_hash: str) -> list[int]:
        """Release every active hold of ``record_id`` and log one ``release`` leaf, in one
        transaction; the ids released."""
        with self.write() as c:
            hold_ids = [h for (h,) in c.execute(sa.select(holds.c.id).where(
                holds.c.record_id == record_id, holds.c.released_at.is_(None)))]
            c.execute(holds.update().where(holds.c.id.in_(hold_ids))
                      .values(released_at=released_at, release_reason=reason,
                              released_by=actor))
            append_ledger(c, event_type="release", entry=entry, leaf_hash=leaf_hash,
                          record_id=record_id)
        return hold_ids

    def hold_rows(self, *, include_released: bool = True, by_placement: bool = False
                  ) -> list[HoldRow]:
        """Holds in id order (``by_placement``: in order placed)."""
        stmt = sa.select(holds).order_by(holds.c.placed_at if by_placement else holds.c.id)
        if not include_released:
            stmt = stmt.where(holds.c.released_at.is_(None))
        with self.read() as c:
            return [HoldRow(**r._mapping) for r in c.execute(stmt)]
