"""``edoc capture``: read files, propose their search fields, write a review CSV.

Owns the capture use case: for each file, the suggestions in the order of trust (the
e-invoice XML through ``edoc.services.einvoice_fields``, then the PDF text layer or OCR
through ``edoc.capture``, then the file name), run in a pool of worker processes, and the
review CSV a person checks and completes before ``edoc ingest --manifest`` stores the files.

The review CSV. It is the manifest ``ingest --manifest`` reads (``manifest_csv.COLUMNS``,
paths relative to the CSV's own directory, which every file must lie inside), pre-filled,
plus, for each suggested field F of ``SUGGESTED`` (doc_type, date, amount, counterparty,
registration_number), the columns ``F_source`` (einvoice | pdf-text | ocr | filename, empty
when nothing was suggested) and ``F_confidence`` (0..1), an empty ``confirmed_by`` the person
fills with their name to confirm the row, and ``note`` (why a file gave no suggestion: an
error code and message). The law lets a machine help but not decide: NTA Q&A treats OCR as
input support (入力支援), so the suggestion is only a pre-filled cell and the person who
confirms it answers for it. Written all or nothing, UTF-8 with BOM (what Excel needs to read
UTF-8), CRLF rows, every cell formula-neutralised (CWE-1236, ``spreadsheet.neutralise``).

Bad input never stops the batch: a file that cannot be read still gets its row (empty
fields, the code in ``note``) and is reported; only a file outside the CSV's directory, which
no manifest row can name, gets no row.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import csv
import dataclasses
import io
import multiprocessing
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from edoc.capture.suggest import FIELDS, Suggestion, Suggestions, from_filename, from_text, merge
from edoc.capture.text import EINVOICE, extract_text
from edoc.errors import EdocError, InputError
from edoc.files import atomic_output
from edoc.inspection.media import detect_media_type
from edoc.policy.values import printable_name, stat_regular_file
from edoc.services.einvoice_fields import document_fields
from edoc.services.ingest import IngestRequest
from edoc.services.manifest_csv import COLUMNS, row_provenance
from edoc.services.spreadsheet import neutralise

__all__ = [
    "CONFIRMED_BY",
    "NOTE",
    "SUGGESTED",
    "CaptureRow",
    "capture_file",
    "capture_files",
    "check_output",
    "confirmed_request",
    "default_jobs",
    "relative_to_csv",
    "review_header",
    "review_rows",
    "write_review_csv",
]

#: The suggested fields, by their review-CSV column names.
SUGGESTED: Final = FIELDS
CONFIRMED_BY: Final = "confirmed_by"
NOTE: Final = "note"
CAPTURE_OUTSIDE_CSV_DIR: Final = "CAPTURE_OUTSIDE_CSV_DIR"
CAPTURE_WORKER_DIED: Final = "CAPTURE_WORKER_DIED"
CAPTURE_NOT_READ: Final = "CAPTURE_NOT_READ"
#: The e-invoice's own fields (document_fields names) as review-CSV columns.
_EINVOICE_COLUMNS: Final = {"transaction_date": "date", "amount": "amount",
                            "counterparty": "counterparty", "doc_type": "doc_type",
                            "registration_number": "registration_number"}


@dataclass(frozen=True)
class CaptureRow:
    """What capture found in one file: ``suggestions`` per field, ``error`` (code, message)
    when the file could not be read; ``text_source`` how its text was read, if at all."""

    path: str
    suggestions: Suggestions = field(default_factory=dict)
    media_type: str | None = None
    text_source: str | None = None
    pages: int = 0
    error: dict[str, str] | None = None
    #: why no text was read although nothing failed (a type capture does not read)
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.path, "media_type": self.media_type,
                "text_source": self.text_source, "pages": self.pages, "error": self.error,
                "note": self.note,
                "suggestions": {k: {"value": s.value, "source": s.source,
                                    "confidence": s.confidence}
                                for k, s in self.suggestions.items()}}


def default_jobs() -> int:
    """Worker processes unless told otherwise: the cores this process may run on (OCR is
    CPU-bound, and each Tesseract runs single-threaded, ``edoc.capture.ocr``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def capture_file(path: str, *, ocr: bool = True) -> CaptureRow:
    """Suggestions for one file; never raises for bad input (the row carries the error)."""
    p = Path(path)
    try:
        stat_regular_file(p, printable_name(path))
        media_type = detect_media_type(p)
    except EdocError as exc:
        return CaptureRow(path, error={"code": exc.code, "message": exc.message})
    layers: list[Suggestions] = []
    text_source: str | None = None
    pages = 0
    error: dict[str, str] | None = None
    note: str | None = None
    try:
        einvoice = _einvoice_layer(p, media_type)
        if einvoice:
            layers.append(einvoice)
        # A JP PINT XML gives its fields above; its text would only be guessed at again.
        if not (einvoice and media_type == "application/xml"):
            text = extract_text(p, media_type, ocr=ocr)
            if text is not None:
                layers.append(from_text(text))
                text_source, pages = text.source, text.pages
            else:
                note = (f"{CAPTURE_NOT_READ}: {media_type} is not read by capture "
                        "(OCR off, or not a PDF, an image or an e-invoice); "
                        "suggestions from the file name only")
    except EdocError as exc:
        error = {"code": exc.code, "message": exc.message}
    except (OSError, ValueError, MemoryError) as exc:
        # A decoder's failure on hostile input must cost one row, not the batch.
        error = {"code": "CAPTURE_UNREADABLE", "message": f"{type(exc).__name__}: {exc}"}
    layers.append(from_filename(p.name))
    return CaptureRow(path, suggestions=merge(*layers), media_type=media_type,
                      text_source=text_source, pages=pages, error=error, note=note)


def _einvoice_layer(path: Path, media_type: str) -> Suggestions:
    """The fields a JP PINT e-invoice (an XML file, or one attached to a PDF) states."""
    # Received is the default of ingest too: the counterparty is the issuer.
    fields = document_fields(path, media_type, {}, direction="received")
    if fields.einvoice is None:
        return {}
    values = {**fields.values, **fields.extra_metadata}
    return {column: Suggestion(values[name], EINVOICE, 1.0)
            for name, column in _EINVOICE_COLUMNS.items() if values.get(name)}


def _capture_one(path: str, ocr: bool) -> CaptureRow:
    return capture_file(path, ocr=ocr)


def capture_files(paths: Sequence[str], *, jobs: int | None = None, ocr: bool = True,
                  progress: Callable[[CaptureRow], None] | None = None) -> list[CaptureRow]:
    """``capture_file`` for each path in ``jobs`` worker processes; results in the order
    given. At most ``jobs`` files are in the pool at once, so a thousand scans cost a
    thousand small submissions, not a thousand decoded pages in memory.

    A worker that dies (a decoder crashing the process) breaks the pool and every file in
    flight with it; which one did it cannot be told, so the pool is started again and those
    files are read once more, one at a time. A file that breaks that pool too gets
    ``CAPTURE_WORKER_DIED``; the batch goes on."""
    workers = max(1, min(jobs or default_jobs(), max(len(paths), 1)))
    results: dict[int, CaptureRow] = {}
    pending = collections.deque(enumerate(paths))
    suspects: collections.deque[tuple[int, str]] = collections.deque()
    # spawn: the workers start clean, not as forks of a process holding pdfium's lock.
    context = multiprocessing.get_context("spawn")

    def finish(index: int, row: CaptureRow) -> None:
        results[index] = row
        if progress is not None:
            progress(row)

    while pending or suspects:
        # A suspect is read alone in its own pool: if the pool breaks, it was the one.
        alone = bool(suspects)
        queue = collections.deque([suspects.popleft()]) if alone else pending
        with cf.ProcessPoolExecutor(max_workers=1 if alone else workers,
                                    mp_context=context) as pool:
            in_flight: dict[cf.Future[CaptureRow], tuple[int, str]] = {}
            broken = False
            while (queue or in_flight) and not broken:
                while queue and len(in_flight) < workers:
                    index, path = queue.popleft()
                    in_flight[pool.submit(_capture_one, path, ocr)] = (index, path)
                done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    index, path = in_flight.pop(future)
                    try:
                        finish(index, future.result())
                    except cf.process.BrokenProcessPool:
                        broken = True
                        if alone:
                            finish(index, CaptureRow(path, error={
                                "code": CAPTURE_WORKER_DIED,
                                "message": "the process reading this file died"}))
                        else:
                            suspects.append((index, path))
            suspects.extend(sorted(in_flight.values()))
    return [results[i] for i in range(len(paths))]


# -- the review CSV -------------------------------------------------------------------------


def review_header() -> list[str]:
    """The review CSV's columns: the manifest's, the suggested fields, then per field its
    source and confidence, ``confirmed_by`` and ``note`` (each once, should the manifest
    come to know some of them)."""
    extra = [*SUGGESTED]
    for name in SUGGESTED:
        extra += [f"{name}_source", f"{name}_confidence"]
    return list(dict.fromkeys([*COLUMNS, *extra, CONFIRMED_BY, NOTE]))


def relative_to_csv(path: str, csv_dir: Path) -> str:
    """``path`` as the manifest names it: relative to the CSV's directory, inside it."""
    resolved = Path(path).resolve()
    base = csv_dir.resolve()
    if not resolved.is_relative_to(base):
        raise InputError(f"{printable_name(path)} is outside {base}, the review CSV's "
                         "directory; a manifest can only name files inside it",
                         code=CAPTURE_OUTSIDE_CSV_DIR,
                         hint="write the CSV where the files are (-o DIR/review.csv)")
    return resolved.relative_to(base).as_posix()


def review_rows(rows: Iterable[CaptureRow], csv_dir: Path,
                profiles: Sequence[str] = ()) -> list[dict[str, str]]:
    """The CSV rows (name -> cell, before neutralising) for rows inside ``csv_dir``."""
    out: list[dict[str, str]] = []
    for row in rows:
        cells = {"file": relative_to_csv(row.path, csv_dir), "profile": ";".join(profiles)}
        for name in SUGGESTED:
            suggestion = row.suggestions.get(name)
            cells[name] = suggestion.value if suggestion else ""
            cells[f"{name}_source"] = suggestion.source if suggestion else ""
            cells[f"{name}_confidence"] = f"{suggestion.confidence:.2f}" if suggestion else ""
        cells[CONFIRMED_BY] = ""
        cells[NOTE] = (f"{row.error['code']}: {row.error['message']}" if row.error
                       else row.note or "")
        out.append(cells)
    return out


def check_output(output: Path, *, replace: bool = False) -> None:
    """Refuse, before any file is read, an output that exists or whose directory does not."""
    name = printable_name(str(output))
    if not output.parent.is_dir():
        raise InputError(f"{name}: the directory does not exist", code="OUTPUT_UNWRITABLE")
    if output.exists() and not replace:
        raise InputError(f"{name} already exists; not overwritten", code="OUTPUT_EXISTS",
                         hint="choose a new file name or pass --force")


def write_review_csv(output: Path, rows: Sequence[dict[str, str]], *,
                     replace: bool = False) -> None:
    """Write the review CSV all or nothing (UTF-8 with BOM, CRLF, formulas neutralised)."""
    header = review_header()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    for cells in rows:
        writer.writerow([neutralise(cells.get(name, "")) for name in header])
    check_output(output, replace=replace)
    try:
        with atomic_output(output, replace=replace) as f:
            f.write(buf.getvalue().encode("utf-8-sig"))
    except OSError as exc:
        raise InputError(f"{printable_name(str(output))}: cannot be written ({exc.strerror})",
                         code="OUTPUT_UNWRITABLE") from None


# -- confirming suggestions at the terminal (ingest --suggest) -----------------------------


def confirmed_request(request: IngestRequest, answers: Mapping[str, tuple[str, Suggestion | None]],
                      confirmed_by: str) -> IngestRequest:
    """``request`` with the fields a person answered at the terminal: ``answers`` maps a
    suggested field (``SUGGESTED`` names) to (value, the suggestion it accepts, or None when
    the person typed the value). An accepted suggestion is recorded exactly as a confirmed
    review-CSV row would be (``manifest_csv.row_provenance``): suggested_by, confidence and
    ``confirmed_by``; a typed value is ``typed``; an empty value leaves the field out."""
    row: dict[str, str] = {CONFIRMED_BY: confirmed_by}
    for name, (value, accepted) in answers.items():
        row[name] = value
        if accepted is not None and value == accepted.value:
            row[f"{name}_source"] = accepted.source
            row[f"{name}_confidence"] = f"{accepted.confidence:.3f}"
    provenance, ocr = row_provenance(row)

    def answer(name: str, current: str | None) -> str | None:
        # The review columns are the IngestRequest field names; an unanswered one is kept.
        return (answers[name][0] or None) if name in answers else current

    return dataclasses.replace(
        request, doc_type=answer("doc_type", request.doc_type),
        date=answer("date", request.date), amount=answer("amount", request.amount),
        counterparty=answer("counterparty", request.counterparty),
        registration_number=answer("registration_number", request.registration_number),
        field_provenance={**request.field_provenance, **provenance}, ocr=request.ocr or ocr)
