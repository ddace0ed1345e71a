"""Paper sizes: the physical size a scan was taken from, when the file does not say.

The readability gate (``edoc.inspection``) needs a scan's resolution. When an
image carries
no resolution, or only a 72/96 dpi placeholder, the clerk names the paper the scan came from
(``--paper-size A4``) and the resolution is pixels ÷ inches. This module owns the table of
named sizes and the parsing of custom ``WxHmm`` / ``WxHin`` sizes.

Sizes are returned portrait (short side first); the caller matches the orientation of the
image, so ``A4`` serves portrait and landscape scans alike.
"""

from __future__ import annotations

import re

from edoc.errors import UsageError

MM_PER_INCH = 25.4

#: Named sizes in millimetres, portrait. A series per ISO 216 (= JIS P 0138 A列); B series
#: is JIS B (JIS P 0138 B列), the B4/B5 used in Japanese offices, not ISO B (B5 ISO is
#: 176×250 mm). Letter and Legal are ANSI sizes in exact inches (8.5×11, 8.5×14).
_NAMED_MM: dict[str, tuple[float, float]] = {
    "A3": (297.0, 420.0),
    "A4": (210.0, 297.0),
    "A5": (148.0, 210.0),
    "A6": (105.0, 148.0),
    "B4": (257.0, 364.0),
    "B5": (182.0, 257.0),
    "LETTER": (8.5 * MM_PER_INCH, 11.0 * MM_PER_INCH),
    "LEGAL": (8.5 * MM_PER_INCH, 14.0 * MM_PER_INCH),
}

#: A custom size: ``210x297mm``, ``80 x 200 mm``, ``8.5x11in`` (``x``, ``×`` or ``*``).
_CUSTOM = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[x×*]\s*(\d+(?:\.\d+)?)\s*(mm|in)\s*$", re.IGNORECASE)

#: Sanity bounds for custom sizes: a receipt stub is a few cm, A0 is 841×1189 mm.
_MIN_MM = 10.0
_MAX_MM = 2000.0


def paper_names() -> tuple[str, ...]:
    """The named sizes, in the spelling shown to users."""
    return ("A3", "A4", "A5", "A6", "B4", "B5", "letter", "legal")


def paper_size_inches(name: str) -> tuple[float, float]:
    """``(short, long)`` side of the named or custom paper size, in inches.

    Case-insensitive: ``a4``, ``A4``, ``Letter``; custom sizes as ``WxHmm`` or ``WxHin``.
    Raises ``UsageError(code="PAPER_SIZE_UNKNOWN")`` for anything else.
    """
    key = name.strip().upper()
    if key in _NAMED_MM:
        w_mm, h_mm = _NAMED_MM[key]
    else:
        m = _CUSTOM.match(name)
        if m is None:
            raise UsageError(
                f"paper size {name!r} is not known; give one of "
                f"{', '.join(paper_names())} or a custom size like 80x200mm",
                code="PAPER_SIZE_UNKNOWN",
                hint="e.g. --paper-size A4, --paper-size B5, --paper-size 80x200mm",
            )
        scale = 1.0 if m.group(3).lower() == "mm" else MM_PER_INCH
        w_mm, h_mm = float(m.group(1)) * scale, float(m.group(2)) * scale
        for side in (w_mm, h_mm):
            if not _MIN_MM <= side <= _MAX_MM:
                raise UsageError(
                    f"paper size {name!r} has a side of {side:g} mm; sides must be "
                    f"between {_MIN_MM:g} and {_MAX_MM:g} mm",
                    code="PAPER_SIZE_UNKNOWN",
                )
    short, long = sorted((w_mm, h_mm))
    return (short / MM_PER_INCH, long / MM_PER_INCH)


def dpi_from_paper(width_px: int, height_px: int, paper: tuple[float, float]) -> float:
    """Effective dpi of a ``width_px``×``height_px`` image of ``paper`` (inches, any order).

    The paper is turned to match the image (the long side of the paper lies along the long
    side of the image); the effective dpi is the smaller of the two axes, as a scan is only
    as fine as its coarser direction.
    """
    short_in, long_in = sorted(paper)
    short_px, long_px = sorted((width_px, height_px))
    return min(short_px / short_in, long_px / long_in)
