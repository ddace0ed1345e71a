"""Writing an evidence bundle: selecting records, streaming members into the ZIP, the index.

Writing streams content from the store into the ZIP in chunks (records can be gigabytes) and
is atomic: a temporary sibling of the target (``edoc.files``), linked into place so that an
existing file is never overwritten.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edoc import __version__
from edoc import clock as edoc_clock
from edoc.bundle.format import BUNDLE_SCHEMA, HISTORY_SCHEMA, BundleSummary
from edoc.bundle.instructions import verify_md, verify_sh
from edoc.bundle.plan import RecordPlan, ledger_leaves, plan_record
from edoc.errors import EdocError, InputError
from edoc.evidence import merkle
from edoc.evidence.hashing import hash_file, hash_stream, sha256_hex
from edoc.files import discard, publish, temp_sibling
from edoc.model import canonical
from edoc.storage import layout

if TYPE_CHECKING:
    from edoc.services.archive import Archive

#: ZIP64 is needed above 2 GiB - 1; decide up front for streamed members of known size.
_ZIP64_THRESHOLD = (1 << 31) - 1


def select_records(archive: Archive, date_from: date | None, date_to: date | None) -> list[str]:
    """Record ids with a version whose transaction date lies in ``[date_from, date_to]``
    (both optional; neither: every record, disposed ones included — their certificates are
    evidence too)."""
    if date_from and date_to and date_from > date_to:
        raise InputError(f"--from {date_from.isoformat()} is after --to {date_to.isoformat()}",
                         code="DATE_RANGE_INVALID", hint="give --from on or before --to")
    return list(archive.catalog.record_ids(date_from, date_to))



def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)



class _ZipWriter:
    """Adds members with fixed metadata and remembers each member's SHA-256."""

    def __init__(self, zf: zipfile.ZipFile, when: datetime) -> None:
        self.zf = zf
        self.when = when.astimezone(UTC).timetuple()[:6]
        self.digests: dict[str, str] = {}

    def _info(self, name: str, *, executable: bool, compress: bool) -> zipfile.ZipInfo:
        if name in self.digests:
            raise EdocError(f"bundle member {name} written twice", code="BUNDLE_INTERNAL")
        zi = zipfile.ZipInfo(name, date_time=self.when)
        zi.create_system = 3  # Unix: unzip honours the mode bits below
        zi.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
        zi.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        return zi

    def add_bytes(self, name: str, data: bytes, *, executable: bool = False) -> str:
        self.zf.writestr(self._info(name, executable=executable, compress=True), data)
        digest = sha256_hex(data)
        self.digests[name] = digest
        return digest

    def add_stream(self, name: str, src: IO[bytes], size_hint: int | None) -> tuple[str, int]:
        # Document content is usually compressed already (JPEG, PDF, PNG): store it as is,
        # which also lets an auditor's unzip run at disk speed.
        zi = self._info(name, executable=False, compress=False)
        if size_hint is not None:
            zi.file_size = size_hint
        force64 = size_hint is None or size_hint > _ZIP64_THRESHOLD // 2
        with self.zf.open(zi, "w", force_zip64=force64) as dst:
            found = hash_stream(src, sink=dst.write)
        self.digests[name] = found.sha256
        return found.sha256, found.size



def write_bundle(archive: Archive, record_ids: Sequence[str], out: Path, *,
                 actor: str) -> BundleSummary:
    """Write an evidence bundle with every version of each record to ``out``.

    Refuses (``OUTPUT_EXISTS``) to overwrite an existing file; the ZIP is written to a
    temporary file in the same directory and linked into place only when complete.
    """
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise InputError(f"{out} already exists; an evidence bundle is never overwritten",
                         code="OUTPUT_EXISTS", hint="choose a new file name")
    if not out.parent.is_dir():
        raise InputError(f"directory {out.parent} does not exist", code="OUTPUT_DIR_MISSING")
    ids = list(dict.fromkeys(record_ids))
    if not ids:
        raise InputError("no records to export", code="NOTHING_TO_EXPORT",
                         hint="name record ids, or widen --from/--to")
    problems: list[str] = []
    plans = [plan_record(archive, rid, problems) for rid in ids]
    versions = [v for p in plans for v in p.versions]
    sizes = sorted({v.checkpoint for v in versions})
    leaves = ledger_leaves(archive, sizes[-1])
    roots: dict[int, bytes] = {}
    for size in sizes:
        tree = merkle.MerkleTree(leaves[:size])
        roots[size] = tree.root()
        for v in versions:
            if v.checkpoint == size:
                v.proof = tree.inclusion_proof(v.ledger_index)
    created = edoc_clock.now()
    tmp = temp_sibling(out)
    try:
        with open(tmp, "xb") as fh:
            with zipfile.ZipFile(fh, "w", allowZip64=True) as zf:
                w = _ZipWriter(zf, created)
                _write_members(archive, w, plans, sizes, roots, created, actor, problems)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            publish(tmp, out)
        except InputError as exc:
            # the wording a bundle has always given (edoc.files names no bundle)
            if exc.code == "OUTPUT_EXISTS" and "appeared" in exc.message:
                raise InputError(f"{out} appeared while the bundle was written; not "
                                 "overwritten", code="OUTPUT_EXISTS",
                                 hint="choose a new file name") from None
            raise
    finally:
        discard(tmp)
    digest = hash_file(out).sha256
    summary = BundleSummary(
        path=out, sha256=digest, size=out.stat().st_size, records=len(plans),
        versions=len(versions), disposed=sum(1 for v in versions if v.disposed),
        checkpoints=tuple(sizes), problems=tuple(problems))
    # 機密性: who took which records out of the archive is part of the access history.
    archive.catalog.log_access(actor=actor, action="evidence", record_ids=ids, at=created,
                               detail={"bundle": str(out), "sha256": digest,
                                       "versions": len(versions)})
    return summary


