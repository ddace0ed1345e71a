"""What a file is: its media type, from its magic bytes, never from its name.

The readability gate (見読性, see ``edoc.inspection``) measures only what it recognises, and
a profile accepts or refuses a record by the media type found here (``Profile.accepts_media``),
so a file named ``invoice.pdf`` that holds a JPEG is measured, and checked, as a JPEG.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path
from typing import Final

from edoc.errors import InputError

PDF: Final = "application/pdf"
JPEG: Final = "image/jpeg"
PNG: Final = "image/png"
TIFF: Final = "image/tiff"
XML: Final = "application/xml"
CSV: Final = "text/csv"
TEXT: Final = "text/plain"
OCTET_STREAM: Final = "application/octet-stream"


_SNIFF_BYTES: Final = 64 * 1024
#: control characters that mark a sample as binary rather than text: C0 except tab, LF,
#: form feed and CR, and DEL (one regex scan: a per-character test cost 5 % of an e-invoice
#: ingest's interpreter time)
_CONTROL_BYTES = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f]")
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
        if _CONTROL_BYTES.search(text):
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
