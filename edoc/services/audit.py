"""The ledger as a tamper-evident log: full verification, proofs, and the access log.

``verify_ledger`` recomputes the tree from the stored entries and checks every checkpoint's
seal, token, root and RFC 9162 §2.1.4 consistency with the next; then cross-checks the
ledger against the store: every logged version is present (or covered by a disposal
certificate), and every stored version is logged. It detects an entry removed, reordered or
altered, a record deleted outside ``purge``, and a checkpoint replaced.

The access log (機密性: who read what) lives in the catalog; at each checkpoint a digest of
the entries added since the last one becomes a ledger leaf (``access-log`` event), so the
access history is tamper-evident too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from edoc.catalog import LedgerEntry, evidence_reads
from edoc.errors import EdocError, InputError, NotFound, ObjectMissing
from edoc.evidence import merkle
from edoc.evidence.checkpoint import verify_checkpoint
from edoc.evidence.hashing import sha256_hex
from edoc.model import canonical
from edoc.model.verdict import Check, Status
from edoc.services.access_log import row_dict, rows_digest
from edoc.services.archive import Archive
from edoc.services.ledger_objects import stored_ledger
from edoc.storage import layout

VERSION_EVENTS = ("ingest", "correct", "delete", "extend", "confirm")


# -- access log -------------------------------------------------------------------------------

def read_access_log(archive: Archive, date_from: str | None, date_to: str | None
                    ) -> Iterator[dict[str, Any]]:
    for r in evidence_reads.access_rows(archive.catalog, date_from, date_to):
        yield row_dict(r)


# -- ledger verification ----------------------------------------------------------------------

@dataclass
class LedgerReport:
    tree_size: int = 0
    checkpoints: int = 0
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status is Status.PASS for c in self.checks)

    def fail(self, name: str, code: str, detail: str, **kw: str | None) -> None:
        self.checks.append(Check.fail(name, code, detail, **kw))

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "tree_size": self.tree_size, "checkpoints": self.checkpoints,
                "checks": [c.as_dict() for c in self.checks]}


def _entries(archive: Archive) -> list[LedgerEntry]:
    return evidence_reads.ledger_rows(archive.catalog)


def verify_ledger(archive: Archive) -> LedgerReport:
    a = archive
    rep = LedgerReport()
    rows = _entries(a)
    rep.tree_size = len(rows)
    leaves = [merkle.leaf_hash(r.entry.encode()) for r in rows]

    # 1. the catalog's entries: contiguous, hashes agree, same bytes as the store's leaves
    # (one object per leaf, or segments of many: edoc.services.ledger_objects)
    problems = 0
    stored = stored_ledger(a.store)
    for key, why in stored.unreadable:
        rep.fail("ledger", "LEDGER_ENTRY_ALTERED", f"{key} is not a readable ledger object "
                 f"({why})")
        problems += 1
    for idx in sorted(set(stored.conflicts)):
        rep.fail("ledger", "LEDGER_ENTRY_ALTERED",
                 f"entry {idx} is stored twice with different bytes")
        problems += 1
    for pos, r in enumerate(rows):
        if r.idx != pos:
            rep.fail("ledger", "LEDGER_GAP", f"entry {pos} is missing (next is {r.idx})",
                     expected=str(pos), found=str(r.idx))
            problems += 1
            break
        if r.leaf_hash != leaves[pos].hex():
            rep.fail("ledger", "LEDGER_ENTRY_ALTERED", f"entry {pos} does not hash to its leaf")
            problems += 1
        if r.stored:
            found = stored.entries.get(r.idx)
            if found is None:
                rep.fail("ledger", "LEDGER_OBJECT_MISSING",
                         f"{layout.ledger_key(r.idx)} is not in the store (nor in a segment)")
                problems += 1
            elif found != r.entry.encode():
                rep.fail("ledger", "LEDGER_ENTRY_ALTERED",
                         f"entry {r.idx} differs between the catalog and the store")
                problems += 1
    extra = sorted(set(stored.entries) - {r.idx for r in rows})
    if extra:
        rep.fail("ledger", "LEDGER_ENTRY_REMOVED",
                 f"{len(extra)} ledger leaves in the store are missing from the catalog",
                 found=", ".join(sorted({stored.keys[i] for i in extra})[:5]))
        problems += 1
    if not problems:
        rep.checks.append(Check.ok("ledger", f"{len(rows)} entries, contiguous, "
                                   "catalog and store agree"))

    # 2. checkpoints: seal, token, root, chain and consistency
    tree = merkle.MerkleTree(leaves) if leaves else None
    cat_cps = {r.tree_size: r for r in evidence_reads.checkpoint_rows(a.catalog)}
    stored_cps = sorted(int(info.key.split("/")[-1].split(".")[0])
                        for info in a.store.list("checkpoints/") if info.key.endswith(".json"))
    rep.checkpoints = len(stored_cps)
    prev: tuple[int, str] | None = None
    cp_problems = 0
    for size in stored_cps:
        data = a.store.read(layout.checkpoint_key(size, "json"))
        try:
            seal = a.store.read(layout.checkpoint_key(size, "p7s"))
            tsr = a.store.read(layout.checkpoint_key(size, "tsr"))
        except ObjectMissing as exc:
            rep.fail("checkpoint", "CHECKPOINT_INCOMPLETE", str(exc))
            cp_problems += 1
            continue
        body = canonical.loads(data)  # a checkpoint that is not JSON stops the audit
        verdict = verify_checkpoint(data, seal, tsr, trust_roots=a.notary.trust_roots)
        for check in (verdict.seal, verdict.timestamp):
            if check.status is not Status.PASS:
                rep.checks.append(Check(check.name, check.status, check.code,
                                        f"checkpoint {size}: {check.detail}"))
                cp_problems += 1
        root = body.get("root_hash")
        cat = cat_cps.get(size)
        if cat is not None and cat.root_hash != root:
            rep.fail("checkpoint", "CHECKPOINT_REPLACED",
                     f"checkpoint {size} in the store differs from the catalog's",
                     expected=cat.root_hash, found=root)
            cp_problems += 1
        if tree is None or size > tree.size:
            rep.fail("checkpoint", "LEDGER_TRUNCATED",
                     f"checkpoint {size} covers more leaves than the ledger holds",
                     expected=str(size), found=str(tree.size if tree else 0))
            cp_problems += 1
        else:
            computed = merkle.root(leaves[:size]).hex()
            if computed != root:
                rep.fail("checkpoint", "CHECKPOINT_ROOT_MISMATCH",
                         f"the ledger's first {size} leaves do not hash to checkpoint {size}'s "
                         "sealed root: an entry was removed, reordered or altered",
                         expected=root, found=computed)
                cp_problems += 1
            if prev is not None:
                declared = body.get("previous") or {}
                if declared.get("tree_size") != prev[0] or declared.get("root_hash") != prev[1]:
                    rep.fail("checkpoint", "CHECKPOINT_CHAIN_BROKEN",
                             f"checkpoint {size} does not name checkpoint {prev[0]} as previous")
                    cp_problems += 1
                proof = tree.consistency_proof(prev[0]) if prev[0] < size else None
                if proof is not None and size == tree.size:
                    ok = proof.verify(bytes.fromhex(prev[1]), bytes.fromhex(str(root)))
                else:
                    sub = merkle.consistency_proof(leaves[:size], prev[0])
                    ok = merkle.verify_consistency(prev[0], size, bytes.fromhex(prev[1]),
                                                   bytes.fromhex(str(root)), sub)
                if not ok:
                    rep.fail("checkpoint", "CONSISTENCY_FAILED",
                             f"checkpoint {size} is not an append-only extension of {prev[0]}")
                    cp_problems += 1
        prev = (size, str(root))
    missing = sorted(set(cat_cps) - set(stored_cps))
    if missing:
        rep.fail("checkpoint", "CHECKPOINT_MISSING",
                 f"catalog checkpoints not in the store: {missing[:5]}")
        cp_problems += 1
    if not cp_problems:
        rep.checks.append(Check.ok("checkpoint", f"{len(stored_cps)} checkpoints sealed, "
                                   "timestamped, chained and consistent"))

    # 3. the ledger against the store: nothing deleted outside purge, nothing unlogged
    purged = {(json.loads(r.entry)["record_id"], json.loads(r.entry)["version"])
              for r in rows if r.event == "purge"}
    logged: dict[str, str] = {}
    x_problems = 0
    for r in rows:
        if r.event not in VERSION_EVENTS:
            continue
        e = json.loads(r.entry)
        key = layout.manifest_key(e["record_id"], int(e["version"]))
        logged[key] = e["manifest_sha256"]
        if (e["record_id"], e["version"]) in purged:
            continue
        try:
            data = a.store.read(key)
        except ObjectMissing:
            rep.fail("store", "DELETED_OUTSIDE_PURGE",
                     f"{key} is logged but gone, and no disposal certificate covers it")
            x_problems += 1
            continue
        if sha256_hex(data) != e["manifest_sha256"]:
            rep.fail("store", "MANIFEST_ALTERED", f"{key} differs from its ledger entry")
            x_problems += 1
    for info in a.store.list("records/"):
        if info.key.endswith("/manifest.json") and info.key not in logged:
            rep.fail("store", "UNLOGGED_OBJECT",
                     f"{info.key} is in the store but not in the ledger",
                     found=info.key)
            x_problems += 1
    # access-log digests
    for r in rows:
        if r.event != "access-log":
            continue
        e = json.loads(r.entry)
        acc = evidence_reads.access_range(a.catalog, e["from_id"], e["to_id"])
        if not acc:
            rep.checks.append(Check.unknown(
                "access_log", "ACCESS_LOG_MISSING",
                f"access log entries {e['from_id']}..{e['to_id']} are not in the catalog "
                "(a rebuilt catalog restores them from access-log/ objects)"))
        elif len(acc) != e["count"] or rows_digest(acc) != e["sha256"]:
            rep.fail("access_log", "ACCESS_LOG_ALTERED",
                     f"access log entries {e['from_id']}..{e['to_id']} changed after "
                     "they were logged")
            x_problems += 1
    if not x_problems:
        rep.checks.append(Check.ok("store", "every logged version is stored or certified "
                                   "disposed; every stored version is logged"))
    return rep


# -- proofs -----------------------------------------------------------------------------------

def prove(archive: Archive, record_id: str) -> dict[str, Any]:
    """Inclusion proofs (RFC 9162 §2.1.3) of every version's leaf in its checkpoint."""
    rows = archive.catalog.version_rows(record_id)
    if not rows:
        raise NotFound(f"no record {record_id} in this archive")
    leaves = [merkle.leaf_hash(r.entry.encode()) for r in _entries(archive)]
    out = []
    for v in rows:
        cp = archive.catalog.checkpoint_covering(v.ledger_index)
        if cp is None:
            raise EdocError(f"{record_id} v{v.version} is not covered by a checkpoint yet",
                            code="NOT_YET_CHECKPOINTED", hint="run 'edoc doctor --repair'")
        proof = merkle.MerkleTree(leaves[:cp.tree_size]).inclusion_proof(v.ledger_index)
        root = canonical.loads(archive.store.read(layout.checkpoint_key(cp.tree_size, "json"))
                               )["root_hash"]
        out.append({"version": v.version, "checkpoint": cp.key,
                    "checkpoint_root": root, "verified": proof.verify(bytes.fromhex(root)),
                    "proof": proof.to_json()})
    return {"record_id": record_id, "versions": out}


