"""Offline evidence bundles: what ``edoc evidence`` writes and ``edoc verify-bundle`` checks.

An auditor must not have to trust the archive, its operator or its vendor. A bundle is one
ZIP file holding, for every version of the records asked for, exactly the bytes the archive
proved things about, plus the proofs, so that it can be checked with OpenSSL, ``sha256sum``
and a little arithmetic — or with :func:`verify_bundle`, which needs no archive, no
configuration and no network::

    bundle.json                      index: archive id, records, versions, SHA-256 of every file
    SHA256SUMS                       the same digests, for ``sha256sum -c``
    VERIFY.md                        how to check everything by hand, and the trust model
    certs/root-ca.pem, seal.pem, tsa.pem   the archive's certificates (tsa-ca.pem: external TSA)
    checkpoints/<size>.json|.p7s|.tsr       sealed (CAdES) and timestamped (RFC 3161) tree heads
    disposals/<run>.json|.p7s|.tsr          disposal certificates, for disposed versions
    records/<id>/history.json        the version chain (訂正削除履歴)
    records/<id>/v<n>/content        the document bytes (metadata-only corrections point at
                                     the earlier version's content instead of a copy)
    records/<id>/v<n>/manifest.json  the canonical manifest; manifest.p7s its seal, if any
    records/<id>/v<n>/ledger-entry.json    the ledger leaf's event JSON
    records/<id>/v<n>/inclusion-proof.json RFC 9162 §2.1.3 path to the checkpoint's root
    records/<id>/v<n>/verify.sh      POSIX sh: every check with openssl/sha256sum/sed/printf

The chain of evidence for one version: SHA-256(content) is in the manifest; SHA-256(manifest)
is in the ledger entry; the ledger entry is a leaf (RFC 9162 §2.1.1) of the Merkle tree whose
root the checkpoint states; the checkpoint is sealed (RFC 5652 / CAdES) and timestamped
(RFC 3161, imprint = SHA-256 of the checkpoint JSON). ``bundle.json`` and ``SHA256SUMS`` are
an unsigned index that catches damage; they prove nothing by themselves, so verification
never relies on them for a verdict about a record.

Writing streams content from the store into the ZIP in chunks (records can be gigabytes) and
is atomic: a temporary file next to the target, hard-linked into place so that an existing
file is never overwritten. Reading never extracts to disk: members are read in memory (small
ones, bounded) or hashed as streams, after the member list has been checked for names that
escape the bundle, symlinks, duplicates, overlapping entries and absurd sizes.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import secrets
import stat
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from edoc import __version__
from edoc import clock as edoc_clock
from edoc.errors import CatalogError, EdocError, InputError, NotFound
from edoc.evidence import merkle
from edoc.evidence.sealing import verify_seal
from edoc.evidence.tsa import verify_timestamp
from edoc.model import canonical
from edoc.model.verdict import REPORT_SCHEMA_VERSION, Check, RecordReport, Status
from edoc.storage import layout

if TYPE_CHECKING:
    from edoc.services.archive import Archive

__all__ = [
    "BUNDLE_SCHEMA",
    "BundleReport",
    "BundleSummary",
    "select_records",
    "verify_bundle",
    "write_bundle",
]

BUNDLE_SCHEMA = "edoc.bundle/1"
HISTORY_SCHEMA = "edoc.history/1"
REPORT_SCHEMA = "edoc.bundle-report/1"

#: More members than this is not a bundle edoc wrote for any sane request: refuse.
MAX_ENTRIES = 100_000
#: Bound on the sum of declared uncompressed sizes. Members are hashed as streams, never
#: extracted, and zipfile never yields more than a member's declared size, so this bounds
#: the work a hostile bundle can cause (a zip bomb only costs hashing time here).
MAX_TOTAL_BYTES = 1 << 40
#: Members parsed in memory (JSON, seals, tokens, certificates) larger than this are refused.
MAX_SMALL_MEMBER = 64 << 20

_CHUNK = 1 << 20
#: ZIP64 is needed above 2 GiB - 1; decide up front for streamed members of known size.
_ZIP64_THRESHOLD = (1 << 31) - 1
# Conservative member names: what edoc writes, and nothing a shell or unzip could misread.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*/?")
_ULID = layout.RECORD_ID.pattern.strip("^$")
_CONTENT_PATH = re.compile(rf"records/({_ULID})/v([1-9][0-9]*)/content")
_DISPOSAL_PATH = re.compile(rf"disposals/({_ULID})\.json")
_LOCAL_HEADER_MIN = 30  # fixed part of a ZIP local file header (APPNOTE 4.3.7)


# =============================================================================================
# Results
# =============================================================================================


@dataclass(frozen=True)
class BundleSummary:
    """What ``write_bundle`` wrote. ``problems`` lists evidence that did not check out while
    exporting (e.g. stored content that no longer matches its manifest): it is exported as
    found, so that the auditor's verification shows it, and the CLI should warn."""

    path: Path
    sha256: str
    size: int
    records: int
    versions: int
    disposed: int
    checkpoints: tuple[int, ...]
    problems: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "size": self.size,
            "records": self.records,
            "versions": self.versions,
            "disposed": self.disposed,
            "checkpoints": list(self.checkpoints),
            "problems": list(self.problems),
        }


@dataclass
class BundleReport:
    """Every check run on a bundle: bundle-wide ``checks`` and one report per version."""

    path: Path
    archive_id: str | None
    created: str | None
    #: "bundle" (the bundle's own certs/root-ca.pem) or "given" (``--trust`` files only).
    trust_source: str
    trust_roots: list[str]
    checks: list[Check] = field(default_factory=list)
    reports: list[RecordReport] = field(default_factory=list)

    @property
    def status(self) -> Status:
        statuses = {c.status for c in self.checks} | {r.status for r in self.reports}
        if Status.FAIL in statuses:
            return Status.FAIL
        if Status.INDETERMINATE in statuses or not self.reports:
            return Status.INDETERMINATE
        return Status.PASS

    @property
    def ok(self) -> bool:
        return self.status is Status.PASS

    def as_dict(self) -> dict[str, Any]:
        by = {s.value: 0 for s in Status}
        for r in self.reports:
            by[r.status.value] += 1
        return {
            "schema": REPORT_SCHEMA,
            "schema_version": REPORT_SCHEMA_VERSION,
            "ok": self.ok,
            "status": self.status.value,
            "bundle": str(self.path),
            "archive_id": self.archive_id,
            "created": self.created,
            "trust": {"source": self.trust_source, "roots": self.trust_roots},
            "checks": [c.as_dict() for c in self.checks],
            "reports": [r.as_dict() for r in self.reports],
            "summary": {"versions": len(self.reports), **by},
        }


# =============================================================================================
# Selecting and writing
# =============================================================================================


def select_records(archive: Archive, date_from: date | None, date_to: date | None) -> list[str]:
    """Record ids with a version whose transaction date lies in ``[date_from, date_to]``
    (both optional; neither: every record, disposed ones included — their certificates are
    evidence too)."""
    if date_from and date_to and date_from > date_to:
        raise InputError(f"--from {date_from.isoformat()} is after --to {date_to.isoformat()}",
                         code="DATE_RANGE_INVALID", hint="give --from on or before --to")
    return list(archive.catalog.record_ids(date_from, date_to))


@dataclass
class _VersionPlan:
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
    manifest_obj: dict[str, Any] | None = None
    manifest_seal: bytes | None = None
    disposal: str | None = None  # bundle path of the certificate JSON
    proof: merkle.InclusionProof | None = None

    @property
    def disposed(self) -> bool:
        return self.disposed_at is not None


@dataclass
class _RecordPlan:
    rid: str
    state: str
    versions: list[_VersionPlan]


def _octal(data: bytes) -> str:
    """Bytes as printf octal escapes: POSIX printf has \\ddd, not \\xHH (dash lacks it)."""
    return "".join(f"\\{b:03o}" for b in data)


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
        digest = hashlib.sha256(data).hexdigest()
        self.digests[name] = digest
        return digest

    def add_stream(self, name: str, src: IO[bytes], size_hint: int | None) -> tuple[str, int]:
        # Document content is usually compressed already (JPEG, PDF, PNG): store it as is,
        # which also lets an auditor's unzip run at disk speed.
        zi = self._info(name, executable=False, compress=False)
        if size_hint is not None:
            zi.file_size = size_hint
        force64 = size_hint is None or size_hint > _ZIP64_THRESHOLD // 2
        digest = hashlib.sha256()
        size = 0
        with self.zf.open(zi, "w", force_zip64=force64) as dst:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                dst.write(chunk)
                size += len(chunk)
        self.digests[name] = digest.hexdigest()
        return self.digests[name], size


