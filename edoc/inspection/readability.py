"""The readability gate (見読性): measure a document before anything is stored.

This module owns three things:

* ``detect_media_type`` — what a file is, by its magic bytes, never by its name;
* ``inspect`` — the measurements of a document: pages, per-page resolution, colour mode, bit
  depth, compression, whether it renders, and any active content in a PDF. They go into the
  record's manifest (``Readability.to_manifest``);
* ``check_capture`` — the capture rules of an ordinance profile applied to those measurements,
  raising ``ProfileViolation`` with a one-line message naming what was measured and what was
  required.

Why these measurements: scanner preservation under 電子帳簿保存法 施行規則 第2条第6項第2号
requires a resolution of at least 200 dpi (イ: 25.4 mm 当たり 8 ドット以上 per JIS Z 6016) and
24-bit colour (ロ: 赤・緑・青それぞれ 256 階調以上) for 重要書類; 第2条第7項 allows 8-bit gray
for 一般書類. METI's e-文書法 guidance asks 150 dpi for colour/gray and 200 dpi for bilevel
scans. 見読性 (e-文書法 施行規則, each ministry's ordinance) also asks that a record display and
print at once, which is why a document must render and why an encrypted PDF is refused.

What counts as a scan: an image file, or a PDF page that is essentially one image covering the
page (see ``_classify_pdf_page``). Born-digital PDF pages ("vector") pass the resolution and
colour rules: they have no scan resolution to measure.

Hostile input: whatever the bytes, only ``InputError`` leaves this module, in bounded time
and memory. An image's header is checked against ``MAX_PIXELS`` before a pixel is decoded. A
PDF's streams are measured from the file's own bytes — incrementally, with a cap — before
qpdf or pdfium decode anything (``_pdf_stream_sizes``), since both inflate a stream in full
and a few KiB of Flate can claim gigabytes; a page whose drawing costs more than a budget
(forms drawing forms, "billion laughs") is refused before it is walked (``_drawing_cost``);
object graphs are walked with visited sets and depth limits.

Performance: opening an image reads its header only; the one pixel decode is the bounded
render proving the document displays (a JPEG is decoded at 1/8 scale, ~2 ms for 200 KB).
Measuring a PDF's streams inflates its Flate data once (~0.25 s for 100 MB decoded).
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import csv
import io
import logging
import math
import os
import re
import struct
import sys
import tempfile
import threading
import warnings
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO, Final

import pikepdf
import pypdfium2 as pdfium
from PIL import Image

from edoc.errors import ConfigError, EdocError, InputError, ProfileViolation
from edoc.policy.paper import dpi_from_paper, paper_size_inches

# --------------------------------------------------------------------------------------------
# Media types
# --------------------------------------------------------------------------------------------

PDF: Final = "application/pdf"
JPEG: Final = "image/jpeg"
PNG: Final = "image/png"
TIFF: Final = "image/tiff"
XML: Final = "application/xml"
CSV: Final = "text/csv"
TEXT: Final = "text/plain"
OCTET_STREAM: Final = "application/octet-stream"

#: Image types inspected with Pillow, and the Pillow format each must parse as.
_PIL_FORMATS: Final[dict[str, str]] = {JPEG: "JPEG", PNG: "PNG", TIFF: "TIFF"}

# --------------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------------

#: Explicit decompression-bomb limit per image frame, checked on the header before any pixel
#: is decoded. The proof-of-display render decodes PNG/TIFF frames in full and Pillow holds
#: RGB at 4 bytes a pixel, so this also bounds that render's memory (80 MP → 320 MB). An A3
#: page at 600 dpi is 70 MP, an A4 page at 1200 dpi 140 MP (no document scanner needs it).
#: Pillow's process-wide guard (``Image.MAX_IMAGE_PIXELS``, 89 MP by default) is also in
#: force; its warning is treated as an error and reported with the same code.
MAX_PIXELS: Final = 80_000_000

#: Longest side, in pixels, of the proof-of-display render of a PDF's first page.
RENDER_MAX_SIDE: Final = 256

#: dpi tolerance: 1654 px across A4's 8.27 in is 199.99 dpi, and the NTA counts A4 at
#: 1654×2339 px as 200 dpi, so a measurement within 1 % below the requirement passes.
DPI_TOLERANCE: Final = 0.01

#: Resolutions that image writers put in by default rather than measure: 72 and 96 dpi
#: (screen defaults; Exif requires 72 dpi when the resolution is unknown, which is why the
#: NTA's 一問一答 (スキャナ保存 問26) says a 72 dpi phone photo may not know its resolution).
#: Values at or below 1 dpi (JFIF's "aspect ratio only" density, TIFF's default of 1) are
#: treated as absent.
_PLACEHOLDER_DPI: Final = (72.0, 96.0)

#: A PDF page is a scan when images cover at least this fraction of its visible area …
_SCAN_COVERAGE: Final = 0.5
#: … and it shows at most this many bytes of visible text drawn after (over) the images: a
#: scanner's footer ("Scanned 2024-04-01 p. 1/3") is allowed, a born-digital invoice with a
#: background picture is not a scan. OCR layers are invisible text (render mode 3) or drawn
#: before the image (hidden under it), so a searchable scan is still a scan.
_MAX_VISIBLE_TEXT_BYTES: Final = 256
#: Images covering less than this fraction of the page (logos, stamps) do not decide its dpi.
_SIGNIFICANT_IMAGE: Final = 0.10

#: Form XObjects nest; a crafted file can nest them endlessly or draw one a million times
#: ("billion laughs": each form drawing the next one 16 times, 7 deep, is 2.7e8 drawings from
#: a 2 KiB file). Forms are followed as deep as pdfium renders them (its recursion limit is
#: 64), and a page is refused before it is walked when drawing it costs more than these
#: budgets — operators, and content bytes a viewer interprets — with a form counted each
#: time it is drawn (``_drawing_cost``).
_MAX_FORM_DEPTH: Final = 64
_MAX_INSTRUCTIONS_PER_PAGE: Final = 1_000_000
_MAX_INSTRUCTIONS_PER_DOCUMENT: Final = 10_000_000
#: Objects examined when looking for active content; a larger graph is reported as
#: ``incomplete-scan`` (and refused where active content is refused).
_MAX_ACTIVE_CONTENT_NODES: Final = 200_000
_MAX_NESTING: Final = 64

#: Per-page detail kept in the manifest: the first N pages, plus the pages that hold the
#: extreme values (lowest dpi per colour mode, weakest colour, first lossy page).
MANIFEST_PAGES: Final = 20

_log = logging.getLogger(__name__)
#: qpdf reports damage it works around ("Pages tree includes non-dictionary object;
#: ignoring") through pikepdf's logger at ERROR level. pikepdf gives that logger no handler,
#: so without one logging's last-resort handler prints it on stderr after edoc's one-line
#: answer. A NullHandler stops that and nothing else: with ``--debug`` the records still
#: reach the root logger's handlers.
logging.getLogger("pikepdf").addHandler(logging.NullHandler())

#: pdfium is not thread-safe; one render at a time in this process.
_PDFIUM_LOCK = threading.Lock()
#: Measuring an image changes process-wide state: the warnings filters (``catch_warnings``
#: is not thread-safe, Python docs, ``warnings``) that turn Pillow's "Corrupt EXIF data"
#: into a rejection, and file descriptor 2 while libtiff decodes. With several files in
#: flight (``edoc ingest --jobs``) one image at a time is measured: without this lock the
#: hostile-input suite once saw a damaged TIFF stored while another thread's filters held.
_IMAGE_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageMeasure:
    """What was measured on one page (one image frame, or one PDF page)."""

    page: int  # 1-based
    kind: str  # "image" (scan) or "vector" (born-digital PDF page: text/vector content)
    width_px: int | None
    height_px: int | None
    dpi: float | None  # effective dpi = min(x, y); None for vector pages
    dpi_source: str | None  # "metadata" | "paper-size" | "pdf-page-size"
    colour: str | None  # "rgb24" | "rgb48" | "gray8" | "gray16" | "bilevel" | "palette" | "cmyk"
    bits_per_component: int | None
    compression: str | None  # "jpeg", "jpeg2000", "png/flate", "lzw", "ccitt", "jbig2", "none"
    lossy: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "page": self.page,
            "kind": self.kind,
            "width_px": self.width_px,
            "height_px": self.height_px,
            "dpi": self.dpi,
            "dpi_source": self.dpi_source,
            "colour": self.colour,
            "bits_per_component": self.bits_per_component,
            "compression": self.compression,
            "lossy": self.lossy,
        }


@dataclass(frozen=True)
class Readability:
    """The measurements of one document, as they go into the record's manifest."""

    media_type: str
    pages: int
    page_measures: tuple[PageMeasure, ...]
    #: First page rendered (pypdfium2 for PDF, Pillow load for images): proves it displays.
    rendered: bool
    #: PDF: "javascript", "launch-action", "embedded-files", "open-action", … (sorted).
    active_content: tuple[str, ...]

    def to_manifest(self) -> dict[str, object]:
        """JSON-ready summary, bounded in size whatever the page count.

        The summary (counts, lowest dpi, colour modes with their lowest dpi, compressions) covers
        every page; per-page detail is kept for the first ``MANIFEST_PAGES`` pages and for the
        pages holding the extremes any capture rule would look at, so a 1000-page PDF gives a
        manifest of the same order of size as a 20-page one.
        """
        scans = [m for m in self.page_measures if m.kind == "image"]
        out: dict[str, object] = {
            "media_type": self.media_type,
            "pages": self.pages,
            "rendered": self.rendered,
            "active_content": list(self.active_content),
            "scan_pages": len(scans),
            "vector_pages": sum(1 for m in self.page_measures if m.kind == "vector"),
        }
        keep = {m.page for m in self.page_measures[:MANIFEST_PAGES]}
        if scans:
            lowest = min(scans, key=_dpi_sort_key)
            out["min_dpi"] = lowest.dpi
            out["min_dpi_page"] = lowest.page
            keep.add(lowest.page)
            colours: dict[str, dict[str, object]] = {}
            for colour in sorted({m.colour or "unknown" for m in scans}):
                same = [m for m in scans if (m.colour or "unknown") == colour]
                low = min(same, key=_dpi_sort_key)
                keep.add(low.page)
                colours[colour] = {"pages": len(same), "min_dpi": low.dpi}
            out["colours"] = colours
            weakest = min(scans, key=lambda m: (_colour_rank(m.colour), m.page))
            keep.add(weakest.page)
            compressions: dict[str, int] = {}
            for m in scans:
                key = m.compression or "unknown"
                compressions[key] = compressions.get(key, 0) + 1
            out["compressions"] = dict(sorted(compressions.items()))
            lossy = [m for m in scans if m.lossy]
            out["lossy_pages"] = len(lossy)
            if lossy:
                keep.add(lossy[0].page)
            out["dpi_sources"] = sorted({m.dpi_source for m in scans if m.dpi_source})
        out["page_measures"] = [m.as_dict() for m in self.page_measures if m.page in keep]
        out["page_measures_complete"] = len(keep) == len(self.page_measures)
        return out


