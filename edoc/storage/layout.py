"""Where things live in the object store (the store alone must be enough to rebuild the
catalog, DESIGN.md "Storage")::

    records/<id>/v<n>/content        the document bytes, exactly as received
    records/<id>/v<n>/manifest.json  canonical manifest (what is sealed and logged)
    records/<id>/v<n>/manifest.p7s   CAdES seal of the manifest, when the profile asks
    ledger/<index>.json              one ledger leaf's event JSON
    checkpoints/<size>.json|.p7s|.tsr  sealed, timestamped tree head
    disposals/<run>.json|.p7s|.tsr   disposal certificates
"""

from __future__ import annotations

import re

RECORD_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def record_prefix(record_id: str, version: int) -> str:
    return f"records/{record_id}/v{version}/"


def content_key(record_id: str, version: int) -> str:
    return record_prefix(record_id, version) + "content"


def manifest_key(record_id: str, version: int) -> str:
    return record_prefix(record_id, version) + "manifest.json"


def manifest_seal_key(record_id: str, version: int) -> str:
    return record_prefix(record_id, version) + "manifest.p7s"


def ledger_key(index: int) -> str:
    return f"ledger/{index:012d}.json"


def checkpoint_key(tree_size: int, ext: str) -> str:
    return f"checkpoints/{tree_size:012d}.{ext}"


def disposal_key(run_id: str, ext: str) -> str:
    return f"disposals/{run_id}.{ext}"
