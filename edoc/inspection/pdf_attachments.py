"""The XML invoice embedded in a "hybrid" PDF (Factur-X / ZUGFeRD style PDF/A-3).

Owns finding, in a PDF's EmbeddedFiles name tree, the one attachment that is an XML invoice
and decoding it, bounded. It does not read the XML: ``edoc.inspection.einvoice.read_einvoice``
does, with its hardened parser, so an attachment is exactly as safe as an XML file.

PDF/A-3 (ISO 19005-3, 6.8) lets a PDF carry embedded files, each declared in the document's
``/AF`` array with an ``/AFRelationship``; Factur-X 1.0 and ZUGFeRD 2.x name the invoice
``factur-x.xml`` / ``zugferd-invoice.xml`` with the relationship ``/Data`` or
``/Alternative``. Received PDFs do not always follow that, so any ``*.xml`` attachment (or
one whose MIME type is ``text/xml`` / ``application/xml``) is a candidate, and the declared one
is preferred when several are.

The PDF is from outside, so:

* nothing is executed or rendered; only the name tree and the chosen stream are read;
* at most ``MAX_ATTACHMENTS`` attachments are looked at;
* the attachment is decoded with a cap (``max_bytes``, the e-invoice limit): a FlateDecode
  stream is inflated incrementally and abandoned past the cap, so a compression bomb costs at
  most the cap; any other filter is not decoded (Factur-X attachments are FlateDecode or plain);
* an encrypted or broken PDF, or one without such an attachment, is simply "no e-invoice"
  (``None``) — the readability gate judges the PDF itself as it always has.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Final

import pikepdf

from edoc.inspection.einvoice import DEFAULT_MAX_BYTES, EINVOICE_TOO_LARGE, EINVOICE_UNREADABLE

__all__ = ["MAX_ATTACHMENTS", "XmlAttachment", "find_xml_attachment"]

#: Far above a real hybrid invoice (one XML, perhaps a few supporting files).
MAX_ATTACHMENTS: Final = 16
XML_MIME_TYPES: Final = frozenset({"text/xml", "application/xml"})
#: ISO 19005-3 / Factur-X: the relationships under which the invoice data is declared.
_INVOICE_RELATIONSHIPS: Final = frozenset({"/Data", "/Alternative"})
#: The names Factur-X 1.0, ZUGFeRD 1.0 / 2.x and XRechnung give (compared lowercased).
_KNOWN_NAMES: Final = ("factur-x.xml", "zugferd-invoice.xml", "xrechnung.xml")
_CHUNK: Final = 1024 * 1024


@dataclass(frozen=True)
class XmlAttachment:
    """The chosen XML attachment: ``data`` is its decoded content, or None when it could not
    be decoded within the limits (``problem``: an ``EINVOICE_*`` code and why)."""

    name: str
    mime_type: str | None
    relationship: str | None
    data: bytes | None
    problem: tuple[str, str] | None = None


def find_xml_attachment(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                        max_attachments: int = MAX_ATTACHMENTS) -> XmlAttachment | None:
    """The XML invoice attached to the PDF at ``path``, or None: never raises for bad input."""
    try:
        with pikepdf.open(path) as pdf:
            if pdf.is_encrypted:
                return None
            return _choose(pdf, max_bytes, max_attachments)
    except (pikepdf.PdfError, pikepdf.PasswordError, OSError, ValueError, TypeError, KeyError,
            AttributeError, RecursionError, zlib.error):
        return None


def _choose(pdf: pikepdf.Pdf, max_bytes: int, max_attachments: int) -> XmlAttachment | None:
    declared = _declared(pdf, max_attachments)
    candidates: list[tuple[tuple[int, int, int], str, pikepdf.AttachedFileSpec]] = []
    for index, (key, spec) in enumerate(islice(pdf.attachments.items(), max_attachments)):
        name = spec.filename or key
        mime = _mime(spec)
        if not (name.lower().endswith(".xml") or mime in XML_MIME_TYPES):
            continue
        in_af = spec.obj.objgen in declared and spec.obj.objgen != (0, 0)
        relationship = _relationship(spec)
        rank = (0 if in_af and relationship in _INVOICE_RELATIONSHIPS else 1,
                0 if name.lower() in _KNOWN_NAMES else 1, index)
        candidates.append((rank, name, spec))
    if not candidates:
        return None
    _, name, spec = min(candidates, key=lambda c: c[0])
    data, problem = _decode(spec, max_bytes)
    return XmlAttachment(name, _mime(spec), _relationship(spec), data, problem)


def _declared(pdf: pikepdf.Pdf, limit: int) -> set[tuple[int, int]]:
    """The file specifications the catalog's ``/AF`` array declares (PDF/A-3), bounded."""
    af = pdf.Root.get("/AF")
    if not isinstance(af, pikepdf.Array):
        return set()
    return {item.objgen for item in islice(af, limit) if isinstance(item, pikepdf.Dictionary)}


def _relationship(spec: pikepdf.AttachedFileSpec) -> str | None:
    value = spec.obj.get("/AFRelationship")
    return str(value) if isinstance(value, pikepdf.Name) else None


def _mime(spec: pikepdf.AttachedFileSpec) -> str | None:
    """The embedded file's ``/Subtype`` (a PDF name, ``/text#2Fxml`` for ``text/xml``)."""
    mime = spec.get_file().mime_type
    return mime.lower() if mime else None


_Decoded = tuple[bytes | None, tuple[str, str] | None]


def _decode(spec: pikepdf.AttachedFileSpec, max_bytes: int) -> _Decoded:
    stream = spec.get_file().obj
    too_large = (EINVOICE_TOO_LARGE,
                 f"the attachment is over the e-invoice limit of {max_bytes} bytes")
    params = stream.get("/Params")
    if isinstance(params, pikepdf.Dictionary):
        declared = params.get("/Size")
        if isinstance(declared, int) and declared > max_bytes:
            return None, too_large
    filters = stream.get("/Filter")
    if isinstance(filters, pikepdf.Array) and len(filters) == 1:
        filters = filters[0]
    if filters is None:
        raw = stream.read_raw_bytes()
        return (raw, None) if len(raw) <= max_bytes else (None, too_large)
    if filters == pikepdf.Name.FlateDecode and stream.get("/DecodeParms") is None:
        return _inflate(stream.read_raw_bytes(), max_bytes, too_large)
    return None, (EINVOICE_UNREADABLE,
                  f"the attachment's filter {filters} is not decoded (only FlateDecode or none)")


def _inflate(raw: bytes, max_bytes: int, too_large: tuple[str, str]) -> _Decoded:
    """Inflate at most ``max_bytes + 1`` bytes, whatever the stream claims (a bomb stops at
    the cap)."""
    inflater = zlib.decompressobj()
    out = bytearray()
    pending = raw
    while pending and not inflater.eof:
        out += inflater.decompress(pending, max(1, min(_CHUNK, max_bytes + 1 - len(out))))
        if len(out) > max_bytes:
            return None, too_large
        pending = inflater.unconsumed_tail
    return bytes(out), None
