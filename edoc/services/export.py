"""Tax-office download export (ダウンロードの求め, 電子帳簿保存法 第7条 / 施行規則 第4条).

When the tax office asks for records, the business hands over the originals with their
search data. ``export`` writes every matching original plus ``index.csv`` (UTF-8 with BOM so
Excel opens it correctly; spreadsheet formulas neutralised) into a directory or a ZIP file, with
``seamless.json``: each record's デジタルシームレス readiness (``edoc.policy.seamless``).
It is all or nothing: everything is written under a temporary name and renamed into place
only when complete. Each export is logged as an access.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from edoc import clock
from edoc.catalog import SearchQuery
from edoc.errors import EdocError, InputError
from edoc.evidence.hashing import hash_stream
from edoc.files import discard, publish, temp_sibling
from edoc.model import canonical
from edoc.services.archive import Archive
from edoc.services.provenance import PROVENANCE_FILE, export_provenance
from edoc.services.records import seamless_reading
from edoc.services.spreadsheet import neutralise

COLUMNS = ("transaction_date", "amount", "counterparty", "doc_type", "ledger_ref", "record_id",
           "version", "file", "sha256", "retain_until", "profiles")
#: Beside index.csv: {record_id: デジタルシームレス readiness} (canonical JSON).
SEAMLESS_FILE = "seamless.json"
_UNSAFE = re.compile(r"[^\w.\-]+")


def _safe_name(record_id: str, original: str | None) -> str:
    # Stored names come from users' files: never let one become a path.
    base = _UNSAFE.sub("_", PurePosixPath(original or "content").name)[:80].strip("._")
    return f"files/{record_id}_{base or 'content'}"


@dataclass
class ExportSummary:
    path: str
    records: int
    bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "records": self.records, "bytes": self.bytes}


def export(archive: Archive, query: SearchQuery, out: Path) -> ExportSummary:
    a = archive
    if out.exists():
        raise InputError(f"{out} exists; an export never overwrites", code="OUTPUT_EXISTS")
    rows = [r for r in a.catalog.search(query) if r.content_key]
    if not rows:
        raise InputError("no records match; nothing exported", code="NOTHING_TO_EXPORT")
    as_zip = out.suffix.lower() == ".zip"
    tmp = temp_sibling(out)
    index = io.StringIO()
    w = csv.writer(index, lineterminator="\r\n")
    w.writerow(COLUMNS)
    total = 0
    try:
        zf = zipfile.ZipFile(tmp, "x", compression=zipfile.ZIP_DEFLATED) if as_zip else None
        if zf is None:
            tmp.mkdir(mode=0o700)
            (tmp / "files").mkdir()
        with zf if zf is not None else contextlib.nullcontext():
            for r in rows:
                name = _safe_name(r.record_id, r.original_name)
                with a.store.open(str(r.content_key), r.content_version_id) as src:
                    if zf is not None:
                        member = zipfile.ZipInfo(name, clock.now().timetuple()[:6])
                        member.compress_type = zipfile.ZIP_DEFLATED
                        dst = zf.open(member, "w", force_zip64=True)
                    else:
                        dst = (tmp / name).open("xb")
                    with dst:
                        digest = hash_stream(src, sink=dst.write)
                        total += digest.size
                if digest.sha256 != r.content_sha256:
                    raise EdocError(f"record {r.record_id} fails its digest; export stopped "
                                    "(nothing was written)", code="DIGEST_MISMATCH",
                                    hint=f"run 'edoc verify {r.record_id}'")
                w.writerow([neutralise(v) for v in (
                    r.transaction_date, r.amount, r.counterparty, r.doc_type, r.ledger_ref,
                    r.record_id, r.version, name, r.content_sha256, r.retain_until,
                    r.profiles)])
            data = "\ufeff" + index.getvalue()  # BOM: Excel reads UTF-8 correctly
            # デジタルシームレス readiness per record (edoc.policy.seamless), computed now
            # from every version: beside the index, so index.csv keeps its columns.
            seamless = canonical.dumps({rid: seamless_reading(a, rid).as_dict()
                                        for rid in sorted({r.record_id for r in rows})})
            # Each exported version's field provenance (typed / document / confirmed
            # suggestion, and who confirmed): beside the index too.
            provenance = export_provenance(a, rows)
            if zf is not None:
                zf.writestr("index.csv", data.encode("utf-8"))
                zf.writestr(SEAMLESS_FILE, seamless)
                zf.writestr(PROVENANCE_FILE, provenance)
            else:
                (tmp / "index.csv").write_text(data, encoding="utf-8", newline="")
                (tmp / SEAMLESS_FILE).write_bytes(seamless)
                (tmp / PROVENANCE_FILE).write_bytes(provenance)
        publish(tmp, out)  # all or nothing: never half an export under the name asked for
    except BaseException:
        discard(tmp)
        raise
    a.catalog.log_access(actor=a.actor, action="export",
                         record_ids=sorted({r.record_id for r in rows}),
                         detail={"path": str(out)}, at=clock.now())
    return ExportSummary(str(out), len(rows), total)
