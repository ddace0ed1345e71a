"""Who keeps the records (``[archive] entity``): per-entity retention rules in profiles, and
the income-tax / consumption-tax dates for an individual (個人事業主).

Dates worked out by hand: income tax for tax year Y is kept 7 years from Y+1-03-16
(所得税法施行規則 第63条第1項 "翌年3月15日の翌日から七年間"), i.e. through Y+8-03-15.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from edoc.errors import ConfigError, InputError
from edoc.policy.profiles import ProfileSet, RetentionSpec, combine
from edoc.policy.retention import BASE_RULE, ENTITY_TYPES, RetentionFacts, apply_rule, decide

INGESTED = datetime(2025, 1, 10, 1, 0, tzinfo=UTC)
JST = ZoneInfo("Asia/Tokyo")


def facts(**kw: object) -> RetentionFacts:
    kw.setdefault("ingested_at", INGESTED)
    return RetentionFacts(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("transaction", "tax_year", "start", "until"), [
    (date(2024, 6, 30), None, date(2025, 3, 16), date(2032, 3, 15)),
    (date(2024, 12, 31), None, date(2025, 3, 16), date(2032, 3, 15)),   # 31 December
    (date(2024, 1, 1), None, date(2025, 3, 16), date(2032, 3, 15)),
    (date(2024, 2, 29), None, date(2025, 3, 16), date(2032, 3, 15)),    # leap day
    (date(2023, 12, 31), None, date(2024, 3, 16), date(2031, 3, 15)),   # ends in a leap year
    (date(2027, 6, 1), None, date(2028, 3, 16), date(2035, 3, 15)),     # starts in a leap year
    (date(2025, 1, 5), 2024, date(2025, 3, 16), date(2032, 3, 15)),     # --tax-year wins
    (None, 2024, date(2025, 3, 16), date(2032, 3, 15)),
])
def test_income_tax_dates(transaction: date | None, tax_year: int | None, start: date,
                          until: date) -> None:
    o = apply_rule("income-tax", facts(transaction_date=transaction, tax_year=tax_year,
                                       entity="individual"))
    assert (o.start, o.retain_until, o.period) == (start, until, "P7Y")
    # disposal from 00:00 JST of the day after the last day kept
    assert o.until_at == datetime.combine(until + timedelta(days=1), time(0), tzinfo=JST)
    assert "第63条" in o.basis


def test_income_tax_needs_a_year() -> None:
    with pytest.raises(InputError) as exc:
        apply_rule("income-tax", facts(entity="individual"))
    assert exc.value.code == "RETENTION_INPUT_MISSING"


@pytest.mark.parametrize(("kw", "until"), [
    # calendar 2024 -> period end 2024-12-31 -> start 2025-03-01 -> 2032-02-29 (leap year)
    ({"transaction_date": date(2024, 6, 30)}, date(2032, 2, 29)),
    ({"transaction_date": date(2024, 12, 31)}, date(2032, 2, 29)),
    ({"transaction_date": date(2025, 1, 5), "tax_year": 2024}, date(2032, 2, 29)),
    # period end 2025-12-31 -> start 2026-03-01 -> 2033-02-28
    ({"transaction_date": date(2025, 4, 1)}, date(2033, 2, 28)),
    # an explicit --period-end still wins
    ({"transaction_date": date(2024, 6, 30), "period_end": date(2024, 6, 30)},
     date(2031, 8, 31)),
])
def test_consumption_tax_for_an_individual_uses_the_calendar_year(
        kw: dict[str, object], until: date) -> None:
    # the archive's fiscal-year end (a corporation's) is ignored for an individual
    o = apply_rule("consumption-tax", facts(entity="individual", fiscal_year_end_md=(3, 31),
                                            **kw))
    assert o.retain_until == until


def test_consumption_tax_for_a_corporation_is_unchanged() -> None:
    # FY end 2025-03-31 (first 03-31 on or after 2024-06-30) -> start 2025-06-01
    o = apply_rule("consumption-tax", facts(transaction_date=date(2024, 6, 30),
                                            fiscal_year_end_md=(3, 31)))
    assert o.retain_until == date(2032, 5, 31)
    with pytest.raises(InputError):
        apply_rule("consumption-tax", facts(entity="individual"))


def test_unknown_entity_is_refused() -> None:
    with pytest.raises(ConfigError) as exc:
        facts(entity="company")
    assert exc.value.code == "CONFIG_INVALID"


def test_base_rules() -> None:
    assert ENTITY_TYPES == ("corporation", "individual")
    assert dict(BASE_RULE) == {"corporation": "corporate-tax", "individual": "income-tax"}


# -- rule selection ------------------------------------------------------------------------


def test_rules_for_each_entity() -> None:
    spec = RetentionSpec(rules=("consumption-tax",),
                         by_entity={"corporation": ("corporate-tax",),
                                    "individual": ("income-tax",)})
    assert spec.rules_for("corporation") == ("consumption-tax", "corporate-tax")
    assert spec.rules_for("individual") == ("consumption-tax", "income-tax")
    assert RetentionSpec(rules=("companies-act",)).rules_for("individual") == ("companies-act",)


def test_shipped_nta_profiles_pick_the_base_rule_per_entity() -> None:
    ps = ProfileSet.load()
    for pid in ("nta-scan-important", "nta-scan-important-cycle", "nta-scan-general",
                "nta-electronic-transaction"):
        r = ps.get(pid).retention
        assert r.rules_for("corporation") == ("corporate-tax",), pid
        assert r.rules_for("individual") == ("income-tax",), pid
    d = ps.get("nta-electronic-transaction").as_dict()["retention"]
    assert d["by_entity"] == {"corporation": ["corporate-tax"], "individual": ["income-tax"]}
    # profiles with plain rules apply them to both
    assert ps.get("meti-general").retention.rules_for("individual") == ("companies-act",)


def test_an_individual_invoice_keeps_the_income_tax_date_and_the_latest_wins() -> None:
    ps = ProfileSet.load()
    reqs = combine([ps.get("nta-electronic-transaction")], "invoice")
    tx = date(2024, 6, 30)
    ind = decide(reqs.retention.rules_for("individual"), None,
                 facts(transaction_date=tx, entity="individual", fiscal_year_end_md=(12, 31)))
    assert [o.rule for o in ind.outcomes] == ["income-tax"]
    assert ind.retain_until == date(2032, 3, 15)
    corp = decide(reqs.retention.rules_for("corporation"), None,
                  facts(transaction_date=tx, fiscal_year_end_md=(3, 31)))
    assert [o.rule for o in corp.outcomes] == ["corporate-tax"]
    assert corp.retain_until == date(2032, 5, 31)  # FY 2025-03-31, deadline 2025-05-31
    both = decide((*reqs.retention.rules_for("individual"), "companies-act"), None,
                  facts(transaction_date=tx, entity="individual",
                        closing_date=date(2024, 12, 31)))
    assert both.retain_until == date(2034, 12, 31)


# -- profile parsing -----------------------------------------------------------------------


def _load(tmp_path: Path, **files: str) -> ProfileSet:
    for name, text in files.items():
        (tmp_path / f"{name}.toml").write_text(text, encoding="utf-8")
    return ProfileSet.load([tmp_path])


HEAD = 'title = "t"\nbasis = "b"\n'


def test_a_user_profile_with_plain_rules_means_both(tmp_path: Path) -> None:
    ps = _load(tmp_path, old=f'id = "old"\n{HEAD}[retention]\nrules = ["corporate-tax"]\n')
    r = ps.get("old").retention
    assert r.rules_for("corporation") == r.rules_for("individual") == ("corporate-tax",)


def test_per_entity_tables(tmp_path: Path) -> None:
    ps = _load(tmp_path, p=f'id = "p"\n{HEAD}[retention]\nrules = ["consumption-tax"]\n'
               '[retention.corporation]\nrules = ["corporate-tax"]\n'
               '[retention.individual]\nrules = ["income-tax"]\n')
    r = ps.get("p").retention
    assert r.rules_for("corporation") == ("consumption-tax", "corporate-tax")
    assert r.rules_for("individual") == ("consumption-tax", "income-tax")


def test_extends_merges_per_entity_rules(tmp_path: Path) -> None:
    ps = _load(
        tmp_path,
        # only the individual's list changes; the corporation's is inherited
        a='id = "a"\nextends = "nta-electronic-transaction"\ntitle = "a"\n'
          '[retention.individual]\nrules = ["income-tax", "consumption-tax"]\n',
        # plain rules restate the whole set, as they did before per-entity rules existed
        b='id = "b"\nextends = "nta-electronic-transaction"\ntitle = "b"\n'
          '[retention]\nrules = ["companies-act"]\n',
        # no retention section: everything inherited
        c='id = "c"\nextends = "nta-scan-important"\ntitle = "c"\n',
        # plain rules plus a per-entity table in the child
        d='id = "d"\nextends = "nta-electronic-transaction"\ntitle = "d"\n'
          '[retention]\nrules = ["consumption-tax"]\n'
          '[retention.individual]\nrules = ["income-tax"]\n',
    )
    a = ps.get("a").retention
    assert a.rules_for("corporation") == ("corporate-tax",)
    assert a.rules_for("individual") == ("income-tax", "consumption-tax")
    b = ps.get("b").retention
    assert b.rules_for("corporation") == b.rules_for("individual") == ("companies-act",)
    c = ps.get("c").retention
    assert (c.rules_for("corporation"), c.rules_for("individual")) == (
        ("corporate-tax",), ("income-tax",))
    d = ps.get("d").retention
    assert d.rules_for("corporation") == ("consumption-tax",)
    assert d.rules_for("individual") == ("consumption-tax", "income-tax")


@pytest.mark.parametrize(("text", "needle"), [
    ('[retention.corporation]\nrules = ["corporate-tax"]\n', "entity type individual"),
    ('[retention.individual]\nrules = ["nope"]\n'
     '[retention.corporation]\nrules = ["corporate-tax"]\n', "retention.individual.rules"),
    ('[retention]\nindividual = ["income-tax"]\n', "retention.individual"),
    ('[retention.individual]\nrule = ["income-tax"]\n', "unknown key retention.individual.rule"),
    ('[retention.company]\nrules = ["corporate-tax"]\n', "unknown key retention.company"),
])
def test_bad_per_entity_tables(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        _load(tmp_path, x=f'id = "x"\n{HEAD}{text}')
    assert exc.value.code == "PROFILE_INVALID"
    assert needle in exc.value.message


def test_combine_keeps_per_entity_rules() -> None:
    ps = ProfileSet.load()
    r = combine([ps.get("nta-scan-important"), ps.get("meti-general")], "invoice").retention
    assert r.rules_for("corporation") == ("companies-act", "corporate-tax")
    assert r.rules_for("individual") == ("companies-act", "income-tax")
