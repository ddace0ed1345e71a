"""The append-only ledger and its sealed, timestamped checkpoints.

Every event (ingest, correct, delete, hold, release, purge, renew) is one leaf: canonical
event JSON carrying ids and digests only — never document content or personal data — so a
purge never has to rewrite it. Tree hashing is RFC 9162 §2.1 (``edoc.evidence.merkle``).

A checkpoint is (tree size, root hash, time), sealed (CAdES) and RFC 3161 timestamped,
stored write-once under ``checkpoints/``. One TSA call covers every leaf before it: the
NTA accepts hash-tree stamping where each file verifies on its own (一問一答 問47), and each
record does, through its inclusion path.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from edoc import clock
from edoc.catalog import Catalog, checkpoints, ledger, utc_text, versions
from edoc.errors import EdocError, ObjectExists
from edoc.evidence import merkle
from edoc.evidence.notary import Notary
from edoc.model import canonical
from edoc.storage import layout
from edoc.storage.base import ObjectStore

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


def _far_retention(catalog: Catalog, conn: sa.Connection, fallback: datetime) -> datetime:
    """Checkpoints and ledger leaves prove every record before them: keep them at least as
    long as the longest-kept record in the archive at the time of writing."""
    latest = conn.execute(sa.select(sa.func.max(versions.c.retain_until_at))).scalar()
    if latest:
        return max(fallback, datetime.fromisoformat(str(latest)))
    return fallback


#: Leaves written per page and marked stored per catalog transaction.
FLUSH_PAGE = 500
#: Concurrent PUTs of leaves. On S3 each is a small object whose time is the round trip
#: (BENCHMARKS.md: SeaweedFS takes ~270 PUTs/s on one thread, ~440/s on eight). On the local
#: store each is four fsyncs, and concurrent fsyncs share ext4 journal commits.
S3_PUT_THREADS = 8
LOCAL_PUT_THREADS = 4


def flush_ledger_objects(catalog: Catalog, store: ObjectStore, retain_until: datetime) -> int:
    """Write ledger leaves not yet in the store (write-once) and mark them stored.

    Leaves are kept as long as the longest-kept record (like checkpoints: together they prove
    every record), written a page at a time (on S3 by a few threads) and marked stored per
    page — a crash only means re-putting leaves that are already there, which write-once
    turns into a no-op. A leaf whose put failed stays unmarked; the first such error is
    raised once the rest of its page is written and marked."""
    with catalog.read() as c:
        first = c.execute(sa.select(ledger.c.idx).where(ledger.c.stored.is_(False))
                          .order_by(ledger.c.idx).limit(1)).scalar()
        if first is None:
            return 0
        retain_until = _far_retention(catalog, c, retain_until)

    def put(leaf: tuple[int, str]) -> EdocError | None:
        # Already there: written by an earlier run that stopped before marking it; whether
        # the bytes agree is for `edoc ledger verify` to judge, never silently overwritten.
        try:
            store.put_bytes(layout.ledger_key(leaf[0]), leaf[1].encode(),
                            retain_until=retain_until)
        except ObjectExists:
            pass
        except EdocError as exc:
            return exc
        return None

    threads = S3_PUT_THREADS if store.kind == "s3" else LOCAL_PUT_THREADS
    written = 0
    last = int(first) - 1
    with ThreadPoolExecutor(threads, thread_name_prefix="edoc-leaf") as pool:
        while True:
            with catalog.read() as c:
                page = list(c.execute(sa.select(ledger.c.idx, ledger.c.entry)
                                      .where(ledger.c.stored.is_(False), ledger.c.idx > last)
                                      .order_by(ledger.c.idx).limit(FLUSH_PAGE)))
            if not page:
                return written
            last = int(page[-1][0])
            leaves = [(int(idx), str(entry)) for idx, entry in page]
            errors = list(pool.map(put, leaves))
            done = [leaf[0] for leaf, err in zip(leaves, errors, strict=True) if err is None]
            if done:
                _mark_stored(catalog, done)
                written += len(done)
            failed = next((err for err in errors if err is not None), None)
            if failed is not None:
                raise failed


def _mark_stored(catalog: Catalog, indices: list[int]) -> None:
    with catalog.write() as c:
        c.execute(ledger.update().where(ledger.c.idx.in_(indices)).values(stored=True))


#: A checkpoint's three objects, in the order they are written: the JSON body last, so a
#: stored ``.json`` always has its seal and token beside it (``edoc ledger verify`` lists
#: checkpoints by their ``.json``).
CHECKPOINT_EXTS = ("tsr", "p7s", "json")


def work_pending(catalog: Catalog) -> bool:
    """Whether a leaf waits to be written to the store or the tree head is not checkpointed
    (an interrupted or failed run left steps 4–5 of the commit protocol undone)."""
    with catalog.read() as c:
        unstored = c.execute(sa.select(ledger.c.idx).where(ledger.c.stored.is_(False))
                             .limit(1)).first()
        size = Catalog.next_ledger_index(c)
        top = c.execute(sa.select(sa.func.max(checkpoints.c.tree_size))).scalar() or 0
    return unstored is not None or top < size


def _adopt_checkpoint(store: ObjectStore, notary: Notary, size: int, root: str,
                      previous: Any) -> tuple[bytes, datetime] | None:
    """A checkpoint an interrupted run stored but never catalogued: usable if all three
    files are there, it proves this very tree, names the catalog's newest checkpoint as its
    previous one, and its seal and token verify."""
    from edoc.errors import ObjectMissing
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
    ts_check, gen_time = notary.verify_timestamp(tsr, data)
    if ts_check.status is not Status.PASS or gen_time is None:
        return None
    if notary.verify_seal(data, seal, gen_time).status is not Status.PASS:
        return None
    return data, gen_time


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


def _root(conn: sa.Connection, size: int) -> str:
    hashes = [bytes.fromhex(h) for (h,) in conn.execute(
        sa.select(ledger.c.leaf_hash).where(ledger.c.idx < size).order_by(ledger.c.idx))]
    return merkle.root(hashes).hex()


def _log_access(catalog: Catalog, store: ObjectStore, min_retain: datetime) -> None:
    """Reads since the last checkpoint become one ``access-log`` leaf (機密性: the access
    history is tamper-evident), with the rows themselves stored for ``catalog rebuild``.

    The rows' document is stored before the leaf is committed and is keyed by its first row:
    if a run died in between, the next one finds that document and logs exactly the rows it
    holds (later reads go to the next leaf), so document and leaf always agree."""
    from edoc.services.access_log import event_fields, pending_rows, rows_document

    with catalog.write() as c:
        rows = pending_rows(c)
        if not rows:
            return
        key = f"access-log/{rows[0].id:012d}.json"
        try:
            store.put_bytes(key, rows_document(rows),
                            retain_until=_far_retention(catalog, c, min_retain))
        except ObjectExists:
            stored = {int(r["id"]) for r in canonical.loads(store.read(key))}
            rows = [r for r in rows if r.id in stored]
        access = (event_entry("access-log", clock.now(), **event_fields(rows))
                  if rows else None)
        if access is not None:
            Catalog.append_ledger(c, event_type="access-log", entry=access.decode(),
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
    with catalog.write() as c:
        last = c.execute(sa.select(checkpoints).order_by(checkpoints.c.tree_size.desc())
                         .limit(1)).first()
        size = Catalog.next_ledger_index(c)
        if size == 0 or (last is not None and last.tree_size >= size):
            return None
        adopted_info: CheckpointInfo | None = None
        for found in _stored_sizes(store, last.tree_size + 1 if last else 1, size):
            root = _root(c, found)
            adopted = _adopt_checkpoint(store, notary, found, root, last)
            if adopted is None:
                continue  # not ours to adopt; `edoc ledger verify` reports it
            data, gen_time = adopted
            key = layout.checkpoint_key(found, "json")
            c.execute(checkpoints.insert().values(
                tree_size=found, root_hash=root,
                created_at=canonical.loads(data)["created_at"],
                gen_time=utc_text(gen_time), key=key))
            adopted_info = CheckpointInfo(found, root, gen_time, key)
            last = c.execute(sa.select(checkpoints).where(checkpoints.c.tree_size == found)
                             ).one()
        if adopted_info is not None and adopted_info.tree_size == size:
            return adopted_info
        while True:
            size = Catalog.next_ledger_index(c)
            if not any(store.versions(layout.checkpoint_key(size, ext))
                       for ext in CHECKPOINT_EXTS):
                break
            skip = event_entry("checkpoint-skip", clock.now(), tree_size=size,
                               reason="a partial checkpoint of this size is in the store")
            Catalog.append_ledger(c, event_type="checkpoint-skip", entry=skip.decode(),
                                  leaf_hash=leaf_hex(skip))
        root = _root(c, size)
        now = clock.now()
        body: dict[str, Any] = {
            "schema": CHECKPOINT_SCHEMA,
            "archive_id": notary.cfg.archive_id,
            "tree_size": size,
            "root_hash": root,
            "created_at": utc_text(now),
            "previous": ({"tree_size": last.tree_size, "root_hash": last.root_hash}
                         if last is not None else None),
            "hash": "sha256",
            "tree": "RFC 9162 section 2.1",
            "accredited": notary.cfg.tsa.kind != "embedded",
        }
        data = canonical.dumps(body)
        stamp = notary.stamp(data)
        retain = _far_retention(catalog, c, min_retain)
        blobs = {"json": data, "p7s": stamp.seal, "tsr": stamp.tsr}
        for ext in CHECKPOINT_EXTS:
            store.put_bytes(layout.checkpoint_key(size, ext), blobs[ext], retain_until=retain)
        key = layout.checkpoint_key(size, "json")
        c.execute(checkpoints.insert().values(
            tree_size=size, root_hash=root, created_at=utc_text(now),
            gen_time=utc_text(stamp.gen_time), key=key))
    flush_ledger_objects(catalog, store, retain)
    return CheckpointInfo(size, root, stamp.gen_time, key)
