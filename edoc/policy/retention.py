"""Statutory retention: which rule keeps a record how long, and until which instant.

This module owns the retention rules (ids, legal basis, start points), ISO 8601 durations
for custom and test profiles, and the decision that combines them. It computes; it never
stores or deletes anything.

Conventions (REQUIREMENTS.md "Retention periods"):

* ``retain_until = start + N years - 1 day``, counted as Japanese law counts periods
  (民法 第143条; 国税通則法 第10条第1項): the period ends on the day before the day of the last
  year that corresponds to ``start``; when that year has no such day (a 29 February start)
  it ends on the last day of the month. So a 29 February start is kept through 28 February
  N years later whether or not that year is a leap year
  (``edoc.policy.business_days.civil_period_end``).
* ``start`` is the first day that counts. Where a law counts "from" an event (completion,
  book closing, delivery) the event day itself is not counted (民法 第140条 初日不算入), so the
  start is the day after it.
* Dates are Japanese calendar dates (Asia/Tokyo). A record is kept through the whole of its
  last day; ``until_at`` — the instant after which disposal is allowed — is 00:00 JST of the
  day after ``retain_until``, as an aware UTC datetime.
* Several rules: the latest ``until_at`` wins. Retention may be extended later (a loss year
  found after filing), never shortened: see ``extend``.

Not legal advice: every reading chosen here is the one that keeps records longer.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType

from edoc.errors import ConfigError, InputError
from edoc.policy.business_days import JST, civil_anniversary, jst_date, jst_midnight

__all__ = [
    "BASE_RULE",
    "ENTITY_TYPES",
    "RULES",
    "Duration",
    "RetentionDecision",
    "RetentionFacts",
    "RuleOutcome",
    "RuleSpec",
    "apply_duration",
    "apply_rule",
    "decide",
    "extend",
    "is_known_rule",
    "parse_duration",
]

#: 法人税法 第75条の2: the filing deadline may be extended by one month, or by up to four
#: months where an accounting auditor's audit or similar requires it.
MAX_EXTENSION_MONTHS = 4

#: The ``rule`` name of an outcome computed from a plain profile duration.
DURATION_RULE = "duration"

#: Who keeps the records (``[archive] entity`` in edoc.toml): a company (法人) or a sole
#: proprietor (個人事業主). The entity decides which tax law's retention is the base rule.
ENTITY_TYPES = ("corporation", "individual")

#: The base tax retention rule of each entity type: 法人税法施行規則 第59条 (青色申告法人) /
#: 第67条 (other corporations) for a corporation; 所得税法施行規則 第63条 (青色申告者) /
#: 第102条 (other individuals) for an individual. Profiles name it per entity
#: (``[retention.corporation]`` / ``[retention.individual]``); this table is what doctor shows.
BASE_RULE: Mapping[str, str] = MappingProxyType(
    {"corporation": "corporate-tax", "individual": "income-tax"})


# --------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class RetentionFacts:
    """What is known about a record that the retention rules need.

    Every field except ``ingested_at`` is optional; a rule that needs a missing one raises
    ``InputError`` (``RETENTION_INPUT_MISSING``) naming the flag that supplies it.
    """

    #: Aware UTC; its Asia/Tokyo date is the "ingest date".
    ingested_at: datetime
    transaction_date: date | None = None
    #: ``--fiscal-year-end``
    fiscal_year_end: date | None = None
    #: Archive default from edoc.toml, e.g. (3, 31): the fiscal year ends on the first such
    #: date on or after the transaction date (or the ingest date). (2, 29) means the last day
    #: of February (28 February in common years).
    fiscal_year_end_md: tuple[int, int] | None = None
    #: ``--extension-months`` (申告期限の延長, 法人税法 第75条の2)
    extension_months: int = 0
    #: ``--loss-year`` (欠損金: 10 years, 法人税法施行規則 第26条の3; FY from 2018-04-01)
    loss_year: bool = False
    #: ``--tax-year`` (income tax)
    tax_year: int | None = None
    #: ``--period-end`` (consumption-tax taxable period end)
    period_end: date | None = None
    #: ``--closing-date`` (会社法 book closing)
    closing_date: date | None = None
    #: ``--completed`` (completion event: retirement, last entry, end of treatment, delivery)
    completed: date | None = None
    #: ``[archive] entity``: an individual's taxable period is the calendar year
    #: (消費税法 第19条第1項第1号), a corporation's its fiscal year.
    entity: str = "corporation"

    def __post_init__(self) -> None:
        if self.ingested_at.tzinfo is None or self.ingested_at.utcoffset() is None:
            raise InputError(
                f"ingest time {self.ingested_at.isoformat()} has no time zone; "
                "an aware UTC instant is required",
                code="RETENTION_INPUT_INVALID",
            )
        if not 0 <= self.extension_months <= MAX_EXTENSION_MONTHS:
            raise InputError(
                f"--extension-months {self.extension_months}; 法人税法 第75条の2 allows "
                f"0 to {MAX_EXTENSION_MONTHS}",
                code="RETENTION_INPUT_INVALID",
            )
        if self.tax_year is not None and not 1900 <= self.tax_year <= 9000:
            raise InputError(
                f"--tax-year {self.tax_year} is not a plausible calendar year",
                code="RETENTION_INPUT_INVALID",
            )
        if self.entity not in ENTITY_TYPES:
            raise ConfigError(
                f"entity {self.entity!r} is not one of {', '.join(ENTITY_TYPES)}",
                code="CONFIG_INVALID",
            )
        if self.fiscal_year_end_md is not None:
            month, day = self.fiscal_year_end_md
            if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(2000, month)[1]:
                raise ConfigError(
                    f"fiscal_year_end ({month}, {day}) in edoc.toml is not a calendar month-day",
                    code="CONFIG_BAD_FISCAL_YEAR_END",
                    hint='write it as "MM-DD", e.g. "03-31"',
                )

    @property
    def ingest_date(self) -> date:
        """The Japanese calendar date of ``ingested_at``."""
        return jst_date(self.ingested_at)


# --------------------------------------------------------------------------- outcomes


def _iso_utc(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_iso_utc(text: str) -> datetime:
    instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if instant.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return instant.astimezone(UTC)


@dataclass(frozen=True)
class RuleOutcome:
    """What one rule (or one plain duration) decides for one record."""

    rule: str
    #: First day counted (Japan date).
    start: date
    #: ISO 8601 duration, e.g. ``"P7Y"``.
    period: str
    #: Last day kept whole (Japan date); None for sub-day durations.
    retain_until: date | None
    #: Aware UTC instant after which disposal is allowed.
    until_at: datetime
    #: The legal basis (article) the period and start come from.
    basis: str
    #: How ``start`` was derived from the facts, for auditors (e.g. which fiscal-year end).
    derivation: str = ""

    def to_manifest(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "start": self.start.isoformat(),
            "period": self.period,
            "retain_until": None if self.retain_until is None else self.retain_until.isoformat(),
            "until_at": _iso_utc(self.until_at),
            "basis": self.basis,
            "derivation": self.derivation,
        }

    @classmethod
    def from_manifest(cls, data: Mapping[str, object]) -> RuleOutcome:
        retain_until = data.get("retain_until")
        return cls(
            rule=str(data["rule"]),
            start=date.fromisoformat(str(data["start"])),
            period=str(data["period"]),
            retain_until=None if retain_until is None else date.fromisoformat(str(retain_until)),
            until_at=_parse_iso_utc(str(data["until_at"])),
            basis=str(data["basis"]),
            derivation=str(data.get("derivation", "")),
        )


def _winner(outcomes: Sequence[RuleOutcome]) -> RuleOutcome:
    # Latest until_at wins; on a tie prefer an outcome that names a whole last day.
    return max(outcomes, key=lambda o: (o.until_at, o.retain_until is not None))


@dataclass(frozen=True)
class RetentionDecision:
    """The retention of one record: the latest of every rule that applies to it."""

    #: Aware UTC instant after which disposal is allowed (the latest outcome's).
    until_at: datetime
    #: Last day kept whole (Japan date). When only a sub-day duration applies there is no
    #: whole day; it is then the Japan date of ``until_at``.
    retain_until: date
    outcomes: tuple[RuleOutcome, ...]

    @classmethod
    def from_outcomes(cls, outcomes: Sequence[RuleOutcome]) -> RetentionDecision:
        if not outcomes:
            raise ConfigError(
                "no retention rule or duration given; a record needs at least one",
                code="RETENTION_NO_RULE",
                hint="pass --retention RULE or give the profile a [retention] section",
            )
        winner = _winner(outcomes)
        retain_until = winner.retain_until
        if retain_until is None:
            retain_until = jst_date(winner.until_at)
        return cls(until_at=winner.until_at, retain_until=retain_until, outcomes=tuple(outcomes))

    def to_manifest(self) -> dict[str, object]:
        """JSON-ready form for the record manifest (dates ISO 8601, instants UTC with Z)."""
        return {
            "calendar": "Asia/Tokyo",
            "retain_until": self.retain_until.isoformat(),
            "until_at": _iso_utc(self.until_at),
            "rules": [o.to_manifest() for o in self.outcomes],
        }

    @classmethod
    def from_manifest(cls, data: Mapping[str, object]) -> RetentionDecision:
        """Rebuild a decision from ``to_manifest`` output (e.g. during catalog rebuild)."""
        rules = data["rules"]
        if not isinstance(rules, list):
            raise ValueError("retention.rules must be a list")
        outcomes = tuple(RuleOutcome.from_manifest(r) for r in rules)
        decision = cls.from_outcomes(outcomes)
        if _iso_utc(decision.until_at) != _iso_utc(_parse_iso_utc(str(data["until_at"]))):
            raise ValueError("retention.until_at does not match its rules")
        return decision


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class RuleSpec:
    """A statutory retention rule: who says so, how long, counted from when."""

    id: str
    title: str
    #: The article(s) the rule comes from.
    basis: str
    years: int
    #: Human description of the start point.
    start: str
    #: The ``edoc ingest`` flags that supply the rule's facts.
    inputs: tuple[str, ...]


_CORPORATE_TAX_BASIS = (
    "法人税法 第74条第1項・第75条の2 (filing deadline); 法人税法施行規則 第59条第1項 "
    "(7 years from the day after the filing deadline); 法人税法 第57条・同法施行規則 第26条の3 "
    "(10 years for loss years, FYs starting on or after 2018-04-01)"
)

_SPECS: tuple[RuleSpec, ...] = (
    RuleSpec(
        id="corporate-tax",
        title="法人税 books and documents (10 years for a loss year)",
        basis=_CORPORATE_TAX_BASIS,
        years=7,
        start="the day after the filing deadline: fiscal-year end + 2 months (+ extension months)"
        " + 1 day",
        inputs=("--fiscal-year-end", "--extension-months", "--loss-year"),
    ),
    RuleSpec(
        id="income-tax",
        title="所得税 (blue return) books and documents",
        basis="所得税法 第148条第1項; 同法施行規則 第63条第1項 (7 years from the day after "
        "15 March of the following year; a fixed date, not moved by 国税通則法 第10条第2項)",
        years=7,
        start="16 March of the year after the tax year",
        inputs=("--tax-year", "--date"),
    ),
    RuleSpec(
        id="consumption-tax",
        title="消費税 books, invoices and qualified-invoice copies",
        basis="消費税法 第30条第7項・第58条; 同法施行令 第50条第1項・第71条 (7 years from the "
        "day on which two months have passed after the end of the taxable period)",
        years=7,
        start="the day two months after the taxable period ends (period end + 1 day + 2 months)",
        inputs=("--period-end", "--fiscal-year-end"),
    ),
    RuleSpec(
        id="companies-act",
        title="会社法 accounting books and important materials",
        basis="会社法 第432条第2項 (10 years from the closing of the accounting books)",
        years=10,
        start="the day after book closing",
        inputs=("--closing-date", "--fiscal-year-end"),
    ),
    RuleSpec(
        id="labour-standards",
        title="労働基準法 records (roster, wage ledger, hiring and dismissal, …)",
        basis="労働基準法 第109条 (5 years); 同法施行規則 第56条 (start points); 附則 第143条"
        "第1項 allows 3 years for now, edoc keeps the full 5",
        years=5,
        start="the day after the completion event (retirement, death, dismissal, last entry)",
        inputs=("--completed",),
    ),
    RuleSpec(
        id="health-insurance",
        title="健康保険 / 厚生年金保険 records",
        basis="健康保険法施行規則 第34条; 厚生年金保険法施行規則 第28条 (2 years from completion)",
        years=2,
        start="the day after completion",
        inputs=("--completed",),
    ),
    RuleSpec(
        id="medical-charts",
        title="医師法 medical charts (診療録)",
        basis="医師法 第24条第2項 (5 years); 保険医療機関及び保険医療養担当規則 第9条 (from the "
        "completion of treatment)",
        years=5,
        start="the day after the completion of treatment",
        inputs=("--completed",),
    ),
    RuleSpec(
        id="construction",
        title="建設業法 books and attachments",
        basis="建設業法 第40条の3; 同法施行規則 第28条第1項 (5 years from delivery of the work)",
        years=5,
        start="the day after delivery of the work",
        inputs=("--completed",),
    ),
    RuleSpec(
        id="construction-new-home",
        title="建設業法 books for new-home construction contracts with the orderer",
        basis="建設業法 第40条の3; 同法施行規則 第28条第1項 (10 years for contracts with the "
        "orderer to build a new home)",
        years=10,
        start="the day after delivery of the work",
        inputs=("--completed",),
    ),
)

#: Every known rule by id.
RULES: Mapping[str, RuleSpec] = MappingProxyType({spec.id: spec for spec in _SPECS})


def is_known_rule(rule_id: str) -> bool:
    return rule_id in RULES


def _missing(rule_id: str, needs: str, hint: str | None = None) -> InputError:
    return InputError(f"{rule_id} needs {needs}", code="RETENTION_INPUT_MISSING", hint=hint)


def _next_month_day(on_or_after: date, month: int, day: int) -> date:
    """The first (month, day) on or after a date; a day past the month's end means its end."""
    for year in (on_or_after.year, on_or_after.year + 1):
        candidate = date(year, month, min(day, calendar.monthrange(year, month)[1]))
        if candidate >= on_or_after:
            return candidate
    raise AssertionError("unreachable: a month-day recurs within a year")