def _dpi_sort_key(m: PageMeasure) -> tuple[float, int]:
    return (m.dpi if m.dpi is not None else -1.0, m.page)


# --------------------------------------------------------------------------------------------
# Capture rules
# --------------------------------------------------------------------------------------------

#: Required-colour names, each with its rank and how a message spells it out.
_COLOUR_REQUIREMENTS: Final[dict[str, tuple[int, str]]] = {
    "rgb24": (3, "24-bit colour"),
    "gray8": (2, "8-bit gray or better"),
    "bilevel": (1, "bilevel or better"),
    "any": (0, "any colour mode"),
}


@dataclass(frozen=True)
class CaptureRules:
    """A profile's capture requirements for scans (the strictest of all applicable profiles)."""

    min_dpi: int | None = None  # applies to colour/gray pages
    min_dpi_bilevel: int | None = None  # METI: bilevel needs 200 where colour needs 150
    colour: str = "any"  # required minimum: "rgb24" | "gray8" | "bilevel" | "any"
    lossy_allowed: bool = True
    reject_active_content: bool = False

    def __post_init__(self) -> None:
        if self.colour not in _COLOUR_REQUIREMENTS:
            raise ConfigError(
                f"capture colour {self.colour!r} is not one of {', '.join(_COLOUR_REQUIREMENTS)}",
                code="CAPTURE_RULE_INVALID",
            )
        for name, value in (("min_dpi", self.min_dpi), ("min_dpi_bilevel", self.min_dpi_bilevel)):
            if value is not None and not 1 <= value <= 10_000:
                raise ConfigError(
                    f"capture {name} is {value}; it must be between 1 and 10000 dpi",
                    code="CAPTURE_RULE_INVALID",
                )

    @property
    def demands_scan(self) -> bool:
        """True when the rules set a resolution, i.e. only a scan can satisfy them."""
        return self.min_dpi is not None or self.min_dpi_bilevel is not None


def check_capture(r: Readability, rules: CaptureRules, profile_id: str) -> None:
    """Apply ``rules`` of profile ``profile_id`` to measurements ``r``; raise on the first kind
    of failure (resolution, then colour, then compression), naming every failing page.

    Raises ``ProfileViolation`` with codes ``ACTIVE_CONTENT``, ``NOT_A_SCAN``,
    ``SCAN_RESOLUTION_TOO_LOW``, ``SCAN_COLOUR_INSUFFICIENT``, ``SCAN_LOSSY_NOT_ALLOWED``.
    """
    if rules.reject_active_content and r.active_content:
        raise ProfileViolation(
            f"the document contains {', '.join(r.active_content)}; "
            f"{profile_id} does not accept active content",
            code="ACTIVE_CONTENT",
            hint="remove scripts, actions and attachments (e.g. print to a new PDF), ingest that",
        )
    if not r.page_measures:
        if rules.demands_scan:
            raise ProfileViolation(
                f"{r.media_type} is not a scanned image or PDF; {profile_id} requires a scan "
                f"of at least {_required_summary(rules)} dpi",
                code="NOT_A_SCAN",
                hint="ingest it under a profile for electronic transactions (電子取引) instead",
            )
        return
    scans = [m for m in r.page_measures if m.kind == "image"]

    low: list[tuple[PageMeasure, int]] = []
    for m in scans:
        required = _required_dpi(m, rules)
        if required is None:
            continue
        if m.dpi is None:
            raise InputError(
                f"page {m.page} has no measured resolution; {profile_id} requires {required} dpi",
                code="RESOLUTION_UNKNOWN",
                hint="give --paper-size A4 (or the real size)",
            )
        if m.dpi < required * (1 - DPI_TOLERANCE):
            low.append((m, required))
    if low:
        reqs = sorted({req for _, req in low})
        if len(reqs) == 1:
            found = _list_pages([f"{_fmt_dpi(m.dpi)} dpi" for m, _ in low], [m for m, _ in low])
            need = f"{profile_id} requires {reqs[0]}"
        else:
            found = _list_pages(
                [f"{_fmt_dpi(m.dpi)} dpi {m.colour}" for m, _ in low], [m for m, _ in low]
            )
            need = f"{profile_id} requires " + " and ".join(
                f"{_required_dpi_label(rules, kind)}" for kind in ("colour", "bilevel")
            )
        raise ProfileViolation(
            f"{found}; {need}",
            code="SCAN_RESOLUTION_TOO_LOW",
            hint=f"rescan at {max(reqs)} dpi or more",
        )

    required_rank, label = _COLOUR_REQUIREMENTS[rules.colour]
    weak = [m for m in scans if _colour_rank(m.colour) < required_rank]
    if weak:
        raise ProfileViolation(
            f"{_list_pages([str(m.colour) for m in weak], weak)}; "
            f"{profile_id} requires {rules.colour} ({label})",
            code="SCAN_COLOUR_INSUFFICIENT",
            hint=f"rescan in {label}",
        )

    if not rules.lossy_allowed:
        lossy = [m for m in scans if m.lossy]
        if lossy:
            raise ProfileViolation(
                f"{_list_pages([f'{m.compression} (lossy)' for m in lossy], lossy)}; "
                f"{profile_id} requires lossless compression",
                code="SCAN_LOSSY_NOT_ALLOWED",
                hint="rescan to PNG, TIFF (LZW/Deflate/CCITT) or a PDF with lossless images",
            )


def _required_dpi(m: PageMeasure, rules: CaptureRules) -> int | None:
    """The dpi a scanned page must reach: METI asks more of bilevel than of colour/gray scans;
    a page whose tones are neither clearly colour/gray nor bilevel (palette, gray4) gets the
    stricter of the two (conservative reading)."""
    rank = _colour_rank(m.colour)
    bilevel = rules.min_dpi_bilevel if rules.min_dpi_bilevel is not None else rules.min_dpi
    if rank >= 2:
        return rules.min_dpi
    if m.colour == "bilevel":
        return bilevel
    both = [v for v in (rules.min_dpi, bilevel) if v is not None]
    return max(both) if both else None


def _required_dpi_label(rules: CaptureRules, kind: str) -> str:
    if kind == "colour":
        return f"{rules.min_dpi} (colour/gray)"
    bilevel = rules.min_dpi_bilevel if rules.min_dpi_bilevel is not None else rules.min_dpi
    return f"{bilevel} (bilevel)"


def _required_summary(rules: CaptureRules) -> str:
    values = sorted({v for v in (rules.min_dpi, rules.min_dpi_bilevel) if v is not None})
    return "/".join(str(v) for v in values)


def _list_pages(values: Sequence[str], pages: Sequence[PageMeasure], limit: int = 5) -> str:
    """``page 2 is 150 dpi`` or ``pages 2, 5 are 150 dpi, 120 dpi`` (+ how many more)."""
    if len(pages) == 1:
        return f"page {pages[0].page} is {values[0]}"
    shown = list(zip(pages[:limit], values[:limit], strict=True))
    more = f" (and {len(pages) - limit} more pages)" if len(pages) > limit else ""
    if len({v for _, v in shown}) == 1:
        nums = ", ".join(str(m.page) for m, _ in shown)
        return f"pages {nums}{more} are {shown[0][1]}"
    return "pages " + ", ".join(f"{m.page} ({v})" for m, v in shown) + more


def _fmt_dpi(dpi: float | None) -> str:
    if dpi is None:
        return "unknown"
    return f"{round(dpi, 1):g}"


# --------------------------------------------------------------------------------------------
# Colour modes
# --------------------------------------------------------------------------------------------

_RGB = re.compile(r"rgb(\d+)")
_GRAY = re.compile(r"gray(\d+)f?")


def _colour_rank(colour: str | None) -> int:
    """3: colour of at least 24 bits; 2: gray of at least 8 bits; 1: at least two levels.

    rgb48 and cmyk count as colour ≥ 24-bit. Lab (8 bits a channel) counts as colour too.
    A palette image does NOT satisfy rgb24 nor gray8 even when its palette has 256 entries:
    the palette may hold any 256 colours, so 256 levels per channel are not guaranteed
    (conservative reading of 施行規則 第2条第6項第2号ロ). Separation/DeviceN scans and unknown
    modes satisfy only "any".
    """
    if colour is None:
        return 0
    if colour in ("cmyk", "lab"):
        return 3
    if m := _RGB.fullmatch(colour):
        return 3 if int(m.group(1)) >= 24 else 1
    if m := _GRAY.fullmatch(colour):
        return 2 if int(m.group(1)) >= 8 else 1
    if colour in ("bilevel", "palette"):
        return 1
    return 0


def _colour_name(family: str, bits: int) -> str:
    """``("rgb", 8)`` → ``rgb24``; ``("gray", 8)`` → ``gray8``; ``("gray", 1)`` → ``bilevel``."""
    if family == "gray":
        return "bilevel" if bits == 1 else f"gray{bits}"
    if family == "rgb":
        return f"rgb{3 * bits}"
    return family


# --------------------------------------------------------------------------------------------
# Media type detection
# --------------------------------------------------------------------------------------------

_SNIFF_BYTES: Final = 64 * 1024
_XML_START = re.compile(rb"^(?:<\?xml[\s?]|<!--|<!DOCTYPE\s|<[A-Za-z_][\w.:-]*[\s/>])")


