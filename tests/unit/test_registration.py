"""The 登録番号 (T-number): shape, normalisation, and the 法人番号 check digit (省令 第2条)."""

from __future__ import annotations

import dataclasses
from itertools import cycle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edoc.policy.registration import (
    REGISTRATION_CHECK_DIGIT,
    REGISTRATION_NUMBER_INVALID,
    check_registration_number,
    corporate_check_digit,
    normalise_registration_number,
)
from tests.einvoice_samples import CORPORATE_NUMBER_NTA


def independent_check_digit(twelve: str) -> int:
    """The formula written the other way round, as a cross-check: read left to right, the
    twelve digits' weights alternate 2, 1, 2, 1 … (the left-most is n = 12, even, so Q = 2)."""
    weighted = sum(int(d) * w for d, w in zip(twelve, cycle((2, 1)), strict=False))
    return 9 - weighted % 9


#: "T7000012050002" in full-width characters (U+FF34, U+FF10…), as a clerk's IME types it.
FULL_WIDTH_NTA = "".join(chr(ord(c) + 0xFEE0) for c in "T" + CORPORATE_NUMBER_NTA)
assert FULL_WIDTH_NTA[0] == "Ｔ" and len(FULL_WIDTH_NTA) == 14


#: Twelve-digit bodies chosen to cover the edge cases: all zeros (sum 0 → check 9), all nines,
#: a sum that is a multiple of 9, and ordinary numbers.
BODIES = [
    "000000000000",
    "999999999999",
    "000012050002",  # 国税庁
    "180301018771",
    "123456789012",
    "000000000009",
    "900000000000",
    "010101010101",
    "101010101010",
]


@pytest.mark.parametrize("body", BODIES)
def test_check_digit_matches_independent_formula(body: str) -> None:
    digit = corporate_check_digit(body)
    assert digit == independent_check_digit(body)
    assert 1 <= digit <= 9
    result = check_registration_number(f"T{digit}{body}")
    assert result.format_ok and result.check_digit_ok is True and result.findings == ()


@pytest.mark.parametrize(
    "number",
    [
        CORPORATE_NUMBER_NTA,  # 国税庁 (National Tax Agency)
        "1180301018771",  # トヨタ自動車株式会社, as published on the 法人番号公表サイト
    ],
)
def test_known_corporate_numbers_are_valid(number: str) -> None:
    result = check_registration_number("T" + number)
    assert result.ok
    assert result.number == "T" + number
    assert result.normalised is False
    assert corporate_check_digit(number[1:]) == int(number[0])


def test_check_digit_worked_example_nta() -> None:
    # 000012050002 from the right: 2·1 + 5·1 (n=5) + 2·1 (n=7) + 1·2 (n=8) = 11; 11 mod 9 = 2.
    assert corporate_check_digit("000012050002") == 9 - 2 == 7


@given(st.text(alphabet="0123456789", min_size=12, max_size=12))
def test_every_body_gets_exactly_one_valid_check_digit(body: str) -> None:
    valid = [d for d in "0123456789" if check_registration_number(f"T{d}{body}").ok]
    assert valid == [str(independent_check_digit(body))]


@pytest.mark.parametrize(
    ("raw", "number"),
    [
        (FULL_WIDTH_NTA, "T7000012050002"),  # full-width letter and digits
        ("t7000012050002", "T7000012050002"),  # lower-case t
        ("ｔ7000012050002", "T7000012050002"),  # full-width lower-case t
        ("  T7000012050002\n", "T7000012050002"),  # outer white space (XML text)
    ],
)
def test_normalised_input_is_accepted_and_says_so(raw: str, number: str) -> None:
    result = check_registration_number(raw)
    assert result.number == number
    assert result.normalised is True
    assert result.raw == raw
    assert result.format_ok and result.check_digit_ok is True


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "T",
        "7000012050002",  # no T
        "T700001205000",  # 12 digits
        "T70000120500021",  # 14 digits
        "T70000120500O2",  # letter O for zero
        "TT000012050002",
        "T7000-0120-50002",  # hyphens are not guessed away
        "T 7000012050002",  # inner space
        "X7000012050002",
        "T٧٠٠٠٠١٢٠٥٠٠٠٢",  # Arabic-Indic digits: \d would match, [0-9] must not
        "T7000012050002" + "0" * 1000,
    ],
)
def test_bad_shape_is_invalid_and_has_no_check_digit_verdict(raw: str) -> None:
    result = check_registration_number(raw)
    assert result.format_ok is False
    assert result.check_digit_ok is None
    assert [f.code for f in result.findings] == [REGISTRATION_NUMBER_INVALID]
    assert len(result.findings[0].message) < 120  # a hostile input cannot flood the message


@pytest.mark.parametrize("wrong", ["0", "1", "8", "9"])
def test_wrong_check_digit_is_a_warning(wrong: str) -> None:
    result = check_registration_number(f"T{wrong}000012050002")
    assert result.format_ok is True
    assert result.check_digit_ok is False
    assert not result.ok
    (finding,) = result.findings
    assert finding.code == REGISTRATION_CHECK_DIGIT
    assert finding.severity == "warning"
    assert "sole trader" in finding.message and "7" in finding.message


def test_result_is_frozen() -> None:
    result = check_registration_number("T" + CORPORATE_NUMBER_NTA)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.number = "T0"  # type: ignore[misc]


def test_normalise_keeps_inner_characters() -> None:
    assert normalise_registration_number("ｔ１２３－４") == "T123-4"


@pytest.mark.parametrize(
    "bad", ["", "12345678901", "1234567890123", "12345678901a", "١٢٣٤٥٦٧٨٩٠١٢"]
)
def test_check_digit_needs_twelve_ascii_digits(bad: str) -> None:
    with pytest.raises(ValueError, match="12 ASCII digits"):
        corporate_check_digit(bad)
