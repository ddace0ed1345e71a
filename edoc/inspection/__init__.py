"""The readability gate (見読性): measure a document before anything is stored.

This package owns two things, and re-exports the names the rest of edoc uses
(``from edoc.inspection import inspect, Readability``):

* ``detect_media_type`` — what a file is, by its magic bytes, never by its name
  (``media``);
* ``inspect`` — the measurements of a document: pages, per-page resolution, colour mode, bit
  depth, compression, whether it renders, and any active content in a PDF. They go into the
  record's manifest (``Readability.to_manifest``, ``measures``).

The capture rules of an ordinance profile applied to those measurements are policy, not
inspection: ``edoc.policy.capture``.

Why these measurements: scanner preservation under 電子帳簿保存法 施行規則 第2条第6項第2号
requires a resolution of at least 200 dpi (イ: 25.4 mm 当たり 8 ドット以上 per JIS Z 6016) and
24-bit colour (ロ: 赤・緑・青それぞれ 256 階調以上) for 重要書類; 第2条第7項 allows 8-bit gray
for 一般書類. METI's e-文書法 guidance asks 150 dpi for colour/gray and 200 dpi for bilevel
scans. 見読性 (e-文書法 施行規則, each ministry's ordinance) also asks that a record display and
print at once, which is why a document must render and why an encrypted PDF is refused.

What counts as a scan: an image file (``raster``), or a PDF page that is essentially one
image covering the page (``pdf_content``). Born-digital PDF pages ("vector") pass the
resolution and colour rules: they have no scan resolution to measure.

Hostile input: whatever the bytes, only ``InputError`` leaves this package, in bounded time
and memory. An image's header is checked against ``MAX_PIXELS`` before a pixel is decoded
(``raster``). A PDF's streams are measured from the file's own bytes — incrementally, with a
cap — before qpdf or pdfium decode anything (``pdf_streams``), since both inflate a stream in
full and a few KiB of Flate can claim gigabytes; a page whose drawing costs more than a
budget (forms drawing forms, "billion laughs") is refused before it is walked
(``pdf_content``); object graphs are walked with visited sets and depth limits
(``active_content``).

Performance: opening an image reads its header only; the one pixel decode is the bounded
render proving the document displays (a JPEG is decoded at 1/8 scale, ~2 ms for 200 KB).
Measuring a PDF's streams inflates its Flate data once (~0.25 s for 100 MB decoded).
"""

from __future__ import annotations

from pathlib import Path

from edoc.inspection.measures import MANIFEST_PAGES, PageMeasure, Readability
from edoc.inspection.media import (
    CSV,
    JPEG,
    OCTET_STREAM,
    PDF,
    PNG,
    TEXT,
    TIFF,
    XML,
    detect_media_type,
)
from edoc.inspection.pdf_content import MAX_CONTENT_BYTES, RENDER_MAX_SIDE, inspect_pdf
from edoc.inspection.pdf_streams import MAX_DECODED_TOTAL, MAX_STREAM_BYTES
from edoc.inspection.raster import MAX_PIXELS, PIL_FORMATS, inspect_image
from edoc.policy.paper import paper_size_inches

__all__ = [
    "CSV",
    "JPEG",
    "MANIFEST_PAGES",
    "MAX_CONTENT_BYTES",
    "MAX_DECODED_TOTAL",
    "MAX_PIXELS",
    "MAX_STREAM_BYTES",
    "OCTET_STREAM",
    "PDF",
    "PNG",
    "RENDER_MAX_SIDE",
    "TEXT",
    "TIFF",
    "XML",
    "PageMeasure",
    "Readability",
    "detect_media_type",
    "inspect",
]


def inspect(
    path: Path, media_type: str, *, paper_size: str | None = None, max_pixels: int = MAX_PIXELS
) -> Readability:
    """Measure the document at ``path`` of type ``media_type`` (see ``detect_media_type``).

    ``paper_size`` (``A4``, ``B5``, ``80x200mm``…) is the size of the original, used for images
    whose resolution is absent or a 72/96 dpi placeholder; PDFs carry their own page size.
    ``max_pixels`` bounds every image frame, and every image a PDF page draws (default
    ``MAX_PIXELS``). Media types other than PDF/JPEG/PNG/TIFF are not measured (``pages=0``).

    Raises ``InputError`` with codes ``IMAGE_TOO_LARGE``, ``IMAGE_UNREADABLE``,
    ``RESOLUTION_UNKNOWN``, ``PDF_UNREADABLE``, ``PDF_ENCRYPTED``, ``PDF_UNRENDERABLE``,
    ``PDF_STREAM_TOO_LARGE`` (a decompression bomb), ``PDF_TOO_COMPLEX`` (a page too costly
    to draw), and ``UsageError(PAPER_SIZE_UNKNOWN)`` for a paper size that is not known.
    """
    paper = paper_size_inches(paper_size) if paper_size is not None else None
    if media_type == PDF:
        return inspect_pdf(path, max_pixels)
    if media_type in PIL_FORMATS:
        return inspect_image(path, media_type, paper, max_pixels)
    return Readability(
        media_type=media_type, pages=0, page_measures=(), rendered=False, active_content=()
    )


