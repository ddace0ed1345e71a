"""Batch ingest manifests: one CSV row per file, with the same names as the CLI options.

Columns: ``file`` (required), and any of ``profile`` (``;``-separated for several),
``doc_type``, ``date``, ``amount``, ``counterparty``, ``ledger_ref``, ``received``,
``author``, ``paper_size``, ``retention`` (``;``-separated), ``fiscal_year_end``,
``extension_months``, ``loss_year`` (true/1/yes), ``tax_year``, ``period_end``,
``closing_date``, ``completed``. Hyphens and underscores are interchangeable in names.

Encodings: UTF-8 (with or without BOM) and Shift_JIS/CP932 (what Japanese Excel writes).
Relative file paths are resolved against the CSV's own directory and may not leave it.
A cell that starts like a spreadsheet formula (``=``, ``+``, ``@``) is refused: a manifest
carrying ``=cmd|…`` came from somewhere it should not have.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from edoc.errors import InputError
from edoc.ingest import IngestRequest

COLUMNS = ("file", "profile", "doc_type", "date", "amount", "counterparty", "ledger_ref",
           "received", "author", "paper_size", "retention", "fiscal_year_end",
           "extension_months", "loss_year", "tax_year", "period_end", "closing_date",
           "completed")
_MAX_BYTES = 64 * 1024 * 1024


def _decode(raw: bytes, source: Path) -> str:
    for encoding in ("utf-8-sig", "cp932"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InputError(f"{source} is neither UTF-8 nor Shift_JIS text", code="CSV_ENCODING",
                     hint="save the manifest as 'CSV UTF-8' from your spreadsheet")


def read_manifest(source: Path, *, default_profiles: Sequence[str] = ()) -> list[IngestRequest]:
    """Every row as a request; structural problems of the file itself raise InputError."""
    try:
        if source.stat().st_size > _MAX_BYTES:
            raise InputError(f"{source} is larger than 64 MiB", code="CSV_TOO_LARGE")
        raw = source.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{source}: no such file", code="FILE_NOT_FOUND") from None
    except IsADirectoryError:
        raise InputError(f"{source} is a directory", code="NOT_A_FILE") from None
    except OSError as exc:
        raise InputError(f"{source}: cannot be read ({exc.strerror})",
                         code="FILE_UNREADABLE") from None
    text = _decode(raw, source)
    if "\x00" in text:
        raise InputError(f"{source} contains NUL bytes; not a CSV file", code="CSV_MALFORMED")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(f"{source} is empty", code="CSV_EMPTY") from None
    except csv.Error as exc:
        raise InputError(f"{source}: {exc}", code="CSV_MALFORMED") from None
    names = [h.strip().lower().replace("-", "_") for h in header]
    unknown = [h for h in names if h not in COLUMNS]
    if unknown:
        raise InputError(f"{source}: unknown column(s) {', '.join(unknown)}",
                         code="CSV_UNKNOWN_COLUMN", hint="columns: " + ", ".join(COLUMNS))
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
        formula = next((k for k, v in row.items() if v[:1] in ("=", "+", "@")), None)
        if formula:
            requests.append(_bad_row(origin, row.get("file", ""), InputError(
                f"column {formula} starts like a spreadsheet formula", code="CSV_FORMULA")))
            continue
        file_cell = row["file"]
        if not file_cell:
            requests.append(_bad_row(origin, "", InputError("the file cell is empty",
                                                            code="CSV_MISSING_VALUE")))
            continue
        path = Path(file_cell)
        if not path.is_absolute():
            path = (base / path).resolve()
            if not path.is_relative_to(base):
                requests.append(_bad_row(origin, file_cell, InputError(
                    f"{file_cell} leaves the manifest's directory", code="PATH_ESCAPE")))
                continue
        key = str(path)
        if key in seen:
            requests.append(_bad_row(origin, file_cell, InputError(
                f"{file_cell} is already listed in row {seen[key]}", code="CSV_DUPLICATE_ROW")))
            continue
        seen[key] = n
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
            completed=row.get("completed") or None, origin=origin))
    if not requests:
        raise InputError(f"{source} has a header but no rows", code="CSV_EMPTY")
    return requests


def _bad_row(origin: str, file_cell: str, exc: InputError) -> IngestRequest:
    """A request that fails validation with ``exc`` (so it is reported with the others)."""
    return IngestRequest(path=file_cell or "(none)", origin=origin, rejection=exc)
