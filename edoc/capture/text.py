"""A document's text, for proposing its search fields: ``extract_text``.

Owns choosing how to read each kind of file, in the order the capture issue fixes:

* an XML file (a JP PINT / UBL e-invoice): the text of its element values, read with the
  archive's hardened parser (``edoc.inspection.einvoice``: no DTD, no entity, no network);
* a PDF: its text layer through pdfium; a page without one (a scan saved as PDF) is rendered
  at 300 dpi and read by OCR when ``ocr`` is true;
* an image (JPEG, PNG, TIFF, each frame of a multi-page TIFF): OCR.

Hostile input is bounded before anything decodes it: a PDF first passes the archive's own
readability gate, or is given as the very bytes that passed it (``vetted``: ingest's, by
their SHA-256) (``edoc.inspection.inspect``: stream sizes measured before qpdf or pdfium
inflate anything, and a budget on what a page's content and forms cost to draw — pdfium's
text extraction expands a form fan-out exponentially); an image frame's pixel count is
checked from its header before it is decoded, Pillow's decompression-bomb guard stays on,
and pages and frames read are capped. A file that cannot be read raises ``InputError`` with
a code (``PDF_UNREADABLE``, ``PDF_TOO_COMPLEX``, ``PDF_STREAM_TOO_LARGE``,
``IMAGE_TOO_LARGE``, ``CAPTURE_UNREADABLE``, ``OCR_UNAVAILABLE``, ``OCR_TIMEOUT``…);
a media type capture does not read gives None.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pypdfium2 as pdfium
from PIL import Image, ImageSequence, UnidentifiedImageError

from edoc.capture.doctype import doc_type_of
from edoc.capture.ocr import BLOCK_SEGMENTATION, OcrPage, ocr_image
from edoc.errors import InputError
from edoc.inspection import MAX_PIXELS, inspect
from edoc.inspection.einvoice import EinvoiceReading, parse_xml, values_text

# The one pdfium lock of the process: pdfium's state is process-global and not thread-safe,
# so text extraction must take the lock inspection's renderer takes.
from edoc.inspection.pdf_content import _PDFIUM_LOCK as PDFIUM_LOCK

__all__ = ["EINVOICE", "OCR", "PDF_TEXT", "DocumentText", "extract_text"]

EINVOICE: Final = "einvoice"
PDF_TEXT: Final = "pdf-text"
OCR: Final = "ocr"
CAPTURE_UNREADABLE: Final = "CAPTURE_UNREADABLE"

XML_TYPE: Final = "application/xml"
PDF_TYPE: Final = "application/pdf"
IMAGE_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/tiff"})
#: Pages (PDF) or frames (TIFF) read; search fields are on the first pages of a document.
MAX_PAGES: Final = 50
#: Pages of one PDF sent to OCR: a long scanned PDF is a batch job, not a suggestion.
MAX_OCR_PAGES: Final = 10
#: A page with fewer printable characters in its text layer is taken for a scan.
MIN_TEXT_CHARS: Final = 16
#: Resolution image-only PDF pages are rendered at for OCR (施行規則 第2条第6項第2号 asks
#: scans of 200 dpi or more; Tesseract reads small print best from 300).
OCR_RENDER_DPI: Final = 300
PAGE_SEPARATOR: Final = "\f"
#: The top of a page where a document's title is printed (share of the page height).
TITLE_BAND: Final = 0.2
#: How the title band is read, in turn: (resolution, Tesseract --psm). At 100–150 dpi a
#: 20-point title is 30–40 pixels high, near the glyph size Tesseract's models read best.
TITLE_READINGS: Final = ((150.0, "11"), (100.0, "11"), (150.0, BLOCK_SEGMENTATION))


@dataclass(frozen=True)
class DocumentText:
    """The text read from one file. ``source`` is how: ``einvoice``, ``pdf-text`` or ``ocr``
    (a PDF mixing text pages and scanned pages says ``pdf-text`` and carries the OCR
    confidence of its scanned pages); ``pages`` counts the pages or frames read (pages
    separated by a form feed in ``text``); ``confidence`` is the mean OCR word confidence
    0..1, None when no OCR was involved."""

    text: str
    source: str
    pages: int
    confidence: float | None


def extract_text(path: Path, media_type: str, *, ocr: bool = True,
                 vetted: bytes | None = None) -> DocumentText | None:
    """The text of ``path`` (of ``media_type``, as ``edoc.inspection.media`` detects it), or
    None when capture does not read that type (or ``ocr`` is false and only OCR could).

    ``vetted``: the file's bytes, which the caller knows passed the readability gate (ingest
    has just gated and stored exactly these bytes, by their SHA-256): a PDF is then read from
    them and not gated a second time (the gate's render of page 1 was a third of a scanned
    PDF's ingest; BENCHMARKS.md, 2026-12-07 afternoon)."""
    if media_type == XML_TYPE:
        return _xml_text(path)
    if media_type == PDF_TYPE:
        if vetted is not None:
            return _pdf_text(vetted, ocr=ocr)
        inspect(path, media_type)  # the archive's guards first (see the module docstring)
        return _pdf_text(path, ocr=ocr)
    if media_type in IMAGE_TYPES:
        # Not the whole gate: a scan without a recorded resolution is still readable text
        # (the gate refuses it for storage, RESOLUTION_UNKNOWN); each frame's pixel count is
        # checked from its header instead, before it is decoded.
        return _image_text(path) if ocr else None
    return None


def _unreadable(path: Path | bytes, why: str, code: str = CAPTURE_UNREADABLE) -> InputError:
    # The message does not repeat the file's name: callers report it beside the error.
    del path
    return InputError(why, code=code)


# -- XML ------------------------------------------------------------------------------------


def _xml_text(path: Path) -> DocumentText:
    # Parsed as read_einvoice parses (the same refusals: a DOCTYPE, an oversize file, XML
    # that is not well-formed); any other XML is data whose values can be read.
    root = parse_xml(path)
    if isinstance(root, EinvoiceReading):
        raise _unreadable(path, root.detail, root.code)
    return DocumentText(text=values_text(root), source=EINVOICE, pages=1, confidence=None)


# -- PDF ------------------------------------------------------------------------------------


def _pdf_text(path: Path | bytes, *, ocr: bool) -> DocumentText | None:
    """``path``: the file, or its bytes (``extract_text``'s ``vetted``)."""
    texts: list[str] = []
    scanned: list[int] = []
    with PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(path)
        except (pdfium.PdfiumError, OSError, ValueError) as exc:
            raise _unreadable(path, f"the PDF cannot be opened: {exc}") from None
        try:
            count = min(len(doc), MAX_PAGES)
            unloadable: list[int] = []
            for index in range(count):
                try:
                    page = doc[index]
                except (pdfium.PdfiumError, ValueError, IndexError):
                    # A page tree naming a missing object: viewers skip that page, and so
                    # does capture (the readability gate judges the file, not this).
                    unloadable.append(index)
                    texts.append("")
                    continue
                try:
                    textpage = page.get_textpage()
                    try:
                        text = textpage.get_text_range().replace("\r\n", "\n")
                    finally:
                        textpage.close()
                finally:
                    page.close()
                texts.append(text.strip())
                if sum(ch.isprintable() and not ch.isspace() for ch in text) < MIN_TEXT_CHARS:
                    scanned.append(index)
            if count and len(unloadable) == count:
                raise _unreadable(path, "no page of the PDF can be loaded")
        except (pdfium.PdfiumError, ValueError, IndexError) as exc:
            raise _unreadable(path, f"the PDF's text cannot be read: {exc}") from None
        finally:
            doc.close()
    confidences: list[float] = []
    ocr_pages = scanned[:MAX_OCR_PAGES] if ocr else []
    for index in ocr_pages:
        image = _render_page(path, index)
        page_text = ocr_page(image)
        texts[index] = page_text.text
        if page_text.confidence is not None:
            confidences.append(page_text.confidence)
    if not texts:
        raise _unreadable(path, "the PDF has no pages")
    text_pages = len(texts) - len(scanned)
    if text_pages == 0 and not ocr_pages:
        return None  # a scan, and OCR not wanted
    source = PDF_TEXT if text_pages > 0 else OCR
    confidence = round(sum(confidences) / len(confidences), 4) if confidences else None
    return DocumentText(text=PAGE_SEPARATOR.join(texts), source=source, pages=len(texts),
                        confidence=confidence)


def _render_page(path: Path | bytes, index: int) -> Image.Image:
    with PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(path)
            try:
                page = doc[index]
                try:
                    bitmap = page.render(scale=OCR_RENDER_DPI / 72, grayscale=True)
                    try:
                        image: Image.Image = bitmap.to_pil().copy()
                    finally:
                        bitmap.close()
                finally:
                    page.close()
            finally:
                doc.close()
        except (pdfium.PdfiumError, ValueError, IndexError, OSError) as exc:
            raise _unreadable(path, f"page {index + 1} cannot be rendered: {exc}") from None
    image.info["dpi"] = (OCR_RENDER_DPI, OCR_RENDER_DPI)
    return image


# -- OCR ------------------------------------------------------------------------------------


def ocr_page(image: Image.Image) -> OcrPage:
    """OCR of one page, with a second look at its title when the first found none.

    A title (領収書, 請求書) is printed large and alone, and Tesseract's page layout analysis
    (``--psm 3``) drops or misreads such glyphs. The top band of the page shrunk to body-text
    size and read as sparse text (``--psm 11``) or one block (``--psm 6``) gives it; which
    of ``TITLE_READINGS`` works varies from page to page (measured in bench/capture.py), so
    they are tried in turn until one finds a title. Only title lines are added, first, so
    every other field still comes from the whole-page reading."""
    read = ocr_image(image)
    if any(doc_type_of(line) for line in read.text.splitlines()):
        return read
    band = image.crop((0, 0, image.width, max(1, round(image.height * TITLE_BAND))))
    dpi = float(image.info.get("dpi", (300, 300))[0] or 300)
    for target_dpi, segmentation in TITLE_READINGS:
        scale = min(1.0, target_dpi / dpi)
        small = band.resize((max(1, round(band.width * scale)),
                             max(1, round(band.height * scale))), Image.Resampling.LANCZOS)
        small.info["dpi"] = (dpi * scale, dpi * scale)
        titles = [line for line in ocr_image(small, segmentation=segmentation).text.splitlines()
                  if doc_type_of(line)]
        if titles:
            return OcrPage(text="\n".join([*titles, read.text]), confidence=read.confidence,
                           words=read.words)
    return read


# -- images ---------------------------------------------------------------------------------


def _image_text(path: Path) -> DocumentText:
    texts: list[str] = []
    confidences: list[float] = []
    try:
        with Image.open(path) as im:
            dpi = im.info.get("dpi")
            for frame_no, frame in enumerate(ImageSequence.Iterator(im)):
                if frame_no >= MAX_PAGES:
                    break
                width, height = frame.size
                if width * height > MAX_PIXELS:
                    raise InputError(f"page {frame_no + 1} is {width}×{height} px, more than "
                                     f"{MAX_PIXELS / 1e6:.0f} MP", code="IMAGE_TOO_LARGE")
                page = frame.copy()
                if dpi:
                    page.info["dpi"] = dpi
                read = ocr_page(page)
                texts.append(read.text)
                if read.confidence is not None:
                    confidences.append(read.confidence)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError,
            EOFError) as exc:
        raise _unreadable(path, f"the image cannot be decoded: {exc}") from None
    confidence = round(sum(confidences) / len(confidences), 4) if confidences else None
    return DocumentText(text=PAGE_SEPARATOR.join(texts), source=OCR, pages=len(texts),
                        confidence=confidence)
