"""Japanese dates as printed: western and era forms, the 平成/令和 boundary, full width."""

from __future__ import annotations

from datetime import date

import pytest

from edoc.capture.dates import best_date, era_to_date, find_dates, parse_date_text

CASES = [
    ("2024年6月30日", date(2024, 6, 30)),
    ("2024年 06月 30日(日)", date(2024, 6, 30)),
    ("2024/6/30", date(2024, 6, 30)),
    ("2024-06-30", date(2024, 6, 30)),
    ("2024.6.30", date(2024, 6, 30)),
    ("２０２４年６月３０日", date(2024, 6, 30)),
    ("２０２４／０６／３０", date(2024, 6, 30)),
    ("令和6年6月30日", date(2024, 6, 30)),
    ("令和 6 年 6 月 30 日", date(2024, 6, 30)),
    ("令和６年６月３０日", date(2024, 6, 30)),
    ("R6.6.30", date(2024, 6, 30)),
    ("R06/06/30", date(2024, 6, 30)),
    ("令和元年5月1日", date(2019, 5, 1)),
    ("平成31年4月30日", date(2019, 4, 30)),
    ("H31.4.30", date(2019, 4, 30)),
    ("平成元年1月8日", date(1989, 1, 8)),
    ("昭和64年1月7日", date(1989, 1, 7)),
    ("令和2年2月29日", date(2020, 2, 29)),
    ("20240630", date(2024, 6, 30)),
    ("令和6年6月30晶", date(2024, 6, 30)),   # OCR: 日 read as 晶
    ("2024年6月30", date(2024, 6, 30)),      # or lost
]

REFUSED = [
    "平成31年5月1日",   # 平成 ended on 2019-04-30
    "令和元年4月30日",  # 令和 began on 2019-05-01
    "H31.5.1",
    "昭和64年1月8日",   # 平成 began on 1989-01-08
    "平成元年1月7日",
    "令和5年2月29日",   # 2023 is no leap year
    "2024年2月30日",
    "2024/13/1",
    "1800/1/1",
    "令和0年1月1日",
    "",
    "合計 5,500円",
    "2024年6月301",
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_each_form_parses(text: str, expected: date) -> None:
    assert parse_date_text(text) == expected


@pytest.mark.parametrize("text", REFUSED)
def test_impossible_or_foreign_dates_are_refused(text: str) -> None:
    assert parse_date_text(text) is None


@pytest.mark.parametrize(("era", "year", "month", "day", "expected"), [
    ("令和", 1, 5, 1, date(2019, 5, 1)),
    ("令和", 1, 4, 30, None),
    ("平成", 31, 4, 30, date(2019, 4, 30)),
    ("平成", 31, 5, 1, None),
    ("平成", 32, 1, 1, None),
    ("大正", 15, 12, 24, date(1926, 12, 24)),
    ("大正", 15, 12, 25, None),
    ("天平", 1, 1, 1, None),
])
def test_era_spans(era: str, year: int, month: int, day: int, expected: date | None) -> None:
    assert era_to_date(era, year, month, day) == expected


def test_issue_date_label_beats_deadline_and_order() -> None:
    text = "請求書\nお支払期限 2024年7月31日\n発行日 2024年6月30日\n"
    assert best_date(text) == (date(2024, 6, 30), 0.85)


def test_label_on_the_line_above() -> None:
    found = find_dates("支払期限\n2024/7/31\n2024/6/30")
    assert [f.value for f in found] == [date(2024, 7, 31), date(2024, 6, 30)]
    best = best_date("支払期限\n2024/7/31\n2024/6/30")
    assert best is not None and best[0] == date(2024, 6, 30)


def test_single_date_is_confident_and_none_is_none() -> None:
    assert best_date("領収書\n令和6年6月30日\n合計 ¥5,500") == (date(2024, 6, 30), 0.95)
    assert best_date("合計 ¥5,500") is None