def _fiscal_year_end(facts: RetentionFacts) -> tuple[date, str] | None:
    if facts.fiscal_year_end is not None:
        return facts.fiscal_year_end, f"fiscal year end {facts.fiscal_year_end} (--fiscal-year-end)"
    if facts.fiscal_year_end_md is not None:
        if facts.transaction_date is not None:
            reference, what = facts.transaction_date, "transaction date"
        else:
            reference, what = facts.ingest_date, "ingest date"
        fy_end = _next_month_day(reference, *facts.fiscal_year_end_md)
        month, day = facts.fiscal_year_end_md
        return fy_end, (
            f"fiscal year end {fy_end} (edoc.toml {month:02d}-{day:02d}, first on or after "
            f"the {what} {reference})"
        )
    return None


def _outcome(rule_id: str, start: date, years: int, basis: str, derivation: str) -> RuleOutcome:
    # retain_until = start + N years - 1 day (民法 第143条): the day before the corresponding
    # day, or the month's last day when there is none. Disposal is allowed from 00:00 JST of
    # the day after, because the whole last day is kept.
    first_day_free = civil_anniversary(start, years=years)
    return RuleOutcome(
        rule=rule_id,
        start=start,
        period=f"P{years}Y",
        retain_until=first_day_free - timedelta(days=1),
        until_at=jst_midnight(first_day_free),
        basis=basis,
        derivation=derivation,
    )


