"""Sample-document generators for tests and benchmarks: scans, PDFs, receipts, bad files.

Everything is generated at test time into a directory the caller gives (``tmp_path``);
nothing binary is committed. Generators are deterministic for the same arguments, so a
failing test can be reproduced, and each returns the path it wrote.

Sizes: pixel dimensions are ``round(paper inches × dpi)``, so ``scan_image(dpi=200,
paper="A4")`` is 1654×2339 px, the NTA's example of a 200 dpi A4 scan. Tests that only need
a resolution, not a realistic page, pass a small ``paper`` (``"A6"``, ``"50x70mm"``) to stay
fast.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import pikepdf
from PIL import Image, ImageDraw, TiffImagePlugin

from edoc.policy.paper import paper_size_inches

__all__ = [
    "bomb_png",
    "encrypted_pdf",
    "pdf_with_active_content",
    "pixel_size",
    "scan_image",
    "scan_pdf",
    "small_jpeg",
    "text_pdf",
]

_POINTS_PER_INCH = 72.0


def pixel_size(dpi: int, paper: str = "A4", *, landscape: bool = False) -> tuple[int, int]:
    """(width, height) in pixels of a ``paper`` page scanned at ``dpi``."""
    short, long = paper_size_inches(paper)
    w, h = round(short * dpi), round(long * dpi)
    return (h, w) if landscape else (w, h)


def _page_content(size: tuple[int, int], seed: int) -> Image.Image:
    """An RGB "document": text-like black bars, a gray table, a red seal (印影), scaled to size."""
    w, h = size
    rnd = random.Random(seed)
    im = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(im)
    line_h = max(2, h // 60)
    y = h // 12
    while y < h * 0.85:
        x = w // 10
        while x < w * 0.9:
            word = max(2, int(w * rnd.uniform(0.02, 0.08)))
            draw.rectangle((x, y, min(x + word, int(w * 0.9)), y + line_h // 2), fill=(20, 20, 20))
            x += word + max(2, w // 80)
        y += line_h
    draw.rectangle((w // 10, int(h * 0.6), int(w * 0.9), int(h * 0.7)), outline=(96, 96, 96))
    draw.rectangle(
        (w // 10 + 1, int(h * 0.6) + 1, int(w * 0.5), int(h * 0.7) - 1), fill=(200, 200, 200)
    )
    r = max(3, w // 14)
    cx, cy = int(w * 0.78), int(h * 0.12)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=(200, 30, 30), width=max(1, r // 8))
    return im


def _to_mode(im: Image.Image, mode: str) -> Image.Image:
    if mode == "RGB":
        return im
    if mode == "1":
        return im.convert("L").point(lambda v: 255 if v > 160 else 0).convert("1")
    if mode == "P":
        return im.quantize(colors=16)
    if mode == "I;16":
        return im.convert("L").convert("I").point(lambda v: v * 257).convert("I;16")
    return im.convert(mode)


def scan_image(
    path: Path,
    *,
    dpi: int | Sequence[int],
    mode: str | Sequence[str] = "RGB",
    paper: str = "A4",
    fmt: str = "JPEG",
    write_dpi: bool = True,
    pages: int = 1,
    metadata_dpi: float | None = None,
    dpi_unit: str = "inch",
    landscape: bool = False,
    quality: int = 40,
    compression: str | None = None,
) -> Path:
    """Write a scanned page (or a multi-page TIFF) of ``paper`` scanned at ``dpi``.

    ``dpi`` and ``mode`` may be sequences, one value per page (``pages`` is then their
    length); ``mode`` is a Pillow mode: RGB, L, 1, P, CMYK, RGBA, I;16. ``fmt`` is JPEG, PNG or
    TIFF. The file records the scan's dpi unless ``write_dpi`` is False; ``metadata_dpi``
    records another value instead (e.g. 72, a placeholder). ``dpi_unit="cm"`` writes a TIFF
    ResolutionUnit of centimetres. TIFF ``compression`` defaults to group4 for bilevel pages
    and LZW otherwise.
    """
    fmt = fmt.upper()
    dpis = [dpi] * pages if isinstance(dpi, int) else list(dpi)
    modes = [mode] * len(dpis) if isinstance(mode, str) else list(mode)
    if len(modes) != len(dpis):
        raise ValueError("give one mode per page")
    if len(dpis) > 1 and fmt != "TIFF":
        raise ValueError("only TIFF holds several pages")
    frames = []
    for index, (page_dpi, page_mode) in enumerate(zip(dpis, modes, strict=True)):
        size = pixel_size(page_dpi, paper, landscape=landscape)
        frames.append(_to_mode(_page_content(size, seed=index), page_mode))
    recorded = [metadata_dpi if metadata_dpi is not None else d for d in dpis]

    if fmt == "TIFF":
        with path.open("w+b") as fh, TiffImagePlugin.AppendingTiffWriter(fh) as tf:
            for frame, value in zip(frames, recorded, strict=True):
                options: dict[str, object] = {
                    "compression": compression or ("group4" if frame.mode == "1" else "tiff_lzw")
                }
                if write_dpi:
                    options["resolution_unit"] = 3 if dpi_unit == "cm" else 2
                    scale = 1 / 2.54 if dpi_unit == "cm" else 1.0
                    options["resolution"] = value * scale
                    options["x_resolution"] = value * scale
                    options["y_resolution"] = value * scale
                frame.save(tf, "TIFF", **options)
                tf.newFrame()
        return path
    frame = frames[0]
    options = {"dpi": (recorded[0], recorded[0])} if write_dpi else {}
    if fmt == "JPEG":
        frame.save(path, "JPEG", quality=quality, **options)
    elif fmt == "PNG":
        frame.save(path, "PNG", compress_level=1, **options)
    else:
        raise ValueError(f"unknown format {fmt}")
    return path


def _jpeg_bytes(im: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _image_xobject(pdf: pikepdf.Pdf, im: Image.Image, *, lossless: bool) -> pikepdf.Stream:
    """An image XObject: DCT (JPEG) for RGB/gray unless ``lossless``, Flate for bilevel."""
    spaces = {"RGB": pikepdf.Name.DeviceRGB, "L": pikepdf.Name.DeviceGray}
    if im.mode == "1":
        # 1 bpc DeviceGray: 0 is black, 1 white — the same bit sense as Pillow's mode "1".
        return pikepdf.Stream(
            pdf,
            zlib.compress(im.tobytes(), 6),
            Type=pikepdf.Name.XObject,
            Subtype=pikepdf.Name.Image,
            Width=im.width,
            Height=im.height,
            ColorSpace=pikepdf.Name.DeviceGray,
            BitsPerComponent=1,
            Filter=pikepdf.Name.FlateDecode,
        )
    if im.mode not in spaces:
        im = im.convert("RGB")
    data = zlib.compress(im.tobytes(), 6) if lossless else _jpeg_bytes(im, 40)
    return pikepdf.Stream(
        pdf,
        data,
        Type=pikepdf.Name.XObject,
        Subtype=pikepdf.Name.Image,
        Width=im.width,
        Height=im.height,
        ColorSpace=spaces[im.mode],
        BitsPerComponent=8,
        Filter=pikepdf.Name.FlateDecode if lossless else pikepdf.Name.DCTDecode,
    )


def _helvetica(pdf: pikepdf.Pdf) -> pikepdf.Dictionary:
    return pikepdf.Dictionary(
        Type=pikepdf.Name.Font,
        Subtype=pikepdf.Name.Type1,
        BaseFont=pikepdf.Name.Helvetica,
        Encoding=pikepdf.Name.WinAnsiEncoding,
    )


def _pdf_string(text: str) -> bytes:
    raw = text.encode("cp1252", "replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def scan_pdf(
    path: Path,
    *,
    dpi_per_page: Sequence[int],
    mode: str = "RGB",
    paper: str = "A4",
    lossless: bool = False,
    ocr_text: str | None = None,
    strips: int = 1,
) -> Path:
    """Write an image-only PDF: page *n* is one image scanned at ``dpi_per_page[n]``, drawn to
    cover the ``paper`` page exactly, so its effective dpi is that value.

    ``mode`` RGB/L (JPEG, or Flate when ``lossless``) or 1 (Flate, 1 bpc). ``ocr_text`` adds an
    invisible text layer (render mode 3) as OCR software does. ``strips`` > 1 cuts each page
    image into that many horizontal strips, as some scanners write them.
    """
    short, long = paper_size_inches(paper)
    width_pt, height_pt = short * _POINTS_PER_INCH, long * _POINTS_PER_INCH
    pdf = pikepdf.new()
    for index, dpi in enumerate(dpi_per_page):
        page_image = _to_mode(_page_content(pixel_size(dpi, paper), seed=index), mode)
        page = pdf.add_blank_page(page_size=(width_pt, height_pt))
        xobjects = pikepdf.Dictionary()
        ops: list[bytes] = []
        bounds = [round(i * page_image.height / strips) for i in range(strips + 1)]
        for k in range(strips):
            top, bottom = bounds[k], bounds[k + 1]
            strip = page_image.crop((0, top, page_image.width, bottom))
            name = f"/Im{k}"
            xobjects[name] = _image_xobject(pdf, strip, lossless=lossless)
            # Strip k spans rows top..bottom; PDF y grows upwards from the page's bottom.
            y = height_pt * (1 - bottom / page_image.height)
            h = height_pt * (bottom - top) / page_image.height
            ops.append(f"q {width_pt:.4f} 0 0 {h:.4f} 0 {y:.4f} cm {name} Do Q".encode())
        resources = pikepdf.Dictionary(XObject=xobjects)
        if ocr_text is not None:
            resources.Font = pikepdf.Dictionary(F1=_helvetica(pdf))
            ops.append(b"BT 3 Tr /F1 10 Tf 72 720 Td " + _pdf_string(ocr_text) + b" Tj ET")
        page.Resources = resources
        page.Contents = pikepdf.Stream(pdf, b"\n".join(ops))
    pdf.save(path)
    return path


def text_pdf(
    path: Path,
    text: str,
    *,
    pages: int = 1,
    paper: str = "A4",
    logo: bool = False,
    background_dpi: int | None = None,
) -> Path:
    """Write a born-digital PDF: ``text`` set in Helvetica on every page.

    ``logo`` adds a small image in a corner (born-digital documents often have one);
    ``background_dpi`` draws a full-page picture under the text first (letterhead/form
    backgrounds), which must not turn the page into a "scan".
    """
    short, long = paper_size_inches(paper)
    width_pt, height_pt = short * _POINTS_PER_INCH, long * _POINTS_PER_INCH
    pdf = pikepdf.new()
    for number in range(1, pages + 1):
        page = pdf.add_blank_page(page_size=(width_pt, height_pt))
        resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=_helvetica(pdf)))
        xobjects = pikepdf.Dictionary()
        ops: list[bytes] = []
        if background_dpi is not None:
            xobjects.Bg = _image_xobject(
                pdf, _page_content(pixel_size(background_dpi, paper), seed=number), lossless=False
            )
            ops.append(f"q {width_pt:.4f} 0 0 {height_pt:.4f} 0 0 cm /Bg Do Q".encode())
        if logo:
            xobjects.Logo = _image_xobject(pdf, _page_content((60, 60), seed=99), lossless=False)
            ops.append(f"q 60 0 0 60 40 {height_pt - 100:.4f} cm /Logo Do Q".encode())
        ops.append(b"BT /F1 11 Tf 14 TL 72 " + f"{height_pt - 72:.4f}".encode() + b" Td")
        lines = [f"{line} (page {number})" for line in text.splitlines() or [""]]
        for _ in range(max(1, 40 // max(1, len(lines)))):
            for line in lines:
                ops.append(_pdf_string(line) + b" Tj T*")
        ops.append(b"ET")
        if len(xobjects.keys()) > 0:
            resources.XObject = xobjects
        page.Resources = resources
        page.Contents = pikepdf.Stream(pdf, b"\n".join(ops))
    pdf.save(path)
    return path


def encrypted_pdf(path: Path, *, user_password: str = "", owner_password: str = "owner") -> Path:
    """Write a born-digital PDF encrypted with AES-256; an empty user password opens it."""
    plain = io.BytesIO()
    text_pdf(path, "encrypted")
    with pikepdf.open(path) as pdf:
        pdf.save(
            plain,
            encryption=pikepdf.Encryption(owner=owner_password, user=user_password, R=6),
        )
    path.write_bytes(plain.getvalue())
    return path


def pdf_with_active_content(
    path: Path,
    *,
    javascript: bool = True,
    launch: bool = False,
    embedded_file: bool = False,
    attachment_annotation: bool = False,
) -> Path:
    """Write a born-digital PDF carrying the chosen kinds of active content."""
    text_pdf(path, "active content")
    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        if javascript:
            js = pdf.make_indirect(
                pikepdf.Dictionary(S=pikepdf.Name.JavaScript, JS=pikepdf.String("app.alert(1)"))
            )
            pdf.Root.OpenAction = js
        if launch:
            pdf.pages[0].obj.AA = pikepdf.Dictionary(
                O=pikepdf.Dictionary(S=pikepdf.Name.Launch, F=pikepdf.String("calc.exe"))
            )
        if embedded_file or attachment_annotation:
            stream = pikepdf.Stream(pdf, b"hello", Type=pikepdf.Name.EmbeddedFile)
            spec = pdf.make_indirect(
                pikepdf.Dictionary(
                    Type=pikepdf.Name.Filespec,
                    F=pikepdf.String("hello.txt"),
                    EF=pikepdf.Dictionary(F=stream),
                )
            )
            if embedded_file:
                pdf.Root.Names = pikepdf.Dictionary(
                    EmbeddedFiles=pikepdf.Dictionary(
                        Names=pikepdf.Array([pikepdf.String("hello.txt"), spec])
                    )
                )
            if attachment_annotation:
                annot = pdf.make_indirect(
                    pikepdf.Dictionary(
                        Type=pikepdf.Name.Annot,
                        Subtype=pikepdf.Name.FileAttachment,
                        Rect=pikepdf.Array([72, 72, 92, 92]),
                        FS=spec,
                    )
                )
                pdf.pages[0].obj.Annots = pikepdf.Array([annot])
        pdf.save(path)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path, *, width: int = 30_000, height: int = 30_000) -> Path:
    """Write a PNG whose header claims ``width``×``height`` pixels (900 MP by default) with
    almost no data: a decompression bomb's header, a few hundred bytes on disk."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    idat = zlib.compress(b"\x00" * 1024)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )
    return path


