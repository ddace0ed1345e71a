"""The provenance model (``edoc.model.provenance``) and the review-CSV reading
(``edoc.services.manifest_csv.row_provenance``): which rows are accepted, with what
provenance, and which are refused with which code."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from edoc.catalog.fulltext import grams
from edoc.catalog.schema import normalise_text
from edoc.errors import InputError
from edoc.model.manifest import KINDS, Manifest
from edoc.model.provenance import (
    FieldProvenance,
    ProvenanceError,
    parse_confidence,
    provenance_block,
    read_block,
)
from edoc.services.manifest_csv import ALL_COLUMNS, read_manifest, row_provenance


def test_confirmed_needs_a_confirmer_and_a_known_suggester() -> None:
    p = FieldProvenance.confirmed("ocr", 0.5, "佐藤")
    assert p.as_json() == {"source": "suggestion-confirmed", "suggested_by": "ocr",
                           "confidence": "0.500", "confirmed_by": "佐藤"}
    assert p.is_machine
    with pytest.raises(ProvenanceError) as exc:
        FieldProvenance.confirmed("ocr", 0.5, " ")
    assert exc.value.code == "NOT_CONFIRMED"
    with pytest.raises(ProvenanceError) as exc:
        FieldProvenance.confirmed("guess", 0.5, "佐藤")
    assert exc.value.code == "BAD_SOURCE"
    with pytest.raises(ProvenanceError) as exc:
        FieldProvenance("ocr")  # an unconfirmed machine source is no stored source
    assert exc.value.code == "BAD_SOURCE"
    with pytest.raises(ProvenanceError) as exc:
        FieldProvenance("typed", suggested_by="ocr")  # a suggestion passed off as typed
    assert exc.value.code == "NOT_CONFIRMED"


@pytest.mark.parametrize("value", [-0.01, 1.01, float("nan"), True])
def test_confidence_outside_0_to_1_is_refused(value: float) -> None:
    with pytest.raises(ProvenanceError) as exc:
        FieldProvenance.confirmed("pdf-text", value, "x")
    assert exc.value.code == "BAD_CONFIDENCE"


@pytest.mark.parametrize(("text", "expected"), [("0.93", 0.93), (".5", 0.5), ("1", 1.0),
                                                ("0", 0.0)])
def test_confidence_cells(text: str, expected: float) -> None:
    assert parse_confidence(text) == expected


@pytest.mark.parametrize("text", ["high", "93%", "inf", "1.5", "-0.1", ""])
def test_bad_confidence_cells(text: str) -> None:
    with pytest.raises(ProvenanceError) as exc:
        parse_confidence(text)
    assert exc.value.code == "BAD_CONFIDENCE"


def test_block_round_trips_through_a_manifest() -> None:
    fields = {"amount": FieldProvenance.confirmed("ocr", 0.8766, "佐藤"),
              "counterparty": FieldProvenance.typed(),
              "transaction_date": FieldProvenance.document()}
    block = provenance_block(fields)
    assert block["amount"]["confidence"] == "0.877"  # text, three decimals
    assert block["transaction_date"] == {"source": "document", "via": "einvoice"}
    doc = {"record_id": "R", "version": 1, "kind": "confirmation", "profiles": [],
           "metadata": {}, "content": None, "retention": {}, "provenance": block}
    m = Manifest.from_json(doc)
    assert Manifest.from_bytes(m.to_bytes()).to_bytes() == m.to_bytes()
    back = read_block(m.provenance)
    assert back["counterparty"] == FieldProvenance.typed()
    assert back["amount"].confirmed_by == "佐藤"
    assert "confirmation" in KINDS
    # an entry a newer release wrote with a source this one does not know is left out
    assert read_block({"amount": {"source": "llm"}}) == {}


def _row(**cells: str) -> dict[str, str]:
    return {k: "" for k in ALL_COLUMNS} | cells


def test_machine_source_without_confirmer_is_not_confirmed() -> None:
    with pytest.raises(InputError) as exc:
        row_provenance(_row(amount="1000", amount_source="pdf-text"))
    assert exc.value.code == "NOT_CONFIRMED"
    assert "amount (pdf-text)" in exc.value.message


def test_confirmed_row() -> None:
    prov, ocr = row_provenance(_row(amount="1000", amount_source="OCR",
                                    amount_confidence="0.7", date="2024-06-30",
                                    date_source="filename", confirmed_by=" 佐藤 "))
    assert prov == {"amount": FieldProvenance.confirmed("ocr", 0.7, "佐藤"),
                    "transaction_date": FieldProvenance.confirmed("filename", None, "佐藤")}
    assert ocr  # a field OCR suggested: the text is read by OCR at ingest


def test_typed_row_has_no_provenance_entries() -> None:
    assert row_provenance(_row(amount="1000", counterparty="山田")) == ({}, False)


def test_einvoice_suggestion_needs_no_confirmer() -> None:
    # the document's own field at ingest (checked there against the file: FIELD_CONFLICT)
    assert row_provenance(_row(amount="1000", amount_source="einvoice")) == ({}, False)
    prov, _ = row_provenance(_row(amount="1000", amount_source="einvoice", confirmed_by="x"))
    assert prov["amount"].suggested_by == "einvoice"


def test_source_without_a_value_suggested_nothing() -> None:
    assert row_provenance(_row(amount_source="ocr")) == ({}, False)


def test_bad_source_and_bad_confidence() -> None:
    with pytest.raises(InputError) as exc:
        row_provenance(_row(amount="1", amount_source="guess", confirmed_by="x"))
    assert exc.value.code == "BAD_SOURCE"
    with pytest.raises(InputError) as exc:
        row_provenance(_row(amount="1", amount_source="ocr", amount_confidence="1.2",
                            confirmed_by="x"))
    assert exc.value.code == "BAD_CONFIDENCE"


def test_reading_a_review_csv_rejects_rows_not_the_file(tmp_path: Path) -> None:
    for name in ("a.png", "b.png", "c.png"):
        (tmp_path / name).write_bytes(b"x")
    path = tmp_path / "review.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(ALL_COLUMNS))
        w.writeheader()
        w.writerow(_row(file="a.png", amount="1", amount_source="ocr"))
        w.writerow(_row(file="b.png", amount="1", amount_source="ocr",
                        amount_confidence="x", confirmed_by="y"))
        w.writerow(_row(file="c.png", amount="1", amount_source="ocr",
                        amount_confidence="0.9", confirmed_by="y", note="checked",
                        registration_number="T7000012050002"))
    a, b, c = read_manifest(path)
    assert a.rejection is not None and a.rejection.code == "NOT_CONFIRMED"
    assert b.rejection is not None and b.rejection.code == "BAD_CONFIDENCE"
    assert c.rejection is None
    assert c.field_provenance["amount"].confirmed_by == "y"
    assert c.registration_number == "T7000012050002" and c.ocr


@pytest.mark.parametrize(("text", "expected"), [
    ("東京ガス", {"東", "京", "ガ", "ス", "東京", "京ガ", "ガス"}),
    ("ａ", {"a"}),
    ("", set()),
])
def test_postings_are_unigrams_and_bigrams(text: str, expected: set[str]) -> None:
    assert grams(normalise_text(text)) == expected


def test_text_normalisation_drops_spaces_and_widths() -> None:
    assert normalise_text("ｶﾞｽ 料金\n６月") == "ガス料金6月"