def detect_media_type(path: Path) -> str:
    """The media type of ``path`` from its content (magic bytes), never from its name.

    Recognised: application/pdf, image/jpeg, image/png, image/tiff (incl. BigTIFF), image/gif,
    image/webp, image/jp2, application/zip (also Office files), application/xml (e-invoices;
    UTF-8/UTF-16, with or without BOM or declaration), text/csv (UTF-8 or CP932, the same
    number of fields on every sampled line), text/plain; application/octet-stream otherwise.
    Raises ``InputError(FILE_UNREADABLE)`` when the file cannot be read.
    """
    try:
        with path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
            complete = len(fh.read(1)) == 0
    except OSError as exc:
        raise InputError(
            f"{path.name} cannot be read: {exc.strerror or exc}", code="FILE_UNREADABLE"
        ) from exc
    # ISO 32000-1 §7.5.2 puts the header first; viewers accept it within the first 1024 bytes.
    if b"%PDF-" in head[:1024]:
        return PDF
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return TIFF
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n"):
        return "image/jp2"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "application/zip"
    text = _decode_text(head, complete)
    if text is None:
        return OCTET_STREAM
    stripped = text.lstrip("\ufeff \t\r\n")
    if _XML_START.match(stripped.encode("utf-8", "replace")):
        return XML
    if _looks_like_csv(text, complete):
        return CSV
    return TEXT


def _decode_text(head: bytes, complete: bool) -> str | None:
    """``head`` as text if it is UTF-8/UTF-16 (with BOM) or CP932 without control bytes."""
    if not head:
        return None
    candidates: list[tuple[str, bytes]] = []
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates.append(("utf-16", head))
    else:
        candidates += [("utf-8-sig", head), ("cp932", head)]
    for encoding, data in candidates:
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            # final=complete: a sample cut in the middle of a multibyte character is not an error.
            text = decoder.decode(data, final=complete)
        except UnicodeDecodeError:
            continue
        if any(ord(c) < 0x20 and c not in "\t\r\n\f" for c in text) or "\x7f" in text:
            return None
        return text
    return None


def _looks_like_csv(text: str, complete: bool) -> bool:
    lines = text.splitlines()
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # the last sampled line may be cut short
    sample = "\n".join(lines[:50])
    if "," not in sample:
        return False
    try:
        rows = [row for row in csv.reader(io.StringIO(sample)) if row]
    except csv.Error:
        return False
    widths = {len(row) for row in rows}
    return len(widths) == 1 and widths.pop() >= 2


# --------------------------------------------------------------------------------------------
# Inspection
# --------------------------------------------------------------------------------------------


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
        return _inspect_pdf(path, max_pixels)
    if media_type in _PIL_FORMATS:
        return _inspect_image(path, media_type, paper, max_pixels)
    return Readability(
        media_type=media_type, pages=0, page_measures=(), rendered=False, active_content=()
    )


# ---- images ---------------------------------------------------------------------------------

#: Exceptions Pillow raises on malformed data (it has no single error type).
_PIL_DATA_ERRORS: Final = (
    OSError,
    SyntaxError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    EOFError,
    struct.error,
    ZeroDivisionError,
)

#: TIFF compression (Pillow's names) → (our name, lossy). Unknown schemes count as lossy.
_TIFF_COMPRESSION: Final[dict[str, tuple[str, bool]]] = {
    "raw": ("none", False),
    "tiff_ccitt": ("ccitt", False),
    "group3": ("ccitt", False),
    "group4": ("ccitt", False),
    "tiff_lzw": ("lzw", False),
    "tiff_adobe_deflate": ("png/flate", False),
    "tiff_deflate": ("png/flate", False),
    "packbits": ("packbits", False),
    "tiff_raw_16": ("none", False),
    "jpeg": ("jpeg", True),
    "tiff_jpeg": ("jpeg", True),
    "webp": ("webp", True),
    "tiff_thunderscan": ("thunderscan", False),
    "tiff_sgilog": ("sgilog", True),
    "tiff_sgilog24": ("sgilog", True),
    "lzma": ("lzma", False),
    "zstd": ("zstd", False),
}

# TIFF 6.0 tags (Section 8: XResolution 282, YResolution 283, ResolutionUnit 296,
# BitsPerSample 258).
_TAG_BITS_PER_SAMPLE: Final = 258
_TAG_X_RESOLUTION: Final = 282
_TAG_Y_RESOLUTION: Final = 283
_TAG_RESOLUTION_UNIT: Final = 296


def _inspect_image(
    path: Path, media_type: str, paper: tuple[float, float] | None, max_pixels: int
) -> Readability:
    with _IMAGE_LOCK:
        return _inspect_image_locked(path, media_type, paper, max_pixels)


def _inspect_image_locked(
    path: Path, media_type: str, paper: tuple[float, float] | None, max_pixels: int
) -> Readability:
    fmt = _PIL_FORMATS[media_type]
    measures: list[PageMeasure] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            # Pillow warns about odd metadata (e.g. "Corrupt EXIF data") while parsing headers;
            # those are kept off the user's terminal and logged. Its decompression-bomb
            # warning, though, is an error.
            warnings.simplefilter("always")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Image.open parses the header only; nothing is decoded before the size checks.
            with Image.open(path, formats=[fmt]) as im:
                frames = getattr(im, "n_frames", 1) if fmt == "TIFF" else 1
                png_header = _png_header(path) if fmt == "PNG" else None
                for index in range(frames):
                    if index:
                        im.seek(index)
                    _check_pixels(im.size, index + 1, frames, max_pixels)
                    measures.append(_measure_frame(im, fmt, index + 1, paper, png_header))
                if frames > 1:
                    im.seek(0)
                _render_image(im, fmt)
        for warning in caught:
            _log.debug("%s: %s", path.name, warning.message)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = _PILLOW_PIXELS.search(str(exc))
        size = f"{int(found.group(1)) / 1e6:.0f} MP" if found else "too many pixels"
        raise InputError(
            f"image has {size}; the decompression-bomb limit is "
            f"{_pixel_limit(max_pixels) / 1e6:.0f} MP",
            code="IMAGE_TOO_LARGE",
            hint="scan at a lower resolution or split the document",
        ) from exc
    except EdocError:
        raise
    except (*_PIL_DATA_ERRORS, UserWarning) as exc:
        # UserWarning: raised as an error while decoding (``_render_image``), e.g. Pillow's
        # "Corrupt EXIF data" when a TIFF's EXIF directory runs past the end of the file.
        raise InputError(
            f"{fmt} image cannot be read: {_reason(exc, path)}",
            code="IMAGE_UNREADABLE",
            hint="the file is damaged or truncated; export or scan it again",
        ) from exc
    return Readability(
        media_type=media_type,
        pages=len(measures),
        page_measures=tuple(measures),
        rendered=True,
        active_content=(),
    )


def _reason(exc: BaseException, path: Path) -> str:
    """A library's error text for a message: the file's name only, never where it lies."""
    return str(exc).replace(str(path), path.name) or type(exc).__name__


_PILLOW_PIXELS = re.compile(r"Image size \((\d+) pixels\)")


def _pixel_limit(max_pixels: int) -> int:
    """The limit actually in force: ours, or Pillow's process-wide one if that is lower."""
    pil = Image.MAX_IMAGE_PIXELS
    return min(max_pixels, pil) if pil is not None else max_pixels


