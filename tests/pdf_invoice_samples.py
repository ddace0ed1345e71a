"""Hybrid PDFs for the tests: a text page carrying an XML invoice as an embedded file, the way
Factur-X / ZUGFeRD declare it (PDF/A-3: EmbeddedFiles name tree plus the catalog's /AF)."""

from __future__ import annotations

from pathlib import Path

import pikepdf

from tests.samples import text_pdf

CII = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
       b'<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:'
       b'CrossIndustryInvoice:100"><rsm:ExchangedDocument/></rsm:CrossIndustryInvoice>\n')


def hybrid_pdf(path: Path, attachments: dict[str, bytes], *, declare: str | None = None,
               mime_type: str = "text/xml", relationship: str = "/Data") -> Path:
    """A one-page text PDF with ``attachments`` embedded; ``declare`` names the one put in
    ``/AF`` with ``relationship`` (default: the first)."""
    text_pdf(path, "Invoice INV-2024-0001 (hybrid)")
    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        declared = declare or next(iter(attachments), None)
        for name, data in attachments.items():
            spec = pikepdf.AttachedFileSpec(pdf, data, filename=name, mime_type=mime_type)
            pdf.attachments[name] = spec
            if name == declared:
                spec.obj.AFRelationship = pikepdf.Name(relationship)
                pdf.Root.AF = pikepdf.Array([spec.obj])
        pdf.save(path)
    return path
