"""Planning a bundle: what the archive holds for each version, read before anything is written.

Every version's ledger entry, covering checkpoint, manifest, seal and content location are
read first, so that a bundle that cannot be complete (an entry missing from the catalog, a
version not yet checkpointed) is refused before a byte is written; evidence that does not
check out (stored content or manifest altered) is exported as found and listed as a problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edoc.bundle.format import CONTENT_PATH
from edoc.catalog import evidence_reads
from edoc.errors import CatalogError, EdocError, NotFound
from edoc.evidence import merkle
from edoc.evidence.hashing import sha256_hex
from edoc.model import canonical
from edoc.model.manifest import Manifest, ManifestError
from edoc.storage import layout

if TYPE_CHECKING:
    from edoc.services.archive import Archive


@dataclass
class VersionPlan:
    rid: str
    version: int
    kind: str
    prefix: str  # records/<id>/v<n>
    entry: bytes
    entry_obj: dict[str, Any]
    ledger_index: int
    checkpoint: int
    disposed_at: str | None
    content_key: str | None = None
    content_version_id: str | None = None
    content_path: str | None = None
    content_sha256: str | None = None
    content_size: int | None = None
    manifest: bytes | None = None
    manifest_obj: Manifest | None = None
    manifest_seal: bytes | None = None
    disposal: str | None = None  # bundle path of the certificate JSON
    proof: merkle.InclusionProof | None = None

    @property
    def disposed(self) -> bool:
        return self.disposed_at is not None


@dataclass
class RecordPlan:
    rid: str
    state: str
    versions: list[VersionPlan]



def ledger_leaves(archive: Archive, upto: int) -> list[bytes]:
    """Leaf hashes recomputed from the catalog's ledger entries ``[0, upto)`` in index order
    (RFC 9162 §2.1.1: the checkpoint's root is over exactly these)."""
    leaves: list[bytes] = []
    rows = evidence_reads.ledger_texts(archive.catalog, before=upto)
    for pos, (idx, entry) in enumerate(rows):
        if idx != pos:
            rows.close()  # let go of the read connection now
            raise CatalogError(f"the catalog ledger skips index {pos} (next is {idx}); "
                               "inclusion proofs cannot be built", code="LEDGER_GAP",
                               hint="run 'edoc catalog rebuild', then export again")
        leaves.append(merkle.leaf_hash(entry.encode()))
    if len(leaves) < upto:
        raise CatalogError(f"the catalog ledger holds {len(leaves)} entries; checkpoint "
                           f"{upto} sealed {upto}", code="LEDGER_TRUNCATED",
                           hint="run 'edoc catalog rebuild', then export again")
    return leaves


def plan_record(archive: Archive, rid: str, problems: list[str]) -> RecordPlan:
    rec = archive.catalog.record_row(rid)
    rows = archive.catalog.version_rows(rid)
    if rec is None or not rows:
        raise NotFound(f"no record {rid} in this archive", hint="see 'edoc search' for ids")
    cert_key: str | None = None
    if any(r.disposed_at is not None for r in rows):
        from edoc.services.disposal import certificate_for

        cert_key = certificate_for(archive, rid)
        if cert_key is None:
            problems.append(f"{rid}: disposed, but no disposal certificate lists it")
    plans: list[VersionPlan] = []
    for row in rows:
        entry_row = archive.catalog.ledger_entry(row.ledger_index)
        if entry_row is None:
            raise CatalogError(f"ledger entry {row.ledger_index} of {rid} v{row.version} is "
                               "missing from the catalog", code="LEDGER_ENTRY_MISSING",
                               hint="run 'edoc catalog rebuild', then export again")
        cp = archive.catalog.checkpoint_covering(row.ledger_index)
        if cp is None:
            raise EdocError(f"{rid} v{row.version} (ledger index {row.ledger_index}) is not "
                            "covered by a checkpoint yet, so it has no proof to export",
                            code="NOT_YET_CHECKPOINTED",
                            hint="run 'edoc doctor --repair' to checkpoint, then export again")
        entry = str(entry_row.entry).encode()
        plan = VersionPlan(
            rid=rid, version=int(row.version), kind=str(row.kind),
            prefix=layout.record_prefix(rid, row.version).rstrip("/"), entry=entry,
            entry_obj=json.loads(entry), ledger_index=int(row.ledger_index),
            checkpoint=int(cp.tree_size),
            disposed_at=str(row.disposed_at) if row.disposed_at is not None else None)
        if plan.disposed:
            plan.disposal = cert_key
        else:
            plan.manifest = archive.store.read(row.manifest_key, row.manifest_version_id)
            if sha256_hex(plan.manifest) != plan.entry_obj.get(
                    "manifest_sha256"):
                problems.append(f"{rid} v{row.version}: stored manifest differs from its "
                                "ledger entry")
            try:
                doc = canonical.loads(plan.manifest)
            except ValueError:
                problems.append(f"{rid} v{row.version}: stored manifest is not JSON")
            else:
                try:
                    plan.manifest_obj = Manifest.from_json(doc)
                except ManifestError as exc:
                    problems.append(f"{rid} v{row.version}: stored manifest is malformed "
                                    f"({exc})")
            if row.seal_key:
                plan.manifest_seal = archive.store.read(row.seal_key)
            if row.content_key:
                plan.content_key = str(row.content_key)
                plan.content_version_id = row.content_version_id
                content = plan.manifest_obj.content if plan.manifest_obj else None
                plan.content_sha256 = content.sha256 if content else row.content_sha256
                size = content.size if content else row.content_size
                plan.content_size = int(size) if size is not None else None
        plans.append(plan)
    # Bundle paths mirror the store's layout, so a metadata-only correction (content_key of
    # an earlier version) names that version's content member instead of a second copy.
    for plan in plans:
        if plan.content_key is None:
            continue
        m = CONTENT_PATH.fullmatch(plan.content_key)
        own = m is not None and m.group(1) == rid
        plan.content_path = plan.content_key if own else f"{plan.prefix}/content"
    return RecordPlan(rid, str(rec.state), plans)