def _check_pixels(size: tuple[int, int], page: int, pages: int, max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        where = f"page {page} is" if pages > 1 else "image is"
        raise InputError(
            f"{where} {width}×{height} px = {width * height / 1e6:.1f} MP; "
            f"the decompression-bomb limit is {max_pixels / 1e6:.1f} MP",
            code="IMAGE_TOO_LARGE",
            hint="scan at a lower resolution or split the document",
        )


def _render_image(im: Image.Image, fmt: str) -> None:
    """Decode the first frame, proving it displays. A JPEG is decoded at reduced scale
    (libjpeg's DCT scaling, up to 1/8), which still reads the whole entropy-coded stream, so a
    truncated file fails here; other formats are decoded in full (bounded by ``MAX_PIXELS``)."""
    if fmt == "JPEG":
        im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
    with warnings.catch_warnings(), _native_stderr_to_log(fmt == "TIFF"
                                                         and not _python_stderr_on_fd2()):
        # Pillow warns (not raises) on some damaged data; while decoding, that is a failure.
        warnings.simplefilter("error", UserWarning)
        im.load()


def _python_stderr_on_fd2() -> bool:
    """Whether Python's ``sys.stderr`` writes to file descriptor 2 itself.

    Then fd 2 is left alone: pointing it elsewhere, even for a few milliseconds, would swallow
    what other threads of the process print meanwhile (a program embedding edoc, ingesting
    with ``jobs > 1``). The CLI writes its own messages to a duplicate of fd 2
    (``cli._stderr_of_our_own``), so there libtiff's lines can be caught without loss."""
    stream = sys.stderr
    if stream is None:
        return False
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # no descriptor (StringIO, a capture)
        return False


@contextlib.contextmanager
def _native_stderr_to_log(active: bool) -> Iterator[None]:
    """While active, file descriptor 2 goes to a temporary file whose text is then logged.

    libtiff, inside Pillow, reports damaged data ("Using code not yet in table") by writing to
    the process's stderr itself, below Python: a second line after edoc's one-line error,
    which scripts reading stderr do not expect. Only the few milliseconds of a TIFF decode
    are redirected, and only while Python's own stderr does not go through fd 2
    (``_python_stderr_on_fd2``)."""
    if not active:
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 at all: nothing to protect
        yield
        return
    with tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read(4096).decode("utf-8", "replace").strip()
            if text:
                _log.debug("libtiff: %s", " | ".join(text.splitlines()))


def _png_header(path: Path) -> tuple[int, int]:
    """(bit depth, colour type) from the PNG IHDR chunk (PNG spec §11.2.2): Pillow widens
    1/2/4-bit gray to 8-bit "L" and reads 16-bit RGB as 8-bit "RGB", losing the real depth."""
    with path.open("rb") as fh:
        head = fh.read(33)
    if len(head) < 33 or head[12:16] != b"IHDR":
        raise InputError("PNG has no IHDR header", code="IMAGE_UNREADABLE")
    return head[24], head[25]


def _measure_frame(
    im: Image.Image,
    fmt: str,
    page: int,
    paper: tuple[float, float] | None,
    png_header: tuple[int, int] | None,
) -> PageMeasure:
    width, height = im.size
    bits = _image_bits(im, fmt, png_header)
    colour, bits = _pil_colour(im.mode, bits)
    if fmt == "JPEG":
        compression, lossy = "jpeg", True
    elif fmt == "PNG":
        compression, lossy = "png/flate", False
    else:
        scheme = str(im.info.get("compression", "raw"))
        compression, lossy = _TIFF_COMPRESSION.get(scheme, (scheme, True))
    metadata = _metadata_dpi(im, fmt)
    if metadata is not None and not _is_placeholder(metadata):
        dpi, source = min(metadata), "metadata"
    elif paper is not None:
        dpi, source = dpi_from_paper(width, height, paper), "paper-size"
    else:
        found = (
            f"records {_fmt_dpi(min(metadata))} dpi, a placeholder value"
            if metadata is not None and min(metadata) > 1
            else "records no resolution"
        )
        raise InputError(
            f"page {page} ({width}×{height} px) {found}; its resolution cannot be measured "
            "without the size of the original",
            code="RESOLUTION_UNKNOWN",
            hint="give --paper-size A4 (or the real size)",
        )
    return PageMeasure(
        page=page,
        kind="image",
        width_px=width,
        height_px=height,
        dpi=round(dpi, 2),
        dpi_source=source,
        colour=colour,
        bits_per_component=bits,
        compression=compression,
        lossy=lossy,
    )


def _image_bits(im: Image.Image, fmt: str, png_header: tuple[int, int] | None) -> int | None:
    if png_header is not None:
        return png_header[0]
    if fmt == "JPEG":
        bits = getattr(im, "bits", 8)  # SOF sample precision
        return int(bits) if isinstance(bits, int) else 8
    if fmt == "TIFF":
        tags = getattr(im, "tag_v2", None)
        value = tags.get(_TAG_BITS_PER_SAMPLE) if tags is not None else None
        if isinstance(value, tuple) and value:
            return int(max(value))
        if isinstance(value, int):
            return value
    return None


def _pil_colour(mode: str, bits: int | None) -> tuple[str, int | None]:
    """Colour mode name and bits per component from Pillow's mode (and the file's depth)."""
    if mode == "1":
        return "bilevel", 1
    if mode in ("L", "LA", "La"):
        depth = bits if bits is not None and bits <= 16 else 8
        return _colour_name("gray", depth), depth
    if mode.startswith("I;16") or (mode == "I" and bits == 16):
        return "gray16", 16
    if mode == "I":
        return "gray32", 32
    if mode == "F":
        return "gray32f", 32
    if mode in ("P", "PA"):
        return "palette", bits if bits is not None else 8
    if mode in ("RGB", "RGBA", "RGBX", "RGBa", "YCbCr"):
        depth = 16 if bits == 16 else 8
        return _colour_name("rgb", depth), depth
    if mode == "CMYK":
        return "cmyk", 8
    if mode == "LAB":
        return "lab", 8
    return mode.lower(), bits


def _metadata_dpi(im: Image.Image, fmt: str) -> tuple[float, float] | None:
    """Resolution recorded in the file, in dots per inch, or None.

    JPEG: JFIF density (unit 1 = inch, 2 = cm), else EXIF X/YResolution — Pillow converts both
    and reports 72 dpi when EXIF has no resolution. PNG: pHYs in pixels per metre, converted by
    Pillow. TIFF: read per frame from the tags (Pillow keeps ``info["dpi"]`` of an earlier
    frame when a later one has no absolute unit); ResolutionUnit 3 is centimetres (TIFF 6.0
    §8), absent means inch.
    """
    if fmt == "TIFF":
        tags = getattr(im, "tag_v2", None)
        if tags is None:
            return None
        x, y = tags.get(_TAG_X_RESOLUTION), tags.get(_TAG_Y_RESOLUTION)
        unit = tags.get(_TAG_RESOLUTION_UNIT, 2)
        if x is None or y is None or unit not in (2, 3):
            return None
        scale = 2.54 if unit == 3 else 1.0
        return _finite_pair(float(x) * scale, float(y) * scale)
    value = im.info.get("dpi")
    if not isinstance(value, tuple) or len(value) != 2:
        return None
    return _finite_pair(float(value[0]), float(value[1]))


def _finite_pair(x: float, y: float) -> tuple[float, float] | None:
    if not (math.isfinite(x) and math.isfinite(y)) or x <= 1 or y <= 1:
        return None
    return (x, y)


def _is_placeholder(dpi: tuple[float, float]) -> bool:
    return all(any(abs(v - p) < 0.5 for p in _PLACEHOLDER_DPI) for v in dpi)


# ---- PDF ------------------------------------------------------------------------------------


def _inspect_pdf(path: Path, max_pixels: int) -> Readability:
    # Before qpdf or pdfium decode anything: both inflate streams in full.
    stream_sizes = _pdf_stream_sizes(path)
    try:
        # No silent repair: a damaged or truncated file (broken cross-reference table) is
        # refused rather than reconstructed, because what is archived must display as it is,
        # in any viewer, for the whole retention period (見読性).
        pdf = pikepdf.open(path, attempt_recovery=False)
    except pikepdf.PasswordError as exc:
        raise InputError(
            "the PDF is encrypted with a user password; an archived record must open and print "
            "without one (見読性)",
            code="PDF_ENCRYPTED",
            hint="ask the sender for an unencrypted copy, or ingest a decrypted copy",
        ) from exc
    except (pikepdf.PdfError, OSError, ValueError, RuntimeError) as exc:
        raise InputError(
            f"the PDF cannot be opened: {_reason(exc, path)}",
            code="PDF_UNREADABLE",
            hint="the file is damaged or truncated; obtain an intact copy",
        ) from exc
    with pdf:
        if pdf.is_encrypted:
            # Even with an empty user password: the permissions may forbid printing or
            # copying, and decryption then depends on the viewer honouring them (見読性).
            raise InputError(
                "the PDF is encrypted (it opens without a password, but may restrict "
                "printing); an archived record must be unencrypted (見読性)",
                code="PDF_ENCRYPTED",
                hint="ingest a decrypted copy, e.g. `qpdf --decrypt in.pdf out.pdf`",
            )
        try:
            pages = list(pdf.pages)
            if not pages:
                raise InputError("the PDF has no pages", code="PDF_UNREADABLE")
            forms = _FormCache(stream_sizes)
            measures = tuple(
                _measure_pdf_page(page, number, forms, max_pixels)
                for number, page in enumerate(pages, 1)
            )
            active = _active_content(pdf)
        except EdocError:
            raise
        except (pikepdf.PdfError, ValueError, TypeError, KeyError, IndexError, RuntimeError) as exc:
            raise InputError(
                f"the PDF's structure cannot be read: {_reason(exc, path)}",
                code="PDF_UNREADABLE",
                hint="the file is damaged; obtain an intact copy",
            ) from exc
    _render_first_pdf_page(path)
    return Readability(
        media_type=PDF,
        pages=len(measures),
        page_measures=measures,
        rendered=True,
        active_content=active,
    )


def _render_first_pdf_page(path: Path) -> None:
    """Render page 1 with pdfium (the engine of Chrome's viewer) at a small, bounded size."""
    with _PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(path)
            try:
                page = doc[0]
                try:
                    width, height = page.get_size()
                    scale = min(1.0, RENDER_MAX_SIDE / max(width, height, 1.0))
                    bitmap = page.render(scale=scale)
                    ok = bitmap.width > 0 and bitmap.height > 0
                    bitmap.close()
                finally:
                    page.close()
            finally:
                doc.close()
        except (pdfium.PdfiumError, IndexError, ValueError, OSError) as exc:
            raise InputError(
                f"page 1 of the PDF cannot be rendered: {exc}",
                code="PDF_UNRENDERABLE",
                hint="open it in a viewer; if it does not display, obtain an intact copy",
            ) from exc
    if not ok:
        raise InputError("page 1 of the PDF renders empty", code="PDF_UNRENDERABLE")


# ---- PDF stream sizes (decompression bombs) -------------------------------------------------

#: Decoded bytes allowed for one PDF stream: at least the raster of the largest image edoc
#: accepts (``MAX_PIXELS`` at 4 bytes a pixel, CMYK). Flate reaches ~1000:1 and filters can
#: be chained (ISO 32000-1 §7.4), so a few KiB can claim gigabytes, and qpdf and pdfium
#: inflate a content stream, font program or object stream in full before they use it.
MAX_STREAM_BYTES: Final = 320 * 1024 * 1024
#: Decoded bytes allowed for one page's content streams, or one form's: what pikepdf parses
#: and pdfium interprets (dense born-digital pages have a few MiB).
MAX_CONTENT_BYTES: Final = 64 * 1024 * 1024
#: Decoded bytes measured in one document, all streams together, so that the measurement's
#: own work stays bounded (300 lossless A4 colour pages at 200 dpi decode to ~3.5 GB).
MAX_DECODED_TOTAL: Final = 4 * 1024**3

_WHITESPACE: Final = b"\x00\t\n\x0c\r "  # ISO 32000-1 §7.2.2, Table 1
_DELIMITERS: Final = b"()<>[]{}/%"
_REGULAR: Final = re.compile(rb"[^\x00\t\n\x0c\r ()<>\[\]{}/%]*")
_OBJ_HEADER: Final = re.compile(rb"(?<![0-9])(\d{1,10})[\x00\t\n\x0c\r ]+(\d{1,5})"
                                rb"[\x00\t\n\x0c\r ]+obj(?![^\x00\t\n\x0c\r ()<>\[\]{}/%])")
_NAME_ESCAPE: Final = re.compile(rb"#([0-9A-Fa-f]{2})")
_REFERENCE: Final = re.compile(rb"[\x00\t\n\x0c\r ]+(\d+)[\x00\t\n\x0c\r ]+R"
                               rb"(?![^\x00\t\n\x0c\r ()<>\[\]{}/%])")
_STREAM_KEYWORD: Final = re.compile(rb"[\x00\t\n\x0c\r ]*stream(?:\r\n|\n|\r)")
_SCAN_BLOCK: Final = 1024 * 1024
#: Output piece of an incremental decoder: nothing larger is ever held.
_PIECE: Final = 1024 * 1024
_MAX_PARSE_DEPTH: Final = 32
#: The longest stream dictionary parsed (a font's /Widths can be long; 8 MiB is absurd).
_MAX_DICT_BYTES: Final = 8 * 1024 * 1024
#: How far after an object's header a ``stream`` keyword is looked for when its dictionary
#: cannot be parsed.
_FALLBACK_SPAN: Final = 64 * 1024
_STREAM_ANYWHERE: Final = re.compile(rb"(?<![A-Za-z])stream(?:\r\n|\n|\r)")
#: Marks a stream dictionary that could not be parsed (not a PDF name: no leading slash).
_UNPARSED: Final = "unparsed"


class _Ref(tuple[int, int]):
    """An indirect reference ``n g R`` met in a dictionary."""


class _Unparsable(Exception):
    pass


def _parse_object(buf: bytes, i: int, depth: int = 0) -> tuple[object, int]:
    """One PDF object (§7.3) from ``buf[i:]``: dict → dict, array → list, name → str,
    number → int/float, ``n g R`` → ``_Ref``; strings, booleans and null → None. Raises
    ``_Unparsable`` at the end of ``buf`` or on anything malformed."""
    i = _skip_space(buf, i)
    if i >= len(buf) or depth > _MAX_PARSE_DEPTH:
        raise _Unparsable
    c = buf[i:i + 1]
    if buf.startswith(b"<<", i):
        out: dict[str, object] = {}
        i += 2
        while True:
            i = _skip_space(buf, i)
            if buf.startswith(b">>", i):
                return out, i + 2
            key, i = _parse_object(buf, i, depth + 1)
            if not isinstance(key, str):
                raise _Unparsable
            out[key], i = _parse_object(buf, i, depth + 1)
    if c == b"[":
        items: list[object] = []
        i += 1
        while True:
            i = _skip_space(buf, i)
            if buf.startswith(b"]", i):
                return items, i + 1
            item, i = _parse_object(buf, i, depth + 1)
            items.append(item)
    if c == b"/":
        token = _REGULAR.match(buf, i + 1)
        assert token is not None  # the pattern matches the empty string
        # #xx escapes (§7.3.5): /Fl#61teDecode is /FlateDecode to every reader.
        name = _NAME_ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), token.group())
        return name.decode("latin-1"), token.end()
    if c == b"(":
        return None, _skip_literal_string(buf, i)
    if c == b"<":
        end = buf.find(b">", i)
        if end < 0:
            raise _Unparsable
        return None, end + 1
    token = _REGULAR.match(buf, i)
    assert token is not None
    word = token.group()
    if not word:
        raise _Unparsable  # a stray delimiter: ) > ] } or end of the buffer
    if re.fullmatch(rb"\d+", word):
        ref = _REFERENCE.match(buf, token.end())
        if ref is not None:
            return _Ref((int(word), int(ref.group(1)))), ref.end()
        return int(word), token.end()
    try:
        return float(word), token.end()
    except ValueError:
        return None, token.end()  # true, false, null (or a keyword we do not need)


