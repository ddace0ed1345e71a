"""The 取引金額: the total line, never the subtotal or the tax line."""

from __future__ import annotations

import pytest

from edoc.capture.amounts import best_amount, parse_amount_text

CASES = [
    ("合計 ¥5,500", 5500),
    ("合計　￥５，５００", 5500),
    ("合計 5,500円", 5500),
    ("合計 ¥5,500-", 5500),
    ("合計\\5,500", 5500),              # OCR reads ¥ as a backslash
    ("合計 ¥5.500", 5500),              # and a comma as a dot
    ("ご請求金額 ¥110,000-", 110000),
    ("領収金額 ¥3,300", 3300),
    ("税込合計 1,080円", 1080),
    ("お支払金額 ¥12,345", 12345),
    ("合計 3点 ¥5,500", 5500),          # the marked number, not the count
    ("ご請求金額\n¥ 22,000 -", 22000),  # label alone, figure below
    ("小計 ¥5,000\n消費税 ¥500\n合計 ¥5,500", 5500),
    ("合計 ¥5,500\n10%対象 ¥5,000\n内消費税 ¥500", 5500),
    ("合計 ¥5,500\nお預り ¥10,000\nお釣り ¥4,500", 5500),
    ("ご請求金額 ¥33,000\n合計 ¥30,000", 33000),   # ご請求金額 outranks 合計
    ("税込 ¥1,100", 1100),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_total_is_found(text: str, expected: int) -> None:
    found = best_amount(text)
    assert found is not None and found[0] == expected


@pytest.mark.parametrize("text", [
    "小計 ¥5,000",
    "消費税 ¥500",
    "税額 ¥500",
    "10%対象 ¥5,000",
    "お預り ¥10,000",
    "電話 03-1234-5678",
    "",
])
def test_no_total_on_excluded_lines(text: str) -> None:
    assert best_amount(text) is None


def test_unreadable_label_falls_back_to_the_largest_marked_amount() -> None:
    text = "HUN BA ¥7,384-\n小計 ¥6,713\n消費税 ¥671\nお預り ¥10,000\nTEL 03-1234-5678"
    assert best_amount(text) == (7384, 0.4)


def test_conflicting_totals_lower_the_confidence() -> None:
    one = best_amount("合計 ¥5,500")
    two = best_amount("合計 ¥5,500\n合計 ¥6,600")
    assert one is not None and two is not None
    assert one[1] == 0.95 and two[1] < one[1]


@pytest.mark.parametrize(("text", "expected"), [
    ("5500", 5500), ("¥5,500", 5500), ("5500円", 5500), ("５５００", 5500),
    ("5,500-", 5500), ("abc", None), ("55 00", None), ("", None),
])
def test_parse_amount_text(text: str, expected: int | None) -> None:
    assert parse_amount_text(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    # OCR garbled the ご請求金額; 小計 + 消費税 agree with the 合計 line
    ("ご請求金額 \\1 ,/15,692-\n小計 ¥1,614,266\n消費税(10%) ¥161,426\n合計 \\1.775,692",
     (1775692, 0.97)),
    ("ご請求金額 ¥829-\n小計 ¥754\n消費税(10%) ¥75\n合計 ¥829", (829, 0.97)),
    # tax included (内税): the total is the subtotal
    ("合計 ¥5,000\n小計 ¥5,000\n(内消費税 ¥454)", (5000, 0.97)),
    # nothing agrees with the only total: kept, but the person is told to look
    ("領収金額 ¥15,692-\n小計 ¥1,614,266\n消費税 ¥161,426", (15692, 0.5)),
])
def test_subtotal_and_tax_check_the_total(text: str, expected: tuple[int, float]) -> None:
    assert best_amount(text) == expected
