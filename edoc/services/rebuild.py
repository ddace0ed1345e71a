"""`edoc catalog rebuild`: recreate the catalog from the object store alone.

The catalog is an index, not the source of truth. Everything it holds that matters for
evidence is also in the store: manifests (records, versions, search columns, retention),
ledger leaves (``ledger/<index>.json``), checkpoints, hold documents and disposal
certificates, and the access-log entries written at each checkpoint (reads after the last
checkpoint are the only thing a lost catalog takes with it).

The new catalog is built beside the old one and swapped in only when complete; the old file
is kept as ``catalog.sqlite.replaced-<time>``; a PostgreSQL catalog is replaced in one
transaction, its old tables kept in a schema ``edoc_replaced_<time>``. Afterwards
``edoc verify --all`` must pass.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edoc import clock
from edoc.catalog import Catalog, version_row
from edoc.clock import utc_text
from edoc.errors import CatalogError, ObjectMissing
from edoc.model import canonical
from edoc.model.manifest import Manifest, ManifestError
from edoc.services.archive import Archive
from edoc.storage import layout

VERSION_EVENTS = ("ingest", "correct", "delete", "extend")


@dataclass
class RebuildSummary:
    records: int = 0
    versions: int = 0
    ledger_entries: int = 0
    checkpoints: int = 0
    holds: int = 0
    disposal_runs: int = 0
    replaced: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def rebuild_catalog(archive: Archive, progress: Callable[[str], None] | None = None
                    ) -> RebuildSummary:
    import hashlib

    a = archive
    store = a.store
    say = progress or (lambda _msg: None)
    summary = RebuildSummary()

    # 1. the ledger: every leaf, in index order
    entries: list[tuple[int, str]] = []
    for info in store.list("ledger/"):
        idx = int(Path(info.key).stem)
        entries.append((idx, store.read(info.key, info.version_id).decode()))
    entries.sort()
    by_version: dict[tuple[str, int], int] = {}
    ledger_rows = []
    for idx, text in entries:
        e = json.loads(text)
        if e.get("event") in VERSION_EVENTS:
            by_version[(e["record_id"], int(e["version"]))] = idx
        ledger_rows.append({"idx": idx, "event": e.get("event", "?"),
                            "record_id": e.get("record_id"), "version": e.get("version"),
                            "leaf_hash": hashlib.sha256(b"\x00" + text.encode()).hexdigest(),
                            "entry": text, "stored": True})
    say(f"{len(ledger_rows)} ledger entries")

    # 2. record versions from their manifests
    version_rows: list[dict[str, Any]] = []
    content_of: dict[tuple[str, int], tuple[str | None, str | None]] = {}
    manifests: list[tuple[Manifest, str, str, Any]] = []
    for info in store.list("records/"):
        if not info.key.endswith("/manifest.json"):
            continue
        data = store.read(info.key, info.version_id)
        try:
            m = Manifest.from_bytes(data)
        except ManifestError as exc:
            raise CatalogError(f"{info.key} is not a manifest this release reads ({exc}); "
                               "nothing rebuilt", code=exc.code,
                               hint="run 'edoc verify --all' to see which record") from None
        manifests.append((m, info.key, hashlib.sha256(data).hexdigest(), info))
    manifests.sort(key=lambda t: (t[0].record_id, t[0].version))
    for m, key, sha, info in manifests:
        rid, ver = m.record_id, m.version
        own = layout.content_key(rid, ver)
        if m.content is None:
            ref: tuple[str | None, str | None] = (None, None)
        else:
            try:
                ref = (own, store.stat(own).version_id)
            except ObjectMissing:  # a metadata-only version reuses the earlier bytes
                ref = content_of.get((rid, ver - 1), (None, None))
        content_of[(rid, ver)] = ref
        seal = layout.manifest_seal_key(rid, ver)
        seal_key = seal if store.versions(seal) else None
        found = by_version.get((rid, ver))
        if found is None:
            raise CatalogError(f"{key} has no ledger leaf in the store; the store is "
                               "incomplete (run 'edoc doctor --repair' first)",
                               code="REBUILD_INCOMPLETE")
        version_rows.append(version_row(m, manifest_sha256=sha, content_ref=ref,
                                        seal_key=seal_key, manifest_version_id=info.version_id,
                                        ledger_index=found))

    # 3. disposal certificates: versions whose manifests are gone
    run_rows, item_rows = [], []
    disposed: dict[tuple[str, int], dict[str, Any]] = {}
    for info in store.list("disposals/"):
        if not info.key.endswith(".json"):
            continue
        cert = canonical.loads(store.read(info.key, info.version_id))
        run_rows.append({"run_id": cert["run_id"], "started_at": cert["time_source_gen_time"],
                         "now": cert["time_source_gen_time"], "actor": cert.get("actor", "?"),
                         "state": "certified", "certificate_key": info.key,
                         "finished_at": cert["time_source_gen_time"]})
        for e in cert.get("disposed", []):
            disposed[(e["record_id"], int(e["version"]))] = e
            item_rows.append({"run_id": cert["run_id"], "record_id": e["record_id"],
                              "version": e["version"], "state": "disposed",
                              "entry": json.dumps({k: v for k, v in e.items()
                                                   if k != "disposed_at"}, sort_keys=True),
                              "error": None, "disposed_at": e.get("disposed_at")})
        for e in cert.get("not_disposed", []):
            item_rows.append({"run_id": cert["run_id"], "record_id": e["record_id"],
                              "version": e["version"], "state": "refused", "entry": "{}",
                              "error": e.get("error"), "disposed_at": None})
    for (rid, ver), e in sorted(disposed.items()):
        version_rows.append({
            "record_id": rid, "version": ver, "kind": e.get("kind", "original"),
            "content_sha256": e.get("content_sha256"), "content_size": None,
            "media_type": None, "original_name": None, "content_key": None,
            "content_version_id": None, "manifest_key": layout.manifest_key(rid, ver),
            "manifest_version_id": None, "manifest_sha256": e["manifest_sha256"],
            "seal_key": None, "profiles": canonical.dumps(e.get("profiles", [])).decode(),
            "document_class": None, "doc_type": None, "transaction_date": None,
            "amount": None, "counterparty": None, "counterparty_norm": None,
            "ledger_ref": None, "retain_until": e["retain_until"],
            "retain_until_at": e["retain_until_at"],
            "ingested_at": e.get("disposed_at") or "", "ledger_index": by_version[(rid, ver)],
            "disposed_at": e.get("disposed_at"),
            "invoice_number": None, "registration_number": None})

    # 4. records
    latest: dict[str, dict[str, Any]] = {}
    for row in version_rows:
        cur = latest.get(row["record_id"])
        if cur is None or row["version"] > cur["version"]:
            latest[row["record_id"]] = row
    first_seen = {}
    for row in sorted(version_rows, key=lambda r: r["version"], reverse=True):
        first_seen[row["record_id"]] = row["ingested_at"]
    record_rows = [{
        "record_id": rid, "created_at": first_seen[rid], "latest_version": row["version"],
        "state": "disposed" if row["disposed_at"] else (
            # deleted: the tombstone, or a later version built on it (no content)
            "deleted" if row["kind"] == "tombstone" or row["content_sha256"] is None
            else "active")}
        for rid, row in sorted(latest.items())]

    # 5. checkpoints (genTime from the token itself)
    cp_rows = []
    for info in store.list("checkpoints/"):
        if not info.key.endswith(".json"):
            continue
        data = store.read(info.key, info.version_id)
        body = canonical.loads(data)
        size = int(body["tree_size"])
        tsr = store.read(layout.checkpoint_key(size, "tsr"))
        _check, gen_time = a.notary.verify_timestamp(tsr, data)
        cp_rows.append({"tree_size": size, "root_hash": body["root_hash"],
                        "created_at": body["created_at"],
                        "gen_time": utc_text(gen_time) if gen_time else body["created_at"],
                        "key": info.key})

    # 6. holds
    hold_rows = []
    for info in store.list("holds/"):
        doc = canonical.loads(store.read(info.key, info.version_id))
        if doc.get("type") == "hold":
            hold_rows.append({"id": doc["hold_id"], "record_id": doc["record_id"],
                              "reason": doc["reason"], "case_ref": doc.get("case"),
                              "actor": doc["actor"], "placed_at": doc["at"],
                              "released_at": None, "release_reason": None,
                              "released_by": None})
    for info in store.list("holds/"):
        doc = canonical.loads(store.read(info.key, info.version_id))
        if doc.get("type") == "release":
            for h in hold_rows:
                if h["id"] in doc["hold_ids"]:
                    h.update(released_at=doc["at"], release_reason=doc["reason"],
                             released_by=doc["actor"])

    # 7. the access log, as logged at each checkpoint
    access_rows = []
    for info in store.list("access-log/"):
        for r in canonical.loads(store.read(info.key, info.version_id)):
            access_rows.append({"id": r["id"], "at": r["at"], "actor": r["actor"],
                                "action": r["action"], "record_ids": json.dumps(r["record_ids"]),
                                "detail": json.dumps(r["detail"], ensure_ascii=False,
                                                     sort_keys=True) if r["detail"] else None})

    # 8. write a fresh catalog beside the old one, then swap
    cfg = a.cfg
    rows: dict[str, list[dict[str, Any]]] = {
        "ledger": ledger_rows, "versions": version_rows, "records": record_rows,
        "checkpoints": cp_rows, "holds": hold_rows, "disposal_runs": run_rows,
        "disposal_items": item_rows, "access_log": access_rows}
    if a.catalog.is_postgresql:
        # one transaction replaces the tables; the old ones are kept in a schema of their own
        moved = a.catalog.replace_all(rows, stamp=clock.now().strftime("%Y%m%dT%H%M%SZ"))
        summary.replaced = f"schema {moved}" if moved else None
        return _counted(summary, rows)
    if not cfg.catalog_url.startswith("sqlite:///"):
        raise CatalogError("rebuild writes SQLite and PostgreSQL catalogs",
                           code="REBUILD_UNSUPPORTED")
    target = Path(Catalog(cfg.catalog_url, cfg.dir).url.removeprefix("sqlite:///"))
    staging = target.with_name(target.name + ".rebuild")
    for leftover in (staging, Path(str(staging) + "-wal"), Path(str(staging) + "-shm")):
        leftover.unlink(missing_ok=True)
    new = Catalog("sqlite:///" + str(staging), cfg.dir)
    new.create()
    new.load(rows)
    new.dispose()
    a.catalog.dispose()
    if target.exists():
        stamp = clock.now().strftime("%Y%m%dT%H%M%SZ")
        replaced = target.with_name(f"{target.name}.replaced-{stamp}")
        target.replace(replaced)
        summary.replaced = str(replaced)
        for suffix in ("-wal", "-shm"):
            Path(str(target) + suffix).unlink(missing_ok=True)
    staging.replace(target)
    return _counted(summary, rows)


def _counted(summary: RebuildSummary, rows: dict[str, list[dict[str, Any]]]
             ) -> RebuildSummary:
    summary.records, summary.versions = len(rows["records"]), len(rows["versions"])
    summary.ledger_entries, summary.checkpoints = len(rows["ledger"]), len(rows["checkpoints"])
    summary.holds, summary.disposal_runs = len(rows["holds"]), len(rows["disposal_runs"])
    return summary