def _leaves(archive: Archive, upto: int) -> list[bytes]:
    """Leaf hashes recomputed from the catalog's ledger entries ``[0, upto)`` in index order
    (RFC 9162 §2.1.1: the checkpoint's root is over exactly these)."""
    import sqlalchemy as sa

    from edoc.catalog import ledger

    leaves: list[bytes] = []
    with archive.catalog.read() as c:
        rows = c.execute(sa.select(ledger.c.idx, ledger.c.entry)
                         .where(ledger.c.idx < upto).order_by(ledger.c.idx))
        for pos, (idx, entry) in enumerate(rows):
            if idx != pos:
                raise CatalogError(f"the catalog ledger skips index {pos} (next is {idx}); "
                                   "inclusion proofs cannot be built", code="LEDGER_GAP",
                                   hint="run 'edoc catalog rebuild', then export again")
            leaves.append(merkle.leaf_hash(str(entry).encode()))
    if len(leaves) < upto:
        raise CatalogError(f"the catalog ledger holds {len(leaves)} entries; checkpoint "
                           f"{upto} sealed {upto}", code="LEDGER_TRUNCATED",
                           hint="run 'edoc catalog rebuild', then export again")
    return leaves


def _plan_record(archive: Archive, rid: str, problems: list[str]) -> _RecordPlan:
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
    plans: list[_VersionPlan] = []
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
        plan = _VersionPlan(
            rid=rid, version=int(row.version), kind=str(row.kind),
            prefix=layout.record_prefix(rid, row.version).rstrip("/"), entry=entry,
            entry_obj=json.loads(entry), ledger_index=int(row.ledger_index),
            checkpoint=int(cp.tree_size),
            disposed_at=str(row.disposed_at) if row.disposed_at is not None else None)
        if plan.disposed:
            plan.disposal = cert_key
        else:
            plan.manifest = archive.store.read(row.manifest_key, row.manifest_version_id)
            if hashlib.sha256(plan.manifest).hexdigest() != plan.entry_obj.get(
                    "manifest_sha256"):
                problems.append(f"{rid} v{row.version}: stored manifest differs from its "
                                "ledger entry")
            try:
                body = canonical.loads(plan.manifest)
                plan.manifest_obj = body if isinstance(body, dict) else None
            except ValueError:
                problems.append(f"{rid} v{row.version}: stored manifest is not JSON")
            if row.seal_key:
                plan.manifest_seal = archive.store.read(row.seal_key)
            if row.content_key:
                plan.content_key = str(row.content_key)
                plan.content_version_id = row.content_version_id
                content = (plan.manifest_obj or {}).get("content") or {}
                plan.content_sha256 = content.get("sha256") or row.content_sha256
                size = content.get("size", row.content_size)
                plan.content_size = int(size) if size is not None else None
        plans.append(plan)
    # Bundle paths mirror the store's layout, so a metadata-only correction (content_key of
    # an earlier version) names that version's content member instead of a second copy.
    for plan in plans:
        if plan.content_key is None:
            continue
        m = _CONTENT_PATH.fullmatch(plan.content_key)
        own = m is not None and m.group(1) == rid
        plan.content_path = plan.content_key if own else f"{plan.prefix}/content"
    return _RecordPlan(rid, str(rec.state), plans)


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
    plans = [_plan_record(archive, rid, problems) for rid in ids]
    versions = [v for p in plans for v in p.versions]
    sizes = sorted({v.checkpoint for v in versions})
    leaves = _leaves(archive, sizes[-1])
    roots: dict[int, bytes] = {}
    for size in sizes:
        tree = merkle.MerkleTree(leaves[:size])
        roots[size] = tree.root()
        for v in versions:
            if v.checkpoint == size:
                v.proof = tree.inclusion_proof(v.ledger_index)
    created = edoc_clock.now()
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(6)}.part")
    try:
        with open(tmp, "xb") as fh:
            with zipfile.ZipFile(fh, "w", allowZip64=True) as zf:
                w = _ZipWriter(zf, created)
                _write_members(archive, w, plans, sizes, roots, created, actor, problems)
            fh.flush()
            os.fsync(fh.fileno())
        _link_into_place(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    with out.open("rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    summary = BundleSummary(
        path=out, sha256=digest, size=out.stat().st_size, records=len(plans),
        versions=len(versions), disposed=sum(1 for v in versions if v.disposed),
        checkpoints=tuple(sizes), problems=tuple(problems))
    # 機密性: who took which records out of the archive is part of the access history.
    archive.catalog.log_access(actor=actor, action="evidence", record_ids=ids, at=created,
                               detail={"bundle": str(out), "sha256": digest,
                                       "versions": len(versions)})
    return summary


def _link_into_place(tmp: Path, out: Path) -> None:
    # link(2) fails if ``out`` exists: no window in which another file could be clobbered.
    try:
        os.link(tmp, out)
    except FileExistsError:
        raise InputError(f"{out} appeared while the bundle was written; not overwritten",
                         code="OUTPUT_EXISTS", hint="choose a new file name") from None
    except OSError:
        # File systems without hard links: fall back to a checked rename.
        if out.exists():
            raise InputError(f"{out} already exists; not overwritten",
                             code="OUTPUT_EXISTS") from None
        tmp.replace(out)
    with contextlib.suppress(OSError):
        dfd = os.open(out.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _write_members(archive: Archive, w: _ZipWriter, plans: list[_RecordPlan],
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
            w.add_bytes(f"{v.prefix}/verify.sh", _verify_sh(v, tsa_ca).encode(),
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
    w.add_bytes("VERIFY.md", _verify_md(index, plans, certs["root-ca.pem"], tsa_ca).encode())
    sums = "".join(f"{d}  {n}\n" for n, d in sorted(w.digests.items()))
    w.add_bytes("SHA256SUMS", sums.encode())
    index["files"] = dict(sorted(w.digests.items()))
    w.add_bytes("bundle.json", json.dumps(index, indent=2, ensure_ascii=False,
                                          sort_keys=True).encode() + b"\n")


def _history(rec: _RecordPlan) -> dict[str, Any]:
    out = []
    for v in rec.versions:
        m = v.manifest_obj or {}
        out.append({
            "version": v.version,
            "kind": v.kind,
            "reason": m.get("reason"),
            "actor": m.get("actor"),
            "ingested_at": m.get("ingested_at"),
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


def _index(archive: Archive, plans: list[_RecordPlan], sizes: list[int], created: datetime,
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


# =============================================================================================
# verify.sh — one POSIX sh script per version
# =============================================================================================

_SH_FUNCS = r"""ok() { printf 'ok    %s\n' "$*"; }
bad() { printf 'FAIL  %s\n' "$*"; failed=1; }
# hex SHA-256 of standard input
sha() { sha256sum | sed 's/ .*//'; }
# the last "KEY":"<64 hex digits>" in FILE (canonical JSON: one line, sorted keys)
hexfield() { sed -n "s/.*\"$1\":\"\([0-9a-f]\{64\}\)\".*/\1/p" "$2"; }
# the last "KEY":<integer> in FILE
intfield() { sed -n "s/.*\"$1\":\([0-9]\{1,\}\).*/\1/p" "$2"; }
# hex digits to bytes, with printf octal escapes only (POSIX printf has no \x)
unhex() {
  for b in $(printf '%s' "$1" | sed 's/../& /g'); do printf "\\$(printf '%03o' "0x$b")"; done
}
# the first line openssl printed that says something (for FAIL messages)
why() { grep -v '^Using configuration' "$1" | sed -n '1p'; }

"""

_SH_HEAD = r"""#!/bin/sh
# edoc evidence bundle: independent check of record @RID@ version @N@.
#
# Needs only a POSIX shell, openssl, sha256sum, sed, grep, printf and mktemp: no edoc and no
# python. Run it from anywhere, e.g.   sh @R@/verify.sh
# Exit status 0 means every check below passed. VERIFY.md explains each step.
#
# Trust: by default seals and timestamps are checked against certs/root-ca.pem, which came in
# this bundle from the archive itself. To check against roots you obtained independently
# (your accredited TSA's CA, the organisation's published root), run
#     EDOC_TRUST=/path/to/roots.pem sh @R@/verify.sh
# (or EDOC_SEAL_CA / EDOC_TSA_CA to set the two separately).
set -u
# Paths you give are taken relative to where you are; the bundle's own, to its top directory.
abs() { case "$1" in ""|/*) printf '%s' "$1" ;; *) printf '%s/%s' "$(pwd)" "$1" ;; esac; }
TRUST=$(abs "${EDOC_TRUST:-}")
SEAL_IN=$(abs "${EDOC_SEAL_CA:-}")
TSA_IN=$(abs "${EDOC_TSA_CA:-}")
cd "$(dirname "$0")/../../.." || exit 2
R=@R@
SEAL_CA=${SEAL_IN:-${TRUST:-certs/root-ca.pem}}
TSA_CA=${TSA_IN:-${TRUST:-@TSA_CA@}}
T=$(mktemp -d) || exit 2
trap 'rm -rf "$T"' EXIT
failed=0
@FUNCS@echo "record @RID@ v@N@"
# 1. The ledger entry is this version's.
if grep -q '"record_id":"@RID@"' "$R/ledger-entry.json" \
    && [ "$(intfield version "$R/ledger-entry.json")" = @N@ ]; then
  ok "ledger entry names record @RID@ version @N@"
else
  bad "ledger entry does not name record @RID@ version @N@"
fi
"""

_SH_MANIFEST = r"""# 2. The manifest is the one the ledger logged:
#    SHA-256(manifest.json) = manifest_sha256 of the ledger entry.
want=$(hexfield manifest_sha256 "$R/ledger-entry.json")
got=$(sha < "$R/manifest.json")
if [ -n "$want" ] && [ "$got" = "$want" ]; then
  ok "manifest sha256 $got is the one in the ledger entry"
else
  bad "manifest sha256 is $got, the ledger entry says ${want:-nothing}"
fi
"""

_SH_CONTENT = r"""# 3. The content is the one the manifest describes:
#    SHA-256(content) = content.sha256 of the manifest.
CONTENT=@CONTENT@
want=$(hexfield sha256 "$R/manifest.json")
got=$(sha < "$CONTENT")
if [ -n "$want" ] && [ "$got" = "$want" ]; then
  ok "content sha256 $got is the one in the manifest ($CONTENT)"
else
  bad "content $CONTENT hashes to $got, the manifest says ${want:-nothing}"
fi
"""

_SH_TOMBSTONE = r"""# 3. A deletion record (tombstone) has no content: the manifest must say so.
if grep -q '"content":null' "$R/manifest.json"; then
  ok "no content: this version records a deletion (tombstone)"
else
  bad "manifest of a tombstone names content"
fi
"""

_SH_MANIFEST_SEAL = r"""# 3b. The manifest's own seal (CAdES detached signature,
#     RFC 5652 SignedData).
if openssl cms -verify -binary -inform DER -in "$R/manifest.p7s" -content "$R/manifest.json" \
    -CAfile "$SEAL_CA" -purpose any -out /dev/null 2>"$T/err"; then
  ok "manifest seal verifies and chains to $SEAL_CA"
else
  bad "manifest seal: $(why "$T/err")"
fi
"""

_SH_INCLUSION = r"""# 4. The ledger entry is a leaf of the sealed tree:
#    leaf hash SHA-256(0x00 || entry) (RFC 9162 section 2.1.1), then the path of
#    section 2.1.3.2 up to the checkpoint's root.
P=$R/inclusion-proof.json
index=$(intfield leaf_index "$P"); index=${index:-0}
size=$(intfield tree_size "$P"); size=${size:-0}
CP=checkpoints/$(printf '%012d' "$size")
{ printf '\000'; cat "$R/ledger-entry.json"; } > "$T/in"
openssl dgst -sha256 -binary < "$T/in" > "$T/h"
cur=$(sha < "$T/in")
if [ "$cur" = "$(hexfield leaf_hash "$P")" ]; then
  ok "leaf hash $cur (leaf $index of $size)"
else
  bad "leaf hash $cur is not the proof's leaf_hash $(hexfield leaf_hash "$P")"
fi
fn=$index; sn=$((size - 1)); walk=ok
for p in $(sed -n 's/.*"path":\[\([^]]*\)\].*/\1/p' "$P" | sed 's/[",]/ /g'); do
  if [ "$sn" -eq 0 ]; then walk=bad; break; fi
  if [ $((fn % 2)) -eq 1 ] || [ "$fn" -eq "$sn" ]; then
    { printf '\001'; unhex "$p"; cat "$T/h"; } > "$T/in"; side="left "
    if [ $((fn % 2)) -eq 0 ]; then
      while [ $((fn % 2)) -eq 0 ] && [ "$fn" -ne 0 ]; do fn=$((fn / 2)); sn=$((sn / 2)); done
    fi
  else
    { printf '\001'; cat "$T/h"; unhex "$p"; } > "$T/in"; side="right"
  fi
  openssl dgst -sha256 -binary < "$T/in" > "$T/h"
  cur=$(sha < "$T/in")
  printf '        sibling %s on the %s -> %s\n' "$p" "$side" "$cur"
  fn=$((fn / 2)); sn=$((sn / 2))
done
root=$(hexfield root_hash "$CP.json")
if [ "$walk" = ok ] && [ "$sn" -eq 0 ] && [ -n "$root" ] && [ "$cur" = "$root" ] \
    && [ "$(intfield tree_size "$CP.json")" = "$size" ]; then
  ok "inclusion: the path reaches root $root of $CP.json (tree size $size)"
else
  bad "inclusion: the path ends at $cur, $CP.json states root ${root:-nothing}"
fi
"""

_SH_CHECKPOINT = r"""# 5. The checkpoint is sealed (CAdES detached signature, RFC 5652 SignedData).
if openssl cms -verify -binary -inform DER -in "$CP.p7s" -content "$CP.json" \
    -CAfile "$SEAL_CA" -purpose any -out /dev/null 2>"$T/err"; then
  ok "checkpoint seal verifies and chains to $SEAL_CA"
else
  bad "checkpoint seal: $(why "$T/err")"
fi
# 6. The checkpoint is timestamped (RFC 3161): the token's imprint is SHA-256 of the JSON.
if openssl ts -verify -in "$CP.tsr" -data "$CP.json" -CAfile "$TSA_CA" \
    -untrusted certs/tsa.pem > "$T/err" 2>&1; then
  ok "checkpoint timestamp verifies and chains to $TSA_CA" \
     "($(openssl ts -reply -in "$CP.tsr" -text 2>/dev/null | sed -n 's/^Time stamp: //p'))"
else
  bad "checkpoint timestamp: $(why "$T/err")"
fi
"""

_SH_HISTORY_FIRST = r"""# 7. History: the first version has no predecessor.
if grep -q '"previous_version_sha256":null' "$R/ledger-entry.json"; then
  ok "history: first version"
else
  bad "history: version 1 names a predecessor"
fi
"""

_SH_HISTORY_NEXT = r"""# 7. History (訂正削除履歴): this version names the previous
#    version's manifest digest.
want=$(hexfield manifest_sha256 "@PREV@/ledger-entry.json")
got=$(hexfield previous_version_sha256 "$R/ledger-entry.json")
if [ -n "$want" ] && [ "$got" = "$want" ]; then
  ok "history: follows version @PN@ (manifest $want)"
else
  bad "history: previous_version_sha256 is ${got:-missing}, version @PN@ logged ${want:-nothing}"
fi
"""

_SH_DISPOSAL = r"""# 8. Disposal: a sealed, timestamped disposal certificate lists
#    this version's manifest digest.
D=@D@
want=$(hexfield manifest_sha256 "$R/ledger-entry.json")
if openssl cms -verify -binary -inform DER -in "$D.p7s" -content "$D.json" \
    -CAfile "$SEAL_CA" -purpose any -out /dev/null 2>"$T/err"; then
  ok "disposal certificate seal verifies"
else
  bad "disposal certificate seal: $(why "$T/err")"
fi
if openssl ts -verify -in "$D.tsr" -data "$D.json" -CAfile "$TSA_CA" \
    -untrusted certs/tsa.pem > "$T/err" 2>&1; then
  ok "disposal certificate timestamp verifies"
else
  bad "disposal certificate timestamp: $(why "$T/err")"
fi
if [ -n "$want" ] && grep -q "\"manifest_sha256\":\"$want\"" "$D.json"; then
  ok "DISPOSED: $D.json lists manifest $want"
else
  bad "$D.json does not list manifest ${want:-?}"
fi
"""

_SH_NO_CERT = r"""# 8. Disposal: this version was disposed, but the archive holds
#    no certificate for it.
bad "disposed without a disposal certificate"
"""

_SH_TAIL = r"""if [ "$failed" -eq 0 ]; then
  echo "ALL CHECKS PASSED: record @RID@ v@N@"
else
  echo "CHECKS FAILED: record @RID@ v@N@"
fi
exit "$failed"
"""


def _fill(template: str, values: Mapping[str, str]) -> str:
    for k, v in values.items():
        template = template.replace(f"@{k}@", v)
    return template


def _verify_sh(v: _VersionPlan, tsa_ca: str) -> str:
    prev = f"records/{v.rid}/v{v.version - 1}"
    values = {"RID": v.rid, "N": str(v.version), "R": v.prefix, "TSA_CA": tsa_ca,
              "CONTENT": v.content_path or "", "PREV": prev, "PN": str(v.version - 1),
              "D": (v.disposal or "").removesuffix(".json")}
    parts = [_SH_HEAD]
    if not v.disposed:
        parts.append(_SH_MANIFEST)
        parts.append(_SH_CONTENT if v.content_path else _SH_TOMBSTONE)
        if v.manifest_seal is not None:
            parts.append(_SH_MANIFEST_SEAL)
    parts.append(_SH_INCLUSION)
    parts.append(_SH_CHECKPOINT)
    parts.append(_SH_HISTORY_FIRST if v.version == 1 else _SH_HISTORY_NEXT)
    if v.disposed:
        parts.append(_SH_DISPOSAL if v.disposal else _SH_NO_CERT)
    parts.append(_SH_TAIL)
    return _fill("".join(parts).replace("@FUNCS@", _SH_FUNCS), values)


# =============================================================================================
# VERIFY.md
# =============================================================================================

_SED_CONTENT = r"""sed -n 's/.*"sha256":"\([0-9a-f]\{64\}\)".*/\1/p'"""
_SED_MANIFEST = r"""sed -n 's/.*"manifest_sha256":"\([0-9a-f]\{64\}\)".*/\1/p'"""
_SED_PREVIOUS = r"""sed -n 's/.*"previous_version_sha256":"\([0-9a-f]\{64\}\)".*/\1/p'"""
_SED_LEAF = r"""sed -n 's/.*"leaf_hash":"\([0-9a-f]\{64\}\)".*/\1/p'"""
_SED_ROOT = r"""sed -n 's/.*"root_hash":"\([0-9a-f]\{64\}\)".*/\1/p'"""


def _compare(a: str, b: str) -> str:
    return f'[ "{a}" = "{b}" ] && echo MATCH || echo MISMATCH\n'


def _verify_md(index: dict[str, Any], plans: list[_RecordPlan], root_ca: x509.Certificate,
               tsa_ca: str) -> str:
    versions = [v for p in plans for v in p.versions]
    kept = [v for v in versions if not v.disposed]
    example = next((v for v in kept if v.content_path and v.proof and v.proof.path),
                   next((v for v in kept if v.content_path), kept[0] if kept else None))
    fingerprint = root_ca.fingerprint(hashes.SHA256()).hex(":").upper()
    accredited = index["tsa"]["accredited"]
    o: list[str] = []
    add = o.append
    add("# Evidence bundle — how to check it without edoc\n\n")
    add(f"Archive `{index['archive_id']}` ({index['organisation'] or 'no organisation set'}), "
        f"bundle written {index['created']} by `{index['created_by']}` with edoc "
        f"{index['tool']['version']}: {len(plans)} record(s), {len(versions)} version(s), "
        f"checkpoint(s) {', '.join(str(s) for s in index['checkpoints'])}.\n\n")
    add("Everything here can be checked with a POSIX shell, `openssl` (1.1.1 or 3.x), "
        "`sha256sum`, `sed`, `grep` and `printf`; no edoc, no network. Unzip the bundle and run "
        "every command from its top directory. Each block marked `sh` can be pasted as is, "
        "in order.\n\n")
    add("## What is proved, and the chain that proves it\n\n"
        "For every version of a record:\n\n"
        "1. **Content** — SHA-256 of `content` equals `content.sha256` in the version's "
        "`manifest.json`. Fails if one byte of the document changed.\n"
        "2. **Manifest** — SHA-256 of `manifest.json` equals `manifest_sha256` in "
        "`ledger-entry.json`. Fails if the metadata (date, amount, counterparty, retention…) "
        "was edited after it was logged.\n"
        "3. **Leaf** — the ledger entry is a leaf of the archive's Merkle tree: its leaf hash "
        "is SHA-256(0x00 ‖ entry bytes) (RFC 9162 §2.1.1).\n"
        "4. **Inclusion** — `inclusion-proof.json` lists the sibling hashes from that leaf up "
        "to the root; hashing pairwise as SHA-256(0x01 ‖ left ‖ right) (RFC 9162 §2.1.3.2) "
        "must end at `root_hash` of `checkpoints/<tree_size>.json`. Fails if any ledger entry "
        "or the proof was altered, or the entry was never in that tree.\n"
        "5. **Seal** — `checkpoints/<size>.p7s` is a CAdES detached signature (RFC 5652 "
        "SignedData, ETSI EN 319 122-1) over the checkpoint JSON. Fails if the checkpoint was "
        "altered or re-signed with a key that does not chain to the root you trust.\n"
        "6. **Timestamp** — `checkpoints/<size>.tsr` is an RFC 3161 time-stamp response whose "
        "message imprint is SHA-256 of the checkpoint JSON. It proves the checkpoint — and "
        "so, through steps 1-4, the content — existed unaltered at the token's genTime "
        "(hash-tree stamping, NTA 一問一答 問47: each file verifies on its own). Fails if the "
        "JSON changed (imprint mismatch) or the token does not chain to the TSA root you "
        "trust.\n"
        "7. **History** (訂正削除履歴) — every version after the first names the previous "
        "version's manifest digest (`previous_version_sha256`), so corrections and deletions "
        "form a chain and none can be left out unnoticed.\n"
        "8. **Manifest seal** — where the profile requires it (e.g. records needing "
        "記名押印), `manifest.p7s` seals the manifest itself.\n\n"
        "Disposed versions (retention ended, `edoc purge`) no longer have content or "
        "manifest. Their ledger entry is still proved by steps 3-6, and a sealed, timestamped "
        "disposal certificate (`disposals/<run>.json|.p7s|.tsr`, 廃棄証明) lists the manifest "
        "digest of every version that was destroyed.\n\n")
    add("## Trust: what these checks can and cannot tell you\n\n")
    add("- `certs/root-ca.pem` came **from the archive**, inside this bundle. Checking against "
        "it proves that the files are exactly what the archive's own keys sealed and "
        "timestamped — nothing more: whoever controls the archive controls those keys. The "
        "point of independent roots (`EDOC_TRUST=FILE` for the scripts, "
        "`edoc verify-bundle --trust FILE`, `-CAfile FILE` for openssl) is to check against "
        "roots **you obtained yourself**, through a channel the archive's operator does not "
        "control. With `--trust` the bundle's `certs/root-ca.pem` is ignored.\n")
    add(f"- The archive's root certificate fingerprint is `SHA256 {fingerprint}` "
        "(`openssl x509 -in certs/root-ca.pem -noout -fingerprint -sha256`). Compare it with "
        "the fingerprint the organisation gave you separately, not with this line.\n")
    if accredited:
        add(f"- Timestamps come from an external RFC 3161 TSA (`{index['tsa']['kind']}`); "
            f"its CA as configured in the archive is `{tsa_ca}`. Use the CA certificate you "
            "obtain from that TSA (a 総務大臣認定 time-stamping service publishes it) instead "
            "of the copy in this bundle.\n")
    else:
        add("- **The seal and timestamp certificates in this bundle are edoc's embedded "
            "development PKI and TSA: NOT ACCREDITED.** Their names say so. The evidence is "
            "cryptographically sound, but the time comes from the archive's own clock and "
            "the TSA is not a 総務大臣認定 time-stamping service. With an accredited TSA, use "
            "that TSA's CA certificate in place of `certs/root-ca.pem` for the timestamp "
            "checks.\n")
    add("- `bundle.json` and `SHA256SUMS` are an unsigned index. They catch accidental damage "
        "in transit; anyone who alters a record can also rewrite them. The proof rests on "
        "steps 1-8 above, which end in a seal and a timestamp.\n"
        "- A bundle proves what it contains. It cannot prove that no later version of a "
        "record exists (a correction or deletion made after it was written, or left out): "
        "each record's `history.json` lists the versions known when the bundle was written, "
        "and the archive's `edoc show --history` or a newer bundle shows any since.\n"
        "- openssl checks certificates as of today. Seal and TSA certificates last about ten "
        "years; evidence older than that needs renewal timestamps, which this bundle version "
        "does not carry.\n\n")
    add("## Quick check\n\n"
        "The files arrived intact (this reads every byte):\n\n"
        "```sh\nsha256sum -c SHA256SUMS\n```\n\n"
        "Every version, all steps (each script prints `ok`/`FAIL` per step and ends with "
        "`ALL CHECKS PASSED` or `CHECKS FAILED`; its exit status is 0 only if all passed):\n\n"
        "```sh\nfor s in records/*/v*/verify.sh; do sh \"$s\"; done\n```\n\n"
        "To check against roots you obtained yourself: "
        "`EDOC_TRUST=/path/to/roots.pem sh records/<id>/v<n>/verify.sh`.\n\n")
    add("## Versions in this bundle\n\n| record | version | kind | state | script |\n"
        "|---|---|---|---|---|\n")
    for v in versions:
        add(f"| `{v.rid}` | {v.version} | {v.kind} | "
            f"{'disposed ' + (v.disposed_at or '') if v.disposed else 'kept'} | "
            f"`{v.prefix}/verify.sh` |\n")
    add("\n")
    if example is not None:
        _md_worked_example(o, example, plans, tsa_ca)
    disposed = [v for v in versions if v.disposed and v.disposal]
    if disposed:
        d = disposed[0]
        base = (d.disposal or "").removesuffix(".json")
        add("## Disposed versions, by hand\n\n"
            f"Example: record `{d.rid}` version {d.version}. Steps 3-6 work exactly as "
            "above on its `ledger-entry.json` and `inclusion-proof.json`. Then check the "
            "disposal certificate and that it lists the manifest digest the ledger logged:\n\n"
            "```sh\n"
            f"D={base}\nR={d.prefix}\n"
            "openssl cms -verify -binary -inform DER -in \"$D.p7s\" -content \"$D.json\" "
            "-CAfile certs/root-ca.pem -purpose any -out /dev/null\n"
            f"openssl ts -verify -in \"$D.tsr\" -data \"$D.json\" -CAfile {tsa_ca} "
            "-untrusted certs/tsa.pem\n"
            f"m=$({_SED_MANIFEST} \"$R/ledger-entry.json\"); echo \"manifest $m\"\n"
            "grep -q \"\\\"manifest_sha256\\\":\\\"$m\\\"\" \"$D.json\" && echo MATCH "
            "|| echo MISMATCH\n```\n\n")
    add("## What a failure means\n\n"
        "| step | what it means |\n|---|---|\n"
        "| content | the document bytes are not the ones the archive recorded |\n"
        "| manifest | the metadata was changed after it was logged |\n"
        "| leaf / inclusion | the ledger entry or its proof was altered, or it is not in the "
        "sealed tree |\n"
        "| seal | the checkpoint (or manifest) was altered, or signed by a key outside the "
        "roots you trust |\n"
        "| timestamp | the checkpoint was altered after it was stamped, or the token comes from "
        "a TSA outside the roots you trust |\n"
        "| history | a version is missing or the chain of corrections was rewritten |\n"
        "| `sha256sum -c` | a file was damaged or replaced in transit (check the steps above to "
        "see whether the evidence itself is affected) |\n")
    return "".join(o)


def _md_worked_example(o: list[str], v: _VersionPlan, plans: list[_RecordPlan],
                       tsa_ca: str) -> None:
    add = o.append
    assert v.proof is not None
    cp = layout.checkpoint_key(v.checkpoint, "json").removesuffix(".json")
    add("## Step by step, by hand\n\n"
        f"Worked example: record `{v.rid}` version {v.version} ({v.kind}). The same commands "
        "work for any version: set `R` to its directory, `C` to its content (the `content` "
        "field of its entry in `bundle.json`) and `CP` to `checkpoints/` followed by its "
        "proof's `tree_size` as 12 digits.\n\n"
        f"```sh\nR={v.prefix}\nC={v.content_path or ''}\nCP={cp}\n```\n\n")
    add("**1. Content.** Canonical JSON is one line with sorted keys, and the only key named "
        "exactly `sha256` in a manifest is the content digest, so `sed` can pick it out:\n\n"
        "```sh\n"
        "a=$(sha256sum < \"$C\" | sed 's/ .*//'); echo \"content  $a\"\n"
        f"b=$({_SED_CONTENT} \"$R/manifest.json\"); echo \"manifest $b\"\n"
        + _compare("$a", "$b") + "```\n\n")
    add("**2. Manifest.**\n\n```sh\n"
        "a=$(sha256sum < \"$R/manifest.json\" | sed 's/ .*//'); echo \"manifest     $a\"\n"
        f"b=$({_SED_MANIFEST} \"$R/ledger-entry.json\"); echo \"ledger entry $b\"\n"
        + _compare("$a", "$b") + "```\n\n")
    leaf = v.proof.leaf_hash
    add("**3. Leaf hash** (RFC 9162 §2.1.1: a 0x00 byte, then the entry's bytes):\n\n"
        "```sh\n(printf '\\000'; cat \"$R/ledger-entry.json\") | openssl dgst -sha256\n```\n\n"
        f"It prints `{leaf.hex()}`, which must be the `leaf_hash` in `inclusion-proof.json`:"
        "\n\n```sh\n"
        "a=$( (printf '\\000'; cat \"$R/ledger-entry.json\") | openssl dgst -sha256 -r "
        "| sed 's/ .*//'); echo \"leaf  $a\"\n"
        f"b=$({_SED_LEAF} \"$R/inclusion-proof.json\"); echo \"proof $b\"\n"
        + _compare("$a", "$b") + "```\n\n")
    steps = v.proof.walk()
    add(f"**4. Inclusion path.** The entry is leaf `leaf_index` = {v.proof.index} of a tree of "
        f"`tree_size` = {v.proof.tree_size} leaves. RFC 9162 §2.1.3.2 says on which side each "
        "sibling in `path` goes: start with fn = leaf_index and sn = tree_size − 1; for each "
        "sibling, if fn is odd or fn = sn, the sibling is on the **left** (and then, if fn is "
        "even, halve fn and sn until fn is odd or 0); otherwise it is on the **right**; then "
        "halve fn and sn (dropping remainders). At the end sn must be 0. Each step hashes a "
        "0x01 byte, the left hash and the right hash; `printf` writes the 32-byte hashes as "
        "octal escapes (`\\ddd`), which every POSIX `printf` understands. The hash each line "
        "prints is the one spelled out in the next line.\n\n")
    last = "(printf '\\000'; cat \"$R/ledger-entry.json\")"
    if not steps:
        add("This tree has a single leaf: the leaf hash is itself the root.\n\n")
    else:
        add("```sh\n")
        prev = leaf
        for i, ((side, h), sib) in enumerate(zip(steps, v.proof.path, strict=True), 1):
            left, right = (sib, prev) if side == "left" else (prev, sib)
            last = f"(printf '\\001'; printf '{_octal(left)}'; printf '{_octal(right)}')"
            add(f"# step {i}: sibling on the {side}; prints {h.hex()}\n{last} "
                "| openssl dgst -sha256\n")
            prev = h
        add("```\n\n")
    add("The last hash must be the checkpoint's root (the last step once more, compared):"
        "\n\n```sh\n"
        f"r=$({_SED_ROOT} \"$CP.json\"); echo \"root     $r\"\n"
        f"h=$( {last} | openssl dgst -sha256 -r | sed 's/ .*//'); echo \"computed $h\"\n"
        + _compare("$h", "$r") + "```\n\n"
        "(`root_hash` appears twice in a checkpoint that names its predecessor, inside "
        "`previous`; the greedy `sed` picks the last one, the checkpoint's own, because keys "
        "are sorted.)\n\n")
    add("**5. Checkpoint seal** (prints `CMS Verification successful`):\n\n```sh\n"
        "openssl cms -verify -binary -inform DER -in \"$CP.p7s\" -content \"$CP.json\" "
        "-CAfile certs/root-ca.pem -purpose any -out /dev/null\n```\n\n")
    add("**6. Checkpoint timestamp** (prints `Verification: OK`), then its contents "
        "(genTime, policy, serial, TSA):\n\n```sh\n"
        f"openssl ts -verify -in \"$CP.tsr\" -data \"$CP.json\" -CAfile {tsa_ca} "
        "-untrusted certs/tsa.pem\n"
        "openssl ts -reply -in \"$CP.tsr\" -text\n```\n\n")
    rec = next(p for p in plans if p.rid == v.rid)
    later = [x for x in rec.versions if x.version > 1]
    if later:
        x = later[0]
        prev_dir = f"records/{x.rid}/v{x.version - 1}"
        add(f"**7. History.** Version {x.version} of this record names version "
            f"{x.version - 1}'s manifest digest:\n\n```sh\n"
            f"a=$({_SED_MANIFEST} {prev_dir}/ledger-entry.json); "
            f"echo \"v{x.version - 1} manifest      $a\"\n"
            f"b=$({_SED_PREVIOUS} {x.prefix}/ledger-entry.json); "
            f"echo \"v{x.version} names previous $b\"\n"
            + _compare("$a", "$b") + "```\n\n")
    else:
        add("**7. History.** A first version's ledger entry has "
            "`\"previous_version_sha256\":null`; each later version's names the manifest "
            "digest of the one before (see `history.json`).\n\n")
    sealed = next((x for p in plans for x in p.versions if x.manifest_seal is not None), None)
    if sealed is not None:
        add(f"**8. Manifest seal** (record `{sealed.rid}` version {sealed.version}):\n\n"
            "```sh\n"
            f"openssl cms -verify -binary -inform DER -in {sealed.prefix}/manifest.p7s "
            f"-content {sealed.prefix}/manifest.json -CAfile certs/root-ca.pem -purpose any "
            "-out /dev/null\n```\n\n")
    else:
        add("**8. Manifest seal.** No version in this bundle has one (their profiles seal "
            "checkpoints only).\n\n")


# =============================================================================================
# Reading a bundle safely
# =============================================================================================


class _MemberError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _unsafe(path: Path, why: str) -> InputError:
    return InputError(f"{path.name}: {why}; refusing to read the bundle", code="BUNDLE_UNSAFE",
                      hint="ask the archive for a fresh bundle; do not unzip this one")


class _BundleReader:
    """A ZIP whose member list was checked before any member is read."""

    def __init__(self, path: Path, *, max_total_bytes: int, max_entries: int) -> None:
        self.path = path
        try:
            self.zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
            raise InputError(f"{path} is not a readable ZIP file ({exc})",
                             code="BUNDLE_MALFORMED") from None
        except OSError as exc:
            raise InputError(f"{path} cannot be read: {exc.strerror or exc}",
                             code="BUNDLE_UNREADABLE") from None
        try:
            self.members = self._check(max_total_bytes, max_entries)
        except BaseException:
            self.zf.close()
            raise
        self._digests: dict[str, tuple[str, int] | _MemberError] = {}

    def close(self) -> None:
        self.zf.close()

    def _check(self, max_total: int, max_entries: int) -> dict[str, zipfile.ZipInfo]:
        infos = self.zf.infolist()
        if len(infos) > max_entries:
            raise _unsafe(self.path, f"{len(infos)} members, at most {max_entries} allowed")
        members: dict[str, zipfile.ZipInfo] = {}
        seen: set[str] = set()
        total = 0
        for info in infos:
            name = info.orig_filename
            if name in seen:
                raise _unsafe(self.path, f"member name {name!r} occurs twice")
            seen.add(name)
            parts = name.rstrip("/").split("/")
            if (name != info.filename or not _SAFE_NAME.fullmatch(name)
                    or any(p in ("", ".", "..") for p in parts)):
                # Absolute names, "..", backslashes, drive letters, control characters: a
                # name that could land outside the directory an auditor unzips into.
                raise _unsafe(self.path, f"member name {name!r} is not a plain relative path")
            mode = info.external_attr >> 16
            if info.create_system == 3 and stat.S_ISLNK(mode):
                raise _unsafe(self.path, f"member {name} is a symbolic link")
            if info.flag_bits & 0x1:
                raise _unsafe(self.path, f"member {name} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise _unsafe(self.path, f"member {name} uses compression method "
                                         f"{info.compress_type}; only stored or deflated")
            total += info.file_size
            if total > max_total:
                raise _unsafe(self.path, f"members expand to more than {max_total} bytes "
                                         "(the limit); a zip bomb?")
            if not info.is_dir():
                members[name] = info
        # Entries whose data overlap (one local record shared by many central entries) are
        # how the densest zip bombs work; a ZIP edoc writes never has them.
        ordered = sorted(infos, key=lambda i: i.header_offset)
        for a, b in itertools.pairwise(ordered):
            end = a.header_offset + _LOCAL_HEADER_MIN + len(a.orig_filename.encode()) \
                + a.compress_size
            if end > b.header_offset:
                raise _unsafe(self.path, f"members {a.orig_filename} and {b.orig_filename} "
                                         "overlap")
        return members

    def has(self, name: str) -> bool:
        return name in self.members

    def names(self) -> list[str]:
        return list(self.members)

    def read(self, name: str, limit: int = MAX_SMALL_MEMBER) -> bytes:
        info = self.members.get(name)
        if info is None:
            raise _MemberError("BUNDLE_MALFORMED", f"{name} is missing from the bundle")
        if info.file_size > limit:
            raise _MemberError("BUNDLE_MALFORMED",
                               f"{name} is {info.file_size} bytes, at most {limit} expected")
        try:
            with self.zf.open(info) as f:
                return f.read()
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise _MemberError("BUNDLE_FILE_ALTERED", f"{name} is damaged ({exc})") from None

    def digest(self, name: str) -> tuple[str, int]:
        """SHA-256 and size of a member, hashed as a stream (content can be gigabytes)."""
        cached = self._digests.get(name)
        if cached is None:
            cached = self._hash(name)
            self._digests[name] = cached
        if isinstance(cached, _MemberError):
            raise cached
        return cached

    def _hash(self, name: str) -> tuple[str, int] | _MemberError:
        info = self.members.get(name)
        if info is None:
            return _MemberError("BUNDLE_MALFORMED", f"{name} is missing from the bundle")
        h = hashlib.sha256()
        size = 0
        try:
            with self.zf.open(info) as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
                    size += len(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            return _MemberError("BUNDLE_FILE_ALTERED", f"{name} is damaged ({exc})")
        return h.hexdigest(), size


def _load_certs(data: bytes, what: str) -> list[x509.Certificate]:
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise ValueError(f"{what} holds no readable certificate ({exc})") from None


def _load_trust(trust: Sequence[Path]) -> list[x509.Certificate]:
    roots: list[x509.Certificate] = []
    for p in trust:
        try:
            roots.extend(_load_certs(Path(p).read_bytes(), str(p)))
        except OSError as exc:
            raise InputError(f"trust root file {p} cannot be read: {exc.strerror or exc}",
                             code="TRUST_UNREADABLE") from None
        except ValueError as exc:
            raise InputError(str(exc), code="TRUST_UNREADABLE",
                             hint="give PEM (or DER) CA certificates") from None
    return roots


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


# =============================================================================================
# Verifying
# =============================================================================================


def verify_bundle(path: Path, *, trust: Sequence[Path] = (),
                  max_total_bytes: int = MAX_TOTAL_BYTES,
                  max_entries: int = MAX_ENTRIES) -> BundleReport:
    """Check every version in the bundle at ``path``: no archive, no config, no network.

    Trust roots are the bundle's ``certs/root-ca.pem`` (and ``certs/tsa-ca.pem``) unless
    ``trust`` names PEM/DER files, in which case those are the only roots. Raises
    ``InputError`` (``BUNDLE_UNSAFE``, ``BUNDLE_MALFORMED``, ``TRUST_UNREADABLE``) only when
    the bundle cannot be checked at all; every finding about a record is a check in the
    returned report.
    """
    path = Path(path)
    given = _load_trust(trust) if trust else None
    reader = _BundleReader(path, max_total_bytes=max_total_bytes, max_entries=max_entries)
    try:
        return _Verifier(reader, given, [str(p) for p in trust]).run()
    finally:
        reader.close()


@dataclass
class _Checkpoint:
    seal: Check
    timestamp: Check
    root: bytes | None
    tree_size: int | None
    problem: str | None


class _Verifier:
    def __init__(self, b: _BundleReader, given: list[x509.Certificate] | None,
                 given_names: list[str]) -> None:
        self.b = b
        self.bundle_checks: list[Check] = []
        self.index = self._index()
        if given is not None:
            self.roots, self.trust_source, self.trust_names = given, "given", given_names
        else:
            self.roots = self._bundle_roots()
            self.trust_source = "bundle"
            self.trust_names = [_subject(c) for c in self.roots]
        self._checkpoints: dict[int, _Checkpoint] = {}
        self._entries: dict[tuple[str, int], tuple[bytes, dict[str, Any]] | None] = {}
        self._histories: dict[str, dict[str, Any] | None] = {}
        self._disposals: dict[str, tuple[Check, dict[str, Any] | None]] = {}
        #: Members already compared with bundle.json by some version's ``files`` check.
        self._covered: set[str] = {"bundle.json"}

    # -- the index -------------------------------------------------------------------------
    def _index(self) -> dict[str, Any]:
        try:
            data = json.loads(self.b.read("bundle.json"))
        except _MemberError as exc:
            raise InputError(exc.detail, code="BUNDLE_MALFORMED",
                             hint="is this an edoc evidence bundle?") from None
        except ValueError as exc:
            raise InputError(f"bundle.json is not JSON ({exc})", code="BUNDLE_MALFORMED") \
                from None
        problem = _index_problem(data)
        if problem:
            raise InputError(f"bundle.json {problem}", code="BUNDLE_MALFORMED",
                             hint=f"required an {BUNDLE_SCHEMA} index")
        result: dict[str, Any] = data
        return result

    def _bundle_roots(self) -> list[x509.Certificate]:
        roots: list[x509.Certificate] = []
        for name in ("certs/root-ca.pem", "certs/tsa-ca.pem"):
            if name == "certs/tsa-ca.pem" and not self.b.has(name):
                continue
            try:
                roots.extend(_load_certs(self.b.read(name), name))
            except _MemberError as exc:
                self.bundle_checks.append(Check.fail("trust", exc.code, exc.detail))
            except ValueError as exc:
                self.bundle_checks.append(Check.fail("trust", "BUNDLE_MALFORMED", str(exc)))
        return roots

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> BundleReport:
        reports: list[RecordReport] = []
        for rec in self.index["records"]:
            rid = rec["record_id"]
            listed = {int(v["version"]): v for v in rec["versions"]}
            for v in rec["versions"]:
                reports.append(self._version(rid, v, listed))
        self.bundle_checks.append(self._bundle_files())
        return BundleReport(path=self.b.path, archive_id=self.index.get("archive_id"),
                            created=self.index.get("created"),
                            trust_source=self.trust_source, trust_roots=self.trust_names,
                            checks=self.bundle_checks, reports=reports)

    def _version(self, rid: str, v: dict[str, Any], listed: dict[int, dict[str, Any]]
                 ) -> RecordReport:
        n = int(v["version"])
        prefix = layout.record_prefix(rid, n).rstrip("/")
        report = RecordReport(rid, n)
        checks = report.checks
        disposed = v.get("state") == "disposed"
        checks.append(self._files(rid, v, prefix))
        entry = self._entry(rid, n)
        checks.append(self._ledger(rid, n, entry))
        if not disposed:
            manifest, body = self._manifest(prefix, entry, checks)
            checks.append(self._content(v, body))
            seal = self._manifest_seal(prefix, manifest, body)
            if seal is not None:
                checks.append(seal)
        checks.extend(self._inclusion(prefix, entry))
        checks.append(self._history(rid, n, entry, listed))
        if disposed:
            checks.append(self._disposal(rid, n, v, entry))
        return report

    # -- per-version checks ----------------------------------------------------------------
    def _files(self, rid: str, v: dict[str, Any], prefix: str) -> Check:
        """The members this version's evidence uses against the digests in bundle.json."""
        files: dict[str, str] = self.index["files"]
        names = {n for n in files if n.startswith(prefix + "/")}
        names |= {n for n in self.b.names() if n.startswith(prefix + "/")}
        names.add(f"records/{rid}/history.json")
        if isinstance(v.get("content"), str):
            names.add(v["content"])
        if isinstance(v.get("disposal"), str):
            base = v["disposal"].removesuffix(".json")
            names |= {f"{base}.{e}" for e in ("json", "p7s", "tsr")}
        proof_size = self._proof_size(prefix)
        if proof_size is not None:
            base = layout.checkpoint_key(proof_size, "json").removesuffix(".json")
            names |= {f"{base}.{e}" for e in ("json", "p7s", "tsr")}
        self._covered |= names
        return self._compare_files(sorted(names), files, "files")

    def _compare_files(self, names: list[str], files: Mapping[str, str], check: str) -> Check:
        altered: list[str] = []
        missing: list[str] = []
        unlisted: list[str] = []
        damaged: list[str] = []
        for name in names:
            want = files.get(name)
            if not self.b.has(name):
                if want is not None:
                    missing.append(name)
                continue
            if want is None:
                unlisted.append(name)
                continue
            try:
                got, _size = self.b.digest(name)
            except _MemberError:
                damaged.append(name)
                continue
            if got != want:
                altered.append(name)
        if altered or unlisted or damaged:
            bad = altered + damaged + unlisted
            what = [f"{', '.join(altered)} differ from bundle.json" if altered else "",
                    f"{', '.join(damaged)} are damaged" if damaged else "",
                    f"{', '.join(unlisted)} are not listed in bundle.json" if unlisted else ""]
            return Check.fail(check, "BUNDLE_FILE_ALTERED",
                              "; ".join(w for w in what if w),
                              expected=json.dumps({n: files.get(n) for n in bad}),
                              found=json.dumps({n: self._digest_or_none(n) for n in bad}))
        if missing:
            return Check.fail(check, "BUNDLE_MALFORMED",
                              f"listed in bundle.json but missing: {', '.join(missing)}")
        return Check.ok(check, f"{len(names)} file(s) match bundle.json")

    def _digest_or_none(self, name: str) -> str | None:
        try:
            return self.b.digest(name)[0]
        except _MemberError:
            return None

    def _entry(self, rid: str, n: int) -> tuple[bytes, dict[str, Any]] | None:
        key = (rid, n)
        if key not in self._entries:
            result: tuple[bytes, dict[str, Any]] | None = None
            try:
                data = self.b.read(f"{layout.record_prefix(rid, n)}ledger-entry.json")
                obj = json.loads(data)
                if isinstance(obj, dict):
                    result = (data, obj)
            except (_MemberError, ValueError):
                result = None
            self._entries[key] = result
        return self._entries[key]

    @staticmethod
    def _ledger(rid: str, n: int, entry: tuple[bytes, dict[str, Any]] | None) -> Check:
        if entry is None:
            return Check.fail("ledger", "BUNDLE_MALFORMED",
                              "ledger-entry.json is missing or not a JSON object")
        obj = entry[1]
        if obj.get("record_id") != rid or obj.get("version") != n:
            return Check.fail("ledger", "LEDGER_ENTRY_MISMATCH",
                              "the ledger entry is not this version's",
                              expected=f"{rid} v{n}",
                              found=f"{obj.get('record_id')} v{obj.get('version')}")
        return Check.ok("ledger", f"{obj.get('event')} entry of {obj.get('at')}")

    def _manifest(self, prefix: str, entry: tuple[bytes, dict[str, Any]] | None,
                  checks: list[Check]) -> tuple[bytes | None, dict[str, Any] | None]:
        try:
            data = self.b.read(f"{prefix}/manifest.json")
        except _MemberError as exc:
            checks.append(Check.fail("manifest", exc.code, exc.detail))
            return None, None
        found = hashlib.sha256(data).hexdigest()
        logged = entry[1].get("manifest_sha256") if entry else None
        if logged is None:
            checks.append(Check.fail("manifest", "LEDGER_ENTRY_MISMATCH",
                                     "no ledger entry names a manifest digest", found=found))
        elif found != logged:
            checks.append(Check.fail("manifest", "MANIFEST_ALTERED",
                                     "manifest.json differs from the one the ledger logged",
                                     expected=str(logged), found=found))
        else:
            checks.append(Check.ok("manifest", f"sha256 {found}"))
        try:
            body = json.loads(data)
        except ValueError:
            return data, None
        return data, body if isinstance(body, dict) else None

    def _content(self, v: dict[str, Any], body: dict[str, Any] | None) -> Check:
        if body is None:
            return Check.fail("content", "BUNDLE_MALFORMED",
                              "no readable manifest states the content digest")
        content = body.get("content")
        if content is None:
            # A tombstone, or a later version of a deleted record: the manifest (bound to
            # the ledger) says there is no content, so there is nothing to hash.
            return Check.ok("content", f"{body.get('kind')} version: no content")
        expected = content.get("sha256") if isinstance(content, dict) else None
        path = v.get("content")
        if not isinstance(path, str) or not isinstance(expected, str):
            return Check.fail("content", "BUNDLE_MALFORMED",
                              "bundle.json or the manifest does not name the content")
        try:
            found, size = self.b.digest(path)
        except _MemberError as exc:
            return Check.fail("content", exc.code, exc.detail)
        if found != expected:
            return Check.fail("content", "DIGEST_MISMATCH",
                              f"{path} ({size} bytes) hashes differently than the manifest "
                              f"states ({content.get('size')} bytes)",
                              expected=expected, found=found)
        return Check.ok("content", f"sha256 {found} ({size} bytes)")

    def _manifest_seal(self, prefix: str, manifest: bytes | None,
                       body: dict[str, Any] | None) -> Check | None:
        name = f"{prefix}/manifest.p7s"
        required = bool(((body or {}).get("evidence") or {}).get("seal_manifest"))
        if not self.b.has(name):
            if required:
                return Check.fail("manifest_seal", "SEAL_MISSING",
                                  "the manifest requires its own seal; manifest.p7s is missing")
            return None
        if manifest is None:
            return Check.fail("manifest_seal", "BUNDLE_MALFORMED", "no manifest to check")
        try:
            seal = self.b.read(name)
        except _MemberError as exc:
            return Check.fail("manifest_seal", exc.code, exc.detail)
        return replace(verify_seal(manifest, seal, trust_roots=self.roots), name="manifest_seal")

    def _proof_size(self, prefix: str) -> int | None:
        try:
            return merkle.InclusionProof.from_json(
                self.b.read(f"{prefix}/inclusion-proof.json")).tree_size
        except (_MemberError, ValueError):
            return None

    def _inclusion(self, prefix: str, entry: tuple[bytes, dict[str, Any]] | None
                   ) -> list[Check]:
        try:
            proof = merkle.InclusionProof.from_json(self.b.read(f"{prefix}/inclusion-proof.json"))
        except _MemberError as exc:
            return [Check.fail("inclusion", exc.code, exc.detail)]
        except ValueError as exc:
            return [Check.fail("inclusion", "BUNDLE_MALFORMED",
                               f"inclusion-proof.json: {exc}")]
        cp = self._checkpoint(proof.tree_size)
        name = layout.checkpoint_key(proof.tree_size, "json")
        checks = [replace(cp.seal, detail=f"{name}: {cp.seal.detail}"),
                  replace(cp.timestamp, detail=f"{name}: {cp.timestamp.detail}")]
        if entry is None:
            checks.insert(0, Check.fail("inclusion", "BUNDLE_MALFORMED", "no ledger entry"))
            return checks
        leaf = merkle.leaf_hash(entry[0])
        if cp.root is None:
            inc = Check.fail("inclusion", "BUNDLE_MALFORMED", f"{name}: {cp.problem}")
        elif cp.tree_size != proof.tree_size:
            inc = Check.fail("inclusion", "INCLUSION_FAILED",
                             f"the proof is for tree size {proof.tree_size}, {name} states "
                             f"{cp.tree_size}", expected=str(proof.tree_size),
                             found=str(cp.tree_size))
        elif proof.leaf_hash != leaf:
            inc = Check.fail("inclusion", "INCLUSION_FAILED",
                             "the proof is for another leaf than this ledger entry",
                             expected=leaf.hex(), found=proof.leaf_hash.hex())
        elif merkle.verify_inclusion(leaf, proof.index, proof.tree_size, proof.path, cp.root):
            inc = Check.ok("inclusion", f"leaf {proof.index} is in {name} "
                           f"(root {cp.root.hex()})")
        else:
            try:
                steps = proof.walk()
                end = (steps[-1][1] if steps else leaf).hex()
            except ValueError:
                end = None
            inc = Check.fail("inclusion", "INCLUSION_FAILED",
                             f"leaf {proof.index}'s path does not lead to the root {name} "
                             "states (RFC 9162 §2.1.3.2)", expected=cp.root.hex(), found=end)
        return [inc, *checks]

    def _checkpoint(self, size: int) -> _Checkpoint:
        cached = self._checkpoints.get(size)
        if cached is not None:
            return cached
        base = layout.checkpoint_key(size, "json").removesuffix(".json")
        try:
            data = self.b.read(f"{base}.json")
            seal = self.b.read(f"{base}.p7s")
            tsr = self.b.read(f"{base}.tsr")
        except _MemberError as exc:
            cp = _Checkpoint(Check.fail("seal", exc.code, exc.detail),
                             Check.fail("timestamp", exc.code, exc.detail), None, None,
                             exc.detail)
            self._checkpoints[size] = cp
            return cp
        seal_check = verify_seal(data, seal, trust_roots=self.roots)
        ts_check, _gen = verify_timestamp(tsr, digest=hashlib.sha256(data).digest(),
                                          trust_roots=self.roots)
        root: bytes | None = None
        tree_size: int | None = None
        problem: str | None = None
        try:
            body = json.loads(data)
            root = bytes.fromhex(body["root_hash"])
            tree_size = int(body["tree_size"])
            if len(root) != merkle.HASH_SIZE:
                root, problem = None, "root_hash is not 32 bytes"
        except (ValueError, KeyError, TypeError) as exc:
            problem = f"checkpoint JSON unreadable ({exc})"
        cp = _Checkpoint(seal_check, ts_check, root, tree_size, problem)
        self._checkpoints[size] = cp
        return cp

    def _history_doc(self, rid: str) -> dict[str, Any] | None:
        if rid not in self._histories:
            doc: dict[str, Any] | None = None
            try:
                obj = json.loads(self.b.read(f"records/{rid}/history.json"))
                doc = obj if isinstance(obj, dict) else None
            except (_MemberError, ValueError):
                doc = None
            self._histories[rid] = doc
        return self._histories[rid]

    def _history(self, rid: str, n: int, entry: tuple[bytes, dict[str, Any]] | None,
                 listed: dict[int, dict[str, Any]]) -> Check:
        """訂正削除履歴: each version names its predecessor's manifest digest (in its ledger
        entry, which the inclusion proof binds), so a left-out version shows."""
        if entry is None:
            return Check.fail("history", "BUNDLE_MALFORMED", "no ledger entry")
        named = entry[1].get("previous_version_sha256")
        if n == 1:
            if named is not None:
                return Check.fail("history", "HISTORY_BROKEN",
                                  "version 1 names a predecessor", expected="null",
                                  found=str(named))
        else:
            prev = self._entry(rid, n - 1) if n - 1 in listed else None
            if prev is None:
                return Check.fail("history", "HISTORY_BROKEN",
                                  f"version {n - 1} is missing from the bundle")
            want = prev[1].get("manifest_sha256")
            if named != want:
                return Check.fail("history", "HISTORY_BROKEN",
                                  f"previous_version_sha256 is not version {n - 1}'s manifest",
                                  expected=str(want), found=str(named))
        doc = self._history_doc(rid)
        known = [x.get("version") for x in (doc or {}).get("versions", [])
                 if isinstance(x, dict)]
        later = sorted(k for k in known if isinstance(k, int) and k > max(listed))
        if n == max(listed) and later:
            return Check.fail("history", "HISTORY_BROKEN",
                              f"history.json lists later version(s) {later} the bundle "
                              "leaves out", expected=str(later[-1]), found=str(n))
        row = next((x for x in (doc or {}).get("versions", [])
                    if isinstance(x, dict) and x.get("version") == n), None)
        if row is None:
            return Check.fail("history", "HISTORY_BROKEN",
                              f"history.json does not list version {n}")
        if row.get("manifest_sha256") != entry[1].get("manifest_sha256") or \
                row.get("previous_version_sha256") != named:
            return Check.fail("history", "HISTORY_BROKEN",
                              "history.json disagrees with the ledger entry",
                              expected=str(entry[1].get("manifest_sha256")),
                              found=str(row.get("manifest_sha256")))
        return Check.ok("history", "first version" if n == 1
                        else f"follows version {n - 1} (manifest {named})")

    def _disposal(self, rid: str, n: int, v: dict[str, Any],
                  entry: tuple[bytes, dict[str, Any]] | None) -> Check:
        cert = v.get("disposal")
        if not isinstance(cert, str) or not _DISPOSAL_PATH.fullmatch(cert):
            return Check.fail("disposal", "DISPOSAL_UNCERTIFIED",
                              "disposed, but the bundle names no disposal certificate")
        if cert not in self._disposals:
            self._disposals[cert] = self._certificate(cert)
        verdict, body = self._disposals[cert]
        if verdict.status is not Status.PASS or body is None:
            return verdict
        logged = entry[1].get("manifest_sha256") if entry else None
        listed = any(isinstance(e, dict) and e.get("record_id") == rid
                     and e.get("version") == n and logged is not None
                     and e.get("manifest_sha256") == logged
                     for e in body.get("disposed", []))
        if not listed:
            return Check.fail("disposal", "DISPOSAL_UNCERTIFIED",
                              f"{cert} does not list this version's manifest",
                              expected=str(logged))
        return Check(name="disposal", status=Status.PASS, code="DISPOSED",
                     detail=f"disposed; {cert} lists manifest {logged} "
                     f"({verdict.detail})")

    def _certificate(self, cert: str) -> tuple[Check, dict[str, Any] | None]:
        base = cert.removesuffix(".json")
        try:
            data = self.b.read(cert)
            seal = self.b.read(f"{base}.p7s")
            tsr = self.b.read(f"{base}.tsr")
        except _MemberError as exc:
            return Check.fail("disposal", exc.code, exc.detail), None
        for c in (verify_seal(data, seal, trust_roots=self.roots),
                  verify_timestamp(tsr, digest=hashlib.sha256(data).digest(),
                                   trust_roots=self.roots)[0]):
            if c.status is not Status.PASS:
                return replace(c, name="disposal", detail=f"{cert}: {c.detail}"), None
        try:
            body = json.loads(data)
        except ValueError:
            return Check.fail("disposal", "BUNDLE_MALFORMED", f"{cert} is not JSON"), None
        if not isinstance(body, dict):
            return Check.fail("disposal", "BUNDLE_MALFORMED", f"{cert} is not an object"), None
        return Check.ok("disposal", "certificate seal and timestamp verified"), body

    # -- bundle-wide -----------------------------------------------------------------------
    def _bundle_files(self) -> Check:
        """Every member not checked with a version, and SHA256SUMS against bundle.json."""
        files: dict[str, str] = self.index["files"]
        rest = sorted((set(files) | set(self.b.names())) - self._covered)
        check = self._compare_files(rest, files, "files")
        if check.status is not Status.PASS:
            return check
        listed: dict[str, str] = {}
        try:
            for line in self.b.read("SHA256SUMS").decode("ascii").splitlines():
                digest, name = line.split("  ", 1)
                listed[name] = digest
        except (_MemberError, UnicodeDecodeError, ValueError):
            return Check.fail("files", "BUNDLE_MALFORMED", "SHA256SUMS is unreadable")
        expected = {n: d for n, d in files.items() if n != "SHA256SUMS"}
        if listed != expected:
            return Check.fail("files", "BUNDLE_FILE_ALTERED",
                              "SHA256SUMS and bundle.json list different digests")
        return Check.ok("files", f"{len(files)} file(s) listed; bundle-wide files match "
                        "bundle.json and SHA256SUMS")


def _index_problem(data: object) -> str | None:
    """Why ``bundle.json`` cannot serve as an index, or None. Names taken from it become
    member names only after they pass the same patterns edoc writes."""
    if not isinstance(data, dict):
        return "is not a JSON object"
    if data.get("schema") != BUNDLE_SCHEMA:
        return f"has schema {data.get('schema')!r}"
    files = data.get("files")
    if not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(d, str) for k, d in files.items()):
        return "has no files map"
    records = data.get("records")
    if not isinstance(records, list) or not records:
        return "lists no records"
    ids = [r.get("record_id") if isinstance(r, dict) else None for r in records]
    if len(set(map(str, ids))) != len(ids):
        return "lists a record twice"
    for rec in records:
        if not isinstance(rec, dict) or not isinstance(rec.get("record_id"), str) \
                or not layout.RECORD_ID.fullmatch(rec["record_id"]):
            return "has a record without a valid record_id"
        vs = rec.get("versions")
        if not isinstance(vs, list) or not vs:
            return f"lists no versions for {rec['record_id']}"
        seen: set[int] = set()
        for v in vs:
            n = v.get("version") if isinstance(v, dict) else None
            if not isinstance(n, int) or isinstance(n, bool) or n < 1 or n in seen:
                return f"has an invalid or repeated version for {rec['record_id']}"
            seen.add(n)
            content = v.get("content")
            if content is not None and not (isinstance(content, str) and (
                    m := _CONTENT_PATH.fullmatch(content)) and m.group(1) == rec["record_id"]):
                return f"names content {content!r} outside {rec['record_id']}"
    return None

