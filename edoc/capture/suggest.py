"""One suggestion per search field, from the sources in their order of trust.

Owns turning what was read into ``Suggestion`` values (the text a person would type: an ISO
date, whole yen, the name, ``T`` + 13 digits, a ``doc_type``) with their ``source`` and a
``confidence`` 0..1, and merging the sources: the e-invoice XML first (the document's own
data, 電子帳簿保存法 第7条), then the PDF text layer, then OCR, then the file name — a field
takes the first source that supplies it. Confidence is the parser's certainty in its choice
times, for OCR, Tesseract's mean word confidence of the page(s): a number read from a
blurred scan is worth less than the same number from a text layer. Pure functions, no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Final

from edoc.capture.amounts import best_amount, parse_amount_text
from edoc.capture.dates import best_date, parse_date_text
from edoc.capture.doctype import best_doc_type, doc_type_of
from edoc.capture.parties import best_counterparty, company_names
from edoc.capture.text import EINVOICE, OCR, PDF_TEXT, DocumentText
from edoc.capture.tnumber import best_registration_number
from edoc.policy.registration import check_registration_number

__all__ = ["FIELDS", "FILENAME", "SOURCES", "Suggestion", "Suggestions", "from_filename",
           "from_text", "merge"]

#: The fields suggested, as the review CSV names them.
FIELDS: Final = ("doc_type", "date", "amount", "counterparty", "registration_number")
FILENAME: Final = "filename"
#: Every source, in the order a field takes them.
SOURCES: Final = (EINVOICE, PDF_TEXT, OCR, FILENAME)
#: What a value read from a file name is worth: someone typed it, but not for edoc.
_FILENAME_CONFIDENCE: Final = 0.6


@dataclass(frozen=True)
class Suggestion:
    """A proposed field value, where it came from and how sure the reading is (0..1)."""

    value: str
    source: str
    confidence: float


Suggestions = dict[str, Suggestion]


def _scaled(confidence: float, text: DocumentText) -> float:
    factor = text.confidence if text.source == OCR and text.confidence is not None else 1.0
    return round(max(0.0, min(1.0, confidence * factor)), 3)


def from_text(text: DocumentText) -> Suggestions:
    """The fields the text supports, each with ``text.source`` as its source."""
    out: Suggestions = {}
    picks: dict[str, tuple[str, float] | None] = {}
    doc_type = best_doc_type(text.text)
    picks["doc_type"] = doc_type
    when = best_date(text.text)
    picks["date"] = (when[0].isoformat(), when[1]) if when else None
    amount = best_amount(text.text)
    picks["amount"] = (str(amount[0]), amount[1]) if amount else None
    picks["counterparty"] = best_counterparty(text.text)
    picks["registration_number"] = best_registration_number(text.text)
    for name, pick in picks.items():
        if pick is not None:
            out[name] = Suggestion(pick[0], text.source, _scaled(pick[1], text))
    return out


def from_filename(name: str) -> Suggestions:
    """Fields a file name spells, e.g. ``2024-06-30_株式会社東京ガス_5500.pdf`` or
    ``請求書_20240630_T8010401006754.pdf``: parts split on ``_``, spaces and ``+``."""
    stem = unicodedata.normalize("NFKC", PurePath(name).stem)
    out: Suggestions = {}

    def put(field: str, value: str) -> None:
        if field not in out:
            out[field] = Suggestion(value, FILENAME, _FILENAME_CONFIDENCE)

    for part in (p for p in re.split(r"[_\s+]+", stem) if p):
        when = parse_date_text(part)
        if when is not None:
            put("date", when.isoformat())
            continue
        if re.fullmatch(r"T\d{13}", part.upper()):
            if check_registration_number(part).format_ok:
                put("registration_number", part.upper())
            continue
        amount = parse_amount_text(part)
        if amount is not None:
            put("amount", str(amount))
            continue
        doc_type = doc_type_of(part)
        if doc_type is not None:
            put("doc_type", doc_type)
            rest = part
            for title in ("請求書", "領収書", "見積書", "納品書"):
                rest = rest.replace(title, "")
            part = rest
        names = company_names(part)
        if names:
            put("counterparty", names[0])
    return out


def merge(*layers: Mapping[str, Suggestion]) -> Suggestions:
    """Each field from the first layer that has it (pass them in ``SOURCES`` order)."""
    out: Suggestions = {}
    for layer in layers:
        for name in FIELDS:
            if name not in out and name in layer:
                out[name] = layer[name]
    return out
