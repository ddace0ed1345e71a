"""The CII reader (Factur-X / ZUGFeRD): the same model and rules as JP PINT, never JP PINT."""

from __future__ import annotations

from decimal import Decimal

import pytest

from edoc.inspection.einvoice import (
    EINVOICE_DTD_REFUSED,
    OK,
    DocKind,
    read_einvoice,
)
from edoc.policy.pint_rules import (
    REGISTRATION_NUMBER_MISSING,
    TOTAL_MISMATCH,
    check_invoice,
    search_amount_yen,
)
from tests import einvoice_samples as samples
from tests.cii_samples import EN16931, cii_invoice


def test_the_search_fields_come_from_the_cii_terms() -> None:
    reading = read_einvoice(cii_invoice(lines=samples.TWO_RATES, number="FX-7"))
    assert reading.code == OK and reading.cii
    inv = reading.invoice
    assert inv is not None
    assert (inv.syntax, inv.spec, inv.kind) == ("cii", None, DocKind.INVOICE)
    assert inv.customization_id == EN16931
    assert inv.number == "FX-7" and inv.issue_date is not None
    assert inv.issue_date.isoformat() == "2024-06-30"
    assert inv.supplier_name == "株式会社ファクトゥール"
    assert inv.customer_name == "株式会社エドック"
    assert inv.supplier_registration == "T" + samples.CORPORATE_NUMBER_NTA
    # 17,345 at 10 % (tax 1,734) + 999 at 8 % (tax 79)
    breakdown = {(s.category, s.percent): (s.taxable, s.tax) for s in inv.tax_breakdown}
    assert breakdown[("S", Decimal(10))][1] is not None
    assert breakdown[("S", Decimal(10))][1].value == 1734  # type: ignore[union-attr]
    assert breakdown[("AA", Decimal(8))][0].value == 999  # type: ignore[union-attr]
    assert search_amount_yen(inv).yen == 17345 + 1734 + 999 + 79
    assert [line.name for line in inv.lines] == [line.name for line in samples.TWO_RATES]
    assert check_invoice(inv) == ()


@pytest.mark.parametrize(("code", "kind"), [("381", DocKind.CREDIT_NOTE),
                                            ("389", DocKind.SELF_BILLING),
                                            ("380", DocKind.INVOICE)])
def test_the_type_code_decides_the_kind(code: str, kind: DocKind) -> None:
    inv = read_einvoice(cii_invoice(type_code=code)).invoice
    assert inv is not None and inv.kind is kind


def test_the_rules_run_on_cii_too() -> None:
    inv = read_einvoice(cii_invoice(registration=None, grand_total=Decimal(9999))).invoice
    assert inv is not None
    codes = {f.code for f in check_invoice(inv)}
    assert {REGISTRATION_NUMBER_MISSING, TOTAL_MISMATCH} <= codes


def test_a_bad_date_is_reported_not_guessed() -> None:
    inv = read_einvoice(cii_invoice(issue="2024-06-30")).invoice
    assert inv is not None and inv.issue_date is None
    assert any("YYYYMMDD" in p for p in inv.problems)
    inv = read_einvoice(cii_invoice(issue="20240231")).invoice
    assert inv is not None and inv.issue_date is None and inv.problems


def test_a_doctype_in_cii_is_refused_before_reading() -> None:
    xml = cii_invoice()
    head, body = xml.split(b"\n", 1)
    hostile = head + b'\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n' + body
    assert read_einvoice(hostile).code == EINVOICE_DTD_REFUSED
