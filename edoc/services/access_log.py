"""The access log (機密性: who read what, and when) and how it enters the ledger.

Reads (search, show, get, evidence, export) are rows in the catalog. At each checkpoint the
rows added since the last one are digested into an ``access-log`` ledger leaf, and the rows
themselves are stored beside the checkpoint (``access-log/<first id>.json``, written by
``edoc.services.checkpoint``), so the access history is tamper-evident and survives a
catalog rebuild.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from edoc.catalog import AccessRow, Catalog
from edoc.model import canonical


def row_dict(r: Any) -> dict[str, Any]:
    return {"id": r.id, "at": r.at, "actor": r.actor, "action": r.action,
            "record_ids": json.loads(r.record_ids),
            "detail": json.loads(r.detail) if r.detail else None}


def rows_document(rows: list[Any]) -> bytes:
    """The canonical bytes of ``rows``: stored as they are, and what the leaf digests."""
    return canonical.dumps([row_dict(r) for r in rows])


def rows_digest(rows: list[Any]) -> str:
    return hashlib.sha256(rows_document(rows)).hexdigest()


def pending_rows(catalog: Catalog) -> list[AccessRow]:
    """Rows not yet covered by an ``access-log`` leaf."""
    with catalog.snapshot() as tx:
        return tx.pending_access_rows()


def event_fields(rows: list[Any]) -> dict[str, Any]:
    """The fields of the ``access-log`` leaf covering ``rows`` (ids and a digest only)."""
    return {"from_id": rows[0].id, "to_id": rows[-1].id, "count": len(rows),
            "sha256": rows_digest(rows)}