def _corporate_tax(facts: RetentionFacts) -> RuleOutcome:
    found = _fiscal_year_end(facts)
    if found is None:
        raise _missing(
            "corporate-tax",
            "--fiscal-year-end (or fiscal_year_end in edoc.toml)",
            hint="the last day of the fiscal year the document belongs to, e.g. 2024-03-31",
        )
    fy_end, how = found
    months = 2 + facts.extension_months
    # 法人税法 第74条第1項: file within 2 months from the day after the FY end (+ months of a
    # 第75条の2 extension). Counted per 国税通則法 第10条第1項: from FY end + 1 day, ending on
    # the day before the corresponding day, so month ends stay month ends (08-31 -> 10-31,
    # 2024-02-29 -> 04-30). Retention starts the day after the deadline, i.e. on the
    # corresponding day itself. The statutory deadline is used as is: if it falls on a
    # weekend 国税通則法 第10条第2項 moves the filing day, but not this start.
    start = civil_anniversary(fy_end + timedelta(days=1), months=months)
    deadline = start - timedelta(days=1)
    years = 10 if facts.loss_year else 7
    # 法人税法施行規則 第26条の3: 10 years for loss (欠損金) years of FYs starting on or after
    # 2018-04-01 (9 before). edoc keeps 10 for every loss year: longer is never unlawful.
    basis = (
        "法人税法 第57条・同法施行規則 第26条の3 (loss year: 10 years from the day after the "
        "filing deadline)"
        if facts.loss_year
        else "法人税法施行規則 第59条第1項 (7 years from the day after the filing deadline)"
    )
    extension = f" + {facts.extension_months} extension months" if facts.extension_months else ""
    derivation = f"{how}; filing deadline {deadline} (2 months{extension}, 法人税法 第74条)"
    return _outcome("corporate-tax", start, years, basis, derivation)


