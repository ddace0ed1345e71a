"""Ledger leaves in the object store: written as segments, read in both layouts.

Step 4 of the commit protocol (``edoc.services.commit``) puts the leaves the catalog holds
but the store does not yet. Since format ``edoc.ledger-segment/1`` a flush writes each run
of consecutive unstored leaves (up to ``SEGMENT_LEAVES``) as **one** write-once object,
``ledger/segments/<first>.jsonl`` (``edoc.evidence.ledger.segment_document``), where it used
to write one object per leaf (``ledger/<index>.json``): on S3 one PUT per flush page instead
of one per record and per purged version (BENCHMARKS.md, issue 18). Archives written before
keep their leaf objects; both are read (``stored_ledger``), and an archive may hold both (a
leaf an old release stored but never marked is written again inside a segment).

Why leaves may share an object and manifests may not (docs/design-notes.md): a leaf holds
ids and digests only, never personal data, and is never deleted (it proves every record
before it, like a checkpoint), so packing leaves of records with different retention loses
nothing. Nothing is overwritten: a segment's key is its first index, and a retry after a
crash that finds that key taken reads the segment there, marks the leaves it holds and
writes the rest as the next segment (its key is the next first index).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from edoc.catalog import Catalog
from edoc.errors import EdocError, ObjectExists
from edoc.evidence.ledger import parse_segment, segment_document
from edoc.storage import layout
from edoc.storage.base import ObjectStore

#: Leaves per segment object (and per catalog transaction marking them stored): ~350 bytes
#: each, so a full segment is ~175 KB.
SEGMENT_LEAVES = 500


def write_segments(catalog: Catalog, store: ObjectStore, retain_until: datetime) -> int:
    """Write every leaf not yet in the store as segments and mark them stored; the number
    of leaves marked. A segment whose put failed leaves its leaves unmarked and raises."""
    first = catalog.first_unstored_leaf()
    if first is None:
        return 0
    written = 0
    last = first - 1
    while True:
        leaves = catalog.unstored_leaves(last, SEGMENT_LEAVES)
        if not leaves:
            return written
        run = _consecutive(leaves)
        start = run[0][0]
        try:
            store.put_bytes(layout.ledger_segment_key(start),
                            segment_document(start, [e.encode() for _i, e in run]),
                            retain_until=retain_until)
            done = [i for i, _e in run]
        except ObjectExists:
            # An earlier flush stored a segment here and stopped before marking it (or it
            # held fewer leaves then): its leaves are stored; the rest go in the next one.
            # Whether its bytes agree with the catalog is `edoc ledger verify`'s to judge,
            # never silently overwritten.
            done = _held_by(store, start, run)
        if not done:
            raise EdocError(f"{layout.ledger_segment_key(start)} holds no leaf the catalog "
                            "waits to store", code="LEDGER_SEGMENT_CONFLICT",
                            hint="run 'edoc ledger verify'")
        catalog.mark_leaves_stored(done)
        written += len(done)
        last = done[-1]


def _consecutive(leaves: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The leading run of consecutive indexes (a segment covers no gap)."""
    end = 1
    while end < len(leaves) and leaves[end][0] == leaves[end - 1][0] + 1:
        end += 1
    return leaves[:end]


def _held_by(store: ObjectStore, start: int, run: list[tuple[int, str]]) -> list[int]:
    """The indexes of ``run`` the segment stored at ``start`` holds."""
    try:
        first, entries = parse_segment(store.read(layout.ledger_segment_key(start)))
    except ValueError as exc:
        raise EdocError(f"{layout.ledger_segment_key(start)} is not a readable segment "
                        f"({exc})", code="LEDGER_SEGMENT_CONFLICT",
                        hint="run 'edoc ledger verify'") from exc
    held = range(first, first + len(entries))
    return [i for i, _e in run if i in held]


@dataclass
class StoredLedger:
    """Every ledger entry the store holds, in either layout."""

    #: index -> the entry's bytes
    entries: dict[int, bytes] = field(default_factory=dict)
    #: index -> the key of the object it was read from
    keys: dict[int, str] = field(default_factory=dict)
    #: indexes stored twice (a leaf object and a segment, or two segments) with different
    #: bytes
    conflicts: list[int] = field(default_factory=list)
    #: (key, why) of objects under ``ledger/`` that are not a readable leaf or segment
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def stored_ledger(store: ObjectStore, *, pinned: bool = False) -> StoredLedger:
    """Read every ledger object (``pinned``: each at the version the listing names)."""
    out = StoredLedger()
    for info in store.list("ledger/"):
        kind = layout.ledger_object(info.key)
        if kind is None:
            out.unreadable.append((info.key, "not a ledger object name"))
            continue
        data = store.read(info.key, info.version_id if pinned else None)
        if kind[0] == "leaf":
            _add(out, kind[1], data, info.key)
            continue
        try:
            first, entries = parse_segment(data)
        except ValueError as exc:
            out.unreadable.append((info.key, str(exc)))
            continue
        if first != kind[1]:
            out.unreadable.append((info.key, f"segment says it starts at {first}"))
            continue
        for n, entry in enumerate(entries):
            _add(out, first + n, entry, info.key)
    return out


def _add(out: StoredLedger, idx: int, data: bytes, key: str) -> None:
    seen = out.entries.get(idx)
    if seen is None:
        out.entries[idx] = data
        out.keys[idx] = key
    elif seen != data:
        out.conflicts.append(idx)
