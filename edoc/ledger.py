"""The append-only ledger and its sealed, timestamped checkpoints.

Every event (ingest, correct, delete, hold, release, purge, renew) is one leaf: canonical
event JSON carrying ids and digests only — never document content or personal data — so a
purge never has to rewrite it. Tree hashing is RFC 9162 §2.1 (``edoc.merkle``).

A checkpoint is (tree size, root hash, time), sealed (CAdES) and RFC 3161 timestamped,
stored write-once under ``checkpoints/``. One TSA call covers every leaf before it: the
NTA accepts hash-tree stamping where each file verifies on its own (一問一答 問47), and each
record does, through its inclusion path.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from edoc import canonical, layout, merkle
from edoc.catalog import Catalog, checkpoints, ledger, utc_text, versions
from edoc.errors import ObjectExists
from edoc.notary import Notary
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


def flush_ledger_objects(catalog: Catalog, store: ObjectStore, retain_until: datetime) -> int:
    """Write ledger leaves not yet in the store (write-once) and mark them stored."""
    written = 0
    with catalog.read() as c:
        pending = list(c.execute(sa.select(ledger.c.idx, ledger.c.entry)
                                 .where(ledger.c.stored.is_(False)).order_by(ledger.c.idx)))
    for idx, entry in pending:
        data = entry.encode()
        # Already there: written by an earlier run that stopped before marking it; whether
        # the bytes agree is for `edoc ledger verify` to judge, never silently overwritten.
        with contextlib.suppress(ObjectExists):
            store.put_bytes(layout.ledger_key(idx), data, retain_until=retain_until)
        with catalog.write() as c:
            c.execute(ledger.update().where(ledger.c.idx == idx).values(stored=True))
        written += 1
    return written


def _adopt_checkpoint(store: ObjectStore, notary: Notary, size: int, root: str
                      ) -> tuple[bytes, datetime] | None:
    """A checkpoint an interrupted run stored but never catalogued: usable if all three
    files are there, it proves this very tree, and its seal and token verify."""
    from edoc.errors import ObjectMissing
    from edoc.verdict import Status

    try:
        data, seal, tsr = (store.read(layout.checkpoint_key(size, ext))
                           for ext in ("json", "p7s", "tsr"))
    except ObjectMissing:
        return None
    if canonical.loads(data).get("root_hash") != root:
        return None
    ts_check, gen_time = notary.verify_timestamp(tsr, data)
    if ts_check.status is not Status.PASS or gen_time is None:
        return None
    if notary.verify_seal(data, seal, gen_time).status is not Status.PASS:
        return None
    return data, gen_time


def make_checkpoint(catalog: Catalog, store: ObjectStore, notary: Notary,
                    *, min_retain: datetime) -> CheckpointInfo | None:
    """Seal and timestamp the current tree head, unless a checkpoint already covers it.

    Runs inside one catalog write transaction so concurrent ingest runs never make two
    checkpoints of the same size (BEGIN IMMEDIATE serialises them). If a run died after
    storing a checkpoint but before cataloguing it, that checkpoint is adopted when whole
    and valid; a partial one can never be completed (write-once), so a ``checkpoint-skip``
    leaf moves the tree past that size and the new head is checkpointed instead.
    """
    from edoc.audit import access_log_event, access_rows_document, pending_access_rows

    with catalog.write() as c:
        access_rows = pending_access_rows(c)
        access = access_log_event(c, datetime.now(UTC), access_rows)
        if access is not None:
            # Reads since the last checkpoint become one leaf (機密性: access history is
            # tamper-evident); it is written to the store with the other pending leaves.
            Catalog.append_ledger(c, event_type="access-log", entry=access.decode(),
                                  leaf_hash=leaf_hex(access))
        last = c.execute(sa.select(checkpoints).order_by(checkpoints.c.tree_size.desc())
                         .limit(1)).first()
        while True:
            size = Catalog.next_ledger_index(c)
            if size == 0 or (last is not None and last.tree_size >= size):
                return None
            hashes = [bytes.fromhex(h) for (h,) in c.execute(
                sa.select(ledger.c.leaf_hash).where(ledger.c.idx < size)
                .order_by(ledger.c.idx))]
            root = merkle.root(hashes).hex()
            key = layout.checkpoint_key(size, "json")
            if not store.versions(key):
                break
            adopted = _adopt_checkpoint(store, notary, size, root)
            if adopted is not None:
                data, gen_time = adopted
                c.execute(checkpoints.insert().values(
                    tree_size=size, root_hash=root,
                    created_at=canonical.loads(data)["created_at"],
                    gen_time=utc_text(gen_time), key=key))
                return CheckpointInfo(size, root, gen_time, key)
            skip = event_entry("checkpoint-skip", datetime.now(UTC), tree_size=size,
                               reason="a partial checkpoint of this size is in the store")
            Catalog.append_ledger(c, event_type="checkpoint-skip", entry=skip.decode(),
                                  leaf_hash=leaf_hex(skip))
        now = datetime.now(UTC)
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
        for ext, blob in (("json", data), ("p7s", stamp.seal), ("tsr", stamp.tsr)):
            store.put_bytes(layout.checkpoint_key(size, ext), blob, retain_until=retain)
        if access_rows:
            # Same rows, same bytes: a copy left by an interrupted attempt is the same one.
            with contextlib.suppress(ObjectExists):
                store.put_bytes(f"access-log/{access_rows[-1].id:012d}.json",
                                access_rows_document(access_rows), retain_until=retain)
        c.execute(checkpoints.insert().values(
            tree_size=size, root_hash=root, created_at=utc_text(now),
            gen_time=utc_text(stamp.gen_time), key=key))
    flush_ledger_objects(catalog, store, retain)
    return CheckpointInfo(size, root, stamp.gen_time, key)


def checkpoint_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