def _income_tax(facts: RetentionFacts) -> RuleOutcome:
    if facts.tax_year is not None:
        tax_year, how = facts.tax_year, f"tax year {facts.tax_year} (--tax-year)"
    elif facts.transaction_date is not None:
        tax_year = facts.transaction_date.year
        how = f"tax year {tax_year} (year of the transaction date {facts.transaction_date})"
    else:
        raise _missing("income-tax", "--tax-year (or --date, the transaction date)")
    # 所得税法施行規則 第63条第1項: "その年の翌年3月15日の翌日から七年間" — a fixed calendar date.
    start = date(tax_year + 1, 3, 16)
    return _outcome(
        "income-tax",
        start,
        7,
        "所得税法施行規則 第63条第1項 (7 years from the day after 15 March of the following year)",
        how,
    )


def _consumption_tax(facts: RetentionFacts) -> RuleOutcome:
    if facts.period_end is not None:
        period_end, how = facts.period_end, f"taxable period end {facts.period_end} (--period-end)"
    elif facts.entity == "individual":
        # 消費税法 第19条第1項第1号: an individual's taxable period is the calendar year, so
        # it ends on 31 December of the tax year (the transaction's year unless --tax-year).
        if facts.tax_year is not None:
            year, of = facts.tax_year, f"tax year {facts.tax_year} (--tax-year)"
        elif facts.transaction_date is not None:
            year, of = facts.transaction_date.year, f"the transaction date {facts.transaction_date}"
        else:
            raise _missing("consumption-tax", "--period-end (or --tax-year, or --date)")
        period_end = date(year, 12, 31)
        how = f"taxable period end {period_end} (an individual's calendar year: {of})"
    else:
        found = _fiscal_year_end(facts)
        if found is None:
            raise _missing(
                "consumption-tax",
                "--period-end (or --fiscal-year-end, or fiscal_year_end in edoc.toml)",
            )
        period_end, how = found[0], f"taxable period end = {found[1]}"
    # 消費税法施行令 第50条第1項: kept "7 years from the day on which two months have passed
    # from the day after the end of the taxable period". Worked example (REQUIREMENTS.md):
    # calendar 2024 -> period end 2024-12-31; two months counted from 2025-01-01 end on
    # 2025-02-28 (国税通則法 第10条第1項), so the day on which they "have passed" is 2025-03-01,
    # and 2025-03-01 + 7 years - 1 day = 2032-02-29 (2032 is a leap year) — the expected
    # answer. The other candidate start, 2025-02-28 (period end + 2 months), would give
    # 2032-02-27; that reading is wrong. The start is therefore the corresponding day
    # (or the first of the following month when there is none).
    start = civil_anniversary(period_end + timedelta(days=1), months=2)
    return _outcome(
        "consumption-tax",
        start,
        7,
        "消費税法施行令 第50条第1項・第71条 (7 years from the day two months after the taxable "
        "period ends)",
        how,
    )


