"""Where things live in the object store (the store alone must be enough to rebuild the
catalog, DESIGN.md "Storage")::

    records/<id>/v<n>/content        the document bytes, exactly as received
    records/<id>/v<n>/manifest.json  canonical manifest (what is sealed and logged)
    records/<id>/v<n>/manifest.p7s   CAdES seal of the manifest, when the profile asks
    ledger/<index>.json              one ledger leaf's event JSON (before segments; still read)
    ledger/segments/<first>.jsonl    a run of consecutive ledger leaves, one per line
                                     (edoc.evidence.ledger SEGMENT_SCHEMA; written since)
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


#: where ledger segments live (a prefix of ``ledger/``, so one listing finds both layouts)
LEDGER_SEGMENTS = "ledger/segments/"
_LEAF_KEY = re.compile(r"^ledger/([0-9]+)\.json$")
_SEGMENT_KEY = re.compile(r"^ledger/segments/([0-9]+)\.jsonl$")


def ledger_segment_key(first: int) -> str:
    return f"{LEDGER_SEGMENTS}{first:012d}.jsonl"


def ledger_object(key: str) -> tuple[str, int] | None:
    """What a key under ``ledger/`` holds: ("leaf", index) for one leaf's object,
    ("segment", first index) for a segment, None for anything else."""
    if (m := _LEAF_KEY.match(key)) is not None:
        return "leaf", int(m.group(1))
    if (m := _SEGMENT_KEY.match(key)) is not None:
        return "segment", int(m.group(1))
    return None


def checkpoint_key(tree_size: int, ext: str) -> str:
    return f"checkpoints/{tree_size:012d}.{ext}"


def disposal_key(run_id: str, ext: str) -> str:
    return f"disposals/{run_id}.{ext}"
