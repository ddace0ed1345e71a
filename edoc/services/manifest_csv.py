"""Batch ingest manifests: one CSV row per file, with the same names as the CLI options.

Columns: ``file`` (required), and any of ``profile`` (``;``-separated for several),
``doc_type``, ``date``, ``amount``, ``counterparty``, ``ledger_ref``, ``received``,
``author``, ``paper_size``, ``retention`` (``;``-separated), ``fiscal_year_end``,
``extension_months``, ``loss_year`` (true/1/yes), ``tax_year``, ``period_end``,
``closing_date``, ``completed``, ``registration_number`` (a T-number). Hyphens and
underscores are interchangeable in names.

The review CSV ``edoc capture`` writes is such a manifest plus, per suggested field F
(doc_type, date, amount, counterparty, registration_number), ``F_source`` and
``F_confidence``, and ``confirmed_by``: a machine suggestion (pdf-text, ocr, filename) is
accepted only from a row a person confirmed (``row_provenance``; ``NOT_CONFIRMED``), and the
record then seals each field's provenance (``edoc.model.provenance``).

Encodings: UTF-8 (with or without BOM) and Shift_JIS/CP932 (what Japanese Excel writes);
UTF-16 (Excel's "Unicode text") is refused with a hint, as is anything else.

Nothing a manifest names is trusted as a path: file paths, relative or absolute, are resolved
(symlinks included) and must lie inside the CSV's own directory.

A cell that starts like a spreadsheet formula (``=``, ``+``, ``@``, or ``-`` other than a
plain negative number) is refused (CWE-1236): spreadsheets save a formula's value, not the
formula, so a manifest carrying ``=cmd|…`` came from somewhere it should not have.

The manifest itself must be a regular file: a FIFO or a device (``/dev/zero``) would block
or never end.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path

from edoc.errors import InputError
from edoc.model.provenance import (
    MACHINE,
    SUGGESTERS,
    FieldProvenance,
    ProvenanceError,
    parse_confidence,
)
from edoc.policy.values import clean_text, printable_name, stat_regular_file
from edoc.services.ingest import IngestRequest

COLUMNS = ("file", "profile", "doc_type", "date", "amount", "counterparty", "ledger_ref",
           "received", "author", "paper_size", "retention", "fiscal_year_end",
           "extension_months", "loss_year", "tax_year", "period_end", "closing_date",
           "completed")
#: The review CSV ``edoc capture`` writes adds, per suggested field F, ``F_source`` (einvoice
#: | pdf-text | ocr | filename | empty) and ``F_confidence`` (0..1), the typed T-number
#: column, and ``confirmed_by`` (filled by the person who checked the row). CSV field name
#: -> the manifest's name for it.
SUGGESTED_FIELDS = {"doc_type": "doc_type", "date": "transaction_date", "amount": "amount",
                    "counterparty": "counterparty",
                    "registration_number": "registration_number"}
REVIEW_COLUMNS = ("registration_number",
                  *(f"{f}_{part}" for f in SUGGESTED_FIELDS for part in ("source",
                                                                         "confidence")),
                  "confirmed_by",
                  # the reviewer's free-text remark (capture writes hints there); not kept
                  "note")
ALL_COLUMNS = COLUMNS + REVIEW_COLUMNS
_MAX_BYTES = 64 * 1024 * 1024
#: What a spreadsheet takes for the start of a formula (OWASP "CSV injection"); a cell that
#: is only a negative number (``-5``) is a number, not a formula, and is left to the field's
#: own check (an amount may not be negative).
_FORMULA_START = ("=", "+", "@")
_NEGATIVE_NUMBER = re.compile(r"-[\d,]+(?:\.\d+)?")


def _looks_like_formula(cell: str) -> bool:
    if cell[:1] in _FORMULA_START:
        return True
    return cell[:1] == "-" and len(cell) > 1 and not _NEGATIVE_NUMBER.fullmatch(cell)


def _read(source: Path) -> bytes:
    """The manifest's bytes: a regular file of at most 64 MiB (read no further)."""
    st = stat_regular_file(source, printable_name(str(source)))
    if st.st_size > _MAX_BYTES:
        raise InputError(f"{source} is {st.st_size:,} bytes; a manifest may have at most "
                         f"{_MAX_BYTES:,}", code="CSV_TOO_LARGE")
    try:
        # O_NONBLOCK: should the name be swapped for a FIFO after the check, open() must
        # not wait for a writer.
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise InputError(f"{source} is not a regular file", code="NOT_A_FILE")
            raw = f.read(_MAX_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{source}: cannot be read ({exc.strerror})",
                         code="FILE_UNREADABLE") from None
    if len(raw) > _MAX_BYTES:
        raise InputError(f"{source} has grown past {_MAX_BYTES:,} bytes while read",
                         code="CSV_TOO_LARGE")
    return raw


