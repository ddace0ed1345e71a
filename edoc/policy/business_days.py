"""The Japanese calendar edoc counts in: business days, input deadlines, civil periods.

This module owns three things:

* ``BusinessCalendar`` — which days are business days: not Saturday or Sunday, not a national
  holiday (国民の祝日に関する法律 第3条, incl. 振替休日 and 国民の休日, as the maintained
  ``jpholiday`` package computes them) and not a company closed day from ``edoc.toml``.
* ``input_deadline`` / ``input_verdict`` — the scanner-preservation input period of
  電子帳簿保存法施行規則 第2条第6項第1号 (and the same period for electronic transactions,
  施行規則 第4条第1項第2号).
* ``civil_period_end`` — how Japanese law counts periods of months and years (民法 第140条・
  第143条; 国税通則法 第10条第1項 for the tax laws), which both the input-deadline business
  cycle and the retention rules (``edoc.policy.retention``) rely on.

Dates here are Japanese calendar dates: turn an instant into one with ``jst_date``.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

import jpholiday

from edoc.errors import ConfigError, InputError

__all__ = [
    "JST",
    "BusinessCalendar",
    "InputVerdict",
    "civil_anniversary",
    "civil_period_end",
    "input_deadline",
    "input_verdict",
    "jst_date",
    "jst_midnight",
]

#: Japan Standard Time. Japan has had no daylight saving time since 1951, so this is UTC+9.
JST = ZoneInfo("Asia/Tokyo")

#: 施行規則 第2条第6項第1号ロ: the business cycle (業務の処理に係る通常の期間) may be at most
#: two months (取扱通達 4-18).
MAX_CYCLE_MONTHS = 2

#: A calendar with no business day in this many consecutive days is a configuration error
#: (e.g. every day of the year listed as closed), not a reason to loop forever.
_MAX_CLOSED_RUN = 400

InputVerdict = Literal["on-time", "late"]


def jst_date(instant: datetime) -> date:
    """The Japanese calendar date of an aware instant."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"naive datetime {instant.isoformat()} has no time zone")
    return instant.astimezone(JST).date()


def jst_midnight(day: date) -> datetime:
    """00:00 Japan time at the start of ``day``, as an aware UTC instant."""
    return datetime.combine(day, time(0), tzinfo=JST).astimezone(UTC)


