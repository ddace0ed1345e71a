"""Business days, input deadlines and civil period counting (edoc.policy.business_days).

Expected dates are worked out by hand from the 2024/2025 calendars in the comments, not
copied from the implementation.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import jpholiday
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edoc.errors import ConfigError, InputError
from edoc.policy.business_days import (
    BusinessCalendar,
    civil_anniversary,
    civil_period_end,
    input_deadline,
    input_verdict,
    jst_date,
    jst_midnight,
)

PLAIN = BusinessCalendar()
YEAR_END = BusinessCalendar(closed_annual=[(12, 29), (12, 30), (12, 31), (1, 2), (1, 3)])


# --------------------------------------------------------------------------- calendar


def test_weekends_holidays_and_substitute_holidays_are_closed() -> None:
    assert PLAIN.is_business_day(date(2025, 4, 28))  # Monday
    assert not PLAIN.is_business_day(date(2025, 4, 26))  # Saturday
    assert not PLAIN.is_business_day(date(2025, 4, 27))  # Sunday
    assert not PLAIN.is_business_day(date(2025, 4, 29))  # 昭和の日 (Tuesday)
    # 天皇誕生日 2025-02-23 is a Sunday, so Monday 2025-02-24 is a 振替休日.
    assert not PLAIN.is_business_day(date(2025, 2, 24))
    # 2026-09-22 lies between 敬老の日 (21st) and 秋分の日 (23rd): 国民の休日.
    assert not PLAIN.is_business_day(date(2026, 9, 22))


def test_company_closed_days() -> None:
    cal = BusinessCalendar(closed_days=[date(2025, 8, 13)], closed_annual=[(12, 31)])
    assert not cal.is_business_day(date(2025, 8, 13))
    assert cal.is_business_day(date(2026, 8, 13))  # one-off closures do not recur
    assert not cal.is_business_day(date(2025, 12, 31))
    assert not cal.is_business_day(date(2026, 12, 31))
    assert PLAIN.is_business_day(date(2025, 12, 31))


def test_received_day_never_counts_and_zero_is_identity() -> None:
    assert PLAIN.add_business_days(date(2025, 6, 2), 1) == date(2025, 6, 3)
    assert PLAIN.add_business_days(date(2025, 6, 2), 0) == date(2025, 6, 2)
    with pytest.raises(ValueError):
        PLAIN.add_business_days(date(2025, 6, 2), -1)


def test_bad_closed_month_day_is_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        BusinessCalendar(closed_annual=[(2, 30)])
    assert info.value.code == "CONFIG_BAD_CLOSED_DAY"
    assert info.value.exit_code == 2
    BusinessCalendar(closed_annual=[(2, 29)])  # a real day in leap years


def test_calendar_without_business_days_fails_instead_of_looping() -> None:
    every_day = [(m, d) for m in range(1, 13) for d in range(1, 32) if _valid(m, d)]
    with pytest.raises(ConfigError) as info:
        BusinessCalendar(closed_annual=every_day).add_business_days(date(2025, 1, 1), 1)
    assert info.value.code == "CONFIG_NO_BUSINESS_DAYS"


def _valid(month: int, day: int) -> bool:
    try:
        date(2024, month, day)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- deadlines


def test_golden_week_2025() -> None:
    # Received Mon 04-28. 04-29 昭和の日; business 04-30 (1), 05-01 (2), 05-02 (3);
    # 05-03..05-06 憲法記念日, みどりの日, こどもの日, 振替休日; 05-07 (4), 05-08 (5),
    # 05-09 (6); weekend; 05-12 (7).
    assert input_deadline(date(2025, 4, 28), business_days=7, calendar=PLAIN) == date(2025, 5, 12)


def test_new_year_without_company_closed_days() -> None:
    # Received Fri 2024-12-27. 12-30 (1), 12-31 (2), 01-01 元日, 01-02 (3), 01-03 (4),
    # 01-06 (5), 01-07 (6), 01-08 (7).
    assert input_deadline(date(2024, 12, 27), business_days=7, calendar=PLAIN) == date(2025, 1, 8)


def test_new_year_with_company_closed_days() -> None:
    # Closed 12-29..01-03: 01-06 (1), 01-07 (2), 01-08 (3), 01-09 (4), 01-10 (5),
    # 01-13 成人の日, 01-14 (6), 01-15 (7).
    got = input_deadline(date(2024, 12, 27), business_days=7, calendar=YEAR_END)
    assert got == date(2025, 1, 15)


def test_substitute_holiday() -> None:
    # Received Fri 2025-02-21; 02-24 is the 振替休日 for 天皇誕生日 on Sunday 02-23.
    assert input_deadline(date(2025, 2, 21), business_days=1, calendar=PLAIN) == date(2025, 2, 25)
    # 02-25 (1) .. 02-28 (4), 03-03 (5), 03-04 (6), 03-05 (7).
    assert input_deadline(date(2025, 2, 21), business_days=7, calendar=PLAIN) == date(2025, 3, 5)


def test_friday_receipt_without_holidays() -> None:
    # June 2025 has no national holiday: 06-09..06-13 (1-5), 06-16 (6), 06-17 (7).
    assert input_deadline(date(2025, 6, 6), business_days=7, calendar=PLAIN) == date(2025, 6, 17)


def test_receipt_on_a_holiday() -> None:
    # Received on 昭和の日 2025-04-29 itself: 04-30 is the first business day after it.
    assert input_deadline(date(2025, 4, 29), business_days=1, calendar=PLAIN) == date(2025, 4, 30)


def test_business_cycle_keeps_month_ends() -> None:
    # Received 2025-02-28 (a month end): two months counted from 03-01 end 04-30, not
    # 04-28. Then 05-01 (1), 05-02 (2), Golden Week, 05-07 (3) .. 05-09 (5), 05-12 (6),
    # 05-13 (7).
    got = input_deadline(date(2025, 2, 28), business_days=7, cycle_months=2, calendar=PLAIN)
    assert got == date(2025, 5, 13)


def test_business_cycle_into_a_short_month() -> None:
    # Received 2024-12-30: two months from 12-31 have no 31 February, so they end on
    # 2025-02-28 (Fri). Then 03-03 (1) .. 03-07 (5), 03-10 (6), 03-11 (7).
    got = input_deadline(date(2024, 12, 30), business_days=7, cycle_months=2, calendar=PLAIN)
    assert got == date(2025, 3, 11)


def test_business_cycle_mid_month() -> None:
    # Received 2024-04-15, one-month cycle ends 2024-05-15 (Wed): 05-16 (1), 05-17 (2),
    # 05-20 (3) .. 05-24 (7).
    got = input_deadline(date(2024, 4, 15), business_days=7, cycle_months=1, calendar=PLAIN)
    assert got == date(2024, 5, 24)


@pytest.mark.parametrize(("business_days", "cycle_months"), [(0, 0), (-1, 0), (7, 3), (7, -1)])
def test_bad_deadline_settings(business_days: int, cycle_months: int) -> None:
    with pytest.raises(ConfigError) as info:
        input_deadline(
            date(2025, 6, 6),
            business_days=business_days,
            cycle_months=cycle_months,
            calendar=PLAIN,
        )
    assert info.value.code == "PROFILE_BAD_DEADLINE"


def test_input_verdict() -> None:
    received, deadline = date(2025, 4, 28), date(2025, 5, 12)
    assert input_verdict(received, received, deadline) == "on-time"
    assert input_verdict(received, deadline, deadline) == "on-time"
    assert input_verdict(received, deadline + timedelta(days=1), deadline) == "late"
    with pytest.raises(InputError) as info:
        input_verdict(date(2025, 5, 1), date(2025, 4, 30), deadline)
    assert info.value.code == "RECEIVED_AFTER_INGEST"
    assert info.value.exit_code == 1


# --------------------------------------------------------------------------- Japan time


def test_jst_date_and_midnight() -> None:
    # 15:30 UTC is 00:30 the next day in Tokyo.
    assert jst_date(datetime(2024, 3, 31, 15, 30, tzinfo=UTC)) == date(2024, 4, 1)
    assert jst_date(datetime(2024, 3, 31, 14, 59, tzinfo=UTC)) == date(2024, 3, 31)
    assert jst_midnight(date(2024, 4, 1)) == datetime(2024, 3, 31, 15, 0, tzinfo=UTC)
    with pytest.raises(ValueError):
        jst_date(datetime(2024, 4, 1))  # naive


# --------------------------------------------------------------------------- civil periods


def test_civil_period_examples() -> None:
    assert civil_period_end(date(2024, 4, 1), years=7) == date(2031, 3, 31)
    assert civil_period_end(date(2023, 9, 1), months=2) == date(2023, 10, 31)
    assert civil_period_end(date(2024, 3, 1), months=2) == date(2024, 4, 30)
    # No 31 February: the period ends on the last day of February.
    assert civil_period_end(date(2023, 12, 31), months=2) == date(2024, 2, 29)
    assert civil_anniversary(date(2023, 12, 31), months=2) == date(2024, 3, 1)
    # Leap-day start: kept through 28 February in common and leap target years alike.
    assert civil_period_end(date(2024, 2, 29), years=1) == date(2025, 2, 28)
    assert civil_period_end(date(2024, 2, 29), years=4) == date(2028, 2, 28)


# --------------------------------------------------------------------------- properties


def _oracle_open(d: date, closed_annual: frozenset[tuple[int, int]]) -> bool:
    return d.weekday() < 5 and not jpholiday.is_holiday(d) and (d.month, d.day) not in closed_annual


days_2000s = st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31))
closures = st.sampled_from(
    [frozenset(), frozenset({(12, 29), (12, 30), (12, 31), (1, 2), (1, 3)}), frozenset({(8, 15)})]
)


@settings(max_examples=150, deadline=None)
@given(received=days_2000s, n=st.integers(1, 20), cycle=st.integers(0, 2), closed=closures)
def test_deadline_properties(
    received: date, n: int, cycle: int, closed: frozenset[tuple[int, int]]
) -> None:
    cal = BusinessCalendar(closed_annual=closed)
    deadline = input_deadline(received, business_days=n, cycle_months=cycle, calendar=cal)
    assert deadline > received
    assert _oracle_open(deadline, closed)
    base = received if cycle == 0 else civil_period_end(received + timedelta(days=1), months=cycle)
    assert base >= received
    # Exactly n business days in (base, deadline], the last of them being the deadline.
    between = [
        base + timedelta(days=i)
        for i in range(1, (deadline - base).days + 1)
        if _oracle_open(base + timedelta(days=i), closed)
    ]
    assert len(between) == n
    assert between[-1] == deadline
    assert cal.business_days_between(base, deadline) == n


@settings(max_examples=200, deadline=None)
@given(start=days_2000s, years=st.integers(1, 30))
def test_year_period_ends_the_day_before_the_same_month_day(start: date, years: int) -> None:
    end = civil_period_end(start, years=years)
    if (start.month, start.day) == (2, 29):
        # 民法 第143条第2項: no corresponding day, or the day before 29 February: 28 February.
        assert end == date(start.year + years, 2, 28)
    else:
        assert end == date(start.year + years, start.month, start.day) - timedelta(days=1)


@settings(max_examples=200, deadline=None)
@given(start=days_2000s, months=st.integers(1, 36))
def test_month_period_end_is_before_the_corresponding_day_or_at_month_end(
    start: date, months: int
) -> None:
    end = civil_period_end(start, months=months)
    after = end + timedelta(days=1)
    index = start.year * 12 + start.month - 1 + months
    target_year, target_month = divmod(index, 12)
    if after.day == start.day:
        assert (after.year, after.month - 1) == (target_year, target_month)
    else:
        # The target month is shorter than start.day: the period ends on its last day.
        assert (end.year, end.month - 1) == (target_year, target_month)
        assert after.day == 1
        assert end.day < start.day
