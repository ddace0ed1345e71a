"""A corpus of hostile and malformed input, each file with the answer edoc owes it.

``build_corpus(directory)`` writes every bad file into ``directory`` and returns one
``Hostile`` per file: where it is, the profile it is ingested under, and what edoc must answer
— an error code, or ``STORED`` where acceptance is the right answer (and then what the
manifest must say about it). ``manifest_corpus(directory)`` does the same for CSV batch
manifests. ``good_scan`` writes distinct, valid scans to mix into the same batches, and
``sparse_file`` the 2 GiB file that must be stored with bounded memory.

Why these answers (the profiles are in ``policies/``):

* Under ``general`` (any file, no capture rules) a file is refused only when it claims to be a
  document it is not: a truncated or damaged PDF/JPEG/PNG/TIFF does not display, and an
  archived record must display and print at once (見読性, e-文書法 施行規則); a decompression
  bomb cannot be displayed within bounded memory; an encrypted PDF needs a password or
  viewer-enforced permissions to display (見読性). Anything else is stored as it is — bytes
  that are not a known document format are kept as ``application/octet-stream`` (the media
  type comes from magic bytes, never from the name), and active content in a PDF is reported
  in the manifest, not refused: ``general`` has no rule against it.
* Under ``meti-general`` (shipped, ``reject_active_content = true``) a scanned PDF carrying
  JavaScript, a launch action or an embedded file is refused with ``ACTIVE_CONTENT``: a scan
  is an image, and active content could change what is displayed.
* Under ``nta-electronic-transaction`` an encrypted PDF invoice is stored exactly as received
  (電子帳簿保存法 第7条: electronic-transaction data is kept as data, as received) and the
  manifest records that it could not be measured.
* Files that are not regular files (a directory, a FIFO, a device, a symlink loop) are refused
  before a byte is read: reading a FIFO or ``/dev/zero`` would never end.

Everything is generated into the caller's directory, deterministically (fixed seeds), in well
under a second apart from ``sparse_file`` (which writes no data blocks at all).
"""

from __future__ import annotations

import io
import os
import random
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pikepdf
from PIL import Image, ImageDraw

from tests import samples

__all__ = [
    "STORED",
    "Hostile",
    "ManifestCase",
    "build_corpus",
    "good_scan",
    "manifest_corpus",
    "raw_pdf",
    "sparse_file",
    "zeros_flate",
]

#: The answer for a file that must be accepted.
STORED = "stored"

GENERAL = "general"
#: Shipped profile refusing active content; requires a scan, a date and a counterparty.
METI = "meti-general"
#: Shipped profile for electronic-transaction data (kept as received).
ELECTRONIC = "nta-electronic-transaction"


@dataclass(frozen=True)
class Hostile:
    """One bad file and the answer edoc owes it."""

    case: str
    path: Path
    #: An error code (``IMAGE_UNREADABLE`` …) or ``STORED``.
    expect: str
    why: str
    profile: str = GENERAL
    #: For ``STORED``: the media type the manifest must record (by magic bytes).
    media_type: str | None = None
    #: For ``STORED`` PDFs: the kinds of active content the manifest must list.
    active: tuple[str, ...] = ()
    #: For ``STORED`` under a tolerant profile: the readability error recorded instead of
    #: measurements (``"measured": false``).
    unmeasured: str | None = None
    #: For ``STORED`` documents: the page count the manifest must record.
    pages: int | None = None
    #: Which generator made it: image, bomb, pdf, cyclic, active, special, name.
    group: str = ""

    @property
    def stored(self) -> bool:
        return self.expect == STORED


@dataclass(frozen=True)
class ManifestCase:
    """A CSV manifest and the answer edoc owes it.

    ``level`` is ``"manifest"`` when the file as a whole is refused (one error, exit 1), or
    ``"row"`` when it parses but ``bad_rows`` (1-based CSV line numbers) are refused with
    ``expect`` — and then nothing of the manifest is stored (all-or-nothing validation).
    """

    case: str
    path: Path
    expect: str
    why: str
    level: str = "row"
    bad_rows: tuple[int, ...] = ()
    #: Files the manifest names that must not end up in the archive.
    files: tuple[Path, ...] = field(default_factory=tuple)


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


