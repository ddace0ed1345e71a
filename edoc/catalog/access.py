"""The access log's rows (機密性: who read what, and when).

Reads are rows here; at each checkpoint the rows added since the last ``access-log`` leaf
are digested into one (``edoc.services.checkpoint``), which is how far they were logged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from edoc.catalog.engine import CatalogEngine, TransactionBase
from edoc.catalog.schema import access_log, ledger
from edoc.clock import utc_text


@dataclass(frozen=True, slots=True)
class AccessRow:
    """A row of ``access_log``, its JSON columns as stored."""

    id: int
    at: str
    actor: str
    action: str
    record_ids: str
    detail: str | None


class AccessReads(CatalogEngine):
    def log_access(self, *, actor: str, action: str, record_ids: Sequence[str],
                   detail: dict[str, Any] | None = None, at: datetime) -> None:
        with self.write() as c:
            c.execute(access_log.insert().values(
                at=utc_text(at), actor=actor, action=action,
                record_ids=json.dumps(list(record_ids)),
                detail=json.dumps(detail, ensure_ascii=False, sort_keys=True) if detail else None))


class AccessWrites(TransactionBase):
    def pending_access_rows(self) -> list[AccessRow]:
        """Rows not yet covered by an ``access-log`` leaf."""
        last = 0
        for (entry,) in self.conn.execute(sa.select(ledger.c.entry).where(
                ledger.c.event == "access-log").order_by(ledger.c.idx.desc()).limit(1)):
            last = int(json.loads(entry)["to_id"])
        return [AccessRow(**r._mapping) for r in self.conn.execute(
            sa.select(access_log).where(access_log.c.id > last).order_by(access_log.c.id))]
