"""Where each search field of a record came from, and who answered for it.

電子帳簿保存法 lets a machine help with input but not decide: the NTA's Q&A treats OCR as
input support, so the person who confirms a machine-read value is the one responsible for it.
A record therefore says, per search field (取引年月日, 取引金額, 取引先, doc type, 登録番号), how
the value got there:

``typed``
    a person typed it (a CLI flag, a hand-written CSV cell);
``document``
    the record's own structured data supplied it (a JP PINT e-invoice, ``via: "einvoice"``;
    kept as ``document`` for manifests written before this block existed);
``suggestion-confirmed``
    a machine suggested it (``suggested_by``: ``pdf-text``, ``ocr``, ``filename``, or
    ``einvoice`` when the e-invoice reader proposed a value the stored file does not carry)
    with a ``confidence`` in 0..1, and ``confirmed_by`` names the person who accepted it.

A machine suggestion nobody confirmed is never stored as a search field: the reader of the
review CSV refuses such a row (``NOT_CONFIRMED``, ``edoc.services.manifest_csv``).

The manifest keeps these under the top-level key ``provenance`` (``PROVENANCE_KEY``) as
``{field: {"source": …, …}}``; confidence is written as text with three decimals
(``"0.930"``), because canonical JSON must hash the same in every language and a float's
text form differs between them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

#: The manifest's top-level key for the per-field block.
PROVENANCE_KEY: Final = "provenance"
#: Search fields provenance is recorded for (names as in the manifest's ``metadata``, plus
#: the version's ``doc_type``).
FIELDS: Final = ("doc_type", "transaction_date", "amount", "counterparty",
                 "registration_number")

TYPED: Final = "typed"
DOCUMENT: Final = "document"
CONFIRMED: Final = "suggestion-confirmed"
SOURCES: Final = (TYPED, DOCUMENT, CONFIRMED)

EINVOICE: Final = "einvoice"
#: Machine sources whose value a person must confirm before it is a search field.
MACHINE: Final = ("pdf-text", "ocr", "filename")
SUGGESTERS: Final = (EINVOICE, *MACHINE)


class ProvenanceError(ValueError):
    """A provenance that cannot be recorded (an unknown source, a confidence out of range,
    a confirmation without a confirmer). ``code`` is the one-line error code."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class FieldProvenance:
    """How one search field got its value (module docstring)."""

    source: str = TYPED
    #: for ``suggestion-confirmed``: the machine source that proposed the value
    suggested_by: str | None = None
    #: the suggester's confidence, 0..1 (None: it gave none)
    confidence: float | None = None
    #: for ``suggestion-confirmed``: the person who accepted it
    confirmed_by: str | None = None
    #: for ``document``: which reader (``einvoice``)
    via: str | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ProvenanceError(f"field source {self.source!r} is not one of "
                                  f"{', '.join(SOURCES)}", code="BAD_SOURCE")
        if self.confidence is not None:
            check_confidence(self.confidence)
        if self.source != CONFIRMED and self.suggested_by is not None:
            raise ProvenanceError(f"a {self.source} field has no suggester (a suggestion is "
                                  f"{CONFIRMED} once confirmed)", code="NOT_CONFIRMED")
        if self.source == CONFIRMED:
            if self.suggested_by not in SUGGESTERS:
                raise ProvenanceError(f"suggested_by {self.suggested_by!r} is not one of "
                                      f"{', '.join(SUGGESTERS)}", code="BAD_SOURCE")
            if not self.confirmed_by or not self.confirmed_by.strip():
                raise ProvenanceError("a suggestion needs the name of the person who "
                                      "confirmed it", code="NOT_CONFIRMED")

    @classmethod
    def typed(cls) -> FieldProvenance:
        return cls(TYPED)

    @classmethod
    def document(cls, via: str = EINVOICE) -> FieldProvenance:
        return cls(DOCUMENT, via=via)

    @classmethod
    def confirmed(cls, suggested_by: str, confidence: float | None,
                  confirmed_by: str) -> FieldProvenance:
        return cls(CONFIRMED, suggested_by=suggested_by, confidence=confidence,
                   confirmed_by=confirmed_by)

    @property
    def is_machine(self) -> bool:
        """A value a machine proposed (whoever then confirmed it)."""
        return self.source == CONFIRMED

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source}
        if self.via is not None:
            out["via"] = self.via
        if self.suggested_by is not None:
            out["suggested_by"] = self.suggested_by
        if self.confidence is not None:
            out["confidence"] = confidence_text(self.confidence)
        if self.confirmed_by is not None:
            out["confirmed_by"] = self.confirmed_by
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> FieldProvenance:
        conf = doc.get("confidence")
        return cls(source=str(doc.get("source", TYPED)),
                   suggested_by=_opt_str(doc.get("suggested_by")),
                   confidence=float(conf) if isinstance(conf, (str, int, float)) else None,
                   confirmed_by=_opt_str(doc.get("confirmed_by")),
                   via=_opt_str(doc.get("via")))


def check_confidence(value: float) -> float:
    """``value`` if it is a number in 0..1, else ``BAD_CONFIDENCE``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ProvenanceError(f"confidence {value!r} is not a number from 0 to 1",
                              code="BAD_CONFIDENCE")
    return float(value)


def parse_confidence(text: str) -> float:
    """A confidence as typed in a CSV cell (``0.93``, ``.5``, ``1``)."""
    try:
        value = float(text.strip())
    except ValueError:
        raise ProvenanceError(f"confidence {text[:40]!r} is not a number from 0 to 1",
                              code="BAD_CONFIDENCE") from None
    if math.isinf(value):
        raise ProvenanceError(f"confidence {text[:40]!r} is not a number from 0 to 1",
                              code="BAD_CONFIDENCE")
    return check_confidence(value)


def confidence_text(value: float) -> str:
    """The canonical text of a confidence: three decimals (module docstring)."""
    return f"{value:.3f}"


def provenance_block(fields: Mapping[str, FieldProvenance]) -> dict[str, Any]:
    """The manifest's ``provenance`` value for ``fields``."""
    return {name: fields[name].as_json() for name in sorted(fields)}


def read_block(value: object) -> dict[str, FieldProvenance]:
    """A manifest's ``provenance`` value, typed; anything unreadable is left out (a newer
    release's source is shown as stored, never guessed at)."""
    out: dict[str, FieldProvenance] = {}
    if not isinstance(value, Mapping):
        return out
    for name, doc in value.items():
        if isinstance(name, str) and isinstance(doc, Mapping):
            try:
                out[name] = FieldProvenance.from_json(doc)
            except (ProvenanceError, ValueError):
                continue
    return out


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None