def _skip_space(buf: bytes, i: int) -> int:
    while i < len(buf):
        if buf[i] in _WHITESPACE:
            i += 1
        elif buf[i] == 0x25:  # % comment to the end of the line
            while i < len(buf) and buf[i] not in b"\r\n":
                i += 1
        else:
            break
    return i


def _skip_literal_string(buf: bytes, i: int) -> int:
    """Past a literal string (§7.3.4.2): balanced parentheses, backslash escapes."""
    depth = 0
    while i < len(buf):
        ch = buf[i]
        if ch == 0x5C:  # backslash: the next byte is escaped
            i += 2
            continue
        if ch == 0x28:
            depth += 1
        elif ch == 0x29:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise _Unparsable


class _StreamTooLarge(Exception):
    """A measurement passed one of its limits."""


class _Decoder:
    """One stream filter decoding incrementally: ``feed`` yields pieces of at most ``_PIECE``
    bytes, so a bomb never materialises; ``done`` once its end of data is reached."""

    done = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        raise NotImplementedError


class _Flate(_Decoder):
    """FlateDecode (§7.4.4; zlib, RFC 1950/1951)."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj()

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            while not self._z.eof:
                out = self._z.decompress(data, _PIECE)
                if out:
                    yield out
                data = self._z.unconsumed_tail
                if not data and len(out) < _PIECE:
                    break
        except zlib.error:
            self._z = zlib.decompressobj()
            self.done = True  # damaged: what decoded so far is what any reader gets
            return
        self.done = self._z.eof


class _Lzw(_Decoder):
    """LZWDecode (§7.4.4): 9- to 12-bit codes; 256 clears the table, 257 ends the data; with
    /EarlyChange 1 (the default) the code width grows one code early."""

    def __init__(self, early_change: int) -> None:
        self._early = early_change
        self._acc = 0
        self._bits = 0
        self._reset()

    def _reset(self) -> None:
        self._table: list[bytes] = [bytes((i,)) for i in range(256)] + [b"", b""]
        self._width = 9
        self._prev = b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        out = bytearray()
        for byte in data:
            self._acc = (self._acc << 8) | byte
            self._bits += 8
            while self._bits >= self._width:
                self._bits -= self._width
                code = self._acc >> self._bits
                self._acc &= (1 << self._bits) - 1
                if code == 256:
                    self._reset()
                    continue
                size = len(self._table)
                if code == 257 or code > size or (code == size and not self._prev):
                    self.done = True  # end of data, or a code that cannot occur
                    break
                entry = self._table[code] if code < size else self._prev + self._prev[:1]
                if self._prev and size < 4096:
                    self._table.append(self._prev + entry[:1])
                self._prev = entry
                out += entry
                if len(self._table) + self._early >= 1 << self._width and self._width < 12:
                    self._width += 1
                if len(out) >= _PIECE:
                    yield bytes(out)
                    out.clear()
            if self.done:
                break
        if out:
            yield bytes(out)


class _RunLength(_Decoder):
    """RunLengthDecode (§7.4.5): a length byte, then 1–128 literal bytes or one byte repeated
    2–128 times; 128 ends the data."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        data = self._pending + data
        out = bytearray()
        i = 0
        while i < len(data):
            n = data[i]
            if n == 128:
                self.done = True
                break
            if n < 128:
                if i + 2 + n > len(data):
                    break
                out += data[i + 1:i + 2 + n]
                i += 2 + n
            else:
                if i + 2 > len(data):
                    break
                out += data[i + 1:i + 2] * (257 - n)
                i += 2
            if len(out) >= _PIECE:
                yield bytes(out)
                out.clear()
        self._pending = b"" if self.done else data[i:]
        if out:
            yield bytes(out)


class _AsciiHex(_Decoder):
    """ASCIIHexDecode (§7.4.2): pairs of hex digits, white space ignored, ``>`` ends."""

    def __init__(self) -> None:
        self._odd = b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        end = data.find(b">")
        if end >= 0:
            data, self.done = data[:end], True
        digits = self._odd + data.translate(None, _WHITESPACE)
        if self.done and len(digits) % 2:
            digits += b"0"  # a final odd digit is followed by an implied 0
        even = len(digits) - len(digits) % 2
        self._odd = digits[even:]
        try:
            decoded = bytes.fromhex(digits[:even].decode("ascii"))
        except ValueError:  # UnicodeDecodeError is a ValueError
            self.done = True
            return
        for start in range(0, len(decoded), _PIECE):
            yield decoded[start:start + _PIECE]