def _scan(seed: int, dpi: int) -> Image.Image:
    w, h = samples.pixel_size(dpi, "30x40mm")
    rnd = random.Random(seed)
    im = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    for row in range(8):
        y = h // 10 + row * h // 12
        draw.rectangle((w // 10, y, w // 10 + rnd.randrange(w // 3, w * 3 // 4), y + h // 40),
                       fill=(rnd.randrange(60), rnd.randrange(60), rnd.randrange(60)))
    draw.ellipse((w * 2 // 3, h // 20, w * 9 // 10, h // 5), outline=(200, 30, 30), width=3)
    draw.text((w // 10, h * 9 // 10), f"seed {seed}", fill=(0, 0, 0))
    return im


def good_scan(path: Path, seed: int, *, dpi: int = 300, fmt: str = "PNG") -> Path:
    """A small, valid, distinct colour scan (30×40 mm at ``dpi``, dpi recorded): passes every
    shipped scan profile, and no two seeds give the same bytes (no duplicates in a batch)."""
    _scan(seed, dpi).save(path, fmt, dpi=(dpi, dpi))
    return path


def raw_pdf(objects: Sequence[bytes], *, root: int = 1, trailer_extra: bytes = b"",
            header: bytes = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n") -> bytes:
    """A PDF with objects ``1 0 obj`` … in order and a correct classic cross-reference table
    (ISO 32000-1 §7.5.4): the way to write structures pikepdf refuses to create."""
    out = bytearray(header)
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += (b"trailer\n<< /Size %d /Root %d 0 R %s>>\nstartxref\n%d\n%%%%EOF\n"
            % (len(objects) + 1, root, trailer_extra, xref))
    return bytes(out)


def _stream(dictionary: bytes, data: bytes) -> bytes:
    return b"<< " + dictionary + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def zeros_flate(mib: int) -> bytes:
    """A zlib stream (RFC 1950) that inflates to ``mib`` MiB of zero bytes, built in a few ms
    by repeating one fully flushed deflate block (a full flush resets the compressor's state,
    so every later 1 MiB block compresses to the same bytes); ~1 KiB per MiB."""
    if mib < 1:
        raise ValueError("a bomb of at least 1 MiB")
    c = zlib.compressobj(9)
    block = b"\0" * (1 << 20)
    first = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    repeat = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    final_block = c.flush()[:-4]  # drop the Adler-32 of the two blocks seen
    total = mib << 20
    adler = ((total % 65521) << 16) | 1  # Adler-32 of zero bytes: a = 1, b = n (RFC 1950 §9)
    return first + repeat * (mib - 1) + final_block + adler.to_bytes(4, "big")


_CATALOG = b"<< /Type /Catalog /Pages 2 0 R >>"
_PAGES = b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"
_HELLO = b"BT /F1 24 Tf 72 720 Td (Hello) Tj ET"
_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def _page(contents: bytes = b"4 0 R", resources: bytes = b"<< /Font << /F1 5 0 R >> >>",
          extra: bytes = b"") -> bytes:
    return (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents " + contents
            + b" /Resources " + resources + b" " + extra + b">>")


def _simple_pdf(**page: bytes) -> list[bytes]:
    """Catalog, page tree, one page showing "Hello", its content stream and font (1–5)."""
    return [_CATALOG, _PAGES, _page(**page), _stream(b"", _HELLO), _FONT]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _cut(src: bytes, at: int) -> bytes:
    return src[:at]


def _garble(src: bytes, at: int, length: int, seed: int) -> bytes:
    rnd = random.Random(seed)
    return src[:at] + rnd.randbytes(length) + src[at + length:]


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


def _image_bytes(fmt: str, seed: int) -> bytes:
    """A valid 200 dpi scan; TIFF LZW-compressed (uncompressed pixels have no structure to
    damage: garbage in them is just other pixels)."""
    buf = io.BytesIO()
    options = {"compression": "tiff_lzw"} if fmt == "TIFF" else {}
    _scan(seed, 200).save(buf, fmt, dpi=(200, 200), **options)
    return buf.getvalue()


def _image_cases(d: Path) -> list[Hostile]:
    cases: list[Hostile] = []
    unreadable = "a damaged image does not display; an archived record must (見読性)"
    for fmt, ext in (("JPEG", "jpg"), ("PNG", "png"), ("TIFF", "tif")):
        src = _image_bytes(fmt, seed=len(cases))
        n = len(src)
        cuts = {"header": 16 if fmt != "PNG" else 33, "quarter": n // 4, "half": n // 2,
                "most": n * 9 // 10}
        for label, at in cuts.items():
            cases.append(Hostile(
                f"{ext}-cut-{label}", _write(d / f"cut-{label}.{ext}", _cut(src, at)),
                "IMAGE_UNREADABLE", f"{fmt} cut at byte {at} of {n}: {unreadable}"))
        cases.append(Hostile(
            f"{ext}-garbage-middle", _write(d / f"garbage.{ext}", _garble(src, n // 2, 512, 7)),
            "IMAGE_UNREADABLE", f"512 random bytes in the middle of the {fmt} data: {unreadable}"))
    # Header damage: the image's own description is wrong.
    png = _image_bytes("PNG", seed=90)
    bad_crc = bytearray(png)
    bad_crc[29] ^= 0xFF  # inside the IHDR CRC (PNG spec §5.3: a chunk with a bad CRC is corrupt)
    cases.append(Hostile("png-ihdr-crc", _write(d / "ihdr-crc.png", bytes(bad_crc)),
                         "IMAGE_UNREADABLE", f"IHDR with a wrong CRC: {unreadable}"))
    jpeg = _image_bytes("JPEG", seed=91)
    sof = jpeg.find(b"\xff\xc0")
    no_size = jpeg[:sof + 5] + b"\x00\x00\x00\x00" + jpeg[sof + 9:]  # SOF0 height = width = 0
    cases.append(Hostile("jpeg-zero-size", _write(d / "zero-size.jpg", no_size),
                         "IMAGE_UNREADABLE", f"a JPEG frame of 0×0 pixels: {unreadable}"))
    cases.append(Hostile("tiff-ifd-loop", _write(d / "ifd-loop.tif",
                                                 _tiff(8, 8, pages=2, loop=True)),
                         STORED, "a 2-page TIFF whose next-page link loops back to page 1: "
                         "readers (libtiff, Pillow) stop at the repeated page and show two",
                         media_type="image/tiff", pages=2))
    cases.append(Hostile("tiff-exif-cut", _write(d / "exif-cut.tif", _tiff(8, 8, exif_cut=True)),
                         "IMAGE_UNREADABLE", "a TIFF whose EXIF directory runs past the end of "
                         f"the file (a truncated file): {unreadable}"))
    cases.append(Hostile("tiff-ifd-outside", _write(d / "ifd-outside.tif",
                                                    b"II*\x00" + struct.pack("<I", 1 << 30)),
                         "IMAGE_UNREADABLE", "a TIFF whose first IFD lies beyond the file"))
    return cases


def _tiff(width: int, height: int, *, pages: int = 1, loop: bool = False,
          exif_cut: bool = False) -> bytes:
    """A little-endian, uncompressed 8-bit gray TIFF (TIFF 6.0 §2, §8) recording 200 dpi, with
    ``pages`` IFDs sharing one strip; ``loop`` points the last IFD's next-IFD offset back at
    the first, so the chain of pages never ends; ``exif_cut`` adds an EXIF IFD (tag 34665)
    whose one 12-byte entry is cut after 3 bytes by the end of the file."""
    n_entries = 13 if exif_cut else 12
    ifd_size = 2 + 12 * n_entries + 4
    first_ifd = 8
    rational_at = first_ifd + pages * ifd_size
    strip_at = rational_at + 8
    strip_len = min(width * height, 64)
    out = b"II*\x00" + struct.pack("<I", first_ifd)
    for page in range(pages):
        entries = [
            (256, 4, 1, width), (257, 4, 1, height),  # ImageWidth, ImageLength
            (258, 3, 1, 8), (259, 3, 1, 1),  # BitsPerSample 8, Compression none
            (262, 3, 1, 1), (273, 4, 1, strip_at),  # BlackIsZero, StripOffsets
            (277, 3, 1, 1), (278, 4, 1, height),  # SamplesPerPixel, RowsPerStrip
            (279, 4, 1, strip_len),  # StripByteCounts
            (282, 5, 1, rational_at), (283, 5, 1, rational_at),  # X/YResolution 200/1
            (296, 3, 1, 2),  # ResolutionUnit inch
        ]
        if exif_cut:
            entries.append((34665, 4, 1, strip_at + strip_len))  # ExifIFD: after the strip
        ifd = struct.pack("<H", len(entries))
        for tag, kind, count, value in entries:
            packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
            ifd += struct.pack("<HHI", tag, kind, count) + packed
        last = page == pages - 1
        following = (first_ifd if loop else 0) if last else first_ifd + (page + 1) * ifd_size
        out += ifd + struct.pack("<I", following)
    tail = struct.pack("<H", 1) + b"\x0f\x01\x02" if exif_cut else b""  # 1 entry, 3 bytes
    return out + struct.pack("<II", 200, 1) + b"\x80" * strip_len + tail


# --------------------------------------------------------------------------------------------
# Decompression bombs
# --------------------------------------------------------------------------------------------


def _jpeg_with_size(width: int, height: int) -> bytes:
    """A small valid JPEG whose SOF0 header is rewritten to claim ``width``×``height``."""
    jpeg = _image_bytes("JPEG", seed=92)
    sof = jpeg.find(b"\xff\xc0")
    return jpeg[:sof + 5] + struct.pack(">HH", height, width) + jpeg[sof + 9:]


def _bomb_pdf(where: str, mib: int) -> bytes:
    """A one-page PDF with a ``mib`` MiB Flate bomb in its content stream, font file, an object
    stream, or two layers deep (Flate of Flate)."""
    bomb = zeros_flate(mib)
    if where == "content":
        return raw_pdf([_CATALOG, _PAGES, _page(resources=b"<< >>"),
                        _stream(b"/Filter /FlateDecode", bomb)])
    if where == "nested":
        outer = zlib.compress(bomb, 9)
        return raw_pdf([_CATALOG, _PAGES, _page(resources=b"<< >>"),
                        _stream(b"/Filter [/FlateDecode /FlateDecode]", outer)])
    if where == "hex":
        return raw_pdf([_CATALOG, _PAGES, _page(resources=b"<< >>"),
                        _stream(b"/Filter [/ASCIIHexDecode /FlateDecode]",
                                bomb.hex().encode() + b">")])
    if where == "odd-dict":  # a dictionary no strict parser reads; lenient readers do
        return raw_pdf([_CATALOG, _PAGES, _page(resources=b"<< >>"),
                        _stream(b"/Filter /FlateDecode )", bomb)])
    if where == "indirect-filter":
        return raw_pdf([_CATALOG, _PAGES, _page(resources=b"<< >>"),
                        _stream(b"/Filter 5 0 R", bomb), b"/FlateDecode"])
    if where == "name-escape":  # /Fl#61teDecode is /FlateDecode (ISO 32000-1 §7.3.5)
        return raw_pdf([_CATALOG, _PAGES, _page(resources=b"<< >>"),
                        _stream(b"/Filter /Fl#61teDecode", bomb)])
    if where == "font":
        return raw_pdf([
            _CATALOG, _PAGES, _page(), _stream(b"", _HELLO),
            b"<< /Type /Font /Subtype /TrueType /BaseFont /Bomb /FirstChar 32 /LastChar 126 "
            b"/FontDescriptor 6 0 R >>",
            b"<< /Type /FontDescriptor /FontName /Bomb /Flags 32 /FontBBox [0 0 1000 1000] "
            b"/ItalicAngle 0 /Ascent 800 /Descent -200 /CapHeight 700 /StemV 80 "
            b"/FontFile2 7 0 R >>",
            _stream(b"/Filter /FlateDecode", bomb)])
    if where == "objstm":
        return _objstm_bomb(mib)
    raise ValueError(where)


def _objstm_bomb(mib: int) -> bytes:
    """Page object 3 lives in an object stream (ISO 32000-1 §7.5.7) whose data goes on with
    ``mib`` MiB of zeros; the file has a cross-reference stream (§7.5.8)."""
    index = b"3 0 "
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>"
    c = zlib.compressobj(9)
    data = c.compress(index + page) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(b"\0" * (1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    data += block * mib + c.flush()[:-4]
    data += _adler_zeros_after(index + page, mib).to_bytes(4, "big")
    out = bytearray(b"%PDF-1.7\n")
    offsets: dict[int, int] = {}

    def add(number: int, body: bytes) -> None:
        offsets[number] = len(out)
        out.extend(b"%d 0 obj\n" % number + body + b"\nendobj\n")

    add(1, _CATALOG)
    add(2, _PAGES)
    add(4, b"<< /Type /ObjStm /N 1 /First %d /Filter /FlateDecode /Length %d >>\nstream\n"
        % (len(index), len(data)) + data + b"\nendstream")
    xref_at = len(out)
    rows = [b"\x00" + struct.pack(">I", 0) + b"\xff\xff",
            b"\x01" + struct.pack(">I", offsets[1]) + b"\0\0",
            b"\x01" + struct.pack(">I", offsets[2]) + b"\0\0",
            b"\x02" + struct.pack(">I", 4) + b"\0\0",
            b"\x01" + struct.pack(">I", offsets[4]) + b"\0\0",
            b"\x01" + struct.pack(">I", xref_at) + b"\0\0"]
    table = b"".join(rows)
    out.extend(b"5 0 obj\n<< /Type /XRef /Size 6 /W [1 4 2] /Root 1 0 R /Length %d >>\nstream\n"
               % len(table) + table + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % xref_at)
    return bytes(out)


def _adler_zeros_after(prefix: bytes, mib: int) -> int:
    """Adler-32 of ``prefix`` followed by ``mib`` MiB of zeros, without the zeros: each zero
    leaves a unchanged and adds a to b (RFC 1950 §9)."""
    value = zlib.adler32(prefix)
    a, b = value & 0xFFFF, value >> 16
    b = (b + a * (mib << 20)) % 65521
    return (b << 16) | a


def _bomb_cases(d: Path) -> list[Hostile]:
    too_large = "more pixels than any document scan; decoding it would exhaust memory"
    stream = ("a PDF stream inflating to gigabytes from a few KiB; refused from a bounded "
              "measurement, never inflated in full")
    cases = [
        Hostile("png-bomb-header", samples.bomb_png(d / "bomb.png"), "IMAGE_TOO_LARGE",
                f"30000×30000 px PNG header: {too_large}"),
        Hostile("jpeg-bomb-header", _write(d / "bomb.jpg", _jpeg_with_size(65000, 65000)),
                "IMAGE_TOO_LARGE", f"65000×65000 px JPEG header: {too_large}"),
        Hostile("tiff-bomb-header", _write(d / "bomb.tif", _tiff(200_000, 200_000)),
                "IMAGE_TOO_LARGE", f"200000×200000 px TIFF header: {too_large}"),
        Hostile("pdf-image-bomb", _write(d / "image-bomb.pdf", raw_pdf([
            _CATALOG, _PAGES, _page(contents=b"4 0 R",
                                    resources=b"<< /XObject << /Im0 5 0 R >> >>"),
            _stream(b"", b"q 595 0 0 842 0 0 cm /Im0 Do Q"),
            _stream(b"/Type /XObject /Subtype /Image /Width 100000 /Height 100000 "
                    b"/ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode",
                    zeros_flate(1))])),
            "IMAGE_TOO_LARGE", f"a PDF page drawing a 100000×100000 px image: {too_large}"),
    ]
    for where in ("content", "font", "objstm", "nested", "hex", "odd-dict", "indirect-filter",
                  "name-escape"):
        cases.append(Hostile(f"pdf-flate-bomb-{where}",
                             _write(d / f"flate-bomb-{where}.pdf", _bomb_pdf(where, 2048)),
                             "PDF_STREAM_TOO_LARGE", f"{where}: {stream}"))
    return cases


# --------------------------------------------------------------------------------------------
# PDFs: damaged, encrypted, cyclic
# --------------------------------------------------------------------------------------------


def _pdf_cases(d: Path) -> list[Hostile]:
    unreadable = "a damaged PDF does not display as it is; edoc does not silently repair (見読性)"
    src = samples.text_pdf(d / "base.pdf", "hostile base", pages=2).read_bytes()
    (d / "base.pdf").unlink()
    n = len(src)
    cases = [
        Hostile("pdf-header-only", _write(d / "header-only.pdf", b"%PDF-1.7\n"),
                "PDF_UNREADABLE", f"a PDF header and nothing else: {unreadable}"),
    ]
    for label, at in {"tenth": n // 10, "half": n // 2, "most": n * 9 // 10,
                      "no-eof": n - 8}.items():
        cases.append(Hostile(f"pdf-cut-{label}", _write(d / f"cut-{label}.pdf", src[:at]),
                             "PDF_UNREADABLE", f"cut at byte {at} of {n}: {unreadable}"))
    classic = raw_pdf(_simple_pdf())
    page_at = classic.index(b"3 0 obj")
    cases.append(Hostile("pdf-garbage-middle",
                         _write(d / "garbage-middle.pdf", _garble(classic, page_at, 24, 3)),
                         "PDF_UNREADABLE", "random bytes over the page object in the middle of "
                         f"the file: {unreadable}"))
    table = classic.index(b"xref\n") + len(b"xref\n0 6\n0000000000 65535 f \n")
    garbled = classic[:table + 20] + b"0000999999" + classic[table + 30:]  # object 2's offset
    cases.append(Hostile("pdf-garbage-xref", _write(d / "garbage-xref.pdf", garbled),
                         "PDF_UNREADABLE", "the xref table sends object 2 (the page tree) past "
                         f"the end of the file; a broken xref is not reconstructed: {unreadable}"))
    bad_flate = _stream(b"/Filter /FlateDecode", b"x\x9c" + random.Random(5).randbytes(200))
    cases.append(Hostile("pdf-corrupt-content",
                         _write(d / "corrupt-content.pdf", raw_pdf([
                             _CATALOG, _PAGES, _page(), bad_flate, _FONT])),
                         "PDF_UNREADABLE", f"a content stream that does not inflate: {unreadable}"))
    cases.append(Hostile("pdf-no-pages", _write(d / "no-pages.pdf", raw_pdf([
        _CATALOG, b"<< /Type /Pages /Kids [] /Count 0 >>"])),
        "PDF_UNREADABLE", "a PDF without a single page has nothing to display"))
    cases.append(Hostile("pdf-zero-mediabox", _write(d / "zero-mediabox.pdf", raw_pdf([
        _CATALOG, _PAGES, _page(extra=b"/MediaBox [0 0 0 0]").replace(
            b"/MediaBox [0 0 595 842] ", b""), _stream(b"", _HELLO), _FONT])),
        STORED, "a zero-size MediaBox: viewers fall back to a default page size (pdfium: US "
        "Letter) and the text displays", media_type="application/pdf"))
    cases.append(Hostile("pdf-header-late", _write(d / "header-late.pdf",
                                                   b"\0" * 2048 + src),
                         STORED, "the PDF header comes after 1024 bytes: not a PDF for viewers "
                         "(ISO 32000-1 §7.5.2), so stored as the bytes it is",
                         media_type="application/octet-stream"))

    # Encrypted (AES-256): no password (permissions only) and a real user password.
    for label, password in (("empty", ""), ("password", "secret")):
        path = samples.encrypted_pdf(d / f"encrypted-{label}.pdf", user_password=password)
        cases.append(Hostile(f"pdf-encrypted-{label}", path, "PDF_ENCRYPTED",
                             "an encrypted PDF needs a password or viewer-enforced "
                             "permissions to display (見読性)"))
        copy = _write(d / f"encrypted-{label}-invoice.pdf",
                      path.read_bytes() + b"\n%" + label.encode() + b"\n")
        cases.append(Hostile(f"pdf-encrypted-{label}-electronic", copy, STORED,
                             "電子取引 data is kept as received (電帳法 第7条), measured or not",
                             profile=ELECTRONIC, media_type="application/pdf",
                             unmeasured="PDF_ENCRYPTED"))
    rc4 = io.BytesIO()
    with pikepdf.open(io.BytesIO(src)) as pdf:
        pdf.save(rc4, encryption=pikepdf.Encryption(owner="o", user="u", R=3, aes=False,
                                                       metadata=False))
    cases.append(Hostile("pdf-encrypted-rc4", _write(d / "encrypted-rc4.pdf", rc4.getvalue()),
                         "PDF_ENCRYPTED", "RC4-encrypted with a user password (見読性)"))
    return cases


def _cyclic_cases(d: Path) -> list[Hostile]:
    """Object graphs that refer to themselves. Each must be answered in bounded time: refused
    where the page tree itself is broken (no page can be found), stored where the loop lies
    outside what displays and the loop is only walked with a visited set."""
    broken = "the page tree loops, so the document has no well-defined pages"
    hello = _stream(b"", _HELLO)
    tree_cases = {
        "kids-self": [_CATALOG, b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>"],
        "kids-cycle": [_CATALOG, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                       b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R] /Count 1 >>"],
        "pages-is-catalog": [b"<< /Type /Catalog /Pages 1 0 R >>"],
        "pages-is-page": [b"<< /Type /Catalog /Pages 2 0 R >>",
                          b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>"],
    }
    cases = [Hostile(f"pdf-{label}", _write(d / f"{label}.pdf", raw_pdf(objects)),
                     "PDF_UNREADABLE", broken)
             for label, objects in tree_cases.items()]
    kids_null = raw_pdf([_CATALOG, b"<< /Type /Pages /Kids [3 0 R 9 0 R] /Count 2 >>",
                         _page(), hello, _FONT])
    cases.append(Hostile("pdf-kids-missing", _write(d / "kids-missing.pdf", kids_null), STORED,
                         "the page tree names an object that does not exist: readers skip it "
                         "(qpdf logs 'Pages tree includes non-dictionary object') and display "
                         "the one real page", media_type="application/pdf", pages=1))
    # /Parent pointing at the page itself; the MediaBox must be inherited through it.
    parent_loop = raw_pdf([
        _CATALOG, _PAGES,
        b"<< /Type /Page /Parent 3 0 R /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        hello, _FONT])
    cases.append(Hostile("pdf-parent-loop", _write(d / "parent-loop.pdf", parent_loop),
                         STORED, "the page's /Parent is itself, so looking up its inherited "
                         "MediaBox loops; readers stop at the loop, use a default size and "
                         "display the page", media_type="application/pdf"))
    # A Form XObject drawing itself: a viewer stops the recursion and shows the text.
    self_form = raw_pdf([
        _CATALOG, _PAGES, _page(resources=b"<< /Font << /F1 5 0 R >> /XObject << /Fm 6 0 R >> >>"),
        _stream(b"", _HELLO + b" /Fm Do"), _FONT,
        _stream(b"/Type /XObject /Subtype /Form /BBox [0 0 595 842] "
                b"/Resources << /XObject << /Fm 6 0 R >> >>", b"/Fm Do")])
    cases.append(Hostile("pdf-form-self", _write(d / "form-self.pdf", self_form), STORED,
                         "a form drawing itself is cut off by nesting limits; the page displays",
                         media_type="application/pdf"))
    # "Billion laughs": each form draws the next one 16 times, 7 levels: 2.7e8 draws.
    forms = []
    first = 6
    for level in range(7):
        name = b"/F%d" % (level + 1)
        if level < 6:
            body = b" ".join([b"q 0.9 0 0 0.9 1 1 cm " + name + b" Do Q"] * 16)
            res = b"<< /XObject << " + name + b" %d 0 R >> >>" % (first + level + 1)
        else:
            body, res = b"0 0 1 1 re f", b"<< >>"
        forms.append(_stream(b"/Type /XObject /Subtype /Form /BBox [0 0 595 842] /Resources "
                             + res, body))
    laughs = raw_pdf([
        _CATALOG, _PAGES, _page(resources=b"<< /Font << /F1 5 0 R >> /XObject << /F0 6 0 R >> >>"),
        _stream(b"", b" ".join([b"/F0 Do"] * 16) + b" " + _HELLO), _FONT, *forms])
    cases.append(Hostile("pdf-form-fanout", _write(d / "form-fanout.pdf", laughs),
                         "PDF_TOO_COMPLEX", "forms drawing forms 16 times over, 7 deep: "
                         "hundreds of millions of drawing operations to display one page"))
    # Loops outside what displays: outlines, annotations, a /Prev xref chain.
    outline = raw_pdf([
        b"<< /Type /Catalog /Pages 2 0 R /Outlines 6 0 R >>", _PAGES, _page(), hello, _FONT,
        b"<< /Type /Outlines /First 7 0 R /Last 7 0 R /Count 1 >>",
        b"<< /Title (loop) /Parent 6 0 R /Next 7 0 R /Prev 7 0 R /First 7 0 R "
        b"/Dest [3 0 R /Fit] >>"])
    cases.append(Hostile("pdf-outline-loop", _write(d / "outline-loop.pdf", outline), STORED,
                         "an outline item that is its own next/child: not displayed content",
                         media_type="application/pdf"))
    annots = raw_pdf([
        _CATALOG, _PAGES, _page(extra=b"/Annots [6 0 R]"), hello, _FONT,
        b"<< /Type /Annot /Subtype /Text /Rect [10 10 30 30] /Contents (a) /Popup 7 0 R "
        b"/IRT 6 0 R /P 3 0 R >>",
        b"<< /Type /Annot /Subtype /Popup /Rect [10 10 90 90] /Parent 6 0 R /P 3 0 R >>"])
    cases.append(Hostile("pdf-annotation-loop", _write(d / "annotation-loop.pdf", annots),
                         STORED, "annotations referring to each other and themselves",
                         media_type="application/pdf"))
    deep = b"[" * 5000 + b"]" * 5000
    nested = raw_pdf([b"<< /Type /Catalog /Pages 2 0 R /Deep " + deep + b" >>", _PAGES,
                      _page(), hello, _FONT])
    cases.append(Hostile("pdf-deep-nesting", _write(d / "deep-nesting.pdf", nested),
                         "PDF_UNREADABLE", "arrays nested 5000 deep in the catalog: beyond "
                         "what PDF readers parse (qpdf stops at 500), so not displayable as is"))
    length_self = raw_pdf([_CATALOG, _PAGES, _page(),
                           b"<< /Length 4 0 R >>\nstream\n" + _HELLO + b"\nendstream", _FONT])
    cases.append(Hostile("pdf-length-self", _write(d / "length-self.pdf", length_self),
                         STORED, "a stream whose /Length is the stream itself: readers take "
                         "the data up to 'endstream' (qpdf and pdfium alike) and display it",
                         media_type="application/pdf"))
    prev = raw_pdf([_CATALOG, _PAGES, _page(), hello, _FONT])
    startxref = int(prev.rsplit(b"startxref\n", 1)[1].split(b"\n", 1)[0])
    prev_loop = prev.replace(b"/Root 1 0 R ", b"/Root 1 0 R /Prev %d " % startxref)
    cases.append(Hostile("pdf-xref-prev-loop", _write(d / "xref-prev-loop.pdf", prev_loop),
                         "PDF_UNREADABLE", "a trailer /Prev naming its own xref section: a "
                         "broken cross-reference chain, refused rather than repaired"))
    return cases


# --------------------------------------------------------------------------------------------
# Active content
# --------------------------------------------------------------------------------------------


def _active_cases(d: Path) -> list[Hostile]:
    reported = {"javascript": ("javascript", "open-action"), "launch": ("launch-action",),
                "embedded": ("embedded-files",), "attachment": ("file-attachment",)}
    cases: list[Hostile] = []
    for n, label in enumerate(reported):
        # A scan (so that under meti-general nothing but the active content is wrong).
        scan = samples.scan_pdf(d / f"active-{label}.pdf", dpi_per_page=[200 + n],
                                paper="50x70mm")
        _add_active(scan, label)
        scan_meti = _write(d / f"active-{label}-meti.pdf", scan.read_bytes() + b"%meti\n")
        cases.append(Hostile(f"active-{label}-general", scan, STORED,
                             "general has no rule against active content: stored, and the "
                             "manifest says what it carries", media_type="application/pdf",
                             active=reported[label]))
        cases.append(Hostile(f"active-{label}-meti", scan_meti, "ACTIVE_CONTENT",
                             "meti-general refuses active content in a scan",
                             profile=METI))
    return cases


def _add_active(path: Path, kind: str) -> None:
    """Add one kind of active content (ISO 32000-1 §12.6 actions, §7.11 embedded files) to
    an existing PDF, as ``samples.pdf_with_active_content`` does to a text PDF."""
    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        page = pdf.pages[0].obj
        if kind == "javascript":
            pdf.Root.OpenAction = pdf.make_indirect(pikepdf.Dictionary(
                S=pikepdf.Name.JavaScript, JS=pikepdf.String("app.alert(1)")))
        elif kind == "launch":
            page.AA = pikepdf.Dictionary(O=pikepdf.Dictionary(
                S=pikepdf.Name.Launch, F=pikepdf.String("calc.exe")))
        else:
            spec = pdf.make_indirect(pikepdf.Dictionary(
                Type=pikepdf.Name.Filespec, F=pikepdf.String("hello.txt"),
                EF=pikepdf.Dictionary(F=pikepdf.Stream(pdf, b"hello",
                                                       Type=pikepdf.Name.EmbeddedFile))))
            if kind == "embedded":
                pdf.Root.Names = pikepdf.Dictionary(EmbeddedFiles=pikepdf.Dictionary(
                    Names=pikepdf.Array([pikepdf.String("hello.txt"), spec])))
            else:
                page.Annots = pikepdf.Array([pdf.make_indirect(pikepdf.Dictionary(
                    Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.FileAttachment,
                    Rect=pikepdf.Array([10, 10, 30, 30]), FS=spec))])
        pdf.save(path)


# --------------------------------------------------------------------------------------------
# Not regular files, empty files, wrong extensions, odd names
# --------------------------------------------------------------------------------------------


def _special_cases(d: Path) -> list[Hostile]:
    not_file = "not a regular file: refused before a byte is read"
    (d / "empty.pdf").touch()
    (d / "empty.bin").touch()
    (d / "folder.pdf").mkdir()
    fifo = d / "fifo.pdf"
    os.mkfifo(fifo)
    device = d / "zero-device.pdf"
    device.symlink_to("/dev/zero")
    loop = d / "loop.pdf"
    loop.symlink_to(loop.name)
    dangling = d / "dangling.pdf"
    dangling.symlink_to("no-such-target.pdf")
    cases = [
        Hostile("empty-pdf", d / "empty.pdf", "FILE_EMPTY", "0 bytes is no document"),
        Hostile("empty-bin", d / "empty.bin", "FILE_EMPTY", "0 bytes is no document"),
        Hostile("directory", d / "folder.pdf", "NOT_A_FILE", not_file),
        Hostile("fifo", fifo, "NOT_A_FILE", f"a FIFO (reading it would block): {not_file}"),
        Hostile("dev-zero", device, "NOT_A_FILE", f"/dev/zero (endless): {not_file}"),
        Hostile("symlink-loop", loop, "FILE_UNREADABLE", "a symlink to itself cannot be opened"),
        Hostile("symlink-dangling", dangling, "FILE_NOT_FOUND", "a symlink to nothing"),
        Hostile("missing", d / "never-written.pdf", "FILE_NOT_FOUND", "no such file"),
    ]
    (d / "sub").mkdir()
    cases.append(Hostile("dotdot-path", good_scan(d / "sub" / ".." / "dotdot.png", 502), STORED,
                         "a path through '..' names an ordinary file; the record keeps its "
                         "name only (dotdot.png), never the path", media_type="image/png"))
    png = good_scan(d / "really-a-png.pdf", 501)
    jpg_pdf = samples.text_pdf(d / "really-a-pdf.jpg", "a PDF with a .jpg name")
    text = _write(d / "really-text.png", "請求書 invoice (not an image)\n".encode())
    cases += [
        Hostile("png-named-pdf", png, STORED, "media type by magic bytes: a PNG",
                media_type="image/png"),
        Hostile("pdf-named-jpg", jpg_pdf, STORED, "media type by magic bytes: a PDF",
                media_type="application/pdf"),
        Hostile("text-named-png", text, STORED, "text is text whatever its name (general)",
                media_type="text/plain"),
        Hostile("text-named-png-meti", _write(d / "really-text-meti.png",
                                              "請求書 meti\n".encode()),
                "MEDIA_TYPE_NOT_ACCEPTED", "meti-general accepts PDF and images only; "
                "the name says .png but the bytes are text", profile=METI),
    ]
    return cases


#: File names (bytes: some are not UTF-8) that must be stored and reported intact, on one line.
ODD_NAMES: tuple[bytes, ...] = (
    b"..%2F..%2Fescape.png",
    b"line\nbreak.png",
    b"carriage\rreturn.png",
    b"tab\tname.png",
    b"\x1b[31mansi-red\x1b[0m.png",
    b"\xe8\xab\x8b\xe6\xb1\x82\xe6\x9b\xb8 2024.png",  # 請求書 2024 (UTF-8)
    b"latin1-caf\xe9.png",  # not UTF-8
    b"\xff\xfe-not-utf8.png",
    b"sjis-\x90\xbf\x8b\x81\x8f\x91.png",  # 請求書 in Shift_JIS: not UTF-8
    b"=cmd|' -C calc'!A0.png",  # a file name cannot hold the payload's '/'
    b"-starts-with-dash.png",
    b"\xe2\x80\xaeright-to-left-override-gnp.png",  # U+202E
    b"quote\"and'apostrophe.png",
    b"x" * 240 + b".png",
)


def name_cases(d: Path, *, first_seed: int = 600) -> list[Hostile]:
    """One valid scan under each of ``ODD_NAMES`` (written with bytes paths)."""
    cases = []
    for n, raw in enumerate(ODD_NAMES):
        target = os.path.join(os.fsencode(d), raw)
        good_scan(Path(os.fsdecode(target)), first_seed + n)
        cases.append(Hostile(f"name-{n:02d}", Path(os.fsdecode(target)), STORED,
                             f"the file is a valid scan; its name {raw!r} is only a label",
                             media_type="image/png"))
    return cases


def build_corpus(directory: Path) -> list[Hostile]:
    """Write the whole corpus of bad files into ``directory`` (created if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    groups: list[Callable[[Path], list[Hostile]]] = [
        _image_cases, _bomb_cases, _pdf_cases, _cyclic_cases, _active_cases, _special_cases,
        name_cases]
    cases: list[Hostile] = []
    for group in groups:
        name = group.__name__.strip("_").removesuffix("_cases")
        sub = directory / name
        sub.mkdir(exist_ok=True)
        cases += [replace(c, group=name) for c in group(sub)]
    ids = [c.case for c in cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return cases


# --------------------------------------------------------------------------------------------
# CSV manifests
# --------------------------------------------------------------------------------------------


def manifest_corpus(directory: Path) -> list[ManifestCase]:
    """Write bad CSV manifests (and the files they name) into ``directory``."""
    d = directory
    d.mkdir(parents=True, exist_ok=True)
    outside = d.parent / f"{d.name}-outside.png"
    good_scan(outside, 900)
    good = [good_scan(d / f"ok-{n}.png", 901 + n) for n in range(3)]
    header = "file,counterparty,amount,date\n"

    def csv(name: str, text: str | bytes, encoding: str = "utf-8") -> Path:
        data = text if isinstance(text, bytes) else text.encode(encoding)
        return _write(d / name, data)

    row = [f"{p.name},山田商店,1000,2024-04-01\n" for p in good]
    cases = [
        ManifestCase("utf16-bom", csv("utf16.csv", header + row[0], "utf-16"),
                     "CSV_ENCODING", "UTF-16 (Excel's 'Unicode text'), not UTF-8 or Shift_JIS",
                     level="manifest"),
        ManifestCase("utf16le-no-bom", csv("utf16le.csv", header + row[0], "utf-16-le"),
                     "CSV_ENCODING", "UTF-16 without a BOM: NUL in every other byte",
                     level="manifest"),
        ManifestCase("random-bytes", csv("random.csv", random.Random(11).randbytes(4096)),
                     "CSV_ENCODING", "random bytes are not text", level="manifest"),
        ManifestCase("nul-bytes", csv("nul.csv", header + row[0] + "\0\0\0\n"),
                     "CSV_MALFORMED", "NUL bytes in a text file", level="manifest"),
        ManifestCase("empty", csv("empty.csv", b""), "CSV_EMPTY", "an empty file",
                     level="manifest"),
        ManifestCase("header-only", csv("header-only.csv", header), "CSV_EMPTY",
                     "a header and no rows", level="manifest"),
        ManifestCase("missing-file-column", csv("no-file.csv",
                                                "counterparty,amount\n山田商店,1000\n"),
                     "CSV_MISSING_COLUMN", "no 'file' column: nothing to ingest",
                     level="manifest"),
        ManifestCase("unknown-column", csv("unknown.csv", "file,counterparty,colour\n"
                                           f"{good[0].name},山田商店,red\n"),
                     "CSV_UNKNOWN_COLUMN", "a column edoc does not know (a typo would "
                     "silently drop metadata)", level="manifest"),
        ManifestCase("duplicate-column", csv("dup-column.csv", "file,amount,amount\n"
                                             f"{good[0].name},1,2\n"),
                     "CSV_DUPLICATE_COLUMN", "which amount?", level="manifest"),
        ManifestCase("unterminated-quote", csv("quote.csv", header + f'{good[0].name},"山田'
                                               + "x" * 200_000 + "\n"),
                     "CSV_MALFORMED", "a quoted field that never ends (and exceeds the field "
                     "limit)", level="manifest"),
        ManifestCase("fifo-manifest", _fifo(d / "fifo.csv"), "NOT_A_FILE",
                     "a FIFO: reading it would block forever", level="manifest"),
        ManifestCase("dev-zero-manifest", _symlink(d / "zero.csv", "/dev/zero"), "NOT_A_FILE",
                     "/dev/zero: reading it would never end", level="manifest"),
        ManifestCase("directory-manifest", _mkdir(d / "dir.csv"), "NOT_A_FILE",
                     "a directory", level="manifest"),
    ]
    for n, cell in enumerate(("=cmd|' /C calc'!A0", "+1+2", "@SUM(1)", "-2+3",
                              '=HYPERLINK("http://x")')):
        quoted = '"' + cell.replace('"', '""') + '"'
        path = csv(f"formula-{n}.csv", header + row[0] + f"{good[1].name},{quoted},1,2024-04-01\n")
        cases.append(ManifestCase(f"formula-{n}", path, "CSV_FORMULA",
                                  f"a cell starting like a spreadsheet formula ({cell})",
                                  bad_rows=(3,), files=(good[0], good[1])))
    cases += [
        ManifestCase("duplicate-row", csv("dup-row.csv", header + row[0] + row[1] + row[0]),
                     "CSV_DUPLICATE_ROW", "the same file twice", bad_rows=(4,),
                     files=(good[0], good[1])),
        ManifestCase("too-many-cells", csv("wide.csv", header + row[0]
                                           + f"{good[1].name},山田商店,1000,2024-04-01,extra\n"),
                     "CSV_ROW_SHAPE", "more cells than columns", bad_rows=(3,),
                     files=(good[0], good[1])),
        ManifestCase("too-few-cells", csv("narrow.csv", header + row[0] + f"{good[1].name}\n"),
                     "CSV_ROW_SHAPE", "fewer cells than columns", bad_rows=(3,),
                     files=(good[0], good[1])),
        ManifestCase("escape-dotdot", csv("escape.csv", header + row[0]
                                          + f"../{outside.name},山田商店,1,2024-04-01\n"),
                     "PATH_ESCAPE", "a relative path leaving the manifest's directory",
                     bad_rows=(3,), files=(good[0], outside)),
        ManifestCase("escape-absolute", csv("absolute.csv", header + row[0]
                                            + f"{outside},山田商店,1,2024-04-01\n"),
                     "PATH_ESCAPE", "an absolute path outside the manifest's directory",
                     bad_rows=(3,), files=(good[0], outside)),
        ManifestCase("escape-symlink", csv("symlink.csv", header + row[0]
                                           + "link.png,山田商店,1,2024-04-01\n"),
                     "PATH_ESCAPE", "a symlink inside the directory pointing outside it",
                     bad_rows=(3,), files=(good[0], outside)),
        ManifestCase("empty-file-cell", csv("empty-cell.csv", header + row[0]
                                            + ",山田商店,1,2024-04-01\n"),
                     "CSV_MISSING_VALUE", "a row without a file", bad_rows=(3,),
                     files=(good[0],)),
        ManifestCase("bad-amount-row", csv("bad-amount.csv", header + row[0]
                                           + f"{good[2].name},山田商店,1.5,2024-04-01\n"),
                     "BAD_AMOUNT", "a fraction of a yen", bad_rows=(3,),
                     files=(good[0], good[2])),
    ]
    _symlink(d / "link.png", str(outside))
    return cases


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _symlink(path: Path, target: str) -> Path:
    path.symlink_to(target)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


# --------------------------------------------------------------------------------------------
# The 2 GiB file
# --------------------------------------------------------------------------------------------


def sparse_file(path: Path, size: int = 2 * 1024**3) -> Path:
    """A file of ``size`` zero bytes that occupies no data blocks (``truncate`` extends it
    with a hole): 2 GiB to hash, sniff and store without holding it in memory."""
    with path.open("wb") as f:
        f.truncate(size)
    return path
