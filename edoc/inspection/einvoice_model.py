"""The data an e-invoice reading yields: a frozen ``PintInvoice`` and its parts.

Owns the shapes both syntax readers produce — ``edoc.inspection.einvoice`` for UBL 2.1 (JP PINT)
and ``edoc.inspection.cii`` for UN/CEFACT CII (Factur-X / ZUGFeRD) — so the rules
(``edoc.policy.pint_rules``), the search fields and the rendering read one model whatever the
syntax. No parsing here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Final


class PintSpec(StrEnum):
    """The three JP PINT specifications, by their CustomizationID (ibt-024)."""

    STANDARD = "urn:peppol:pint:billing-1@jp-1"
    SELF_BILLING = "urn:peppol:pint:selfbilling-1@jp-1"
    NON_TAX = "urn:peppol:pint:nontaxinvoice-1@jp-1"


#: The invoice type code (ibt-003) each specification's example uses: 380 commercial invoice,
#: 389 self-billed invoice, 480 the JP "non-tax invoice" of a business that is not registered.
EXPECTED_TYPE_CODE: Final = {
    PintSpec.STANDARD: "380",
    PintSpec.SELF_BILLING: "389",
    PintSpec.NON_TAX: "480",
}


class DocKind(StrEnum):
    """What the document is for the archive: a credit note is a CreditNote root whatever its
    specification; a self-billed document is an Invoice root under the self-billing spec."""

    INVOICE = "invoice"
    CREDIT_NOTE = "credit-note"
    SELF_BILLING = "self-billing"


@dataclass(frozen=True)
class Amount:
    """A monetary amount as written: exact ``Decimal`` and its ``currencyID`` (None if absent)."""

    value: Decimal
    currency: str | None


@dataclass(frozen=True)
class TaxSubtotal:
    """One ``cac:TaxSubtotal``: the tax breakdown for one category and rate (ibg-23)."""

    category: str | None
    percent: Decimal | None
    taxable: Amount | None
    tax: Amount | None


@dataclass(frozen=True)
class TaxTotal:
    """One ``cac:TaxTotal``: its ``cbc:TaxAmount`` and its subtotals. A foreign-currency JP
    invoice has two: one in the document currency, one in the tax currency (JPY)."""

    tax: Amount | None
    subtotals: tuple[TaxSubtotal, ...]


@dataclass(frozen=True)
class InvoiceLine:
    """One ``cac:InvoiceLine`` / ``cac:CreditNoteLine``."""

    id: str | None
    name: str | None
    quantity: Decimal | None
    unit: str | None
    line_extension: Amount | None
    tax_category: str | None
    tax_percent: Decimal | None


@dataclass(frozen=True)
class PintInvoice:
    """The fields of a JP PINT document edoc keeps and searches on. ``None`` means absent;
    ``problems`` lists values that were present but could not be read (a bad decimal or date),
    so the rules can report them instead of this reader guessing."""

    kind: DocKind
    #: The JP PINT specification; ``None`` for a document in another syntax (CII), which is
    #: therefore not JP PINT.
    spec: PintSpec | None
    customization_id: str
    profile_id: str | None
    type_code: str | None
    number: str | None
    issue_date: date | None
    document_currency: str | None
    tax_currency: str | None
    supplier_name: str | None
    supplier_registration: str | None
    customer_name: str | None
    line_extension: Amount | None
    tax_exclusive: Amount | None
    tax_inclusive: Amount | None
    payable: Amount | None
    tax_totals: tuple[TaxTotal, ...]
    lines: tuple[InvoiceLine, ...]
    problems: tuple[str, ...] = ()
    #: ``ubl`` (JP PINT) or ``cii`` (UN/CEFACT Cross Industry Invoice).
    syntax: str = "ubl"

    def tax_total_in(self, currency: str | None) -> TaxTotal | None:
        """The TaxTotal whose TaxAmount is in ``currency`` (the first, if several)."""
        for total in self.tax_totals:
            if total.tax is not None and total.tax.currency == currency:
                return total
        return None

    @property
    def tax_breakdown(self) -> tuple[TaxSubtotal, ...]:
        """The subtotals to keep: in the tax currency when the invoice has one (a JP invoice
        in EUR still owes consumption tax in yen), else in the document currency."""
        for currency in (self.tax_currency, self.document_currency):
            if currency is None:
                continue
            total = self.tax_total_in(currency)
            if total is not None and total.subtotals:
                return total.subtotals
        return self.tax_totals[0].subtotals if self.tax_totals else ()


#: What each business term is called in each syntax, for messages that name the element a
#: reader of that file will look for (EN 16931-3-2 UBL binding, EN 16931-3-3 CII binding).
_ELEMENTS: Final[dict[str, dict[str, str]]] = {
    "ubl": {"number": "cbc:ID", "issue_date": "cbc:IssueDate",
            "supplier_name": "cbc:RegistrationName", "customer_name": "cbc:RegistrationName",
            "tax_inclusive": "cbc:TaxInclusiveAmount", "tax_exclusive": "cbc:TaxExclusiveAmount"},
    "cii": {"number": "ram:ID", "issue_date": "ram:IssueDateTime",
            "supplier_name": "ram:SellerTradeParty/ram:Name",
            "customer_name": "ram:BuyerTradeParty/ram:Name",
            "tax_inclusive": "ram:GrandTotalAmount", "tax_exclusive": "ram:TaxBasisTotalAmount"},
}


def element_name(invoice: PintInvoice, term: str, *, prefixed: bool = True) -> str:
    """The element carrying ``term`` in ``invoice``'s syntax (``cbc:IssueDate`` for UBL,
    ``ram:IssueDateTime`` for CII); ``prefixed=False`` drops the namespace prefix."""
    name = _ELEMENTS.get(invoice.syntax, _ELEMENTS["ubl"])[term]
    return name if prefixed else name.split(":", 1)[-1] if name.count(":") == 1 else name


def read_decimal(text: str | None, where: str, problems: list[str]) -> Decimal | None:
    """``text`` as an exact finite ``Decimal``; None when absent, or when it is not one —
    then ``problems`` says so (``where``: the element), for the rules to report."""
    if text is None:
        return None
    try:
        value: Decimal | None = Decimal(text)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        problems.append(f"{where}: {text[:40]!r} is not a decimal number")
        return None
    return value
