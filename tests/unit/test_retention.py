"""Statutory retention rules, durations and decisions (edoc.policy.retention).

The worked examples come from REQUIREMENTS.md "Retention periods"; the others are worked
out by hand in the comments.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edoc.errors import ConfigError, InputError
from edoc.policy.retention import (
    RULES,
    Duration,
    RetentionDecision,
    RetentionFacts,
    RuleOutcome,
    apply_duration,
    apply_rule,
    decide,
    extend,
    is_known_rule,
    parse_duration,
)

# 2024-04-01 10:00 JST.
INGESTED = datetime(2024, 4, 1, 1, 0, tzinfo=UTC)


def facts(**kw: object) -> RetentionFacts:
    kw.setdefault("ingested_at", INGESTED)
    return RetentionFacts(**kw)  # type: ignore[arg-type]


def midnight_jst_utc(d: date) -> datetime:
    """00:00 JST of ``d`` written out by hand: 15:00 UTC the day before."""
    prev = d - timedelta(days=1)
    return datetime(prev.year, prev.month, prev.day, 15, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- worked examples


def test_corporate_tax_worked_example() -> None:
    out = apply_rule("corporate-tax", facts(fiscal_year_end=date(2024, 3, 31)))
    assert out.retain_until == date(2031, 5, 31)
    assert out.start == date(2024, 6, 1)
    assert out.period == "P7Y"
    # Kept through the whole of 2031-05-31 JST; disposal allowed from 00:00 JST 06-01.
    assert out.until_at == midnight_jst_utc(date(2031, 6, 1))
    assert out.until_at == datetime(2031, 5, 31, 15, 0, tzinfo=UTC)
    assert "第59条" in out.basis
    assert "2024-05-31" in out.derivation  # the filing deadline


def test_corporate_tax_loss_year_worked_example() -> None:
    out = apply_rule("corporate-tax", facts(fiscal_year_end=date(2024, 3, 31), loss_year=True))
    assert out.retain_until == date(2034, 5, 31)
    assert out.period == "P10Y"
    assert "第26条の3" in out.basis


def test_income_tax_worked_example() -> None:
    out = apply_rule("income-tax", facts(tax_year=2024))
    # 2025-03-15 is a Saturday; the ordinance names the date itself, so no shift.
    assert out.start == date(2025, 3, 16)
    assert out.retain_until == date(2032, 3, 15)


def test_consumption_tax_worked_example() -> None:
    out = apply_rule("consumption-tax", facts(period_end=date(2024, 12, 31)))
    # Two months from 2025-01-01 have passed on 2025-03-01; + 7 years - 1 day = 2032-02-29.
    assert out.start == date(2025, 3, 1)
    assert out.retain_until == date(2032, 2, 29)


def test_companies_act_worked_example() -> None:
    out = apply_rule("companies-act", facts(closing_date=date(2024, 3, 31)))
    assert out.start == date(2024, 4, 1)
    assert out.retain_until == date(2034, 3, 31)


# --------------------------------------------------------------------------- month ends


@pytest.mark.parametrize(
    ("fy_end", "extension", "deadline", "retain_until"),
    [
        # 08-31 + 2 months is 10-31, not 10-30.
        (date(2023, 8, 31), 0, "2023-10-31", date(2030, 10, 31)),
        # Leap-year February end: two months from 03-01 end 04-30 (not 04-29).
        (date(2024, 2, 29), 0, "2024-04-30", date(2031, 4, 30)),
        # Common-year February end behaves the same.
        (date(2023, 2, 28), 0, "2023-04-30", date(2030, 4, 30)),
        # December year end: no 31 February, so the deadline is 2024-02-29 and the start
        # 2024-03-01; 2031-03-01 - 1 day = 2031-02-28.
        (date(2023, 12, 31), 0, "2024-02-29", date(2031, 2, 28)),
        # One extension month (法人税法 第75条の2): deadline 06-30, start 07-01.
        (date(2024, 3, 31), 1, "2024-06-30", date(2031, 6, 30)),
        # Mid-month year end: 03-20 -> deadline 05-20, start 05-21.
        (date(2024, 3, 20), 0, "2024-05-20", date(2031, 5, 20)),
    ],
)
def test_corporate_tax_month_ends(
    fy_end: date, extension: int, deadline: str, retain_until: date
) -> None:
    out = apply_rule("corporate-tax", facts(fiscal_year_end=fy_end, extension_months=extension))
    assert f"filing deadline {deadline}" in out.derivation
    assert out.start == date.fromisoformat(deadline) + timedelta(days=1)
    assert out.retain_until == retain_until


# --------------------------------------------------------------------------- defaults


def test_fiscal_year_end_from_archive_default_and_transaction_date() -> None:
    f = facts(fiscal_year_end_md=(3, 31), transaction_date=date(2024, 5, 10))
    # FY ends 2025-03-31 -> deadline 2025-05-31 -> kept through 2032-05-31.
    assert apply_rule("corporate-tax", f).retain_until == date(2032, 5, 31)


def test_fiscal_year_end_default_uses_the_japan_ingest_date() -> None:
    # 2024-03-31 15:30 UTC is already 2024-04-01 in Tokyo: the FY ending 2025-03-31.
    f = facts(ingested_at=datetime(2024, 3, 31, 15, 30, tzinfo=UTC), fiscal_year_end_md=(3, 31))
    assert apply_rule("corporate-tax", f).retain_until == date(2032, 5, 31)
    f = facts(ingested_at=datetime(2024, 3, 31, 14, 30, tzinfo=UTC), fiscal_year_end_md=(3, 31))
    assert apply_rule("corporate-tax", f).retain_until == date(2031, 5, 31)


def test_fiscal_year_end_on_the_transaction_date_itself() -> None:
    f = facts(fiscal_year_end_md=(3, 31), transaction_date=date(2024, 3, 31))
    assert apply_rule("corporate-tax", f).retain_until == date(2031, 5, 31)


def test_february_fiscal_year_end_default() -> None:
    # (2, 29) = end of February: 2026-02-28; deadline 2026-04-30; kept through 2033-04-30.
    f = facts(fiscal_year_end_md=(2, 29), transaction_date=date(2025, 3, 10))
    out = apply_rule("corporate-tax", f)
    assert "fiscal year end 2026-02-28" in out.derivation
    assert out.retain_until == date(2033, 4, 30)


def test_explicit_fiscal_year_end_beats_the_default() -> None:
    f = facts(fiscal_year_end=date(2024, 12, 31), fiscal_year_end_md=(3, 31))
    assert apply_rule("corporate-tax", f).retain_until == date(2032, 2, 29)


def test_income_tax_defaults_to_transaction_year() -> None:
    out = apply_rule("income-tax", facts(transaction_date=date(2024, 7, 1)))
    assert out.retain_until == date(2032, 3, 15)


def test_consumption_tax_defaults_to_fiscal_year_end() -> None:
    f = facts(fiscal_year_end_md=(12, 31), transaction_date=date(2024, 6, 1))
    assert apply_rule("consumption-tax", f).retain_until == date(2032, 2, 29)
    # March year end: period end 2025-03-31, start 2025-06-01, through 2032-05-31.
    f = facts(fiscal_year_end=date(2025, 3, 31))
    assert apply_rule("consumption-tax", f).retain_until == date(2032, 5, 31)


def test_companies_act_defaults_to_fiscal_year_end() -> None:
    f = facts(fiscal_year_end=date(2024, 3, 31))
    assert apply_rule("companies-act", f).retain_until == date(2034, 3, 31)


@pytest.mark.parametrize(
    ("rule", "retain_until"),
    [
        ("labour-standards", date(2029, 3, 31)),
        ("health-insurance", date(2026, 3, 31)),
        ("medical-charts", date(2029, 3, 31)),
        ("construction", date(2029, 3, 31)),
        ("construction-new-home", date(2034, 3, 31)),
    ],
)
def test_completion_rules(rule: str, retain_until: date) -> None:
    # Completed 2024-03-31; counting starts the next day.
    out = apply_rule(rule, facts(completed=date(2024, 3, 31)))
    assert out.start == date(2024, 4, 1)
    assert out.retain_until == retain_until


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("rule", "flag"),
    [
        ("corporate-tax", "--fiscal-year-end"),
        ("income-tax", "--tax-year"),
        ("consumption-tax", "--period-end"),
        ("companies-act", "--closing-date"),
        ("labour-standards", "--completed"),
        ("medical-charts", "--completed"),
        ("construction", "--completed"),
    ],
)
def test_missing_input_names_the_flag(rule: str, flag: str) -> None:
    with pytest.raises(InputError) as info:
        apply_rule(rule, facts())
    assert info.value.code == "RETENTION_INPUT_MISSING"
    assert flag in str(info.value)
    assert str(info.value).startswith(f"RETENTION_INPUT_MISSING: {rule} needs ")
    assert "\n" not in str(info.value)


def test_corporate_tax_missing_message_matches_contract() -> None:
    with pytest.raises(InputError) as info:
        apply_rule("corporate-tax", facts())
    assert info.value.message == (
        "corporate-tax needs --fiscal-year-end (or fiscal_year_end in edoc.toml)"
    )


def test_unknown_rule() -> None:
    assert is_known_rule("corporate-tax")
    assert not is_known_rule("corporate_tax")
    with pytest.raises(ConfigError) as info:
        apply_rule("nope", facts())
    assert info.value.code == "RETENTION_UNKNOWN_RULE"


@pytest.mark.parametrize(
    ("kwargs", "error", "code"),
    [
        ({"ingested_at": datetime(2024, 4, 1, 10, 0)}, InputError, "RETENTION_INPUT_INVALID"),
        ({"extension_months": 5}, InputError, "RETENTION_INPUT_INVALID"),
        ({"extension_months": -1}, InputError, "RETENTION_INPUT_INVALID"),
        ({"tax_year": 24}, InputError, "RETENTION_INPUT_INVALID"),
        ({"fiscal_year_end_md": (2, 30)}, ConfigError, "CONFIG_BAD_FISCAL_YEAR_END"),
        ({"fiscal_year_end_md": (13, 1)}, ConfigError, "CONFIG_BAD_FISCAL_YEAR_END"),
    ],
)
def test_invalid_facts(kwargs: dict[str, object], error: type[Exception], code: str) -> None:
    with pytest.raises(error) as info:
        facts(**kwargs)
    assert getattr(info.value, "code", None) == code


def test_rule_specs() -> None:
    assert set(RULES) == {
        "corporate-tax",
        "income-tax",
        "consumption-tax",
        "companies-act",
        "labour-standards",
        "health-insurance",
        "medical-charts",
        "construction",
        "construction-new-home",
    }
    for rule_id, spec in RULES.items():
        assert spec.id == rule_id
        assert "第" in spec.basis and "条" in spec.basis, rule_id
        assert spec.title and spec.start
        assert spec.inputs and all(i.startswith("--") for i in spec.inputs)
    assert "附則" in RULES["labour-standards"].basis  # the 3-year transitional rule is named
    with pytest.raises(TypeError):
        RULES["x"] = RULES["income-tax"]  # type: ignore[index]


def test_every_rule_applies_with_all_facts_and_years_match_specs() -> None:
    f = facts(
        fiscal_year_end=date(2024, 3, 31),
        tax_year=2024,
        period_end=date(2024, 3, 31),
        closing_date=date(2024, 3, 31),
        completed=date(2024, 3, 31),
    )
    for rule_id, spec in RULES.items():
        out = apply_rule(rule_id, f)
        assert out.rule == rule_id
        assert out.period == f"P{spec.years}Y"


# --------------------------------------------------------------------------- durations


def test_parse_duration_components() -> None:
    assert parse_duration("P10Y") == Duration(years=10)
    assert parse_duration("P1Y2M3W4DT5H6M7.25S") == Duration(
        years=1, months=2, weeks=3, days=4, hours=5, minutes=6, seconds=7, microseconds=250000
    )
    assert parse_duration("PT20S") == Duration(seconds=20)
    assert parse_duration("PT0,5S") == Duration(microseconds=500000)
    assert str(parse_duration("P1Y2M3W4DT5H6M7.25S")) == "P1Y2M3W4DT5H6M7.25S"
    assert parse_duration("PT36H").is_sub_day is False
    assert parse_duration("PT23H59M").is_sub_day is True


@pytest.mark.parametrize(
    "text",
    [
        "",
        "P",
        "PT",
        "P1YT",
        "10Y",
        "p1y",
        "P1y",
        "P-1Y",
        "P1.5Y",
        "P1M2Y",
        " P1Y",
        "P1Y ",
        "PT1.1234567S",
        "P0D",
        "PT0S",
        "P100000Y",
        "P1000000D",
    ],
)
def test_parse_duration_refuses_garbage(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration(text)
    assert info.value.code == "PROFILE_BAD_DURATION"
    assert info.value.exit_code == 2


def test_duration_calendar_arithmetic_is_in_japan_time() -> None:
    # 2024-03-30 16:00 UTC is 2024-03-31 01:00 JST; + 1 month clamps to 2024-04-30 01:00 JST,
    # which is 2024-04-29 16:00 UTC (UTC arithmetic would say 04-30 16:00).
    start = datetime(2024, 3, 30, 16, 0, tzinfo=UTC)
    assert parse_duration("P1M").add_to(start) == datetime(2024, 4, 29, 16, 0, tzinfo=UTC)
    assert parse_duration("P1DT1H").add_to(start) == start + timedelta(days=1, hours=1)


def test_sub_day_duration_expires_exactly() -> None:
    out = apply_duration("PT20S", facts())
    assert out.until_at == INGESTED + timedelta(seconds=20)
    assert out.retain_until is None
    assert out.start == date(2024, 4, 1)
    decision = decide([], "PT20S", facts())
    assert decision.until_at == INGESTED + timedelta(seconds=20)
    assert decision.retain_until == date(2024, 4, 1)


def test_year_duration_follows_the_n_years_minus_one_day_convention() -> None:
    out = apply_duration("P10Y", facts())
    assert out.retain_until == date(2034, 3, 31)
    assert out.until_at == datetime(2034, 4, 1, 1, 0, tzinfo=UTC)  # ingest + 10 y exactly
    assert out.period == "P10Y"


def test_leap_day_duration_keeps_the_civil_period() -> None:
    # Ingested 2024-02-29 10:00 JST. The clamped instant would be 2025-02-28 10:00 JST, but
    # the civil period runs through 2025-02-28, so disposal waits for 00:00 JST 03-01.
    f = facts(ingested_at=datetime(2024, 2, 29, 1, 0, tzinfo=UTC))
    out = apply_duration("P1Y", f)
    assert out.retain_until == date(2025, 2, 28)
    assert out.until_at == midnight_jst_utc(date(2025, 3, 1))


def test_one_day_duration_late_in_the_day() -> None:
    # 23:59 JST on 2024-04-01: kept 24 h, so 2024-04-01 is the last whole day.
    f = facts(ingested_at=datetime(2024, 4, 1, 14, 59, tzinfo=UTC))
    out = apply_duration("P1D", f)
    assert out.until_at == datetime(2024, 4, 2, 14, 59, tzinfo=UTC)
    assert out.retain_until == date(2024, 4, 1)


# --------------------------------------------------------------------------- decisions


def test_decide_latest_wins_and_keeps_every_outcome() -> None:
    f = facts(fiscal_year_end=date(2024, 3, 31))
    decision = decide(["corporate-tax", "companies-act", "corporate-tax"], "P1Y", f)
    assert [o.rule for o in decision.outcomes] == ["corporate-tax", "companies-act", "duration"]
    assert decision.retain_until == date(2034, 3, 31)
    assert decision.until_at == midnight_jst_utc(date(2034, 4, 1))


def test_decide_needs_a_rule_or_duration() -> None:
    with pytest.raises(ConfigError) as info:
        decide([], None, facts())
    assert info.value.code == "RETENTION_NO_RULE"


def test_extend_never_shortens() -> None:
    before = decide(["corporate-tax"], None, facts(fiscal_year_end=date(2024, 3, 31)))
    loss = decide(["corporate-tax"], None, facts(fiscal_year_end=date(2024, 3, 31), loss_year=True))
    extended = extend(before, loss)
    assert extended.retain_until == date(2034, 5, 31)
    assert len(extended.outcomes) == 2
    shorter = decide([], "P1Y", facts())
    kept = extend(extended, shorter)
    assert kept.until_at == extended.until_at
    assert kept.retain_until == date(2034, 5, 31)
    assert extend(kept, kept).outcomes == kept.outcomes  # idempotent


def test_manifest_round_trip_is_json() -> None:
    f = facts(fiscal_year_end=date(2024, 3, 31))
    decision = decide(["corporate-tax"], "PT20S", f)
    manifest = decision.to_manifest()
    text = json.dumps(manifest, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert '"until_at":"2031-05-31T15:00:00Z"' in text
    assert '"retain_until":"2031-05-31"' in text
    again = RetentionDecision.from_manifest(json.loads(text))
    assert again == decision
    bad = dict(manifest, until_at="2030-01-01T00:00:00Z")
    with pytest.raises(ValueError):
        RetentionDecision.from_manifest(bad)


# --------------------------------------------------------------------------- properties

dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2080, 12, 31))
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2080, 12, 31), timezones=st.just(UTC)
)
all_facts = st.builds(
    RetentionFacts,
    ingested_at=instants,
    transaction_date=st.none() | dates,
    fiscal_year_end=dates,
    extension_months=st.integers(0, 4),
    loss_year=st.booleans(),
    tax_year=st.integers(2000, 2080),
    period_end=dates,
    closing_date=dates,
    completed=dates,
)
durations = st.builds(
    lambda y, m, w, d, h, s: Duration(years=y, months=m, weeks=w, days=d, hours=h, seconds=s),
    st.integers(0, 12),
    st.integers(0, 24),
    st.integers(0, 8),
    st.integers(0, 60),
    st.integers(0, 48),
    st.integers(0, 90000),
).filter(lambda d: d.has_date_part or d.exact_part > timedelta(0))


@settings(max_examples=150, deadline=None)
@given(
    f=all_facts,
    rules=st.lists(st.sampled_from(sorted(RULES)), min_size=0, max_size=5),
    duration=st.none() | durations,
)
def test_decide_is_never_earlier_than_any_single_rule(
    f: RetentionFacts, rules: list[str], duration: Duration | None
) -> None:
    if not rules and duration is None:
        rules = ["corporate-tax"]
    text = None if duration is None else duration.isoformat()
    decision = decide(rules, text, f)
    singles = [apply_rule(r, f) for r in rules]
    if text is not None:
        singles.append(apply_duration(text, f))
    for single in singles:
        assert decision.until_at >= single.until_at
        if single.retain_until is not None:
            assert decision.retain_until >= single.retain_until
    assert decision.until_at in {s.until_at for s in singles}


@settings(max_examples=150, deadline=None)
@given(f=all_facts, rule=st.sampled_from(sorted(RULES)))
def test_rule_outcomes_end_at_japan_midnight_after_the_last_day(
    f: RetentionFacts, rule: str
) -> None:
    out = apply_rule(rule, f)
    assert out.retain_until is not None
    assert out.until_at == midnight_jst_utc(out.retain_until + timedelta(days=1))
    assert out.until_at.utcoffset() == timedelta(0)


@settings(max_examples=200, deadline=None)
@given(completed=dates, rule=st.sampled_from(["labour-standards", "companies-act"]))
def test_retain_until_is_the_day_before_the_same_month_day_n_years_later(
    completed: date, rule: str
) -> None:
    f = facts(completed=completed, closing_date=completed)
    out = apply_rule(rule, f)
    years = RULES[rule].years
    start = completed + timedelta(days=1)
    assert out.start == start
    if (start.month, start.day) == (2, 29):
        # Leap-day start: kept through 28 February N years later, leap target year or not
        # (民法 第143条第2項: no corresponding day -> the month's last day; else the day before).
        assert out.retain_until == date(start.year + years, 2, 28)
    else:
        assert out.retain_until == date(start.year + years, start.month, start.day) - timedelta(
            days=1
        )


@settings(max_examples=150, deadline=None)
@given(ingested_at=instants, duration=durations)
def test_duration_outcomes_never_undercut_the_exact_instant(
    ingested_at: datetime, duration: Duration
) -> None:
    out = apply_duration(duration.isoformat(), facts(ingested_at=ingested_at))
    exact = duration.add_to(ingested_at)
    assert out.until_at >= exact
    assert out.until_at - exact < timedelta(days=4)  # only the civil month-end adjustment
    if duration.is_sub_day:
        assert out.retain_until is None
        assert out.until_at == exact
    else:
        assert out.retain_until is not None
        # The whole last day is kept, and it is the last whole day before until_at.
        assert out.until_at >= midnight_jst_utc(out.retain_until + timedelta(days=1))
        assert out.until_at < midnight_jst_utc(out.retain_until + timedelta(days=2))


def test_outcome_manifest_shape() -> None:
    out = apply_rule("income-tax", facts(tax_year=2024))
    data = out.to_manifest()
    assert set(data) == {
        "rule",
        "start",
        "period",
        "retain_until",
        "until_at",
        "basis",
        "derivation",
    }
    assert RuleOutcome.from_manifest(data) == out
