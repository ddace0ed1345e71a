"""A stored document as the browser sees it: PNG images only, never the stored bytes.

見読性 asks that a record be shown "in an orderly form and a clear state"; it does not ask
that the stored file reach the browser, and it must not: a stored HTML, SVG or PDF can carry
script. So every page is drawn here — a raster image decoded by Pillow and re-encoded as
PNG, a PDF rendered page by page by pypdfium2 (PDFium with no form environment, so no
JavaScript runs), an e-invoice drawn by ``edoc render`` (``edoc.services.rendering``) and
then rasterised the same way. What is none of these is not shown; the original is offered
as a download (``Content-Disposition: attachment``, ``application/octet-stream``).

The bytes are read through ``edoc.services.records.copy_out`` (which logs the read) and
checked against the SHA-256 the catalog holds before anything is drawn.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edoc.errors import EdocError, InputError
from edoc.services.archive import Archive
from edoc.services.records import copy_out

#: PDF pages are rendered at 144 dpi (a clear A4 page: 1191 x 1684 px)
PDF_SCALE = 2.0
#: no side of a drawn page is larger (a huge page is scaled down, not refused)
MAX_SIDE = 4000
#: a document above this is offered as a download only
MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Original:
    """A version's original bytes, checked against their catalogued digest."""

    record_id: str
    version: int
    data: bytes
    sha256: str


@dataclass(frozen=True, slots=True)
class Drawable:
    """What the viewer can draw of a version: how (image | pdf | einvoice | none), and how
    many pages."""

    kind: str
    pages: int


def original(archive: Archive, record_id: str, version: int | None, actor: str) -> Original:
    """The version's bytes (the latest with content by default); ``DIGEST_MISMATCH`` if they
    no longer match their seal, so a corrupted store never shows a document."""
    buf = io.BytesIO()
    copied = copy_out(archive, record_id, version, buf, actor=actor)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    if digest != copied.sha256:
        raise EdocError(f"stored content of {record_id} v{copied.version} does not match "
                        "its digest; not shown", code="DIGEST_MISMATCH",
                        hint=f"run 'edoc verify {record_id}'")
    return Original(record_id, copied.version, data, digest)


def _kind(data: bytes) -> str:
    """What the bytes are, by their content (never by a stored media type or name)."""
    head = data[:1024].lstrip()
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith((b"<?xml", b"<Invoice", b"<CreditNote", b"\xef\xbb\xbf<")):
        return "xml"
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
        return "image"
    except Exception:  # Pillow raises many kinds for bytes that are no image it reads
        return "none"


def _einvoice_pdf(archive: Archive, doc: Original, actor: str) -> bytes | None:
    from edoc.services.rendering import render_record

    with tempfile.TemporaryDirectory(prefix="edoc-view-") as tmp:
        out = Path(tmp) / "invoice.pdf"
        try:
            render_record(archive, doc.record_id, doc.version, out, actor=actor)
        except InputError as exc:
            if exc.code == "NOT_AN_EINVOICE":
                return None
            raise
        return out.read_bytes()


class Drawing:
    """The pages of one version, drawn on demand."""

    def __init__(self, archive: Archive, doc: Original, actor: str) -> None:
        self.doc = doc
        kind = "none" if len(doc.data) > MAX_BYTES else _kind(doc.data)
        self.pdf: bytes | None = None
        if kind == "pdf":
            self.pdf = doc.data
        elif kind == "xml":
            self.pdf = _einvoice_pdf(archive, doc, actor)
            kind = "einvoice" if self.pdf is not None else "none"
        self.kind = kind

    def drawable(self) -> Drawable:
        if self.kind == "none":
            return Drawable("none", 0)
        if self.pdf is not None:
            return Drawable(self.kind, self._pdf_pages())
        return Drawable("image", self._image_frames())

    def _pdf_pages(self) -> int:
        import pypdfium2 as pdfium

        try:
            pdf = pdfium.PdfDocument(self.pdf)
        except pdfium.PdfiumError:
            return 0
        try:
            return len(pdf)
        finally:
            pdf.close()

    def _image_frames(self) -> int:
        from PIL import Image

        with Image.open(io.BytesIO(self.doc.data)) as im:
            return int(getattr(im, "n_frames", 1))

    def page_png(self, page: int) -> bytes:
        """Page ``page`` (from 1) as PNG; ``PAGE_NOT_FOUND`` beyond the last."""
        count = self.drawable().pages
        if not 1 <= page <= count:
            raise InputError(f"no page {page} in {self.doc.record_id} v{self.doc.version}",
                             code="PAGE_NOT_FOUND")
        if self.pdf is not None:
            return self._pdf_page(page)
        return self._image_frame(page)

    def _pdf_page(self, page: int) -> bytes:
        import pypdfium2 as pdfium

        pdf = pdfium.PdfDocument(self.pdf)
        try:
            p = pdf[page - 1]
            width, height = p.get_size()
            scale = min(PDF_SCALE, MAX_SIDE / max(width, height, 1))
            bitmap = p.render(scale=scale)
            image = bitmap.to_pil()
            return _png(image)
        finally:
            pdf.close()

    def _image_frame(self, page: int) -> bytes:
        from PIL import Image, ImageOps

        try:
            with Image.open(io.BytesIO(self.doc.data)) as im:
                im.seek(page - 1)
                frame = ImageOps.exif_transpose(im.copy())
        except Image.DecompressionBombError:
            raise InputError(f"{self.doc.record_id} v{self.doc.version} is too large to "
                             "draw", code="IMAGE_TOO_LARGE",
                             hint="download the original") from None
        if frame.mode not in ("1", "L", "RGB", "RGBA"):
            frame = frame.convert("RGB")
        frame.thumbnail((MAX_SIDE, MAX_SIDE))
        return _png(frame)


def _png(image: object) -> bytes:
    out = io.BytesIO()
    # Level 1: faster to encode (a 200 dpi A4 sample: 68 -> 44 ms), a larger file, lossless
    image.save(out, format="PNG", compress_level=1)  # type: ignore[attr-defined]
    return out.getvalue()