def _month_shift(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    shifted_year, month0 = divmod(index, 12)
    return shifted_year, month0 + 1


def civil_anniversary(start: date, *, years: int = 0, months: int = 0) -> date:
    """The first day *after* a period of ``years``/``months`` that begins on ``start``.

    民法 第143条第2項 (国税通則法 第10条第1項第2号・第3号): a period of months or years that
    begins on ``start`` ends on the day before the day of the last month corresponding to
    ``start`` (応当日); when the last month has no such day it ends on that month's last day.
    The day after the end is therefore the corresponding day itself, or the first day of the
    following month when there is none: 2024-02-29 + 1 year -> 2025-03-01, 2024-12-31 +
    2 months -> 2025-03-01.
    """
    if years < 0 or months < 0:
        raise ValueError("periods are counted forwards only")
    year, month = _month_shift(start.year, start.month, years * 12 + months)
    last = calendar.monthrange(year, month)[1]
    if start.day <= last:
        return date(year, month, start.day)
    return date(year, month, last) + timedelta(days=1)


def civil_period_end(start: date, *, years: int = 0, months: int = 0) -> date:
    """The last day of a period of ``years``/``months`` that includes ``start`` as its first day.

    ``start`` must already be the first day that counts: when the law counts "from" an event
    the event day itself is excluded (民法 第140条 初日不算入), so pass the day after it.
    Examples: 2024-04-01 + 7 years ends 2031-03-31; 2024-02-29 + 1 year ends 2025-02-28
    (2025 has no 29 February, so the period ends on the last day of that February);
    2024-09-01 + 2 months ends 2024-10-31.
    """
    return civil_anniversary(start, years=years, months=months) - timedelta(days=1)


@lru_cache(maxsize=8192)
def _is_national_holiday(day: date) -> bool:
    # jpholiday covers 国民の祝日, 振替休日 (第3条第2項) and 国民の休日 (第3条第3項).
    return bool(jpholiday.is_holiday(day))


def _check_month_day(month: int, day: int) -> None:
    if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(2000, month)[1]:
        raise ConfigError(
            f"company closed day ({month}, {day}) is not a calendar month-day",
            code="CONFIG_BAD_CLOSED_DAY",
            hint="closed_annual entries are [month, day] pairs such as [12, 31]",
        )


class BusinessCalendar:
    """Business days for one company: weekdays that are neither holidays nor closed days.

    ``closed_days`` are one-off company closures (specific dates); ``closed_annual`` are
    (month, day) pairs closed every year, e.g. the year-end break (12, 29)…(1, 3).
    """

    def __init__(
        self,
        closed_days: Iterable[date] = (),
        closed_annual: Iterable[tuple[int, int]] = (),
    ) -> None:
        self._closed_days = frozenset(closed_days)
        annual = frozenset((int(m), int(d)) for m, d in closed_annual)
        for month, day in annual:
            _check_month_day(month, day)
        self._closed_annual = annual

    @property
    def closed_days(self) -> frozenset[date]:
        return self._closed_days

    @property
    def closed_annual(self) -> frozenset[tuple[int, int]]:
        return self._closed_annual

    def is_business_day(self, d: date) -> bool:
        """True unless ``d`` is a Saturday, Sunday, national holiday or company closed day."""
        if d.weekday() >= 5:
            return False
        if d in self._closed_days or (d.month, d.day) in self._closed_annual:
            return False
        return not _is_national_holiday(d)

    def add_business_days(self, d: date, n: int) -> date:
        """The ``n``-th business day after ``d``; ``d`` itself never counts (0 returns ``d``).

        Like 民法 第140条, the day of the event is not counted: a document received on a
        business day has its first business day on the next one.
        """
        if n < 0:
            raise ValueError("business days are counted forwards only")
        current = d
        remaining = n
        closed_run = 0
        while remaining:
            current += timedelta(days=1)
            if self.is_business_day(current):
                remaining -= 1
                closed_run = 0
            else:
                closed_run += 1
                if closed_run > _MAX_CLOSED_RUN:
                    last_open = current - timedelta(days=closed_run)
                    raise ConfigError(
                        f"no business day in the {closed_run} days after {last_open}",
                        code="CONFIG_NO_BUSINESS_DAYS",
                        hint="check the company closed days in edoc.toml",
                    )
        return current

    def business_days_between(self, start: date, end: date) -> int:
        """How many business days lie after ``start`` up to and including ``end`` (0 if none)."""
        count = 0
        current = start
        while current < end:
            current += timedelta(days=1)
            if self.is_business_day(current):
                count += 1
        return count


def input_deadline(
    received: date,
    *,
    business_days: int,
    cycle_months: int = 0,
    calendar: BusinessCalendar,
) -> date:
    """The last day on which a document received on ``received`` may still be input.

    電子帳簿保存法施行規則 第2条第6項第1号: input either 速やかに after receipt (イ), or
    速やかに after the business cycle (業務の処理に係る通常の期間) has passed (ロ, only with
    internal rules that fix the cycle). 取扱通達 4-17/4-18 read 速やかに as おおむね7営業日以内
    and cap the cycle at two months.

    Conservative reading: "おおむね" (about) is not stretched — the deadline is exactly
    ``business_days`` business days after the base day, never one more.

    With ``cycle_months`` the base day is the last day of a ``cycle_months`` period counted
    from the day after receipt (民法 第140条・第143条, so month ends stay month ends:
    received 2025-02-28 + 2 months -> 2025-04-30); the business days follow that day.
    """
    if business_days < 1:
        raise ConfigError(
            f"input deadline of {business_days} business days; a profile needs at least 1",
            code="PROFILE_BAD_DEADLINE",
        )
    if not 0 <= cycle_months <= MAX_CYCLE_MONTHS:
        raise ConfigError(
            f"business cycle of {cycle_months} months; 施行規則 第2条第6項第1号ロ allows "
            f"0 to {MAX_CYCLE_MONTHS}",
            code="PROFILE_BAD_DEADLINE",
        )
    base = received
    if cycle_months:
        base = civil_period_end(received + timedelta(days=1), months=cycle_months)
    return calendar.add_business_days(base, business_days)


def input_verdict(received: date, ingested: date, deadline: date) -> InputVerdict:
    """``"on-time"`` if ``ingested`` is on or before ``deadline``, else ``"late"``.

    ``ingested`` should be the Japan date of the record's official time (the TSA genTime),
    since that is what proves the input happened within the period.
    """
    if received > ingested:
        raise InputError(
            f"received date {received.isoformat()} is after the ingest date "
            f"{ingested.isoformat()}; a document cannot be input before it was received",
            code="RECEIVED_AFTER_INGEST",
            hint="check --received (Japan date, YYYY-MM-DD)",
        )
    return "on-time" if ingested <= deadline else "late"