def _companies_act(facts: RetentionFacts) -> RuleOutcome:
    if facts.closing_date is not None:
        closing, how = facts.closing_date, f"books closed {facts.closing_date} (--closing-date)"
    else:
        found = _fiscal_year_end(facts)
        if found is None:
            raise _missing(
                "companies-act",
                "--closing-date (or --fiscal-year-end, or fiscal_year_end in edoc.toml)",
            )
        closing, how = found[0], f"books closed at the {found[1]}"
    # 会社法 第432条第2項 "閉鎖の時から十年間": the closing day is not counted (民法 第140条).
    return _outcome(
        "companies-act",
        closing + timedelta(days=1),
        10,
        "会社法 第432条第2項 (10 years from book closing)",
        how,
    )


def _from_completion(rule_id: str, event: str) -> Callable[[RetentionFacts], RuleOutcome]:
    spec = RULES[rule_id]

    def apply(facts: RetentionFacts) -> RuleOutcome:
        if facts.completed is None:
            raise _missing(rule_id, f"--completed (the day of {event})")
        # The law counts from the completion day; 民法 第140条 leaves that day out.
        return _outcome(
            rule_id,
            facts.completed + timedelta(days=1),
            spec.years,
            spec.basis,
            f"{event} on {facts.completed} (--completed)",
        )

    return apply