def _write_members(archive: Archive, w: _ZipWriter, plans: list[RecordPlan],
                   sizes: list[int], roots: dict[int, bytes], created: datetime, actor: str,
                   problems: list[str]) -> None:
    store = archive.store
    tsa_extra = archive.notary.trust_roots[1:]
    tsa_ca = "certs/tsa-ca.pem" if tsa_extra else "certs/root-ca.pem"
    disposals: set[str] = set()
    for rec in plans:
        for v in rec.versions:
            if v.content_path is not None and v.content_path not in w.digests:
                assert v.content_key is not None
                with store.open(v.content_key, v.content_version_id) as src:
                    found, _n = w.add_stream(v.content_path, src, v.content_size)
                if v.content_sha256 and found != v.content_sha256:
                    problems.append(f"{v.rid} v{v.version}: stored content hashes to {found}, "
                                    f"its manifest says {v.content_sha256}")
            if v.manifest is not None:
                w.add_bytes(f"{v.prefix}/manifest.json", v.manifest)
            if v.manifest_seal is not None:
                w.add_bytes(f"{v.prefix}/manifest.p7s", v.manifest_seal)
            w.add_bytes(f"{v.prefix}/ledger-entry.json", v.entry)
            assert v.proof is not None
            w.add_bytes(f"{v.prefix}/inclusion-proof.json", canonical.dumps(v.proof.to_json()))
            w.add_bytes(f"{v.prefix}/verify.sh", verify_sh(v, tsa_ca).encode(),
                        executable=True)
            if v.disposal is not None:
                disposals.add(v.disposal)
        w.add_bytes(f"records/{rec.rid}/history.json", canonical.dumps(_history(rec)))
    for size in sizes:
        for ext in ("json", "p7s", "tsr"):
            key = layout.checkpoint_key(size, ext)
            data = store.read(key)
            w.add_bytes(key, data)
            if ext == "json" and json.loads(data).get("root_hash") != roots[size].hex():
                problems.append(f"checkpoint {size}: the catalog's ledger does not lead to "
                                "its sealed root (run 'edoc verify')")
    for cert_key in sorted(disposals):
        base = cert_key.removesuffix(".json")
        for ext in ("json", "p7s", "tsr"):
            w.add_bytes(f"{base}.{ext}", store.read(f"{base}.{ext}"))
    certs = archive.notary.certificates
    for name in ("root-ca.pem", "seal.pem", "tsa.pem"):
        w.add_bytes(f"certs/{name}", _pem(certs[name]))
    if tsa_extra:
        w.add_bytes("certs/tsa-ca.pem", b"".join(_pem(c) for c in tsa_extra))
    index = _index(archive, plans, sizes, created, actor)
    w.add_bytes("VERIFY.md", verify_md(index, plans, certs["root-ca.pem"], tsa_ca).encode())
    sums = "".join(f"{d}  {n}\n" for n, d in sorted(w.digests.items()))
    w.add_bytes("SHA256SUMS", sums.encode())
    index["files"] = dict(sorted(w.digests.items()))
    w.add_bytes("bundle.json", json.dumps(index, indent=2, ensure_ascii=False,
                                          sort_keys=True).encode() + b"\n")


def _history(rec: RecordPlan) -> dict[str, Any]:
    out = []
    for v in rec.versions:
        m = v.manifest_obj
        out.append({
            "version": v.version,
            "kind": v.kind,
            "reason": m.reason if m else None,
            "actor": m.actor if m else None,
            "ingested_at": m.ingested_at if m else None,
            "manifest_sha256": v.entry_obj.get("manifest_sha256"),
            "previous_version_sha256": v.entry_obj.get("previous_version_sha256"),
            "content_sha256": v.entry_obj.get("content_sha256"),
            "content": v.content_path,
            "ledger_index": v.ledger_index,
            "checkpoint": v.checkpoint,
            "disposed_at": v.disposed_at,
        })
    return {"schema": HISTORY_SCHEMA, "record_id": rec.rid, "state": rec.state,
            "versions": out}


def _index(archive: Archive, plans: list[RecordPlan], sizes: list[int], created: datetime,
           actor: str) -> dict[str, Any]:
    return {
        "schema": BUNDLE_SCHEMA,
        "archive_id": archive.cfg.archive_id,
        "organisation": archive.cfg.organisation,
        "created": created.isoformat(timespec="seconds"),
        "created_by": actor,
        "tool": {"name": "edoc", "version": __version__},
        "tsa": {"kind": archive.cfg.tsa.kind, "accredited": archive.cfg.tsa.kind != "embedded"},
        "checkpoints": sizes,
        "records": [{
            "record_id": rec.rid,
            "state": rec.state,
            "history": f"records/{rec.rid}/history.json",
            "versions": [{
                "version": v.version,
                "kind": v.kind,
                "state": "disposed" if v.disposed else "kept",
                "path": v.prefix,
                "content": v.content_path,
                "manifest_seal": v.manifest_seal is not None,
                "ledger_index": v.ledger_index,
                "checkpoint": v.checkpoint,
                "disposal": v.disposal,
            } for v in rec.versions],
        } for rec in plans],
    }

