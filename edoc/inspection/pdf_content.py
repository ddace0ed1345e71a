"""PDF documents: open (no repair, no encryption), measure every page, render page 1.

What counts as a scan: a PDF page that is essentially one image covering the page
(``_classify_pdf_page``). Born-digital pages ("vector") pass the resolution and colour rules:
they have no scan resolution to measure. Each page's content is walked (pikepdf content
streams; the current transformation matrix, ISO 32000-1 §8.3.4; forms, §8.10) to find where
every image lands and at what effective dpi.

見読性 asks that a record display and print at once, which is why a damaged file is refused
rather than repaired, an encrypted one is refused, and page 1 must render (pdfium, the engine
of Chrome's viewer; ``_PDFIUM_LOCK``: pdfium is not thread-safe).

Hostile input: stream sizes are measured before qpdf or pdfium decode anything
(``edoc.inspection.pdf_streams``); a page whose drawing costs more than a budget (forms
drawing forms, "billion laughs") is refused before it is walked (``_drawing_cost``).
"""

from __future__ import annotations

import logging
import math
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Final

import pikepdf
import pypdfium2 as pdfium

from edoc.errors import EdocError, InputError
from edoc.inspection.active_content import find_active_content
from edoc.inspection.measures import PageMeasure, Readability, colour_rank, reason
from edoc.inspection.media import PDF
from edoc.inspection.pdf_images import ImageInfo, image_info
from edoc.inspection.pdf_streams import mib, pdf_stream_sizes

#: Longest side, in pixels, of the proof-of-display render of a PDF's first page.
RENDER_MAX_SIDE: Final = 256

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
#: Decoded bytes allowed for one page's content streams, or one form's: what pikepdf parses
#: and pdfium interprets (dense born-digital pages have a few MiB).
MAX_CONTENT_BYTES: Final = 64 * 1024 * 1024

_log = logging.getLogger(__name__)
#: qpdf reports damage it works around ("Pages tree includes non-dictionary object;
#: ignoring") through pikepdf's logger at ERROR level. pikepdf gives that logger no handler,
#: so without one logging's last-resort handler prints it on stderr after edoc's one-line
#: answer. A NullHandler stops that and nothing else: with ``--debug`` the records still
#: reach the root logger's handlers.
logging.getLogger("pikepdf").addHandler(logging.NullHandler())

#: pdfium is not thread-safe; one render at a time in this process.
_PDFIUM_LOCK = threading.Lock()


def inspect_pdf(path: Path, max_pixels: int) -> Readability:
    """Measure every page of the PDF at ``path``, find its active content, render page 1."""
    # Before qpdf or pdfium decode anything: both inflate streams in full.
    stream_sizes = pdf_stream_sizes(path)
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
            f"the PDF cannot be opened: {reason(exc, path)}",
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
            active = find_active_content(pdf)
        except EdocError:
            raise
        except (pikepdf.PdfError, ValueError, TypeError, KeyError, IndexError, RuntimeError) as exc:
            raise InputError(
                f"the PDF's structure cannot be read: {reason(exc, path)}",
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
                    # Every image page 1 draws is still decoded in full (what proves it
                    # displays); only the resampling of the decoded pixels to this thumbnail
                    # is nearest-neighbour: smoothing says nothing about readability and was
                    # ~40 % of a scanned page's render (12.3 -> 7.7 ms, BENCHMARKS.md).
                    bitmap = page.render(scale=scale, no_smoothimage=True)
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
class _Placement:
    """An image as drawn on a page."""

    image: ImageInfo
    area_fraction: float  # of the page's visible area covered by it (clipped to the page)
    dpi: float


class _FormCache:
    """Per document: parsed Form XObject contents (parsed once however often they are drawn),
    the decoded size of every stream (``pdf_stream_sizes``) and the operators walked so far."""

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
        raise _too_complex(f"page {number}'s content decodes to {mib(content_bytes)}; the "
                           f"limit is {mib(MAX_CONTENT_BYTES)}")
    instructions = _parse_content(page)
    operations, drawn = _drawing_cost(instructions, resources, 0, forms, ("page", number))
    drawn += content_bytes
    forms.operations += operations
    if operations > _MAX_INSTRUCTIONS_PER_PAGE:
        raise _too_complex(f"page {number} takes more than {_MAX_INSTRUCTIONS_PER_PAGE:,} "
                           "drawing operations (forms counted each time they are drawn)")
    if drawn > MAX_CONTENT_BYTES:
        raise _too_complex(f"page {number} draws more than {mib(MAX_CONTENT_BYTES)} of "
                           "content (forms counted each time they are drawn); the limit is "
                           f"{mib(MAX_CONTENT_BYTES)}")
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
            info = image_info(instruction.iimage.obj, resources, inline=True)
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
                info = image_info(xobj, resources, inline=False)
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


def _place(info: ImageInfo, ctm: _Matrix, walk: _PageWalk) -> None:
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
    richest = max(significant, key=lambda p: colour_rank(p.image.colour))
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