class _Ascii85(_Decoder):
    """ASCII85Decode (§7.4.3): groups of five base-85 digits, ``z`` for four zero bytes,
    white space ignored, ``~>`` ends."""

    def __init__(self) -> None:
        self._carry = b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        end = data.find(b"~")
        if end >= 0:
            data, self.done = data[:end], True
        for start in range(0, len(data), _PIECE // 4):
            # 'z' is a whole group of zeros: spelled out, every group has five digits.
            text = self._carry + data[start:start + _PIECE // 4].translate(
                None, _WHITESPACE).replace(b"z", b"!!!!!")
            whole = len(text) - len(text) % 5
            self._carry = text[whole:]
            try:
                yield base64.a85decode(text[:whole])
            except ValueError:
                self.done = True
                return
        if self.done and self._carry:
            try:
                tail = base64.a85decode(self._carry)
            except ValueError:
                return
            yield tail


def _decoder(name: object, params: object) -> _Decoder | None:
    """The incremental decoder of a filter that can expand its input, or None: the image
    codecs (DCT, JPX, JBIG2, CCITT) decode to the image's declared size and no more, which
    ``MAX_PIXELS`` bounds; Crypt and unknown filters end the measurement."""
    if name in ("FlateDecode", "Fl"):
        return _Flate()
    if name in ("LZWDecode", "LZW"):
        early = params.get("EarlyChange", 1) if isinstance(params, dict) else 1
        return _Lzw(0 if early == 0 else 1)
    if name in ("RunLengthDecode", "RL"):
        return _RunLength()
    if name in ("ASCIIHexDecode", "AHx"):
        return _AsciiHex()
    if name in ("ASCII85Decode", "A85"):
        return _Ascii85()
    return None


def _filter_chain(stream_dict: dict[str, object]) -> list[_Decoder] | None:
    """The expanding filters of a stream, in order; None when its /Filter is an indirect
    reference (not resolved here: the data is then tried as Flate, the common case)."""
    names = stream_dict.get("Filter")
    params = stream_dict.get("DecodeParms")
    if names is None:
        return []
    if isinstance(names, _Ref):
        return None
    names_list = names if isinstance(names, list) else [names]
    params_list = params if isinstance(params, list) else [params] * len(names_list)
    chain: list[_Decoder] = []
    for name, p in zip(names_list, params_list + [None] * len(names_list), strict=False):
        decoder = _decoder(name, p)
        if decoder is None:
            break
        chain.append(decoder)
    return chain


@dataclass
class _Budget:
    limit: int
    total_limit: int
    total: int = 0


def _decoded_size(chain: Sequence[_Decoder], chunks: Iterable[bytes], budget: _Budget) -> int:
    """Bytes out of the last filter of ``chain`` fed with ``chunks``; raises
    ``_StreamTooLarge`` as soon as a limit of ``budget`` is passed."""
    size = 0

    def push(stage: int, data: bytes) -> None:
        nonlocal size
        if stage == len(chain):
            size += len(data)
            budget.total += len(data)
            if size > budget.limit or budget.total > budget.total_limit:
                raise _StreamTooLarge
            return
        if chain[stage].done:
            return  # bytes after a filter's end-of-data marker are ignored (§7.4)
        for piece in chain[stage].feed(data):
            push(stage + 1, piece)

    for chunk in chunks:
        push(0, chunk)
        if chain[0].done:
            break
    return size


def _stream_data(fh: BinaryIO, start: int, length: int | None) -> Iterator[bytes]:
    """A stream's raw data: ``length`` bytes from ``start``, or up to the next ``endstream``
    when the length is not known here."""
    fh.seek(start)
    if length is not None:
        while length > 0:
            chunk = fh.read(min(length, _SCAN_BLOCK))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk
        return
    keep = len(b"endstream") - 1
    tail = b""
    while chunk := fh.read(_SCAN_BLOCK):
        data = tail + chunk
        end = data.find(b"endstream")
        if end >= 0:
            yield data[:end]
            return
        yield data[:-keep]
        tail = data[-keep:]
    yield tail


class _FileWindow:
    """Bytes of a file from some offset, re-read only when a caller needs bytes it lacks."""

    def __init__(self, fh: BinaryIO, size: int) -> None:
        self._fh = fh
        self.size = size
        self.start = 0
        self.data = b""

    @property
    def end(self) -> int:
        return self.start + len(self.data)

    def at(self, pos: int, need: int) -> int:
        """Hold ``need`` bytes from ``pos`` (fewer at the end of the file); ``pos``'s index."""
        if not (self.start <= pos and min(pos + need, self.size) <= self.end):
            self._fh.seek(pos)
            self.data = self._fh.read(max(need, _SCAN_BLOCK))
            self.start = pos
        return pos - self.start


def _stream_dictionary(win: _FileWindow, pos: int) -> tuple[dict[str, object], int] | None:
    """The dictionary of the object whose value starts at ``pos`` and the offset of its
    stream data; None when the object is not a stream.

    A dictionary this parser cannot read (pdfium's parser is more lenient than any strict
    one) still counts as a stream when a ``stream`` keyword follows before ``endobj``: it is
    then returned as ``{}``, and its data is measured as Flate, the common case."""
    for need in (_SCAN_BLOCK // 4, _MAX_DICT_BYTES):
        i = win.at(pos, need)
        try:
            value, end = _parse_object(win.data, i)
        except _Unparsable:
            if win.end >= win.size:
                break
            continue
        keyword = _STREAM_KEYWORD.match(win.data, end)
        if not isinstance(value, dict) or keyword is None:
            return None
        return value, win.start + keyword.end()
    i = win.at(pos, _FALLBACK_SPAN)
    span = win.data[i:i + _FALLBACK_SPAN]
    endobj = span.find(b"endobj")
    keyword = _STREAM_ANYWHERE.search(span, 0, endobj if endobj >= 0 else len(span))
    if keyword is None:
        return None
    return {_UNPARSED: True}, win.start + i + keyword.end()


def _pdf_stream_sizes(path: Path, *, limit: int = MAX_STREAM_BYTES,
                      total_limit: int = MAX_DECODED_TOTAL) -> dict[tuple[int, int], int]:
    """Decoded size of every stream of the PDF at ``path``, by object, measured from the
    file's bytes before qpdf or pdfium decode anything.

    Objects are found by their ``n g obj`` headers, not through the cross-reference table, so
    object streams (§7.5.7) and cross-reference streams (§7.5.8) — which qpdf inflates while
    opening the file — are measured as well as content streams, fonts and images. Each stream
    is decoded in pieces of at most 1 MiB through the expanding filters of its /Filter chain
    (Flate, LZW, RunLength, ASCIIHex, ASCII85), and the measurement stops as soon as
    ``limit`` bytes (one stream) or ``total_limit`` bytes (all of them) have come out: a bomb
    is refused from its first ``limit`` bytes, never inflated in full.

    Raises ``InputError(PDF_STREAM_TOO_LARGE)``.
    """
    budget = _Budget(limit, total_limit)
    sizes: dict[tuple[int, int], int] = {}
    with path.open("rb") as fh, path.open("rb") as data_fh:
        win = _FileWindow(fh, os.fstat(fh.fileno()).st_size)
        pos = 0
        while pos < win.size:
            i = win.at(pos, 64)
            header = _OBJ_HEADER.search(win.data, i)
            if header is None:
                if win.end >= win.size:
                    break
                pos = max(pos + 1, win.end - 32)  # a header may straddle the window's end
                continue
            obj = (int(header.group(1)), int(header.group(2)))
            pos = win.start + header.end()
            found = _stream_dictionary(win, pos)
            if found is None:
                continue
            stream_dict, data_start = found
            length = stream_dict.get("Length")
            known = length if isinstance(length, int) and 0 <= length <= win.size else None
            chain = _filter_chain(stream_dict)
            if chain is None or _UNPARSED in stream_dict:
                # An indirect /Filter, or a dictionary not understood: try the common case.
                chain = [_Flate()]
            size = known or 0
            if chain:
                try:
                    size = _decoded_size(chain, _stream_data(data_fh, data_start, known), budget)
                except _StreamTooLarge:
                    raise _too_large(obj, budget) from None
            sizes[obj] = max(size, sizes.get(obj, 0))
            pos = max(pos, data_start + (known or 0))
    return sizes


def _too_large(obj: tuple[int, int], budget: _Budget) -> InputError:
    if budget.total > budget.total_limit:
        return InputError(
            f"the PDF's streams decode to more than {_mib(budget.total_limit)} in total; "
            f"the limit is {_mib(budget.total_limit)}",
            code="PDF_STREAM_TOO_LARGE",
            hint="split the document, or print it to a new PDF",
        )
    return InputError(
        f"object {obj[0]} of the PDF decodes to more than {_mib(budget.limit)}; the limit for "
        f"one stream is {_mib(budget.limit)} (a decompression bomb)",
        code="PDF_STREAM_TOO_LARGE",
        hint="obtain the document again from its source",
    )


def _mib(n: int) -> str:
    return f"{n / 1024**2:.0f} MiB"


_Matrix = tuple[float, float, float, float, float, float]
_Instruction = pikepdf.ContentStreamInstruction | pikepdf.ContentStreamInlineImage
_IDENTITY: Final[_Matrix] = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


def _mul(m: _Matrix, n: _Matrix) -> _Matrix:
    """m × n for PDF matrices [a b c d e f] (ISO 32000-1 §8.3.4: CTM' = M × CTM)."""
    a, b, c, d, e, f = m
    a2, b2, c2, d2, e2, f2 = n
    return (
        a * a2 + b * c2,
        a * b2 + b * d2,
        c * a2 + d * c2,
        c * b2 + d * d2,
        e * a2 + f * c2 + e2,
        e * b2 + f * d2 + f2,
    )


def _num(value: object) -> float:
    if isinstance(value, int | float | Decimal):
        return float(value)
    raise TypeError(f"expected a number, found {type(value).__name__}")


def _matrix(operands: Sequence[object]) -> _Matrix | None:
    if len(operands) != 6:
        return None
    try:
        a, b, c, d, e, f = (_num(v) for v in operands)
    except TypeError:
        return None
    return (a, b, c, d, e, f)


@dataclass(frozen=True)
class _ImageInfo:
    """An image's intrinsic properties, from its dictionary."""

    width_px: int
    height_px: int
    colour: str
    bits: int | None
    compression: str
    lossy: bool


@dataclass(frozen=True)
class _Placement:
    """An image as drawn on a page."""

    image: _ImageInfo
    area_fraction: float  # of the page's visible area covered by it (clipped to the page)
    dpi: float


class _FormCache:
    """Per document: parsed Form XObject contents (parsed once however often they are drawn),
    the decoded size of every stream (``_pdf_stream_sizes``) and the operators walked so far."""

    def __init__(self, stream_sizes: dict[tuple[int, int], int] | None = None) -> None:
        self._parsed: dict[tuple[int, int], list[_Instruction]] = {}
        self.stream_sizes = stream_sizes or {}
        #: Drawing operations of the pages measured so far (``_drawing_cost``).
        self.operations = 0
        self.costs: dict[tuple[tuple[int, int], int, _ResourcesKey], tuple[int, int]] = {}

    def size(self, stream: pikepdf.Object) -> int:
        """Decoded size of a stream as measured from the file (0 if not measured)."""
        return self.stream_sizes.get(stream.objgen, 0) if stream.is_indirect else 0

    def instructions(self, form: pikepdf.Object) -> list[_Instruction]:
        key = form.objgen
        if key == (0, 0):
            return _parse_content(form)
        if key not in self._parsed:
            self._parsed[key] = _parse_content(form)
        return self._parsed[key]


def _parse_content(stream: pikepdf.Object | pikepdf.Page) -> list[_Instruction]:
    """The operators that matter from a content stream. pikepdf warns (UserWarning) about
    damage a viewer skips, such as a content stream ending inside an operation; like Pillow's
    warnings on images, those go to the debug log, not to the user's terminal."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parsed: list[_Instruction] = pikepdf.parse_content_stream(stream, _OPERATORS)
    for warning in caught:
        _log.debug("content stream: %s", warning.message)
    return parsed


#: The operators that matter for classifying a page: graphics state, transformations, images
#: (XObjects via Do, inline via BI/ID/EI), and text rendering mode / text showing.
_OPERATORS: Final = "q Q cm Do BI ID EI Tr Tj TJ ' \""
_TEXT_SHOWING: Final = frozenset({"Tj", "TJ", "'", '"'})
#: Text render modes that paint nothing: 3 invisible (OCR layers), 7 clip only (ISO 32000-1
#: §9.3.6, Table 106).
_INVISIBLE_TEXT_MODES: Final = frozenset({3, 7})


class _PageWalk:
    """State while walking one page's content: placed images and visible text over them."""

    def __init__(
        self, page: int, box: tuple[float, float, float, float], user_unit: float, max_pixels: int
    ) -> None:
        self.page = page
        self.max_pixels = max_pixels
        self.box = box
        self.area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)
        self.user_unit = user_unit
        self.placements: list[_Placement] = []
        self.visible_text_bytes = 0


def _measure_pdf_page(
    page: pikepdf.Page, number: int, forms: _FormCache, max_pixels: int
) -> PageMeasure:
    box = _visible_box(page)
    user_unit = _num(page.obj.get("/UserUnit", 1))
    walk = _PageWalk(number, box, user_unit if user_unit > 0 else 1.0, max_pixels)
    resources = page.obj.get("/Resources")
    contents = page.obj.get("/Contents")
    parts = contents if isinstance(contents, pikepdf.Array) else [contents]
    content_bytes = sum(forms.size(part) for part in parts if isinstance(part, pikepdf.Stream))
    if content_bytes > MAX_CONTENT_BYTES:
        raise _too_complex(f"page {number}'s content decodes to {_mib(content_bytes)}; the "
                           f"limit is {_mib(MAX_CONTENT_BYTES)}")
    instructions = _parse_content(page)
    operations, drawn = _drawing_cost(instructions, resources, 0, forms, ("page", number))
    drawn += content_bytes
    forms.operations += operations
    if operations > _MAX_INSTRUCTIONS_PER_PAGE:
        raise _too_complex(f"page {number} takes more than {_MAX_INSTRUCTIONS_PER_PAGE:,} "
                           "drawing operations (forms counted each time they are drawn)")
    if drawn > MAX_CONTENT_BYTES:
        raise _too_complex(f"page {number} draws more than {_mib(MAX_CONTENT_BYTES)} of "
                           "content (forms counted each time they are drawn); the limit is "
                           f"{_mib(MAX_CONTENT_BYTES)}")
    if forms.operations > _MAX_INSTRUCTIONS_PER_DOCUMENT:
        raise _too_complex(f"the PDF takes more than {_MAX_INSTRUCTIONS_PER_DOCUMENT:,} drawing "
                           f"operations by page {number}")
    _walk_content(instructions, resources, _IDENTITY, 0, walk, forms)
    return _classify_pdf_page(number, walk)


def _too_complex(found: str) -> InputError:
    return InputError(
        f"{found}; displaying it would take too long",
        code="PDF_TOO_COMPLEX",
        hint="print the document to a new PDF (or rasterise it) and ingest that",
    )


_ResourcesKey = tuple[str, object]


def _drawing_cost(
    instructions: Sequence[_Instruction],
    resources: object,
    depth: int,
    forms: _FormCache,
    resources_key: _ResourcesKey,
) -> tuple[int, int]:
    """(operators, content bytes) walked — and interpreted by a viewer — to draw
    ``instructions``, each form counted every time it is drawn.

    Memoised per (form, depth, resources it is drawn with), so the cost of finding the cost is
    proportional to the number of forms and not to the number of drawings; the count stops
    growing once a page's budget is passed, which is all the caller needs to know.
    """
    operations, drawn = len(instructions), 0
    xobjects = resources.get("/XObject") if isinstance(resources, pikepdf.Dictionary) else None
    if depth >= _MAX_FORM_DEPTH or not isinstance(xobjects, pikepdf.Dictionary):
        return operations, drawn
    for instruction in instructions:
        if (
            not isinstance(instruction, pikepdf.ContentStreamInstruction)
            or str(instruction.operator) != "Do"
            or not instruction.operands
        ):
            continue
        xobj = xobjects.get(str(instruction.operands[0]))
        if not isinstance(xobj, pikepdf.Stream) or xobj.get("/Subtype") != pikepdf.Name.Form:
            continue
        own = "/Resources" in xobj
        key: _ResourcesKey = ("form", xobj.objgen) if own else resources_key
        memo = (xobj.objgen, depth + 1, key)
        cost = forms.costs.get(memo)
        if cost is None:
            form_ops, form_drawn = _drawing_cost(
                forms.instructions(xobj), xobj.get("/Resources") if own else resources,
                depth + 1, forms, key)
            cost = (form_ops, form_drawn + forms.size(xobj))
            forms.costs[memo] = cost
        operations += cost[0]
        drawn += cost[1]
        if operations > _MAX_INSTRUCTIONS_PER_PAGE or drawn > MAX_CONTENT_BYTES:
            break
    return operations, drawn


def _visible_box(page: pikepdf.Page) -> tuple[float, float, float, float]:
    """The CropBox clipped to the MediaBox (ISO 32000-1 §14.11.2), normalised."""
    media = _rect(page.mediabox)
    crop = _rect(page.cropbox)
    x0, y0 = max(media[0], crop[0]), max(media[1], crop[1])
    x1, y1 = min(media[2], crop[2]), min(media[3], crop[3])
    if x1 <= x0 or y1 <= y0:
        return media
    return (x0, y0, x1, y1)


def _rect(arr: Iterable[object]) -> tuple[float, float, float, float]:
    values = [_num(v) for v in arr]
    if len(values) != 4:
        raise ValueError("a page box must have four numbers")
    x0, y0, x1, y1 = values
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _walk_content(
    instructions: Sequence[_Instruction],
    resources: object,
    ctm: _Matrix,
    depth: int,
    walk: _PageWalk,
    forms: _FormCache,
) -> None:
    stack: list[tuple[_Matrix, int]] = []
    render_mode = 0
    xobjects = resources.get("/XObject") if isinstance(resources, pikepdf.Dictionary) else None
    for instruction in instructions:
        if isinstance(instruction, pikepdf.ContentStreamInlineImage):
            info = _image_info(instruction.iimage.obj, resources, inline=True)
            if info is not None:
                _place(info, ctm, walk)
            continue
        operands, op = instruction.operands, str(instruction.operator)
        if op == "q":
            stack.append((ctm, render_mode))
        elif op == "Q":
            if stack:
                ctm, render_mode = stack.pop()
        elif op == "cm":
            m = _matrix(list(operands))
            if m is not None:
                ctm = _mul(m, ctm)
        elif op == "Tr":
            if operands and isinstance(operands[0], int):
                render_mode = int(operands[0])
        elif op in _TEXT_SHOWING:
            # Text drawn before any image is taken to lie under it (an OCR layer); only text
            # painted after an image can make a page born-digital.
            if walk.placements and render_mode not in _INVISIBLE_TEXT_MODES:
                walk.visible_text_bytes += _shown_bytes(list(operands))
        elif op == "Do" and operands and isinstance(xobjects, pikepdf.Dictionary):
            xobj = xobjects.get(str(operands[0]))
            if not isinstance(xobj, pikepdf.Stream):
                continue
            subtype = xobj.get("/Subtype")
            if subtype == pikepdf.Name.Image:
                info = _image_info(xobj, resources, inline=False)
                if info is not None:
                    _place(info, ctm, walk)
            elif subtype == pikepdf.Name.Form and depth < _MAX_FORM_DEPTH:
                form_matrix = _matrix(list(xobj.get("/Matrix", [])) or list(_IDENTITY))
                form_resources = xobj.get("/Resources", resources)
                _walk_content(
                    forms.instructions(xobj),
                    form_resources,
                    _mul(form_matrix or _IDENTITY, ctm),
                    depth + 1,
                    walk,
                    forms,
                )


def _shown_bytes(operands: Sequence[object]) -> int:
    total = 0
    for operand in operands:
        if isinstance(operand, pikepdf.String):
            total += len(bytes(operand))
        elif isinstance(operand, pikepdf.Array):
            total += sum(len(bytes(s)) for s in operand if isinstance(s, pikepdf.String))
    return total


def _place(info: _ImageInfo, ctm: _Matrix, walk: _PageWalk) -> None:
    """Record an image drawn with ``ctm``: the unit square maps to its displayed area
    (ISO 32000-1 §8.9.4), so its effective dpi is pixels ÷ the length of each mapped side.

    An image a viewer would have to decode into more than ``max_pixels`` is refused here, as
    for image files: the proof-of-display render (and any viewer) would decode it."""
    pixels = info.width_px * info.height_px
    if pixels > walk.max_pixels:
        raise InputError(
            f"page {walk.page} draws an image of {info.width_px}×{info.height_px} px = "
            f"{pixels / 1e6:.1f} MP; the decompression-bomb limit is "
            f"{walk.max_pixels / 1e6:.1f} MP",
            code="IMAGE_TOO_LARGE",
            hint="scan at a lower resolution or split the document",
        )
    a, b, c, d, e, f = ctm
    side_x = math.hypot(a, b) * walk.user_unit / 72.0  # inches; 1 unit = 1/72 in × UserUnit
    side_y = math.hypot(c, d) * walk.user_unit / 72.0
    if side_x <= 0 or side_y <= 0:
        return  # degenerate: not displayed
    xs = [e, a + e, c + e, a + c + e]
    ys = [f, b + f, d + f, b + d + f]
    x0, y0, x1, y1 = walk.box
    w = max(0.0, min(max(xs), x1) - max(min(xs), x0))
    h = max(0.0, min(max(ys), y1) - max(min(ys), y0))
    dpi = min(info.width_px / side_x, info.height_px / side_y)
    walk.placements.append(_Placement(info, (w * h) / walk.area, dpi))


def _classify_pdf_page(number: int, walk: _PageWalk) -> PageMeasure:
    """A page is a scan ("image") when images cover at least half its visible area and little
    visible text is painted over them; otherwise it is born-digital ("vector").

    The dpi of a scan page is the lowest among the images covering at least 10 % of the page,
    each measured against its displayed size (for a scan, the page size; for a page split into
    strips, each strip's share). Taking the lowest is conservative for mixed-raster (MRC)
    pages, whose colour background is usually coarser than the bilevel text mask. The colour
    reported is the richest among those images, the compression the set of their codecs.
    """
    coverage = min(1.0, sum(p.area_fraction for p in walk.placements))
    significant = [p for p in walk.placements if p.area_fraction >= _SIGNIFICANT_IMAGE]
    if (
        coverage < _SCAN_COVERAGE
        or not significant
        or walk.visible_text_bytes > _MAX_VISIBLE_TEXT_BYTES
    ):
        return PageMeasure(number, "vector", None, None, None, None, None, None, None, False)
    largest = max(significant, key=lambda p: p.area_fraction)
    richest = max(significant, key=lambda p: _colour_rank(p.image.colour))
    return PageMeasure(
        page=number,
        kind="image",
        width_px=largest.image.width_px,
        height_px=largest.image.height_px,
        dpi=round(min(p.dpi for p in significant), 2),
        dpi_source="pdf-page-size",
        colour=richest.image.colour,
        bits_per_component=richest.image.bits,
        compression="+".join(sorted({p.image.compression for p in significant})),
        lossy=any(p.image.lossy for p in significant),
    )


#: PDF stream filters (ISO 32000-1 §7.4, Table 6; abbreviations for inline images §8.9.7)
#: → (compression name, lossy). JPEG 2000 and JBIG2 can be lossless but need not be, and the
#: dictionary does not say: counted lossy (conservative).
_FILTERS: Final[dict[str, tuple[str, bool]]] = {
    "/DCTDecode": ("jpeg", True),
    "/DCT": ("jpeg", True),
    "/JPXDecode": ("jpeg2000", True),
    "/JBIG2Decode": ("jbig2", True),
    "/CCITTFaxDecode": ("ccitt", False),
    "/CCF": ("ccitt", False),
    "/FlateDecode": ("png/flate", False),
    "/Fl": ("png/flate", False),
    "/LZWDecode": ("lzw", False),
    "/LZW": ("lzw", False),
    "/RunLengthDecode": ("rle", False),
    "/RL": ("rle", False),
}
_TRANSPARENT_FILTERS: Final = frozenset(
    {"/ASCIIHexDecode", "/AHx", "/ASCII85Decode", "/A85", "/Crypt"}
)


def _image_info(image: pikepdf.Object, resources: object, *, inline: bool) -> _ImageInfo | None:
    """Size, colour and compression of an image XObject or inline image dictionary."""
    try:
        width, height = int(image.get("/Width", 0)), int(image.get("/Height", 0))
    except (TypeError, ValueError):
        return None
    if width <= 0 or height <= 0:
        return None
    filters = image.get("/Filter")
    names = (
        [str(f) for f in filters]
        if isinstance(filters, pikepdf.Array)
        else ([str(filters)] if filters is not None else [])
    )
    codecs_used = [n for n in names if n not in _TRANSPARENT_FILTERS]
    compression = "none"
    lossy = False
    for name in codecs_used:
        codec, is_lossy = _FILTERS.get(name, (name.lstrip("/").lower(), True))
        compression = codec
        lossy = lossy or is_lossy
    bpc_value = image.get("/BitsPerComponent")
    bits = int(bpc_value) if isinstance(bpc_value, int) else None
    if bool(image.get("/ImageMask", False)):
        return _ImageInfo(width, height, "bilevel", 1, compression, lossy)
    space = image.get("/ColorSpace")
    if space is None and "/JPXDecode" in names and not inline:
        colour, bits = _jpx_colour(image)
    else:
        colour, bits = _pdf_colour(_resolve_space(space, resources), bits)
    if compression == "jbig2":
        colour, bits = "bilevel", 1  # JBIG2 is bilevel by definition (ISO 32000-1 §7.4.7)
    return _ImageInfo(width, height, colour, bits, compression, lossy)


def _resolve_space(space: object, resources: object) -> object:
    """A named colour space (other than the device ones) refers to /Resources /ColorSpace."""
    if isinstance(space, pikepdf.Name) and str(space) not in _DEVICE_SPACES:
        named = resources.get("/ColorSpace") if isinstance(resources, pikepdf.Dictionary) else None
        if isinstance(named, pikepdf.Dictionary):
            return named.get(space, space)
    return space


_DEVICE_SPACES: Final[dict[str, str]] = {
    "/DeviceGray": "gray",
    "/G": "gray",
    "/CalGray": "gray",
    "/DeviceRGB": "rgb",
    "/RGB": "rgb",
    "/CalRGB": "rgb",
    "/DeviceCMYK": "cmyk",
    "/CMYK": "cmyk",
    "/Lab": "lab",
    "/Indexed": "palette",
    "/I": "palette",
    "/Separation": "separation",
    "/DeviceN": "devicen",
}


def _pdf_colour(space: object, bits: int | None, depth: int = 0) -> tuple[str, int | None]:
    """Colour mode from a PDF colour space (ISO 32000-1 §8.6) and /BitsPerComponent."""
    depth_bits = bits if bits is not None else 8
    if isinstance(space, pikepdf.Array) and len(space) > 0:
        family = str(space[0])
        if family == "/ICCBased" and len(space) > 1 and isinstance(space[1], pikepdf.Stream):
            # ICC profile streams carry /N, the number of components (§8.6.5.5).
            n = space[1].get("/N")
            by_n = {1: "gray", 3: "rgb", 4: "cmyk"}
            if isinstance(n, int) and n in by_n:
                return _colour_name(by_n[n], depth_bits), depth_bits
            alternate = space[1].get("/Alternate")
            if alternate is not None and depth < 4:
                return _pdf_colour(alternate, bits, depth + 1)
            return "icc", bits
        space = space[0]
    if isinstance(space, pikepdf.Name):
        device = _DEVICE_SPACES.get(str(space))
        if device is not None:
            return _colour_name(device, depth_bits), bits
        return str(space).lstrip("/").lower(), bits
    return "unknown", bits


def _jpx_colour(image: pikepdf.Object) -> tuple[str, int | None]:
    """A JPXDecode image without /ColorSpace takes its colour from the JPEG 2000 header
    (ISO 32000-1 §8.9.5.1); Pillow reads the header without decoding the codestream."""
    try:
        with Image.open(io.BytesIO(image.read_raw_bytes()), formats=["JPEG2000"]) as jpx:
            bits = _jpx_bits(jpx)
            return _pil_colour(jpx.mode, bits)
    except _PIL_DATA_ERRORS:
        return "unknown", None


def _jpx_bits(jpx: Image.Image) -> int | None:
    mode = jpx.mode
    if mode.startswith("I;16"):
        return 16
    return 1 if mode == "1" else 8


# ---- active content -------------------------------------------------------------------------

#: Action types (ISO 32000-1 §12.6.4, Table 198) that run code, reach outside the document or
#: send data out; a viewer may run them on opening or on interaction.
_ACTION_KINDS: Final[dict[str, str]] = {
    "/JavaScript": "javascript",
    "/Launch": "launch-action",
    "/SubmitForm": "submit-form",
    "/ImportData": "import-data",
    "/RichMediaExecute": "rich-media",
}
_MULTIMEDIA_ANNOTATIONS: Final = frozenset({"/RichMedia", "/Movie", "/Sound", "/Screen", "/3D"})
#: Keys whose subtrees hold no actions; skipping them keeps the walk to the document's
#: skeleton (content, fonts and images are the bulk of a large PDF).
_INERT_KEYS: Final = frozenset(
    {
        "/Parent",
        "/Resources",
        "/Contents",
        "/AP",
        "/Font",
        "/Metadata",
        "/StructTreeRoot",
        "/ParentTree",
        "/Thumb",
        "/OutputIntents",
        "/MediaBox",
        "/CropBox",
    }
)


def _active_content(pdf: pikepdf.Pdf) -> tuple[str, ...]:
    """Kinds of active content reachable from the document catalog.

    A bounded walk of the object graph (each indirect object once, nesting ≤ 64, at most
    200 000 objects) finds: document open actions other than a plain go-to, JavaScript
    (name tree or any action), Launch/SubmitForm/ImportData actions, additional actions
    (/AA on the catalog, pages, annotations or fields), embedded files (name tree or file
    specifications with /EF), file attachment annotations, XFA forms and multimedia
    annotations. Found kinds are reported, not refused; the profile decides.
    """
    found: set[str] = set()
    root = pdf.Root
    opening = root.get("/OpenAction")
    if isinstance(opening, pikepdf.Dictionary) and opening.get("/S") != pikepdf.Name.GoTo:
        found.add("open-action")
    seen: set[tuple[int, int]] = set()
    pending: list[tuple[object, int]] = [(root, 0)]
    visited = 0
    while pending:
        node, depth = pending.pop()
        if not isinstance(node, pikepdf.Dictionary | pikepdf.Array | pikepdf.Stream):
            continue
        if node.is_indirect:
            objgen = node.objgen
            if objgen in seen:
                continue
            seen.add(objgen)
        visited += 1
        if visited > _MAX_ACTIVE_CONTENT_NODES or depth > _MAX_NESTING:
            found.add("incomplete-scan")
            break
        if isinstance(node, pikepdf.Array):
            pending.extend((item, depth + 1) for item in node)
            continue
        _classify_dict(node, found)
        # items(), not get(key): a key naming bytes that are not UTF-8 (/A#FF) comes back as a
        # str with surrogates, which pikepdf cannot take as a key again.
        for key, value in node.items():
            if key not in _INERT_KEYS:
                pending.append((value, depth + 1))
    return tuple(sorted(found))


def _classify_dict(node: pikepdf.Object, found: set[str]) -> None:
    action = node.get("/S")
    if isinstance(action, pikepdf.Name) and str(action) in _ACTION_KINDS:
        found.add(_ACTION_KINDS[str(action)])
    if "/JS" in node:
        found.add("javascript")
    if "/JavaScript" in node and isinstance(node.get("/JavaScript"), pikepdf.Dictionary):
        found.add("javascript")  # the catalog's /Names /JavaScript name tree (§7.7.4)
    aa = node.get("/AA")
    if isinstance(aa, pikepdf.Dictionary) and len(aa.keys()) > 0:
        found.add("additional-actions")
    if "/EF" in node or "/EmbeddedFiles" in node or node.get("/Type") == pikepdf.Name.EmbeddedFile:
        found.add("embedded-files")
    subtype = node.get("/Subtype")
    if subtype == pikepdf.Name.FileAttachment:
        found.add("file-attachment")
    elif isinstance(subtype, pikepdf.Name) and str(subtype) in _MULTIMEDIA_ANNOTATIONS:
        found.add("multimedia")
    if "/XFA" in node:
        found.add("xfa")
