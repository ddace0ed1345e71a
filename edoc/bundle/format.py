"""The bundle format: schemas, limits, member-name patterns, the report types, the index.

What ``edoc evidence`` writes and ``edoc verify-bundle`` reads must agree on these; they are
part of the on-disk format (an auditor's tooling may match on them), so they change only with
the schema version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edoc.model.verdict import REPORT_SCHEMA_VERSION, Check, RecordReport, Status
from edoc.storage import layout

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

# Conservative member names: what edoc writes, and nothing a shell or unzip could misread.
SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*/?")
_ULID = layout.RECORD_ID.pattern.strip("^$")
CONTENT_PATH = re.compile(rf"records/({_ULID})/v([1-9][0-9]*)/content")
DISPOSAL_PATH = re.compile(rf"disposals/({_ULID})\.json")


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



def index_problem(data: object) -> str | None:
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
                    m := CONTENT_PATH.fullmatch(content)) and m.group(1) == rec["record_id"]):
                return f"names content {content!r} outside {rec['record_id']}"
    return None

