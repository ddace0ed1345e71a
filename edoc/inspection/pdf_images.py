"""What an image a PDF draws is, from its dictionary: size, colour mode, depth and codec.

Used by the page walk (``edoc.inspection.pdf_content``) for image XObjects and inline images
(ISO 32000-1 §8.9). Nothing here decodes pixels: a JPEG 2000 image without /ColorSpace has
its header read by Pillow, never its codestream.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Final

import pikepdf
from PIL import Image

from edoc.inspection.measures import colour_name
from edoc.inspection.raster import PIL_DATA_ERRORS, pil_colour


@dataclass(frozen=True)
class ImageInfo:
    """An image's intrinsic properties, from its dictionary."""

    width_px: int
    height_px: int
    colour: str
    bits: int | None
    compression: str
    lossy: bool


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


def image_info(image: pikepdf.Object, resources: object, *, inline: bool) -> ImageInfo | None:
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
        return ImageInfo(width, height, "bilevel", 1, compression, lossy)
    space = image.get("/ColorSpace")
    if space is None and "/JPXDecode" in names and not inline:
        colour, bits = _jpx_colour(image)
    else:
        colour, bits = _pdf_colour(_resolve_space(space, resources), bits)
    if compression == "jbig2":
        colour, bits = "bilevel", 1  # JBIG2 is bilevel by definition (ISO 32000-1 §7.4.7)
    return ImageInfo(width, height, colour, bits, compression, lossy)


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
                return colour_name(by_n[n], depth_bits), depth_bits
            alternate = space[1].get("/Alternate")
            if alternate is not None and depth < 4:
                return _pdf_colour(alternate, bits, depth + 1)
            return "icc", bits
        space = space[0]
    if isinstance(space, pikepdf.Name):
        device = _DEVICE_SPACES.get(str(space))
        if device is not None:
            return colour_name(device, depth_bits), bits
        return str(space).lstrip("/").lower(), bits
    return "unknown", bits


def _jpx_colour(image: pikepdf.Object) -> tuple[str, int | None]:
    """A JPXDecode image without /ColorSpace takes its colour from the JPEG 2000 header
    (ISO 32000-1 §8.9.5.1); Pillow reads the header without decoding the codestream."""
    try:
        with Image.open(io.BytesIO(image.read_raw_bytes()), formats=["JPEG2000"]) as jpx:
            bits = _jpx_bits(jpx)
            return pil_colour(jpx.mode, bits)
    except PIL_DATA_ERRORS:
        return "unknown", None


def _jpx_bits(jpx: Image.Image) -> int | None:
    mode = jpx.mode
    if mode.startswith("I;16"):
        return 16
    return 1 if mode == "1" else 8
