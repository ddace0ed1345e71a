"""The JP PINT business rules that matter for keeping and searching an e-invoice.

Owns judging a ``PintInvoice`` (read by ``edoc.inspection.einvoice``) against the handful of
Peppol JP PINT 1.1 rules that decide whether the archive can keep and find it: the mandatory
fields, the seller's registration number (適格請求書発行事業者 登録番号, 消費税法 第57条の4),
the tax breakdown per category and rate, rounding, and totals. It is not a full Schematron
validation: a Peppol access point has already run that; these checks are the ones the archive
itself depends on (the 取引年月日, 取引金額, 取引先 of 電子帳簿保存法 施行規則 第4条 search
requirements), re-run so a bad file is flagged at ingest rather than discovered at audit.

Every check returns *warnings* (``Finding``, frozen, with the PINT rule id), never raises:
an invoice that breaks a rule is still a document the law obliges the business to keep.
Rule ids are PINT's where PINT has one; ``edoc:…`` marks a check of this module's own.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Final

from edoc.inspection.einvoice import Amount, PintInvoice, PintSpec, TaxSubtotal
from edoc.inspection.einvoice_model import element_name
from edoc.policy.registration import (
    REGISTRATION_NUMBER_INVALID,
    Finding,
    check_registration_number,
)

__all__ = [
    "EINVOICE_FIELD_MISSING",
    "EINVOICE_VALUE_UNREADABLE",
    "INVOICE_SYSTEM_START",
    "LINE_TOTAL_MISMATCH",
    "REGISTRATION_NUMBER_MISSING",
    "SEARCH_AMOUNT_MISSING",
    "SEARCH_AMOUNT_NOT_INTEGRAL",
    "SEARCH_AMOUNT_NOT_YEN",
    "TAX_AMOUNT_DECIMALS",
    "TAX_AMOUNT_ROUNDING",
    "TAX_CATEGORY_RATE",
    "TAX_SUBTOTAL_DUPLICATE",
    "TOTAL_MISMATCH",
    "SearchAmount",
    "check_invoice",
    "check_line_total",
    "check_mandatory_fields",
    "check_seller_registration",
    "check_tax_breakdown",
    "check_tax_decimals",
    "check_tax_rounding",
    "check_totals",
    "check_unreadable_values",
    "search_amount_yen",
]

EINVOICE_FIELD_MISSING: Final = "EINVOICE_FIELD_MISSING"
EINVOICE_VALUE_UNREADABLE: Final = "EINVOICE_VALUE_UNREADABLE"
REGISTRATION_NUMBER_MISSING: Final = "REGISTRATION_NUMBER_MISSING"
TAX_SUBTOTAL_DUPLICATE: Final = "TAX_SUBTOTAL_DUPLICATE"
TAX_CATEGORY_RATE: Final = "TAX_CATEGORY_RATE"
TAX_AMOUNT_ROUNDING: Final = "TAX_AMOUNT_ROUNDING"
TAX_AMOUNT_DECIMALS: Final = "TAX_AMOUNT_DECIMALS"
TOTAL_MISMATCH: Final = "TOTAL_MISMATCH"
LINE_TOTAL_MISMATCH: Final = "LINE_TOTAL_MISMATCH"
SEARCH_AMOUNT_MISSING: Final = "SEARCH_AMOUNT_MISSING"
SEARCH_AMOUNT_NOT_YEN: Final = "SEARCH_AMOUNT_NOT_YEN"
SEARCH_AMOUNT_NOT_INTEGRAL: Final = "SEARCH_AMOUNT_NOT_INTEGRAL"

#: The 適格請求書等保存方式 (qualified invoice system) starts 2023-10-01 (the 平成28年 amendment
#: of 消費税法):
#: from then on a 適格請求書 must carry the issuer's registration number.
INVOICE_SYSTEM_START: Final = date(2023, 10, 1)

JPY: Final = "JPY"

#: The JP consumption tax categories PINT uses (UNCL5305 codes) and the rate each must carry:
#: S standard 10 %, AA reduced 8 % (軽減税率: food and drink, newspapers),
#: E exempt (非課税), G export (輸出免税), O outside the scope (不課税) — the last three at 0 %.
JP_TAX_RATES: Final[dict[str, Decimal]] = {
    "S": Decimal(10),
    "AA": Decimal(8),
    "E": Decimal(0),
    "G": Decimal(0),
    "O": Decimal(0),
}

_CENT: Final = Decimal("0.01")


def check_invoice(invoice: PintInvoice) -> tuple[Finding, ...]:
    """Every rule below, in a stable order; an empty tuple means nothing to report."""
    return (
        *check_unreadable_values(invoice),
        *check_mandatory_fields(invoice),
        *check_seller_registration(invoice),
        *check_tax_breakdown(invoice),
        *check_tax_rounding(invoice),
        *check_tax_decimals(invoice),
        *check_totals(invoice),
        *check_line_total(invoice),
    )


def check_unreadable_values(invoice: PintInvoice) -> list[Finding]:
    """Values present but unreadable (a decimal that is not one, a date in another form)."""
    return [Finding(EINVOICE_VALUE_UNREADABLE, "ubl-schema", p) for p in invoice.problems]


def check_mandatory_fields(invoice: PintInvoice) -> list[Finding]:
    """ibr-02 invoice number (ibt-001), ibr-03 issue date (ibt-002), ibr-06 seller name
    (ibt-027), ibr-14 amount with tax (ibt-112): the fields a search needs."""
    def name(term: str) -> str:
        return element_name(invoice, term)

    required: list[tuple[object, str, str]] = [
        (invoice.number, "ibr-02", f"{name('number')} (invoice number, ibt-001)"),
        (invoice.issue_date, "ibr-03", f"{name('issue_date')} (issue date, ibt-002)"),
        (invoice.supplier_name, "ibr-06", f"seller {name('supplier_name')} (seller name, ibt-027)"),
        (invoice.tax_inclusive, "ibr-14",
         f"{name('tax_inclusive')} (amount with tax, ibt-112)"),
    ]
    return [
        Finding(EINVOICE_FIELD_MISSING, rule, f"{what} is missing")
        for value, rule, what in required
        if value is None
    ]


def check_seller_registration(invoice: PintInvoice) -> list[Finding]:
    """ibr-jp-01 / ibr-jp-04: from 2023-10-01 the seller's registration number (ibt-031,
    PartyTaxScheme/CompanyID) is mandatory and is ``T`` + 13 digits; plus the 法人番号 check
    digit as a softer warning (see ``edoc.policy.registration``).

    Not applied to the non-tax invoice specification: that one is *for* a business that is
    not registered. A missing or unreadable issue date is treated as on or after the start
    (the missing date is reported by ``check_mandatory_fields``)."""
    if invoice.spec is PintSpec.NON_TAX:
        return []
    if invoice.issue_date is not None and invoice.issue_date < INVOICE_SYSTEM_START:
        return []
    raw = invoice.supplier_registration
    if raw is None:
        return [
            Finding(
                REGISTRATION_NUMBER_MISSING,
                "ibr-jp-01",
                "seller registration number (PartyTaxScheme/CompanyID, ibt-031) is missing"
                f" on an invoice issued on or after {INVOICE_SYSTEM_START.isoformat()}",
            )
        ]
    result = check_registration_number(raw)
    findings = list(result.findings)
    if result.format_ok and result.normalised:
        # The XML itself must match T[0-9]{13}; a full-width number is readable but not valid.
        findings.insert(
            0,
            Finding(
                REGISTRATION_NUMBER_INVALID,
                "ibr-jp-04",
                f"registration number {raw[:40]!r} is {result.number} only after NFKC"
                " normalisation; the invoice must carry it as 'T' and 13 ASCII digits",
            ),
        )
    return findings


def check_tax_breakdown(invoice: PintInvoice) -> list[Finding]:
    """One TaxSubtotal per category and rate (a 適格請求書 states the tax *per rate*,
    消費税法 第57条の4 第1項第4号/第5号), and each category at its JP rate."""
    findings: list[Finding] = []
    for total in invoice.tax_totals:
        currency = total.tax.currency if total.tax is not None else None
        keys = Counter((sub.category, _rate(sub)) for sub in total.subtotals)
        for (category, rate), count in sorted(keys.items(), key=str):
            if count > 1:
                findings.append(
                    Finding(
                        TAX_SUBTOTAL_DUPLICATE,
                        "edoc:one-subtotal-per-rate",
                        f"{count} tax subtotals for category {category} at {_pct(rate)}"
                        f" in the {currency or 'unmarked'} tax total; expected one",
                    )
                )
        for sub in total.subtotals:
            expected = JP_TAX_RATES.get(sub.category or "")
            if expected is None:
                findings.append(
                    Finding(
                        TAX_CATEGORY_RATE,
                        "edoc:jp-tax-categories",
                        f"tax category {sub.category!r} is not one of {', '.join(JP_TAX_RATES)}",
                    )
                )
            elif _rate(sub) != expected:
                findings.append(
                    Finding(
                        TAX_CATEGORY_RATE,
                        "edoc:jp-tax-categories",
                        f"tax category {sub.category} at {_pct(_rate(sub))};"
                        f" JP rate is {_pct(expected)}",
                    )
                )
    return findings


def check_tax_rounding(invoice: PintInvoice) -> list[Finding]:
    """aligned-ibrp-051-jp: a subtotal's tax amount is taxable × rate / 100 rounded to an
    integer (yen) by any method — so anywhere from the floor to the ceiling, inclusive. The
    invoice system lets the issuer choose 切り捨て, 切り上げ or 四捨五入, once per rate per invoice
    (消費税法施行令 第70条の10). Other currencies are held to their minor unit (0.01).

    Not applied to the non-tax invoice specification: its rule set (pint-jp-ntr 1.1.3) has no
    aligned-ibrp-051-jp, and its own examples state a category S 10 % subtotal with a tax
    amount of 0 — a business that is not registered states no consumption tax."""
    if invoice.spec is PintSpec.NON_TAX:
        return []
    findings: list[Finding] = []
    for total in invoice.tax_totals:
        for sub in total.subtotals:
            if sub.taxable is None or sub.tax is None:
                continue
            exact = sub.taxable.value * _rate(sub) / 100
            unit = Decimal(1) if (sub.tax.currency or sub.taxable.currency) == JPY else _CENT
            low = exact.quantize(unit, rounding=ROUND_FLOOR)
            high = exact.quantize(unit, rounding=ROUND_CEILING)
            if not low <= sub.tax.value <= high:
                findings.append(
                    Finding(
                        TAX_AMOUNT_ROUNDING,
                        "aligned-ibrp-051-jp",
                        f"category {sub.category} tax {sub.tax.value} {sub.tax.currency or ''}"
                        f" is not {sub.taxable.value} × {_pct(_rate(sub))} = {exact}"
                        f" rounded (between {low} and {high})",
                    )
                )
    return findings


def check_tax_decimals(invoice: PintInvoice) -> list[Finding]:
    """ibr-jp-06: tax amounts in JPY have no decimals (the yen has no minor unit in use)."""
    findings: list[Finding] = []
    for total in invoice.tax_totals:
        amounts = [("tax total", total.tax)]
        amounts += [(f"category {s.category} tax", s.tax) for s in total.subtotals]
        for what, amount in amounts:
            if amount is not None and amount.currency == JPY and not _integral(amount.value):
                findings.append(
                    Finding(
                        TAX_AMOUNT_DECIMALS,
                        "ibr-jp-06",
                        f"{what} {amount.value} JPY has decimals; yen amounts are integers",
                    )
                )
    return findings


def check_totals(invoice: PintInvoice) -> list[Finding]:
    """ibr-co-15: TaxExclusiveAmount + the document-currency tax total = TaxInclusiveAmount,
    checked when the document currency is JPY (a foreign-currency invoice's yen tax total is
    in another currency than its totals, so the sum is not defined)."""
    if invoice.document_currency != JPY:
        return []
    tax_total = invoice.tax_total_in(JPY)
    parts = (invoice.tax_exclusive, invoice.tax_inclusive, tax_total.tax if tax_total else None)
    exclusive, inclusive, tax = parts
    if exclusive is None or inclusive is None or tax is None:
        return []
    if exclusive.value + tax.value == inclusive.value:
        return []
    return [
        Finding(
            TOTAL_MISMATCH,
            "ibr-co-15",
            f"TaxExclusiveAmount {exclusive.value} + tax {tax.value}"
            f" = {exclusive.value + tax.value}, not TaxInclusiveAmount {inclusive.value} JPY",
        )
    ]


def check_line_total(invoice: PintInvoice) -> list[Finding]:
    """ibr-co-10: the sum of the lines' LineExtensionAmount = LegalMonetaryTotal's."""
    declared = invoice.line_extension
    if declared is None:
        return []
    lines = [line.line_extension for line in invoice.lines]
    if any(amount is None for amount in lines):
        return [
            Finding(
                LINE_TOTAL_MISMATCH,
                "ibr-co-10",
                "a line has no LineExtensionAmount, so the line total cannot be checked",
            )
        ]
    total = sum((a.value for a in lines if a is not None), Decimal(0))
    if total == declared.value:
        return []
    return [
        Finding(
            LINE_TOTAL_MISMATCH,
            "ibr-co-10",
            f"the {len(lines)} lines add up to {total}, not LineExtensionAmount"
            f" {declared.value} {declared.currency or ''}".rstrip(),
        )
    ]


@dataclass(frozen=True)
class SearchAmount:
    """The 取引金額 to index: ``yen`` when the TaxInclusiveAmount is an integral JPY amount,
    else ``None`` with a ``finding`` saying why. ``amount`` keeps what the invoice said,
    currency and all, so a EUR invoice is still described truthfully."""

    yen: int | None
    amount: Amount | None
    finding: Finding | None = None


def search_amount_yen(invoice: PintInvoice) -> SearchAmount:
    """The amount edoc indexes for search (電子帳簿保存法 施行規則 第4条 取引金額): the amount
    with tax (ibt-112), in whole yen — or nothing, rather than a converted or rounded guess."""
    amount = invoice.tax_inclusive
    element = element_name(invoice, "tax_inclusive", prefixed=False)
    if amount is None:
        return SearchAmount(
            None,
            None,
            Finding(SEARCH_AMOUNT_MISSING, "ibr-14", f"no {element} to search by"),
        )
    if amount.currency != JPY:
        return SearchAmount(
            None,
            amount,
            Finding(
                SEARCH_AMOUNT_NOT_YEN,
                "edoc:search-amount",
                f"{element} is {amount.value} {amount.currency or '(no currency)'};"
                " the search amount is kept in yen only, so none is indexed",
            ),
        )
    if not _integral(amount.value):
        return SearchAmount(
            None,
            amount,
            Finding(
                SEARCH_AMOUNT_NOT_INTEGRAL,
                "edoc:search-amount",
                f"{element} {amount.value} JPY is not a whole number of yen",
            ),
        )
    return SearchAmount(int(amount.value), amount)


def _rate(sub: TaxSubtotal) -> Decimal:
    """A subtotal's rate; an absent Percent counts as 0 (E, G and O carry none or 0)."""
    return sub.percent if sub.percent is not None else Decimal(0)


def _pct(rate: Decimal) -> str:
    return f"{rate.normalize():f} %"


def _integral(value: Decimal) -> bool:
    return value == value.to_integral_value()
