"""``edoc render``: a readable, printable PDF of a stored JP PINT e-invoice (見読性).

電子帳簿保存法 第7条 keeps an e-invoice as the data it was received as (the XML), and
施行規則 第2条第2項第2号 / 第4条第1項 ask that it can be shown "in a clear and orderly form"
on a screen and on paper. This use case reads the stored version's bytes through the archive
(checked against the SHA-256 they were sealed with), reads them as JP PINT
(``edoc.inspection.einvoice``) and lays them out (``layout``) in a PDF written all or nothing.
The PDF is a view, never a record: it is not stored, and it says so on every page.

Each rendering is logged as an access (``action="render"``), like ``get``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from edoc import clock
from edoc.errors import EdocError, InputError
from edoc.evidence.hashing import hash_stream, sha256_hex
from edoc.files import atomic_output
from edoc.inspection.einvoice import DEFAULT_MAX_BYTES, EINVOICE_TOO_LARGE, read_einvoice
from edoc.services.archive import Archive
from edoc.services.records import check_output, content_version
from edoc.services.rendering.fonts import find_cjk_font
from edoc.services.rendering.layout import (
    DERIVED_NOTE,
    RecordFacts,
    RenderedPdf,
    document_title,
    render_invoice,
)

__all__ = ["DERIVED_NOTE", "RecordFacts", "RenderedInvoice", "RenderedPdf", "render_invoice",
           "render_record"]


@dataclass(frozen=True, slots=True)
class RenderedInvoice:
    """What ``render_record`` wrote."""

    record_id: str
    version: int
    content_sha256: str
    path: Path
    pages: int
    size: int
    #: the SHA-256 of the PDF: the same for every rendering of the same version
    sha256: str
    title: str
    number: str | None


def render_record(archive: Archive, record_id: str, version: int | None, out: Path, *,
                  force: bool = False, actor: str | None = None) -> RenderedInvoice:
    """Render a version (the latest with content by default) of an e-invoice record to
    ``out``; an existing ``out`` is replaced only with ``force``.

    Refuses with ``NOT_AN_EINVOICE`` (naming what the reader found) when the content is not a
    JP PINT invoice or credit note, ``DIGEST_MISMATCH`` when the stored bytes no longer match
    their digest, and ``FONT_MISSING`` when no Japanese font can be embedded."""
    row = content_version(archive, record_id, version)
    check_output(out, force=force)
    font = find_cjk_font()  # before reading anything: a missing font is the host's problem
    if row.content_size is not None and row.content_size > DEFAULT_MAX_BYTES:
        raise _not_an_einvoice(record_id, row.version, EINVOICE_TOO_LARGE,
                               f"{row.content_size} bytes is over the e-invoice limit")
    archive.catalog.log_access(actor=actor or archive.actor, action="render",
                               record_ids=[record_id], detail={"version": row.version},
                               at=clock.now())
    content = _verified_content(archive, row.content_key or "", row.content_version_id,
                                row.content_sha256, f"{record_id} v{row.version}")
    reading = read_einvoice(content)
    if reading.invoice is None:
        raise _not_an_einvoice(record_id, row.version, reading.code, reading.detail)
    facts = RecordFacts(record_id, row.version, row.content_sha256 or "", row.ingested_at)
    pdf = render_invoice(reading.invoice, facts, font)
    try:
        with atomic_output(out, replace=force) as o:
            o.write(pdf.data)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror}", code="OUTPUT_UNWRITABLE"
                         ) from None
    return RenderedInvoice(record_id, row.version, facts.content_sha256, out, pdf.pages,
                           len(pdf.data), sha256_hex(pdf.data),
                           document_title(reading.invoice), reading.invoice.number)


def _verified_content(archive: Archive, key: str, version_id: str | None,
                      expected: str | None, what: str) -> bytes:
    # Same rule as ``records.copy_out``: bytes that no longer match their seal never become
    # a document that looks like the original.
    buf = io.BytesIO()
    with archive.store.open(key, version_id) as f:
        digest = hash_stream(f, sink=buf.write)
    if digest.sha256 != expected:
        raise EdocError(f"stored content of {what} does not match its digest; not rendered",
                        code="DIGEST_MISMATCH", hint=f"run 'edoc verify {what.split()[0]}'")
    return buf.getvalue()


def _not_an_einvoice(record_id: str, version: int, code: str, detail: str) -> InputError:
    return InputError(f"record {record_id} v{version} is not a JP PINT e-invoice "
                      f"({code}: {detail})", code="NOT_AN_EINVOICE",
                      hint="render shows e-invoices only; use 'edoc get' for other records")
