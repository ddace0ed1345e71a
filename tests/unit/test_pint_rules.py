"""The JP PINT rules edoc checks: each one passes on a good invoice and fires on a bad one."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from decimal import Decimal

import pytest

from edoc.inspection.einvoice import Amount, PintInvoice, TaxSubtotal, TaxTotal, read_einvoice
from edoc.policy.pint_rules import (
    EINVOICE_FIELD_MISSING,
    EINVOICE_VALUE_UNREADABLE,
    LINE_TOTAL_MISMATCH,
    REGISTRATION_NUMBER_MISSING,
    SEARCH_AMOUNT_MISSING,
    SEARCH_AMOUNT_NOT_INTEGRAL,
    SEARCH_AMOUNT_NOT_YEN,
    TAX_AMOUNT_DECIMALS,
    TAX_AMOUNT_ROUNDING,
    TAX_CATEGORY_RATE,
    TAX_SUBTOTAL_DUPLICATE,
    TOTAL_MISMATCH,
    check_invoice,
    check_line_total,
    check_mandatory_fields,
    check_seller_registration,
    check_tax_breakdown,
    check_tax_decimals,
    check_tax_rounding,
    check_totals,
    check_unreadable_values,
    search_amount_yen,
)
from edoc.policy.registration import REGISTRATION_CHECK_DIGIT, REGISTRATION_NUMBER_INVALID
from tests.einvoice_samples import TWO_RATES, Line, pint_invoice

EUR_LINES = (
    Line("Widget", Decimal(3), Decimal("12.35")),
    Line("Tea", Decimal(2), Decimal("4.99"), "AA"),
)


def invoice(**knobs: object) -> PintInvoice:
    reading = read_einvoice(pint_invoice(**knobs))  # type: ignore[arg-type]
    assert reading.invoice is not None, reading.detail
    return reading.invoice


def codes(findings: object) -> list[str]:
    return [f.code for f in findings]  # type: ignore[attr-defined]


def yen(value: int | str) -> Amount:
    return Amount(Decimal(value), "JPY")


GOOD = [
    {},
    {"lines": TWO_RATES},
    {"lines": TWO_RATES, "credit_note": True},
    {"lines": TWO_RATES, "self_billing": True},
    {"non_tax": True, "registration": None},
    {"lines": EUR_LINES, "document_currency": "EUR", "tax_currency": "JPY"},
]


@pytest.mark.parametrize("knobs", GOOD, ids=lambda k: ",".join(k) or "standard")
def test_good_invoices_have_no_findings(knobs: dict[str, object]) -> None:
    assert check_invoice(invoice(**knobs)) == ()


# -- mandatory fields (ibr-02, ibr-03, ibr-06, ibr-14) --------------------------------------------


@pytest.mark.parametrize(
    ("knobs", "rule"),
    [
        ({"number": None}, "ibr-02"),
        ({"issue_date": None}, "ibr-03"),
        ({"supplier_name": None}, "ibr-06"),
        ({"omit_tax_inclusive": True}, "ibr-14"),
    ],
)
def test_mandatory_field_missing(knobs: dict[str, object], rule: str) -> None:
    assert check_mandatory_fields(invoice()) == []
    (finding,) = check_mandatory_fields(invoice(**knobs))
    assert (finding.code, finding.rule) == (EINVOICE_FIELD_MISSING, rule)
    assert finding.severity == "warning"
    assert "missing" in finding.message


def test_unreadable_values_become_findings() -> None:
    assert check_unreadable_values(invoice()) == []
    tag = b"</cbc:TaxExclusiveAmount>"
    data = pint_invoice().replace(b">5000" + tag, b">" + "5千".encode() + tag)
    reading = read_einvoice(data)
    assert reading.invoice is not None
    assert codes(check_unreadable_values(reading.invoice)) == [EINVOICE_VALUE_UNREADABLE]


# -- seller registration number (ibr-jp-01 / ibr-jp-04) -------------------------------------------


def test_registration_present_and_valid() -> None:
    assert check_seller_registration(invoice()) == []


@pytest.mark.parametrize("issued", ["2023-10-01", "2025-01-31"])
def test_registration_missing_on_or_after_start(issued: str) -> None:
    (finding,) = check_seller_registration(invoice(registration=None, issue_date=issued))
    assert (finding.code, finding.rule) == (REGISTRATION_NUMBER_MISSING, "ibr-jp-01")


def test_registration_not_required_before_start_or_for_non_tax_invoices() -> None:
    assert check_seller_registration(invoice(registration=None, issue_date="2023-09-30")) == []
    assert check_seller_registration(invoice(registration=None, non_tax=True)) == []


def test_registration_required_when_issue_date_unknown() -> None:
    found = check_seller_registration(invoice(registration=None, issue_date=None))
    assert codes(found) == [REGISTRATION_NUMBER_MISSING]


@pytest.mark.parametrize("bad", ["T123", "7000012050002", "T70000120500O2", "T-7000012050002"])
def test_registration_bad_shape(bad: str) -> None:
    (finding,) = check_seller_registration(invoice(registration=bad))
    assert (finding.code, finding.rule) == (REGISTRATION_NUMBER_INVALID, "ibr-jp-04")


def test_registration_full_width_is_flagged_though_readable() -> None:
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in "T7000012050002")
    (finding,) = check_seller_registration(invoice(registration=full_width))
    assert finding.code == REGISTRATION_NUMBER_INVALID
    assert "T7000012050002" in finding.message and "NFKC" in finding.message


def test_registration_wrong_check_digit_is_a_warning() -> None:
    (finding,) = check_seller_registration(invoice(registration="T1000012050002"))
    assert finding.code == REGISTRATION_CHECK_DIGIT
    assert finding.severity == "warning"
    assert "sole trader" in finding.message


# -- tax breakdown: one subtotal per category and rate, JP rates ----------------------------------


def test_one_subtotal_per_rate() -> None:
    assert check_tax_breakdown(invoice(lines=TWO_RATES)) == []
    found = check_tax_breakdown(invoice(lines=TWO_RATES, duplicate_subtotal=True))
    assert codes(found) == [TAX_SUBTOTAL_DUPLICATE]
    assert "category S at 10 %" in found[0].message


def _with_subtotals(*subs: TaxSubtotal) -> PintInvoice:
    tax = sum((s.tax.value for s in subs if s.tax is not None), Decimal(0))
    return replace(invoice(), tax_totals=(TaxTotal(yen(int(tax)), subs),))


def test_exempt_export_and_out_of_scope_at_zero_pass() -> None:
    inv = _with_subtotals(
        TaxSubtotal("E", Decimal(0), yen(1000), yen(0)),
        TaxSubtotal("G", None, yen(2000), yen(0)),
        TaxSubtotal("O", Decimal(0), yen(3000), yen(0)),
    )
    assert check_tax_breakdown(inv) == []
    assert check_tax_rounding(inv) == []


@pytest.mark.parametrize(
    "sub",
    [
        TaxSubtotal("S", Decimal(8), yen(1000), yen(80)),  # standard category at the reduced rate
        TaxSubtotal("AA", Decimal(10), yen(1000), yen(100)),
        TaxSubtotal("E", Decimal(10), yen(1000), yen(100)),
        TaxSubtotal("Z", Decimal(0), yen(1000), yen(0)),  # not a JP category
        TaxSubtotal(None, Decimal(10), yen(1000), yen(100)),
    ],
)
def test_wrong_category_or_rate(sub: TaxSubtotal) -> None:
    assert codes(check_tax_breakdown(_with_subtotals(sub))) == [TAX_CATEGORY_RATE]


# -- rounding (aligned-ibrp-051-jp) ---------------------------------------------------------------


@pytest.mark.parametrize("tax", [79, 80])  # 999 × 8 % = 79.92: floor and ceiling both allowed
def test_rounding_any_direction_passes(tax: int) -> None:
    inv = _with_subtotals(TaxSubtotal("AA", Decimal(8), yen(999), yen(tax)))
    assert check_tax_rounding(inv) == []


@pytest.mark.parametrize("tax", [78, 81])
def test_rounding_outside_floor_and_ceiling_fails(tax: int) -> None:
    inv = _with_subtotals(TaxSubtotal("AA", Decimal(8), yen(999), yen(tax)))
    (finding,) = check_tax_rounding(inv)
    assert (finding.code, finding.rule) == (TAX_AMOUNT_ROUNDING, "aligned-ibrp-051-jp")
    assert "between 79 and 80" in finding.message


def test_rounding_from_the_generator() -> None:
    assert check_tax_rounding(invoice(lines=TWO_RATES)) == []
    assert codes(check_tax_rounding(invoice(tax_off_by=Decimal(1)))) == [TAX_AMOUNT_ROUNDING]


def test_rounding_not_checked_on_a_non_tax_invoice_that_states_no_tax() -> None:
    # The shape of pint-jp-ntr 1.1.3's own examples: a category S 10 % subtotal whose tax is
    # 0 (a business that is not registered states no consumption tax). The NTR rule set has
    # no aligned-ibrp-051-jp; the same subtotal on a standard invoice is still flagged.
    stated_none = {"tax_off_by": Decimal(-500), "registration": None}
    assert check_invoice(invoice(non_tax=True, **stated_none)) == ()
    standard = invoice(**stated_none)
    assert TAX_AMOUNT_ROUNDING in codes(check_tax_rounding(standard))


def test_a_return_invoice_with_negative_amounts_has_no_findings() -> None:
    # JP PINT 1.1.3's "Return" example: quantity -2, so every amount is below zero; the tax
    # is still taxable × rate, and the search amount is the negative total.
    inv = invoice(lines=(Line("返品 コピー用紙", Decimal(-2), Decimal(50000)),))
    assert check_invoice(inv) == ()
    assert search_amount_yen(inv).yen == -110000


def test_rounding_in_a_foreign_currency_uses_its_minor_unit() -> None:
    inv = invoice(lines=EUR_LINES, document_currency="EUR", tax_currency="JPY")
    assert check_tax_rounding(inv) == []
    off = invoice(
        lines=EUR_LINES, document_currency="EUR", tax_currency="JPY", tax_off_by=Decimal("0.02")
    )
    assert codes(check_tax_rounding(off)) == [TAX_AMOUNT_ROUNDING]


# -- JPY tax amounts have no decimals (ibr-jp-06) -------------------------------------------------


def test_jpy_tax_without_decimals_passes() -> None:
    assert check_tax_decimals(invoice(lines=TWO_RATES)) == []
    # A EUR tax total with cents is fine; only yen amounts must be integers.
    assert check_tax_decimals(invoice(lines=EUR_LINES, document_currency="EUR")) == []


def test_jpy_tax_with_decimals_fails() -> None:
    found = check_tax_decimals(invoice(tax_off_by=Decimal("0.5")))
    assert codes(found) == [TAX_AMOUNT_DECIMALS, TAX_AMOUNT_DECIMALS]  # subtotal and total
    assert {f.rule for f in found} == {"ibr-jp-06"}


# -- totals (ibr-co-15, ibr-co-10) ----------------------------------------------------------------


def test_totals_add_up() -> None:
    assert check_totals(invoice(lines=TWO_RATES)) == []


def test_totals_do_not_add_up() -> None:
    (finding,) = check_totals(invoice(lines=TWO_RATES, total_off_by=Decimal(1)))
    assert (finding.code, finding.rule) == (TOTAL_MISMATCH, "ibr-co-15")
    assert "20158" in finding.message


def test_totals_not_checked_outside_jpy() -> None:
    eur = invoice(lines=EUR_LINES, document_currency="EUR", total_off_by=Decimal(1))
    assert check_totals(eur) == []


def test_line_total_adds_up_and_not() -> None:
    assert check_line_total(invoice(lines=TWO_RATES)) == []
    (finding,) = check_line_total(invoice(lines=TWO_RATES, line_total_off_by=Decimal(10)))
    assert (finding.code, finding.rule) == (LINE_TOTAL_MISMATCH, "ibr-co-10")
    assert "18344" in finding.message and "18354" in finding.message


def test_line_total_with_a_line_missing_its_amount() -> None:
    inv = invoice(lines=TWO_RATES)
    broken = replace(inv, lines=(replace(inv.lines[0], line_extension=None), *inv.lines[1:]))
    assert codes(check_line_total(broken)) == [LINE_TOTAL_MISMATCH]


def test_a_broken_invoice_collects_every_finding_without_raising() -> None:
    found = check_invoice(
        invoice(
            lines=TWO_RATES,
            number=None,
            registration="T1000012050002",
            total_off_by=Decimal(1),
            line_total_off_by=Decimal(1),
            duplicate_subtotal=True,
        )
    )
    assert set(codes(found)) == {
        EINVOICE_FIELD_MISSING,
        REGISTRATION_CHECK_DIGIT,
        TAX_SUBTOTAL_DUPLICATE,
        TOTAL_MISMATCH,
        LINE_TOTAL_MISMATCH,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        found[0].code = "X"  # type: ignore[misc]


# -- the search amount ----------------------------------------------------------------------------


def test_search_amount_in_whole_yen() -> None:
    result = search_amount_yen(invoice(lines=TWO_RATES))
    assert result.yen == 20157 and isinstance(result.yen, int)
    assert result.amount == yen(20157)
    assert result.finding is None
    one_point_zero = replace(invoice(), tax_inclusive=yen("5500.0"))
    assert search_amount_yen(one_point_zero).yen == 5500


def test_search_amount_not_yen_keeps_the_currency() -> None:
    eur = invoice(lines=EUR_LINES, document_currency="EUR", tax_currency="JPY")
    result = search_amount_yen(eur)
    assert result.yen is None
    assert result.amount == Amount(Decimal("51.52"), "EUR")
    assert result.finding is not None and result.finding.code == SEARCH_AMOUNT_NOT_YEN
    assert "EUR" in result.finding.message


def test_search_amount_fractional_yen() -> None:
    result = search_amount_yen(replace(invoice(), tax_inclusive=yen("5500.5")))
    assert result.yen is None and result.amount == yen("5500.5")
    assert result.finding is not None and result.finding.code == SEARCH_AMOUNT_NOT_INTEGRAL


def test_search_amount_missing() -> None:
    result = search_amount_yen(invoice(omit_tax_inclusive=True))
    assert (result.yen, result.amount) == (None, None)
    assert result.finding is not None and result.finding.code == SEARCH_AMOUNT_MISSING
