"""Commit and checkpoint: ledger leaves into the store, tree heads sealed and timestamped.

Steps 4 and 5 of the commit protocol (``edoc.services.commit``): leaves catalogued by a
transaction are written write-once to ``ledger/segments/<first>.jsonl``, and a checkpoint (tree
size, root hash, time; RFC 9162 §2.1 tree, CAdES seal, RFC 3161 token) covers them. Both
are idempotent and finished by any later run or ``edoc doctor --repair``
(``work_pending``). Reads since the last checkpoint become one ``access-log`` leaf first
(機密性). What the leaves and the checkpoint document contain is ``edoc.evidence.ledger``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from edoc import clock
from edoc.catalog import Catalog, CheckpointRow, Transaction
from edoc.clock import utc_text
from edoc.errors import ObjectExists
from edoc.evidence import merkle
from edoc.evidence.ledger import (
    CHECKPOINT_EXTS,
    CheckpointInfo,
    checkpoint_document,
    event_entry,
    leaf_hex,
)
from edoc.model import canonical
from edoc.services.notary import Notary
from edoc.storage import layout
from edoc.storage.base import ObjectStore


def _far_retention(latest: datetime | None, fallback: datetime) -> datetime:
    """Checkpoints and ledger leaves prove every record before them: keep them at least as
    long as the longest-kept record in the archive at the time of writing."""
    return max(fallback, latest) if latest else fallback


def flush_ledger_objects(catalog: Catalog, store: ObjectStore, retain_until: datetime) -> int:
    """Write ledger leaves not yet in the store (write-once) and mark them stored.

    Leaves are kept as long as the longest-kept record (like checkpoints: together they prove
    every record), written as segments of many leaves per object
    (``edoc.services.ledger_objects``) and marked stored per segment — a crash only means
    finding a segment already there on the retry, which is read, never overwritten."""
    from edoc.services.ledger_objects import write_segments

    if catalog.first_unstored_leaf() is None:
        return 0
    retain_until = _far_retention(catalog.longest_retention(), retain_until)
    return write_segments(catalog, store, retain_until)


def work_pending(catalog: Catalog) -> bool:
    """Whether a leaf waits to be written to the store or the tree head is not checkpointed
    (an interrupted or failed run left steps 4–5 of the commit protocol undone)."""
    state = catalog.ledger_state()
    return state.unstored > 0 or state.checkpointed < state.next_index


def _adopt_checkpoint(store: ObjectStore, notary: Notary, size: int, root: str,
                      previous: CheckpointRow | None) -> tuple[bytes, datetime] | None:
    """A checkpoint an interrupted run stored but never catalogued: usable if all three
    files are there, it proves this very tree, names the catalog's newest checkpoint as its
    previous one, and its seal and token verify."""
    from edoc.errors import ObjectMissing
    from edoc.evidence.checkpoint import verify_stamp
    from edoc.model.verdict import Status

    try:
        data, seal, tsr = (store.read(layout.checkpoint_key(size, ext))
                           for ext in ("json", "p7s", "tsr"))
    except ObjectMissing:
        return None
    body = canonical.loads(data)
    if body.get("root_hash") != root or body.get("tree_size") != size:
        return None
    want = ({"tree_size": previous.tree_size, "root_hash": previous.root_hash}
            if previous is not None else None)
    if body.get("previous") != want:
        return None
    # The one checkpoint verifier (edoc.evidence.checkpoint), as `verify` judges it: the
    # token over these bytes, and the seal as of the token's genTime.
    stamp = verify_stamp(data, seal, tsr, trust_roots=notary.trust_roots)
    if (stamp.timestamp.status is not Status.PASS or stamp.gen_time is None
            or stamp.seal.status is not Status.PASS):
        return None
    return data, stamp.gen_time


def _stored_sizes(store: ObjectStore, low: int, high: int) -> list[int]:
    """Tree sizes in ``low..high`` with a checkpoint body in the store. Keys are zero-padded,
    so listing their common prefix lists only the candidates."""
    first, last = layout.checkpoint_key(low, "json"), layout.checkpoint_key(high, "json")
    prefix = first[:next((i for i, (a, b) in enumerate(zip(first, last, strict=True))
                          if a != b), len(first))]
    out = []
    for info in store.list(prefix):
        stem, _, ext = info.key.rpartition("/")[2].partition(".")
        if ext == "json" and stem.isdigit() and low <= int(stem) <= high:
            out.append(int(stem))
    return sorted(out)


def _root(tx: Transaction, size: int) -> str:
    return merkle.root(tx.leaf_hashes(size)).hex()


def _log_access(catalog: Catalog, store: ObjectStore, min_retain: datetime) -> None:
    """Reads since the last checkpoint become one ``access-log`` leaf (機密性: the access
    history is tamper-evident), with the rows themselves stored for ``catalog rebuild``.

    The rows' document is stored before the leaf is committed and is keyed by its first row:
    if a run died in between, the next one finds that document and logs exactly the rows it
    holds (later reads go to the next leaf), so document and leaf always agree."""
    from edoc.services.access_log import event_fields, rows_document

    with catalog.transaction() as tx:
        rows = tx.pending_access_rows()
        if not rows:
            return
        key = f"access-log/{rows[0].id:012d}.json"
        try:
            store.put_bytes(key, rows_document(rows),
                            retain_until=_far_retention(tx.longest_retention(), min_retain))
        except ObjectExists:
            stored = {int(r["id"]) for r in canonical.loads(store.read(key))}
            rows = [r for r in rows if r.id in stored]
        access = (event_entry("access-log", clock.now(), **event_fields(rows))
                  if rows else None)
        if access is not None:
            tx.append_leaf(event_type="access-log", entry=access.decode(),
                           leaf_hash=leaf_hex(access))


def make_checkpoint(catalog: Catalog, store: ObjectStore, notary: Notary,
                    *, min_retain: datetime) -> CheckpointInfo | None:
    """Seal and timestamp the current tree head, unless a checkpoint already covers it.

    Runs inside one catalog write transaction so concurrent runs never make two checkpoints
    of the same size (BEGIN IMMEDIATE serialises them); every leaf it covers was committed
    before. Its objects are written token, seal, then body. A run that died after storing a
    whole checkpoint but before cataloguing it left a valid checkpoint of committed leaves:
    it is adopted (whatever leaves were added since). A partial one (no body) can never be
    completed (write-once), so a ``checkpoint-skip`` leaf moves the tree past that size.
    """
    _log_access(catalog, store, min_retain)
    with catalog.transaction() as tx:
        last = tx.latest_checkpoint()
        size = tx.next_ledger_index()
        if size == 0 or (last is not None and last.tree_size >= size):
            return None
        adopted_info: CheckpointInfo | None = None
        for found in _stored_sizes(store, last.tree_size + 1 if last else 1, size):
            root = _root(tx, found)
            adopted = _adopt_checkpoint(store, notary, found, root, last)
            if adopted is None:
                continue  # not ours to adopt; `edoc ledger verify` reports it
            data, gen_time = adopted
            key = layout.checkpoint_key(found, "json")
            tx.add_checkpoint(tree_size=found, root_hash=root,
                              created_at=canonical.loads(data)["created_at"],
                              gen_time=utc_text(gen_time), key=key)
            adopted_info = CheckpointInfo(found, root, gen_time, key)
            last = tx.checkpoint(found)
        if adopted_info is not None and adopted_info.tree_size == size:
            return adopted_info
        while True:
            size = tx.next_ledger_index()
            if not any(store.versions(layout.checkpoint_key(size, ext))
                       for ext in CHECKPOINT_EXTS):
                break
            skip = event_entry("checkpoint-skip", clock.now(), tree_size=size,
                               reason="a partial checkpoint of this size is in the store")
            tx.append_leaf(event_type="checkpoint-skip", entry=skip.decode(),
                           leaf_hash=leaf_hex(skip))
        root = _root(tx, size)
        now = clock.now()
        data = checkpoint_document(
            archive_id=notary.cfg.archive_id, tree_size=size, root_hash=root, created_at=now,
            previous=(last.tree_size, last.root_hash) if last is not None else None,
            accredited=notary.cfg.tsa.kind != "embedded")
        stamp = notary.stamp(data)
        retain = _far_retention(tx.longest_retention(), min_retain)
        blobs: dict[str, Any] = {"json": data, "p7s": stamp.seal, "tsr": stamp.tsr}
        for ext in CHECKPOINT_EXTS:
            store.put_bytes(layout.checkpoint_key(size, ext), blobs[ext], retain_until=retain)
        key = layout.checkpoint_key(size, "json")
        tx.add_checkpoint(tree_size=size, root_hash=root, created_at=utc_text(now),
                          gen_time=utc_text(stamp.gen_time), key=key)
    flush_ledger_objects(catalog, store, retain)
    return CheckpointInfo(size, root, stamp.gen_time, key)
