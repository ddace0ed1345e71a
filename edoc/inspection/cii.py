"""What a UN/CEFACT Cross Industry Invoice says: the CII D16B syntax of Factur-X / ZUGFeRD.

Owns turning an already-parsed ``rsm:CrossIndustryInvoice`` (EN 16931's second syntax, the one
Factur-X 1.0 and ZUGFeRD 2.x embed in a PDF) into the same frozen ``PintInvoice`` the JP PINT
reader produces, so one set of rules, search fields and rendering serves both. Parsing and
hardening (no DTD, no entities, no network, size limit) stay in ``edoc.inspection.einvoice``:
this module only walks a tree that reader has already accepted.

A CII document is *not* JP PINT: ``spec`` is ``None`` and ``syntax`` is ``"cii"``, so it never
counts as 特定電磁的記録 (data in the Digital Agency's specification, 電帳法施行規則 第5条第5項)
for the デジタルシームレス measure, and the renderer does not title it 適格請求書.

Where the business terms live (EN 16931-1 semantic model, CII binding of EN 16931-3-3):

* BT-1 invoice number ``rsm:ExchangedDocument/ram:ID``; BT-3 type ``ram:TypeCode`` (380
  invoice, 381 credit note, 389 self-billed); BT-2 issue date ``ram:IssueDateTime/
  udt:DateTimeString`` in format ``102`` (``YYYYMMDD``);
* BT-24 specification ``rsm:ExchangedDocumentContext/
  ram:GuidelineSpecifiedDocumentContextParameter/ram:ID``;
* BT-27 seller name ``ram:SellerTradeParty/ram:Name``; BT-31 seller VAT identifier
  ``ram:SpecifiedTaxRegistration/ram:ID[@schemeID='VA']`` (where a JP seller puts its 登録番号);
  BT-44 buyer name ``ram:BuyerTradeParty/ram:Name``;
* BT-5/BT-6 currencies ``ram:InvoiceCurrencyCode`` / ``ram:TaxCurrencyCode``; the totals in
  ``ram:SpecifiedTradeSettlementHeaderMonetarySummation``; the breakdown per category and rate
  (BG-23) in the header ``ram:ApplicableTradeTax`` elements.

CII amounts carry no ``currencyID`` (except ``TaxTotalAmount``, which may appear once per
currency): they are in the invoice currency, so that is the currency given to each.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Final

from edoc.inspection.einvoice_model import (
    Amount,
    DocKind,
    InvoiceLine,
    PintInvoice,
    TaxSubtotal,
    TaxTotal,
    read_decimal,
)
from edoc.inspection.xpath import selector

RSM: Final = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
RAM: Final = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
UDT: Final = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
_NS: Final = {"rsm": RSM, "ram": RAM, "udt": UDT}

#: UNTDID 1001 document type codes EN 16931 allows for a credit note (BT-3); 381 is the usual.
_CREDIT_NOTE_CODES: Final = frozenset({"81", "83", "381", "396", "532"})
SELF_BILLED_CODE: Final = "389"

_TRADE: Final = "rsm:SupplyChainTradeTransaction"
_AGREEMENT: Final = f"{_TRADE}/ram:ApplicableHeaderTradeAgreement"
_SETTLEMENT: Final = f"{_TRADE}/ram:ApplicableHeaderTradeSettlement"
_SUMMATION: Final = f"{_SETTLEMENT}/ram:SpecifiedTradeSettlementHeaderMonetarySummation"


def read_cii(root: Any) -> PintInvoice:
    """The fields of a parsed ``rsm:CrossIndustryInvoice`` (never raises for bad values:
    they are listed in ``problems`` for the rules to report)."""
    problems: list[str] = []
    type_code = _text(root, "rsm:ExchangedDocument/ram:TypeCode")
    if type_code in _CREDIT_NOTE_CODES:
        kind = DocKind.CREDIT_NOTE
    elif type_code == SELF_BILLED_CODE:
        kind = DocKind.SELF_BILLING
    else:
        kind = DocKind.INVOICE
    currency = _text(root, f"{_SETTLEMENT}/ram:InvoiceCurrencyCode")
    tax_currency = _text(root, f"{_SETTLEMENT}/ram:TaxCurrencyCode")
    seller = f"{_AGREEMENT}/ram:SellerTradeParty"
    return PintInvoice(
        kind=kind,
        spec=None,
        syntax="cii",
        customization_id=_text(root, "rsm:ExchangedDocumentContext/"
                               "ram:GuidelineSpecifiedDocumentContextParameter/ram:ID") or RSM,
        profile_id=_text(root, "rsm:ExchangedDocumentContext/"
                         "ram:BusinessProcessSpecifiedDocumentContextParameter/ram:ID"),
        type_code=type_code,
        number=_text(root, "rsm:ExchangedDocument/ram:ID"),
        issue_date=_date(root, "rsm:ExchangedDocument/ram:IssueDateTime/udt:DateTimeString",
                         problems),
        document_currency=currency,
        tax_currency=tax_currency,
        supplier_name=_text(root, f"{seller}/ram:Name"),
        supplier_registration=_seller_registration(root, seller),
        customer_name=_text(root, f"{_AGREEMENT}/ram:BuyerTradeParty/ram:Name"),
        line_extension=_amount(root, f"{_SUMMATION}/ram:LineTotalAmount", currency, problems),
        tax_exclusive=_amount(root, f"{_SUMMATION}/ram:TaxBasisTotalAmount", currency,
                              problems),
        tax_inclusive=_amount(root, f"{_SUMMATION}/ram:GrandTotalAmount", currency, problems),
        payable=_amount(root, f"{_SUMMATION}/ram:DuePayableAmount", currency, problems),
        tax_totals=_tax_totals(root, currency, problems),
        lines=tuple(_line(item, currency, problems) for item in
                    _all(root, f"{_TRADE}/ram:IncludedSupplyChainTradeLineItem")),
        problems=tuple(problems),
    )


def _seller_registration(root: Any, seller: str) -> str | None:
    """BT-31 (schemeID ``VA``), else the first tax registration of the seller (BT-32, ``FC``)."""
    registrations = _all(root, f"{seller}/ram:SpecifiedTaxRegistration/ram:ID")
    for reg in registrations:
        if (reg.get("schemeID") or "").strip() == "VA":
            return _node_text(reg)
    return _node_text(registrations[0]) if registrations else None


def _tax_totals(root: Any, currency: str | None, problems: list[str]) -> tuple[TaxTotal, ...]:
    """One ``TaxTotal`` per ``TaxTotalAmount`` (BT-110 in the invoice currency, BT-111 in the
    tax currency); the header breakdown (BG-23) belongs to the invoice-currency one."""
    subtotals = tuple(
        TaxSubtotal(
            category=_text(tax, "ram:CategoryCode"),
            percent=_decimal(tax, "ram:RateApplicablePercent", problems),
            taxable=_amount(tax, "ram:BasisAmount", currency, problems),
            tax=_amount(tax, "ram:CalculatedAmount", currency, problems),
        )
        for tax in _all(root, f"{_SETTLEMENT}/ram:ApplicableTradeTax")
    )
    totals: list[TaxTotal] = []
    for node in _all(root, f"{_SUMMATION}/ram:TaxTotalAmount"):
        amount = _amount_of(node, "ram:TaxTotalAmount", currency, problems)
        in_invoice_currency = amount is None or amount.currency == currency
        totals.append(TaxTotal(amount, subtotals if in_invoice_currency else ()))
    if not totals and subtotals:
        totals.append(TaxTotal(None, subtotals))
    return tuple(totals)


def _line(item: Any, currency: str | None, problems: list[str]) -> InvoiceLine:
    quantity = "ram:SpecifiedLineTradeDelivery/ram:BilledQuantity"
    tax = "ram:SpecifiedLineTradeSettlement/ram:ApplicableTradeTax"
    quantity_nodes = _all(item, quantity)
    return InvoiceLine(
        id=_text(item, "ram:AssociatedDocumentLineDocument/ram:LineID"),
        name=_text(item, "ram:SpecifiedTradeProduct/ram:Name"),
        quantity=_decimal(item, quantity, problems),
        unit=quantity_nodes[0].get("unitCode") if quantity_nodes else None,
        line_extension=_amount(item, "ram:SpecifiedLineTradeSettlement/"
                               "ram:SpecifiedTradeSettlementLineMonetarySummation/"
                               "ram:LineTotalAmount", currency, problems),
        tax_category=_text(item, f"{tax}/ram:CategoryCode"),
        tax_percent=_decimal(item, f"{tax}/ram:RateApplicablePercent", problems),
    )


# -- typed XPath helpers (namespaced, relative to a node) ------------------------------------


#: the elements at a namespaced path relative to a node (compiled once per thread)
_all: Final = selector(_NS)


def _node_text(node: Any) -> str | None:
    text = node.text
    return text.strip() or None if isinstance(text, str) else None


def _text(node: Any, path: str) -> str | None:
    found = _all(node, path)
    return _node_text(found[0]) if found else None


def _decimal(node: Any, path: str, problems: list[str]) -> Decimal | None:
    return read_decimal(_text(node, path), path, problems)


def _amount(node: Any, path: str, currency: str | None, problems: list[str]) -> Amount | None:
    found = _all(node, path)
    return _amount_of(found[0], path, currency, problems) if found else None


def _amount_of(element: Any, path: str, currency: str | None,
               problems: list[str]) -> Amount | None:
    value = read_decimal(_node_text(element), path, problems)
    if value is None:
        return None
    own = element.get("currencyID")
    return Amount(value, own.strip() if isinstance(own, str) and own.strip() else currency)


def _date(node: Any, path: str, problems: list[str]) -> date | None:
    """``udt:DateTimeString`` in format 102 (``YYYYMMDD``), the only one EN 16931 allows for
    BT-2; anything else is reported rather than guessed at."""
    found = _all(node, path)
    text = _node_text(found[0]) if found else None
    if text is None:
        return None
    fmt = (found[0].get("format") or "102").strip()
    if fmt == "102" and len(text) == 8 and text.isdigit():
        try:
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        except ValueError:
            pass
    problems.append(f"{path}: {text[:40]!r} (format {fmt[:8]!r}) is not a YYYYMMDD date")
    return None