def consistency(archive: Archive, old: int, new: int) -> dict[str, Any]:
    """An RFC 9162 §2.1.4 consistency proof between two checkpoints' trees."""
    if not 0 < old <= new:
        raise InputError(f"need 0 < OLD <= NEW (got {old}, {new})", code="BAD_VALUE")
    roots = {}
    for size in (old, new):
        try:
            roots[size] = canonical.loads(archive.store.read(
                layout.checkpoint_key(size, "json")))["root_hash"]
        except ObjectMissing:
            raise NotFound(f"no checkpoint of tree size {size}",
                           hint="see 'edoc ledger checkpoints'") from None
    leaves = [merkle.leaf_hash(r.entry.encode()) for r in _entries(archive)]
    if len(leaves) < new:
        raise EdocError(f"the ledger holds {len(leaves)} leaves, fewer than {new}",
                        code="LEDGER_TRUNCATED")
    path = merkle.consistency_proof(leaves[:new], old) if old < new else []
    ok = merkle.verify_consistency(old, new, bytes.fromhex(roots[old]),
                                   bytes.fromhex(roots[new]), path)
    return {"old_size": old, "new_size": new, "old_root": roots[old], "new_root": roots[new],
            "path": [h.hex() for h in path], "verified": ok}


def list_checkpoints(archive: Archive) -> list[dict[str, Any]]:
    return [r.as_dict() for r in evidence_reads.checkpoint_rows(archive.catalog)]
