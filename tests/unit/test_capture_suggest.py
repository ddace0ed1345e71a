"""T-numbers in text, suggestions from text and file names, and the source order."""

from __future__ import annotations

import pytest

from edoc.capture.suggest import Suggestion, from_filename, from_text, merge
from edoc.capture.text import DocumentText
from edoc.capture.tnumber import NumberFound, best_registration_number, find_registration_numbers

VALID = "T6010401006754"      # 法人番号 check digit 6 holds
BAD_CHECK = "T8010401006754"  # same digits, wrong check digit


@pytest.mark.parametrize(("text", "expected"), [
    (f"登録番号 {VALID}", VALID),
    ("登録番号:T6010401006754", VALID),
    ("登録番号 Ｔ６０１０４０１００６７５４", VALID),
    ("登録番号 T6-0104-0100-6754", VALID),
    ("登録番号 T 6010 4010 0675 4", VALID),
])
def test_t_number_forms(text: str, expected: str) -> None:
    found = best_registration_number(text)
    assert found is not None and found[0] == expected and found[1] >= 0.9


@pytest.mark.parametrize(("text", "expected", "confidence"), [
    ("登録番号16010401006754", VALID, 0.97),     # the T read as a 1
    ("登録番号 6010401006754", VALID, 0.97),     # the T lost
    ("登録番号T601040100675g", None, None),      # g: 9 or 8, and neither checks
    ("登録番号T6O10401006754", VALID, 0.8),      # O for 0, resolved by the check digit
    ("登録番号T7179170236508", "T7179170236508", 0.97),
    ("登録番号T717917023650g", "T7179170236508", 0.8),  # g for 8: only 8 checks
    ("T6OlO4O1OO6754", None, None),              # too many letters to resolve safely
])
def test_ocr_slips_resolved_by_the_check_digit(text: str, expected: str | None,
                                                confidence: float | None) -> None:
    found = best_registration_number(text)
    assert found == (None if expected is None else (expected, confidence))


def test_bad_check_digit_is_proposed_with_low_confidence() -> None:
    assert best_registration_number(f"登録番号 {BAD_CHECK}") == (BAD_CHECK, 0.4)
    # a valid one elsewhere on the page wins
    found = best_registration_number(f"{BAD_CHECK}\n{VALID}")
    assert found is not None and found[0] == VALID


@pytest.mark.parametrize("text", ["T601040100675", "T60104010067541", "AT6010401006754",
                                  "電話 0601040100675"])
def test_not_a_t_number(text: str) -> None:
    assert find_registration_numbers(text) == []


def test_found_numbers_say_whether_repaired() -> None:
    assert find_registration_numbers(f"{VALID}\n{VALID}") == [NumberFound(VALID, True, False)]


RECEIPT = "\n".join([
    "領収書", "山田商事株式会社 御中", "令和6年6月30日", "小計 ¥5,000", "消費税 ¥500",
    "合計 ¥5,500", "株式会社東京ガス", "東京都港区海岸1-5-20", f"登録番号 {VALID}"])


def test_from_pdf_text() -> None:
    got = from_text(DocumentText(RECEIPT, "pdf-text", 1, None))
    assert {k: v.value for k, v in got.items()} == {
        "doc_type": "receipt", "date": "2024-06-30", "amount": "5500",
        "counterparty": "株式会社東京ガス", "registration_number": VALID}
    assert {v.source for v in got.values()} == {"pdf-text"}
    assert got["amount"].confidence == 0.97  # 小計 + 消費税 agree with the 合計


def test_ocr_confidence_scales_the_suggestion() -> None:
    got = from_text(DocumentText(RECEIPT, "ocr", 1, 0.5))
    assert got["amount"] == Suggestion("5500", "ocr", 0.485)


@pytest.mark.parametrize(("name", "expected"), [
    ("2024-06-30_株式会社東京ガス_5500.pdf",
     {"date": "2024-06-30", "counterparty": "株式会社東京ガス", "amount": "5500"}),
    (f"請求書_20240630_{VALID}.pdf",
     {"doc_type": "invoice", "date": "2024-06-30", "registration_number": VALID}),
    ("領収書株式会社東京ガス 令和6年6月30日 ¥5,500.jpg",
     {"doc_type": "receipt", "counterparty": "株式会社東京ガス", "date": "2024-06-30",
      "amount": "5500"}),
    ("scan0001.png", {}),
])
def test_from_filename(name: str, expected: dict[str, str]) -> None:
    got = from_filename(name)
    assert {k: v.value for k, v in got.items()} == expected
    assert all(v.source == "filename" for v in got.values())


def test_merge_takes_each_field_from_the_first_source() -> None:
    einvoice = {"amount": Suggestion("5500", "einvoice", 1.0)}
    ocr = {"amount": Suggestion("5000", "ocr", 0.8), "date": Suggestion("2024-06-30", "ocr", 0.8)}
    name = {"date": Suggestion("2024-06-01", "filename", 0.6),
            "counterparty": Suggestion("株式会社A", "filename", 0.6)}
    got = merge(einvoice, ocr, name)
    assert got == {"amount": einvoice["amount"], "date": ocr["date"],
                   "counterparty": name["counterparty"]}