_APPLY: Mapping[str, Callable[[RetentionFacts], RuleOutcome]] = MappingProxyType(
    {
        "corporate-tax": _corporate_tax,
        "income-tax": _income_tax,
        "consumption-tax": _consumption_tax,
        "companies-act": _companies_act,
        "labour-standards": _from_completion(
            "labour-standards", "the completion event (retirement, last entry, …)"
        ),
        "health-insurance": _from_completion("health-insurance", "completion"),
        "medical-charts": _from_completion("medical-charts", "completion of treatment"),
        "construction": _from_completion("construction", "delivery"),
        "construction-new-home": _from_completion("construction-new-home", "delivery"),
    }
)


def apply_rule(rule_id: str, facts: RetentionFacts) -> RuleOutcome:
    """Apply one statutory rule; ``InputError`` (``RETENTION_INPUT_MISSING``) if a fact lacks."""
    apply = _APPLY.get(rule_id)
    if apply is None:
        raise ConfigError(
            f"unknown retention rule {rule_id!r}; known rules: {', '.join(RULES)}",
            code="RETENTION_UNKNOWN_RULE",
        )
    try:
        return apply(facts)
    except (OverflowError, ValueError) as exc:
        raise InputError(
            f"{rule_id}: the dates given run past the calendar ({exc})",
            code="RETENTION_INPUT_INVALID",
        ) from exc


# --------------------------------------------------------------------------- durations

_DURATION_RE = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?"
    r"(?:(?P<seconds>\d+)(?:[.,](?P<fraction>\d{1,6}))?S)?)?"
)

#: Longer than any retention anyone needs, short enough that dates stay in range.
_MAX_DURATION_DAYS = 1000 * 366


@dataclass(frozen=True)
class Duration:
    """An ISO 8601 duration ``P[nY][nM][nW][nD][T[nH][nM][n[.f]S]]`` (ISO 8601-1 §5.5.2.4).

    Years and months are calendar arithmetic in Japan time with month-end clamping
    (2024-01-31 + P1M = 2024-02-29); weeks, days and time are exact.
    """

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0
    microseconds: int = 0

    @property
    def has_date_part(self) -> bool:
        return bool(self.years or self.months or self.weeks or self.days)

    @property
    def exact_part(self) -> timedelta:
        return timedelta(
            weeks=self.weeks,
            days=self.days,
            hours=self.hours,
            minutes=self.minutes,
            seconds=self.seconds,
            microseconds=self.microseconds,
        )

    @property
    def is_sub_day(self) -> bool:
        """Shorter than one day (only possible without years, months, weeks or days)."""
        return not self.has_date_part and self.exact_part < timedelta(days=1)

    def add_to(self, instant: datetime) -> datetime:
        """``instant`` + this duration, as an aware UTC instant."""
        local = instant.astimezone(JST)
        if self.years or self.months:
            year, month0 = divmod(
                local.year * 12 + local.month - 1 + self.years * 12 + self.months, 12
            )
            month = month0 + 1
            day = min(local.day, calendar.monthrange(year, month)[1])
            local = local.replace(year=year, month=month, day=day)
        return local.astimezone(UTC) + self.exact_part

    def isoformat(self) -> str:
        date_part = "".join(
            f"{value}{unit}"
            for value, unit in (
                (self.years, "Y"),
                (self.months, "M"),
                (self.weeks, "W"),
                (self.days, "D"),
            )
            if value
        )
        time_part = "".join(
            f"{value}{unit}" for value, unit in ((self.hours, "H"), (self.minutes, "M")) if value
        )
        if self.seconds or self.microseconds:
            fraction = f".{self.microseconds:06d}".rstrip("0") if self.microseconds else ""
            time_part += f"{self.seconds}{fraction}S"
        return "P" + date_part + ("T" + time_part if time_part else "")

    def __str__(self) -> str:
        return self.isoformat()


