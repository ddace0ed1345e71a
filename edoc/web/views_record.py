"""A record's page: its metadata and where each field came from, its version history
(訂正削除履歴) with every version viewable, retention and holds, the document drawn as
images (``edoc.web.documents``), the Verify button, the evidence bundle, and a print view.

Each reads through the services ``edoc show`` / ``get`` / ``verify`` / ``evidence`` use, so
what the page says is what the CLI says, and each read is in the access log.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from edoc.errors import NotFound
from edoc.model.manifest import Manifest
from edoc.services.accounts import Session, log_view
from edoc.services.records import RecordView, show_record
from edoc.web import documents
from edoc.web.app import render
from edoc.web.auth import current_session, guard, viewer

#: a record id as edoc makes them (a ULID: 26 of Crockford's base32) — anything else is
#: refused before it reaches a service, so no id can name a path
RECORD_ID = re.compile(r"^[0-9A-Z]{26}$")


def _session(request: Request) -> Session:
    sess = current_session(request)
    assert sess is not None  # the guard let the request through
    return sess


def _record_id(request: Request) -> str:
    rid = str(request.path_params.get("record_id", ""))
    if not RECORD_ID.match(rid):
        raise NotFound("no such record")
    return rid


def _version_param(request: Request) -> int | None:
    raw = request.query_params.get("v", "")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 1_000_000 else None


def _chosen(rec: RecordView, version: int | None) -> Manifest:
    """The manifest asked for; by default the latest one with content (a deleted record's
    tombstone has none: the last document is what the auditor wants to see)."""
    if version is not None:
        for m in rec.manifests:
            if m.version == version:
                return m
        raise NotFound(f"record {rec.record_id} has no version {version}")
    with_content = [m for m in rec.manifests if m.content is not None]
    return (with_content or list(rec.manifests))[-1]


def provenance(m: Manifest) -> dict[str, str]:
    """Where each field came from, as the manifest records it (an e-invoice's
    ``field_sources``, and any provenance block a later release adds)."""
    doc = m.as_json()
    out: dict[str, str] = {}
    einvoice = doc.get("einvoice") or {}
    for k, v in (einvoice.get("field_sources") or {}).items():
        out[str(k)] = str(v)
    for key in ("field_provenance", "provenance", "field_sources"):
        block = doc.get(key)
        if isinstance(block, dict):
            out.update({str(k): str(v) for k, v in block.items()})
    return out


def _record_context(request: Request, rid: str) -> dict[str, Any]:
    from edoc.services.lifecycle import Lifecycle

    sess = _session(request)
    archive = viewer(request).archive
    rec = show_record(archive, rid, sess.account.actor, history=True)
    m = _chosen(rec, _version_param(request))
    drawable = documents.Drawable("none", 0)
    if m.content is not None:
        doc = documents.original(archive, rid, m.version, sess.account.actor)
        drawable = documents.Drawing(archive, doc, sess.account.actor).drawable()
    holds = [h for h in Lifecycle(archive).list_holds(include_released=True)
             if h["record_id"] == rid]
    return {"rec": rec, "m": m, "meta": {k: v for k, v in m.metadata.as_json().items()
                                         if v is not None},
            "provenance": provenance(m), "drawable": drawable, "holds": holds,
            "retention": m.retention, "rid": rid}


def _record_page(request: Request) -> Response:
    return render(request, "record.html", _record_context(request, _record_id(request)))


def _print_page(request: Request) -> Response:
    return render(request, "print.html", _record_context(request, _record_id(request)))


def _page_image(request: Request) -> Response:
    rid = _record_id(request)
    version = int(request.path_params["version"])
    page = int(request.path_params["page"])
    actor = _session(request).account.actor
    archive = viewer(request).archive
    doc = documents.original(archive, rid, version, actor)
    if doc.version != version:
        raise NotFound(f"record {rid} has no content in version {version}")
    png = documents.Drawing(archive, doc, actor).page_png(page)
    return Response(png, media_type="image/png", headers={
        "Content-Disposition": f'inline; filename="{rid}-v{version}-p{page}.png"'})


def _original(request: Request) -> Response:
    """The stored bytes, as a download only: ``application/octet-stream`` and
    ``attachment``, so a stored HTML, SVG or PDF never runs in the viewer's origin."""
    rid = _record_id(request)
    version = int(request.path_params["version"])
    sess = _session(request)
    doc = documents.original(viewer(request).archive, rid, version, sess.account.actor)
    if doc.version != version:
        raise NotFound(f"record {rid} has no content in version {version}")
    name = f"{rid}-v{version}.bin"
    return Response(doc.data, media_type="application/octet-stream", headers={
        "Content-Disposition": f"attachment; filename=\"{name}\"; "
                               f"filename*=UTF-8''{quote(name)}"})


def _verify(request: Request) -> Response:
    from edoc.model.verdict import Status
    from edoc.services.verification import Verifier

    rid = _record_id(request)
    sess = _session(request)
    archive = viewer(request).archive
    reports = Verifier(archive).verify_record(rid)
    if len(reports) == 1 and reports[0].version == 0:  # verify's report of an unknown id
        raise NotFound(f"no record {rid} in this archive")
    ok = all(r.status is Status.PASS for r in reports)
    log_view(archive, sess.account.actor, "verify", [rid],
             {"versions": len(reports), "ok": ok})
    return render(request, "verify.html", {"rid": rid, "reports": reports, "ok": ok})


def _bundle(request: Request) -> Response:
    from edoc.bundle import write_bundle

    rid = _record_id(request)
    sess = _session(request)
    tmp = Path(tempfile.mkdtemp(prefix="edoc-bundle-"))
    try:
        out = tmp / f"evidence-{rid}.zip"
        write_bundle(viewer(request).archive, [rid], out, actor=sess.account.actor)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FileResponse(out, media_type="application/zip", filename=out.name,
                        content_disposition_type="attachment",
                        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True))


def routes() -> list[Route]:
    return [
        Route("/records/{record_id}", guard("show", page=True)(_record_page)),
        Route("/records/{record_id}/print", guard("show", page=True)(_print_page)),
        Route("/records/{record_id}/versions/{version:int}/pages/{page:int}.png",
              guard("get", page=False)(_page_image)),
        Route("/records/{record_id}/versions/{version:int}/original",
              guard("get", page=False)(_original)),
        Route("/records/{record_id}/verify", guard("verify", page=False)(_verify),
              methods=["POST"]),
        Route("/records/{record_id}/bundle", guard("evidence", page=False)(_bundle),
              methods=["POST"]),
    ]