def _decode(raw: bytes, source: Path) -> str:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (
            len(raw) >= 4 and (raw[1::2].count(0) > len(raw) // 4
                               or raw[0::2].count(0) > len(raw) // 4)):
        # UTF-16 text (with a BOM, or ASCII-range text with a NUL in every other byte).
        raise InputError(f"{source} is UTF-16 text; manifests are UTF-8 or Shift_JIS",
                         code="CSV_ENCODING",
                         hint="save the manifest as 'CSV UTF-8' from your spreadsheet")
    for encoding in ("utf-8-sig", "cp932"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InputError(f"{source} is neither UTF-8 nor Shift_JIS text", code="CSV_ENCODING",
                     hint="save the manifest as 'CSV UTF-8' from your spreadsheet")


def read_manifest(source: Path, *, default_profiles: Sequence[str] = ()) -> list[IngestRequest]:
    """Every row as a request; structural problems of the file itself raise InputError."""
    raw = _read(source)
    text = _decode(raw, source)
    if "\x00" in text:
        raise InputError(f"{source} contains NUL bytes; not a CSV file", code="CSV_MALFORMED")
    # strict: an unbalanced quote is an error, not a cell swallowing the rest of the file.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(f"{source} is empty", code="CSV_EMPTY") from None
    except csv.Error as exc:
        raise InputError(f"{source}: {exc}", code="CSV_MALFORMED") from None
    names = [h.strip().lower().replace("-", "_") for h in header]
    unknown = [h for h in names if h not in ALL_COLUMNS]
    if unknown:
        raise InputError(f"{source}: unknown column(s) {', '.join(unknown)}",
                         code="CSV_UNKNOWN_COLUMN", hint="columns: " + ", ".join(ALL_COLUMNS))
    if "file" not in names:
        raise InputError(f"{source}: the 'file' column is missing", code="CSV_MISSING_COLUMN")
    if len(set(names)) != len(names):
        raise InputError(f"{source}: a column appears twice", code="CSV_DUPLICATE_COLUMN")

    base = source.resolve().parent
    requests: list[IngestRequest] = []
    seen: dict[str, int] = {}
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise InputError(f"{source}: {exc}", code="CSV_MALFORMED") from None
    for n, cells in enumerate(rows, start=2):
        if not any(c.strip() for c in cells):
            continue
        origin = f"{source.name} row {n}"
        if len(cells) != len(names):
            requests.append(_bad_row(origin, cells[0] if cells else "", InputError(
                f"has {len(cells)} cells; the header has {len(names)}", code="CSV_ROW_SHAPE")))
            continue
        row = {k: v.strip() for k, v in zip(names, cells, strict=True)}
        formula = next((k for k, v in row.items() if _looks_like_formula(v)), None)
        if formula:
            requests.append(_bad_row(origin, row.get("file", ""), InputError(
                f"column {formula} starts like a spreadsheet formula", code="CSV_FORMULA")))
            continue
        file_cell = row["file"]
        if not file_cell:
            requests.append(_bad_row(origin, "", InputError("the file cell is empty",
                                                            code="CSV_MISSING_VALUE")))
            continue
        try:
            path = (base / file_cell).resolve()  # an absolute file_cell replaces base
        except (OSError, RuntimeError, ValueError):  # a symlink loop, an impossible name
            path = base / file_cell
        if not path.is_relative_to(base):
            requests.append(_bad_row(origin, file_cell, InputError(
                f"{file_cell} is outside the manifest's directory {base}",
                code="PATH_ESCAPE",
                hint="put the manifest in the folder that holds the files, and name them "
                     "relative to it")))
            continue
        key = str(path)
        if key in seen:
            requests.append(_bad_row(origin, file_cell, InputError(
                f"{file_cell} is already listed in row {seen[key]}", code="CSV_DUPLICATE_ROW")))
            continue
        seen[key] = n
        try:
            provenance, ocr = row_provenance(row)
        except InputError as exc:
            requests.append(_bad_row(origin, file_cell, exc))
            continue
        split = [p.strip() for p in row.get("profile", "").split(";") if p.strip()]
        requests.append(IngestRequest(
            path=key,
            profiles=tuple(split) or tuple(default_profiles),
            doc_type=row.get("doc_type") or None, date=row.get("date") or None,
            amount=row.get("amount") or None, counterparty=row.get("counterparty") or None,
            ledger_ref=row.get("ledger_ref") or None, received=row.get("received") or None,
            author=row.get("author") or None, paper_size=row.get("paper_size") or None,
            retention=tuple(r.strip() for r in row.get("retention", "").split(";")
                            if r.strip()),
            fiscal_year_end=row.get("fiscal_year_end") or None,
            extension_months=row.get("extension_months") or None,
            loss_year=row.get("loss_year", "").lower() in ("1", "true", "yes", "y"),
            tax_year=row.get("tax_year") or None, period_end=row.get("period_end") or None,
            closing_date=row.get("closing_date") or None,
            completed=row.get("completed") or None, origin=origin,
            registration_number=row.get("registration_number") or None,
            field_provenance=provenance, ocr=ocr))
    if not requests:
        raise InputError(f"{source} has a header but no rows", code="CSV_EMPTY")
    return requests


def _bad_row(origin: str, file_cell: str, exc: InputError) -> IngestRequest:
    """A request that fails validation with ``exc`` (so it is reported with the others)."""
    return IngestRequest(path=file_cell or "(none)", origin=origin, rejection=exc)


def row_provenance(row: dict[str, str]) -> tuple[dict[str, FieldProvenance], bool]:
    """The provenance of a review-CSV row's suggested fields, and whether its text should be
    read by OCR at ingest (a field OCR suggested: the person used capture on an image, and
    expects its text to be searchable).

    A field whose ``F_source`` is a machine source other than ``einvoice`` is accepted only
    with ``confirmed_by`` (NTA Q&A: OCR is input support; the person who confirms is
    responsible): otherwise ``NOT_CONFIRMED``. An ``einvoice`` suggestion is the document's
    own field when the file carries it (checked again at ingest, ``FIELD_CONFLICT`` if it
    disagrees); should the file not carry it, it counts as a confirmed suggestion and needs
    the confirmer too. A source without a value suggested nothing and is ignored."""
    raw_by = row.get("confirmed_by", "")
    by = clean_text(raw_by, "confirmed_by", max_len=100) if raw_by else ""
    out: dict[str, FieldProvenance] = {}
    ocr = False
    unconfirmed: list[str] = []
    for column, name in SUGGESTED_FIELDS.items():
        src = row.get(f"{column}_source", "").strip().lower()
        conf_text = row.get(f"{column}_confidence", "")
        try:
            confidence = parse_confidence(conf_text) if conf_text else None
        except ProvenanceError as exc:
            raise InputError(f"{column}_confidence: {exc}", code=exc.code) from None
        if not src:
            continue
        if src not in SUGGESTERS:
            raise InputError(f"{column}_source {src[:40]!r} is not one of "
                             f"{', '.join(SUGGESTERS)} (or empty: typed)", code="BAD_SOURCE")
        if not row.get(column):
            continue
        ocr = ocr or src == "ocr"
        if not by:
            if src in MACHINE:
                unconfirmed.append(f"{column} ({src})")
            continue  # an e-invoice suggestion: the document's own field at ingest
        out[name] = FieldProvenance.confirmed(src, confidence, by)
    if unconfirmed:
        raise InputError(f"{', '.join(unconfirmed)} suggested by a machine and not "
                         "confirmed", code="NOT_CONFIRMED",
                         hint="check the row and put your name in its confirmed_by column")
    return out, ocr
