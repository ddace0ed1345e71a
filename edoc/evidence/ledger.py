"""The append-only ledger and its sealed, timestamped checkpoints.

Every event (ingest, correct, delete, hold, release, purge, renew) is one leaf: canonical
event JSON carrying ids and digests only — never document content or personal data — so a
purge never has to rewrite it. Tree hashing is RFC 9162 §2.1 (``edoc.evidence.merkle``).

A checkpoint is (tree size, root hash, time), sealed (CAdES) and RFC 3161 timestamped,
stored write-once under ``checkpoints/``. One TSA call covers every leaf before it: the
NTA accepts hash-tree stamping where each file verifies on its own (一問一答 問47), and each
record does, through its inclusion path.

This module is the evidence only (event entries, leaf hashes, the checkpoint document);
writing leaves and checkpoints over catalog, store and notary is
``edoc.services.checkpoint``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edoc.clock import utc_text
from edoc.evidence import merkle
from edoc.model import canonical

CHECKPOINT_SCHEMA = "edoc.checkpoint/1"
EVENT_SCHEMA = "edoc.event/1"


def event_entry(event_type: str, at: datetime, **fields: Any) -> bytes:
    body = {"schema": EVENT_SCHEMA, "event": event_type, "at": utc_text(at), **fields}
    return canonical.dumps(body)


def leaf_hex(entry: bytes) -> str:
    return merkle.leaf_hash(entry).hex()


@dataclass(frozen=True)
class CheckpointInfo:
    tree_size: int
    root_hash: str
    gen_time: datetime
    key: str


#: A checkpoint's three objects, in the order they are written: the JSON body last, so a
#: stored ``.json`` always has its seal and token beside it (``edoc ledger verify`` lists
#: checkpoints by their ``.json``).
CHECKPOINT_EXTS = ("tsr", "p7s", "json")


def checkpoint_document(*, archive_id: str, tree_size: int, root_hash: str,
                        created_at: datetime, previous: tuple[int, str] | None,
                        accredited: bool) -> bytes:
    """The canonical JSON of a checkpoint: the tree head (RFC 9162 §2.1) and the one before
    it, which the seal and the RFC 3161 token cover."""
    body: dict[str, Any] = {
        "schema": CHECKPOINT_SCHEMA,
        "archive_id": archive_id,
        "tree_size": tree_size,
        "root_hash": root_hash,
        "created_at": utc_text(created_at),
        "previous": ({"tree_size": previous[0], "root_hash": previous[1]}
                     if previous is not None else None),
        "hash": "sha256",
        "tree": "RFC 9162 section 2.1",
        "accredited": accredited,
    }
    return canonical.dumps(body)


# -- ledger segments: many leaves per stored object (format edoc.ledger-segment/1) -------------

#: The store layout of ledger leaves since this format: one write-once object per flushed
#: run of consecutive leaves (``ledger/segments/<first>.jsonl``), instead of one object per
#: leaf (``ledger/<index>.json``, still read: archives written before keep verifying).
SEGMENT_SCHEMA = "edoc.ledger-segment/1"


def segment_document(first: int, entries: list[bytes]) -> bytes:
    """One segment: a header line naming the format, the first leaf index and the count,
    then each leaf's event JSON exactly as hashed into the tree, one per line.

    Canonical JSON never holds a raw newline (control characters in strings are escaped,
    RFC 8259 §7), so a line is exactly one entry; the count in the header makes a segment
    cut short detectable."""
    header = canonical.dumps({"schema": SEGMENT_SCHEMA, "first": first,
                              "count": len(entries)})
    if any(b"\n" in e for e in entries):
        raise ValueError("a ledger entry holds a newline: not canonical JSON")
    return b"\n".join([header, *entries]) + b"\n"


def parse_segment(data: bytes) -> tuple[int, list[bytes]]:
    """(first index, entries) of a segment; ``ValueError`` when it is not a whole one."""
    if not data.endswith(b"\n"):
        raise ValueError("segment does not end with a newline (cut short)")
    header, *entries = data[:-1].split(b"\n")
    body = canonical.loads(header)
    if not isinstance(body, dict) or body.get("schema") != SEGMENT_SCHEMA:
        raise ValueError(f"not a {SEGMENT_SCHEMA} object")
    first, count = body.get("first"), body.get("count")
    if not isinstance(first, int) or not isinstance(count, int) or first < 0:
        raise ValueError("segment header lacks its first index or count")
    if count != len(entries):
        raise ValueError(f"segment header says {count} entries, {len(entries)} found")
    return first, entries