def _bad_duration(text: str, why: str) -> ConfigError:
    return ConfigError(
        f"retention duration {text!r} {why}",
        code="PROFILE_BAD_DURATION",
        hint='use ISO 8601, e.g. "P10Y", "P6M", "P30D" or "PT20S"',
    )


def parse_duration(text: str) -> Duration:
    """Parse an ISO 8601 duration; ``ConfigError`` (``PROFILE_BAD_DURATION``) on anything else.

    Only the last component may carry a fraction, and only seconds are accepted with one
    (microsecond precision). Zero and negative durations are refused: a retention period
    must keep the record for some time.
    """
    match = _DURATION_RE.fullmatch(text)
    if match is None or text in ("P", "PT") or text.endswith("T"):
        raise _bad_duration(text, "is not an ISO 8601 duration P[nY][nM][nW][nD][T[nH][nM][nS]]")
    parts = {k: int(v) for k, v in match.groupdict().items() if v is not None and k != "fraction"}
    fraction = match.group("fraction")
    microseconds = int(Decimal("0." + fraction) * 1_000_000) if fraction else 0
    duration = Duration(microseconds=microseconds, **parts)
    if not duration.has_date_part and duration.exact_part == timedelta(0):
        raise _bad_duration(text, "is zero; a retention period must be positive")
    approx_days = (
        duration.years * 366 + duration.months * 31 + duration.exact_part / timedelta(days=1)
    )
    if approx_days > _MAX_DURATION_DAYS:
        raise _bad_duration(text, "is longer than 1000 years")
    return duration


def apply_duration(duration: str, facts: RetentionFacts) -> RuleOutcome:
    """A plain profile duration, counted from the ingest instant.

    ``until_at`` is ``ingested_at + duration`` exactly ("PT20S" expires 20 s after ingest).
    For durations with a date part the same "start + N - 1 day" convention as the statutory
    rules also holds: start = the ingest date, kept through the day before the corresponding
    day (P10Y from ingest date 2024-04-01 keeps through 2034-03-31). Where the two differ
    (a month-end or 29 February start, whose clamped instant falls before the civil period
    end) the later one wins. ``retain_until`` is the last Japan day kept whole; None for a
    sub-day duration, which keeps no whole day.
    """
    parsed = parse_duration(duration)
    start = facts.ingest_date
    try:
        until_at = parsed.add_to(facts.ingested_at)
        if parsed.has_date_part:
            first_day_free = civil_anniversary(
                start, years=parsed.years, months=parsed.months
            ) + timedelta(weeks=parsed.weeks, days=parsed.days)
            until_at = max(until_at, jst_midnight(first_day_free))
    except (OverflowError, ValueError) as exc:
        raise _bad_duration(duration, f"runs past the calendar from {start}") from exc
    retain_until = None if parsed.is_sub_day else jst_date(until_at) - timedelta(days=1)
    return RuleOutcome(
        rule=DURATION_RULE,
        start=start,
        period=parsed.isoformat(),
        retain_until=retain_until,
        until_at=until_at,
        basis="plain duration stated by the profile (custom or test profile; no statutory basis)",
        derivation=f"from the ingest time {_iso_utc(facts.ingested_at)}",
    )


# --------------------------------------------------------------------------- decision


def decide(rules: Sequence[str], duration: str | None, facts: RetentionFacts) -> RetentionDecision:
    """Apply every rule (and the duration, if any); the latest ``until_at`` wins.

    At least one of ``rules`` / ``duration`` is required (``RETENTION_NO_RULE``). Repeated
    rule ids are applied once.
    """
    outcomes = [apply_rule(rule_id, facts) for rule_id in dict.fromkeys(rules)]
    if duration is not None:
        outcomes.append(apply_duration(duration, facts))
    return RetentionDecision.from_outcomes(outcomes)


def extend(current: RetentionDecision, later: RetentionDecision) -> RetentionDecision:
    """Combine a record's current retention with a later decision; never shortens.

    Used when facts arrive after ingest (a loss year known only after filing, a completion
    date). Outcomes of ``later`` that are already in ``current`` are not repeated; the result
    keeps every outcome so the manifest still shows why each date applies.
    """
    outcomes = list(current.outcomes)
    outcomes.extend(o for o in later.outcomes if o not in current.outcomes)
    decision = RetentionDecision.from_outcomes(outcomes)
    assert decision.until_at >= current.until_at
    return decision