#: Receipt paper: 80 mm thermal roll, a 200 mm long slip.
_RECEIPT_PAPER = "80x200mm"
#: JPEG quality that reached each target size last time (calibrated on first use).
_QUALITY_FOR: dict[tuple[int, int], int] = {}


def small_jpeg(path: Path, seed: int, *, target_bytes: int = 200_000, dpi: int = 200) -> Path:
    """Write a distinct receipt scan (JPEG, ``dpi`` recorded) of about ``target_bytes``.

    The content (shop, items, amounts, paper texture) depends on ``seed``, so every seed gives
    different bytes. The file is padded to exactly ``target_bytes`` with a JPEG comment when
    the encoded image is smaller; a target below what the image needs at the lowest quality
    yields a slightly larger file. About 10 ms per file once the quality is calibrated.
    """
    rnd = random.Random(seed)
    size = pixel_size(dpi, _RECEIPT_PAPER)
    w, h = size
    im = Image.new("L", size, 255)
    draw = ImageDraw.Draw(im)
    draw.text((w // 10, h // 40), f"SHOP No.{seed:06d}", fill=0)
    y = h // 10
    total = 0
    while y < h * 0.8:
        amount = rnd.randrange(100, 20_000)
        total += amount
        draw.text((w // 10, y), f"ITEM {rnd.randrange(10**6):06d}", fill=0)
        draw.text((int(w * 0.65), y), f"{amount:>7,d}", fill=0)
        y += max(12, h // 50)
    draw.text((w // 10, int(h * 0.85)), f"TOTAL {total:,d} JPY", fill=0)
    # Paper texture: seeded noise, the bulk of the bytes, as in a real photographed receipt.
    noise = Image.frombytes("L", size, rnd.randbytes(w * h)).point(lambda v: 255 - v // 6)
    page = Image.merge(
        "RGB", (Image.composite(im, noise, im.point(lambda v: 255 if v < 128 else 0)),) * 3
    )
    key = (target_bytes, dpi)
    quality = _QUALITY_FOR.get(key, 90)
    data = _encode_with_dpi(page, quality, dpi)
    while len(data) > target_bytes and quality > 5:
        quality -= 5 if len(data) > target_bytes * 1.3 else 1
        data = _encode_with_dpi(page, quality, dpi)
    _QUALITY_FOR[key] = quality
    path.write_bytes(_pad_jpeg(data, target_bytes, rnd))
    return path


def _encode_with_dpi(im: Image.Image, quality: int, dpi: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, dpi=(dpi, dpi))
    return buf.getvalue()


def _pad_jpeg(data: bytes, target: int, rnd: random.Random) -> bytes:
    """Insert COM segments (ITU T.81 §B.2.4.5) after the JFIF header to reach ``target``."""
    missing = target - len(data)
    if missing < 4:
        return data
    insert_at = 2 + 2 + struct.unpack(">H", data[4:6])[0]  # SOI, then APP0 (JFIF) segment
    segments = []
    while missing >= 4:
        body = min(missing - 4, 65_533)  # the 2-byte length counts itself
        if 0 < missing - (body + 4) < 4:
            body -= 4  # leave a remainder another segment can fill
        segments.append(b"\xff\xfe" + struct.pack(">H", body + 2) + rnd.randbytes(body))
        missing -= body + 4
    return data[:insert_at] + b"".join(segments) + data[insert_at:]
