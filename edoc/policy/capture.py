"""Capture rules (見読性 for scans): a profile's requirements applied to what was measured.

``CaptureRules`` is the ``[capture]`` section of an ordinance profile (the strictest of all
profiles that apply, ``edoc.policy.profiles.combine``); ``check_capture`` applies it to the
measurements of the readability gate (``edoc.inspection``), raising ``ProfileViolation`` with
a one-line message naming what was measured and what was required.

Why these rules: scanner preservation under 電子帳簿保存法 施行規則 第2条第6項第2号 requires a
resolution of at least 200 dpi (イ: 25.4 mm 当たり 8 ドット以上 per JIS Z 6016) and 24-bit
colour (ロ: 赤・緑・青それぞれ 256 階調以上) for 重要書類; 第2条第7項 allows 8-bit gray for
一般書類. METI's e-文書法 guidance asks 150 dpi for colour/gray and 200 dpi for bilevel scans.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from edoc.errors import ConfigError, InputError, ProfileViolation
from edoc.inspection import PageMeasure, Readability
from edoc.inspection.measures import colour_rank, format_dpi

#: dpi tolerance: 1654 px across A4's 8.27 in is 199.99 dpi, and the NTA counts A4 at
#: 1654×2339 px as 200 dpi, so a measurement within 1 % below the requirement passes.
DPI_TOLERANCE: Final = 0.01

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
            found = _list_pages([f"{format_dpi(m.dpi)} dpi" for m, _ in low], [m for m, _ in low])
            need = f"{profile_id} requires {reqs[0]}"
        else:
            found = _list_pages(
                [f"{format_dpi(m.dpi)} dpi {m.colour}" for m, _ in low], [m for m, _ in low]
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
    weak = [m for m in scans if colour_rank(m.colour) < required_rank]
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
    rank = colour_rank(m.colour)
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
