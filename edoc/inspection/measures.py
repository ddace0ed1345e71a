"""What the readability gate (見読性) measured: ``PageMeasure`` per page, ``Readability`` per
document, and the colour-mode names both use.

A record's manifest holds ``Readability.to_manifest()``, so these names and the shape of that
dictionary are part of the archive format: they must not change. The colour ranking
(``colour_rank``) is the one conservative reading of 施行規則 第2条第6項第2号ロ that the
manifest summary, the PDF page classification and the capture rules
(``edoc.policy.capture``) share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

#: Per-page detail kept in the manifest: the first N pages, plus the pages that hold the
#: extreme values (lowest dpi per colour mode, weakest colour, first lossy page).
MANIFEST_PAGES: Final = 20


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
            weakest = min(scans, key=lambda m: (colour_rank(m.colour), m.page))
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


_RGB = re.compile(r"rgb(\d+)")
_GRAY = re.compile(r"gray(\d+)f?")


def colour_rank(colour: str | None) -> int:
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


def colour_name(family: str, bits: int) -> str:
    """``("rgb", 8)`` → ``rgb24``; ``("gray", 8)`` → ``gray8``; ``("gray", 1)`` → ``bilevel``."""
    if family == "gray":
        return "bilevel" if bits == 1 else f"gray{bits}"
    if family == "rgb":
        return f"rgb{3 * bits}"
    return family


def format_dpi(dpi: float | None) -> str:
    if dpi is None:
        return "unknown"
    return f"{round(dpi, 1):g}"


def reason(exc: BaseException, path: Path) -> str:
    """A library's error text for a message: the file's name only, never where it lies."""
    return str(exc).replace(str(path), path.name) or type(exc).__name__
