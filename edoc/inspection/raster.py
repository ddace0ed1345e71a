"""Image files (JPEG, PNG, TIFF) measured with Pillow: frames, resolution, colour, codec.

Each frame's header is checked against ``MAX_PIXELS`` before a pixel is decoded; the one
pixel decode is the bounded render proving the image displays (見読性: a record must display
and print at once), a JPEG at 1/8 scale (~2 ms for 200 KB). The resolution comes from the
file's metadata, or, when that is absent or a 72/96 dpi placeholder, from the size of the
original (``--paper-size``): scanner preservation under 電子帳簿保存法 施行規則 第2条第6項
第2号イ counts dots per 25.4 mm of the original (JIS Z 6016).

Measuring an image changes process-wide state (warnings filters, and file descriptor 2 while
libtiff decodes), so one image at a time is measured (``_IMAGE_LOCK``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import struct
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from PIL import Image

from edoc.errors import EdocError, InputError
from edoc.inspection.measures import (
    PageMeasure,
    Readability,
    colour_name,
    format_dpi,
    reason,
)
from edoc.inspection.media import JPEG, PNG, TIFF
from edoc.policy.paper import dpi_from_paper

#: Image types inspected with Pillow, and the Pillow format each must parse as.
PIL_FORMATS: Final[dict[str, str]] = {JPEG: "JPEG", PNG: "PNG", TIFF: "TIFF"}


#: Explicit decompression-bomb limit per image frame, checked on the header before any pixel
#: is decoded. The proof-of-display render decodes PNG/TIFF frames in full and Pillow holds
#: RGB at 4 bytes a pixel, so this also bounds that render's memory (80 MP → 320 MB). An A3
#: page at 600 dpi is 70 MP, an A4 page at 1200 dpi 140 MP (no document scanner needs it).
#: Pillow's process-wide guard (``Image.MAX_IMAGE_PIXELS``, 89 MP by default) is also in
#: force; its warning is treated as an error and reported with the same code.
MAX_PIXELS: Final = 80_000_000

#: Resolutions that image writers put in by default rather than measure: 72 and 96 dpi
#: (screen defaults; Exif requires 72 dpi when the resolution is unknown, which is why the
#: NTA's 一問一答 (スキャナ保存 問26) says a 72 dpi phone photo may not know its resolution).
#: Values at or below 1 dpi (JFIF's "aspect ratio only" density, TIFF's default of 1) are
#: treated as absent.
_PLACEHOLDER_DPI: Final = (72.0, 96.0)

_log = logging.getLogger(__name__)

#: Measuring an image changes process-wide state: the warnings filters (``catch_warnings``
#: is not thread-safe, Python docs, ``warnings``) that turn Pillow's "Corrupt EXIF data"
#: into a rejection, and file descriptor 2 while libtiff decodes. With several files in
#: flight (``edoc ingest --jobs``) one image at a time is measured: without this lock the
#: hostile-input suite once saw a damaged TIFF stored while another thread's filters held.
_IMAGE_LOCK = threading.Lock()

#: Exceptions Pillow raises on malformed data (it has no single error type).
PIL_DATA_ERRORS: Final = (
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


def inspect_image(
    path: Path, media_type: str, paper: tuple[float, float] | None, max_pixels: int
) -> Readability:
    """Measure every frame of the image file at ``path`` (``media_type`` one of
    ``PIL_FORMATS``); ``paper`` is the original's size in inches when given. One image at a
    time in this process (``_IMAGE_LOCK``)."""
    with _IMAGE_LOCK:
        return _inspect_image_locked(path, media_type, paper, max_pixels)


def _inspect_image_locked(
    path: Path, media_type: str, paper: tuple[float, float] | None, max_pixels: int
) -> Readability:
    fmt = PIL_FORMATS[media_type]
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
    except (*PIL_DATA_ERRORS, UserWarning) as exc:
        # UserWarning: raised as an error while decoding (``_render_image``), e.g. Pillow's
        # "Corrupt EXIF data" when a TIFF's EXIF directory runs past the end of the file.
        raise InputError(
            f"{fmt} image cannot be read: {reason(exc, path)}",
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
    colour, bits = pil_colour(im.mode, bits)
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
            f"records {format_dpi(min(metadata))} dpi, a placeholder value"
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


def pil_colour(mode: str, bits: int | None) -> tuple[str, int | None]:
    """Colour mode name and bits per component from Pillow's mode (and the file's depth)."""
    if mode == "1":
        return "bilevel", 1
    if mode in ("L", "LA", "La"):
        depth = bits if bits is not None and bits <= 16 else 8
        return colour_name("gray", depth), depth
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
        return colour_name("rgb", depth), depth
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
