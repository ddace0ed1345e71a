"""The full text of a record: derived at ingest, searchable, disposed with it, rebuildable.

The text is *derived*, never evidence: it is not sealed, not in the manifest and not in the
store — the record is its bytes, and the text is what a reader made of them
(``edoc.capture.text.extract_text``). It lives in the catalog (``texts`` / ``text_grams``,
``edoc.catalog.fulltext``), so:

* **at ingest** the cheap readings always run (an e-invoice's element values, a PDF's text
  layer: milliseconds a page, in the worker thread that stores the file); OCR of an image or
  an image-only PDF (seconds a page) runs only when asked, ``ingest --ocr``, or for a review
  CSV row a field of which OCR suggested (the person ran ``edoc capture`` on a scan, so its
  text is expected to be searchable and the cost is already accepted). A text that cannot be
  read never refuses the record: the record is stored, the failure is a warning;
* **a correction** with new content replaces the text; metadata-only versions keep it;
* **a purge** deletes the text of every record it disposes of (``drop_texts``); the
  disposal certificate lists versions and digests only and is unaffected;
* **``catalog rebuild``** re-derives it from the stored content (``rederive``): the text
  layer and e-invoices always; OCR only with ``catalog rebuild --ocr``, because OCR costs
  seconds a page (about 2–4 s per A4 page at 300 dpi on this machine) — an archive of
  10,000 scanned pages is hours of OCR, which a catalog rebuild must not impose unasked.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edoc import clock
from edoc.catalog import Catalog
from edoc.clock import utc_text
from edoc.errors import EdocError
from edoc.evidence.hashing import sha256_hex
from edoc.storage.base import ObjectStore

log = logging.getLogger(__name__)


#: ``DerivedText.source`` of an XML document's values text (``edoc.capture.text.EINVOICE``)
EINVOICE_TEXT = "einvoice"
#: the media type whose text ``text_at_ingest`` can read from vetted bytes
PDF_MEDIA_TYPE = "application/pdf"


@dataclass(frozen=True)
class DerivedText:
    """What a reader made of one file (``edoc.capture.text.DocumentText``'s fields)."""

    text: str
    source: str
    pages: int
    confidence: float | None


def read_text(path: Path, media_type: str, *, ocr: bool, vetted: bytes | None = None
              ) -> DerivedText | None:
    """The text of ``path``, or None when nothing reads its type (or only OCR could and
    ``ocr`` is false). Raises ``EdocError`` with the reader's code when it cannot be read.
    ``vetted``: ``edoc.capture.text.extract_text``'s."""
    from edoc.capture.text import extract_text

    found = extract_text(path, media_type, ocr=ocr, vetted=vetted)
    if found is None or not found.text.strip():
        return None
    return DerivedText(found.text, found.source, found.pages, found.confidence)


def derive_text(path: Path, media_type: str, *, ocr: bool, vetted: bytes | None = None
                ) -> tuple[DerivedText | None, dict[str, str] | None]:
    """Read ``path``'s text: (the text or None, a warning or None). Never raises for the
    file's sake: the record is already stored. ``vetted``: ``extract_text``'s."""
    try:
        return read_text(path, media_type, ocr=ocr, vetted=vetted), None
    except EdocError as exc:
        # The code only: a message could quote document content into a log.
        log.info("text of %s not derived: %s", path.name, exc.code)
        return None, text_not_derived(exc.code)
    except Exception as exc:  # a reader's bug must not undo a stored record's result
        log.debug("text reader failed on %s", path.name, exc_info=True)
        return None, text_not_derived(f"internal error {type(exc).__name__}")


#: A PDF up to this size is read back whole for its text (``text_at_ingest``), held in
#: memory once per file in flight; a larger one is read from its path, gated again. A
#: 300-dpi A4 colour scan is ~1 MB a page.
VETTED_PDF_MAX = 16 * 1024 * 1024


def text_at_ingest(path: Path, media_type: str, *, sha256: str, size: int, ocr: bool,
                   xml_text: str | None, gated: bool
                   ) -> tuple[DerivedText | None, dict[str, str] | None]:
    """The text of a file ingest has just stored (``sha256``, ``size``): an XML file's from
    the parse its fields came from (``xml_text``: one parse per ingest); a PDF whose
    readability gate passed (``gated``) from its bytes read back and found to be the very
    bytes gated and stored, so not gated again; anything else read from the path, gated.
    An electronic record may be stored unmeasured, its gate failed (say PDF_TOO_COMPLEX):
    its text is then read gated again, and pdfium never sees it."""
    if xml_text is not None:
        return (DerivedText(xml_text, EINVOICE_TEXT, 1, None) if xml_text.strip() else None), \
            None
    if media_type != PDF_MEDIA_TYPE or not gated or size > VETTED_PDF_MAX:
        return derive_text(path, media_type, ocr=ocr)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, text_not_derived(f"the file cannot be read again: {exc.strerror}")
    if sha256_hex(data) != sha256:
        # Whatever the path holds now is not the record: its text is derived from the stored
        # copy later (`edoc catalog text`), never from other bytes.
        return None, text_not_derived("the file changed after it was stored")
    return derive_text(path, media_type, ocr=ocr, vetted=data)


def text_not_derived(why: str) -> dict[str, str]:
    """The warning on a stored record whose text was not read (``why``: a code or a short
    reason, never document content)."""
    return {"code": "TEXT_NOT_DERIVED", "rule": "edoc:fulltext",
            "message": f"the text was not read ({why}); the record is stored, "
                       "search --text will not find it"}


def text_row(record_id: str, version: int, found: DerivedText) -> dict[str, Any]:
    """The keyword arguments of ``Catalog.put_text`` for one derived text."""
    return {"record_id": record_id, "version": version, "source": found.source,
            "pages": found.pages, "confidence": found.confidence, "text": found.text,
            "derived_at": utc_text(clock.now())}


class PendingTexts:
    """Texts derived during an ingest run, written to the catalog in batches.

    The text is derived data (never sealed, rebuildable: ``edoc catalog text`` fills in any
    a crash lost), so it need not pay a durable commit of its own per record: one write
    transaction per ``batch`` texts instead of one each (on SQLite with
    ``synchronous=FULL`` that commit was a quarter of a small file's ingest)."""

    def __init__(self, catalog: Catalog, batch: int = 256) -> None:
        self._catalog = catalog
        self._batch = batch
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._rows.append(row)
            if len(self._rows) < self._batch:
                return
            rows, self._rows = self._rows, []
        self._catalog.put_texts(rows)

    def flush(self) -> None:
        with self._lock:
            rows, self._rows = self._rows, []
        if rows:
            self._catalog.put_texts(rows)


def derive_and_store(catalog: Catalog, *, record_id: str, version: int, path: Path,
                     media_type: str, ocr: bool) -> dict[str, str] | None:
    """Read ``path`` and store its text for ``record_id`` at once; a warning (dict) when it
    could not be read, else None (``rederive``, ``catalog text``)."""
    found, warning = derive_text(path, media_type, ocr=ocr)
    if found is not None:
        catalog.put_texts([text_row(record_id, version, found)])
    return warning


@dataclass
class RederiveSummary:
    records: int = 0
    derived: int = 0
    unreadable: int = 0
    ocr: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def rederive(catalog: Catalog, store: ObjectStore, *, ocr: bool, only_missing: bool = False,
             progress: Callable[[str], None] | None = None) -> RederiveSummary:
    """Derive the text of every record that is not disposed, from its latest version with
    content, read from the store by the version id the catalog pinned (module docstring:
    ``catalog rebuild`` calls this on the new catalog)."""
    summary = RederiveSummary(ocr=ocr)
    have = catalog.text_record_ids() if only_missing else set()
    for record_id in list(catalog.record_ids()):
        rec = catalog.record_row(record_id)
        if rec is None or rec.state == "disposed" or record_id in have:
            continue
        rows = [r for r in catalog.version_rows(record_id) if r.content_key]
        if not rows:
            continue
        row = rows[-1]
        summary.records += 1
        key = row.content_key
        assert key is not None
        fd, name = tempfile.mkstemp(prefix="edoc-text-")
        try:
            with os.fdopen(fd, "wb") as out, store.open(key, row.content_version_id) as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            warning = derive_and_store(catalog, record_id=record_id, version=row.version,
                                       path=Path(name), media_type=row.media_type or "",
                                       ocr=ocr)
        finally:
            Path(name).unlink(missing_ok=True)
        if warning is not None:
            summary.unreadable += 1
        elif catalog.text_of(record_id) is not None:
            summary.derived += 1
    if progress:
        progress(f"{summary.derived} texts derived from {summary.records} records"
                 + ("" if ocr else " (no OCR: give --ocr to read scans)"))
    return summary
