"""UN/CEFACT CII D16B invoices (the Factur-X / ZUGFeRD syntax) generated for the tests.

Shaped as the EN 16931 CII binding lays a document out; values are Japanese (JPY, 10 % and
8 %, a seller 登録番号 as its VAT identifier, schemeID ``VA``)."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from xml.sax.saxutils import escape

from tests.einvoice_samples import CORPORATE_NUMBER_NTA, ONE_RATE, Line

RATES = {"S": Decimal(10), "AA": Decimal(8), "E": Decimal(0)}

RSM = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
UDT = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
EN16931 = "urn:cen.eu:en16931:2017"


def cii_invoice(*, number: str = "FX-2024-0001", issue: str = "20240630",
                type_code: str = "380", seller: str | None = "株式会社ファクトゥール",
                buyer: str = "株式会社エドック",
                registration: str | None = "T" + CORPORATE_NUMBER_NTA,
                lines: tuple[Line, ...] = ONE_RATE,
                currency: str = "JPY", grand_total: Decimal | None = None) -> bytes:
    """A CII invoice; ``grand_total`` overrides the computed total (to make totals disagree)."""
    by_category: dict[str, Decimal] = {}
    items = []
    for n, line in enumerate(lines, 1):
        rate = RATES[line.category]
        by_category[line.category] = by_category.get(line.category, Decimal(0)) + line.amount
        items.append(
            "<ram:IncludedSupplyChainTradeLineItem>"
            f"<ram:AssociatedDocumentLineDocument><ram:LineID>{n}</ram:LineID>"
            "</ram:AssociatedDocumentLineDocument>"
            f"<ram:SpecifiedTradeProduct><ram:Name>{escape(line.name)}</ram:Name>"
            "</ram:SpecifiedTradeProduct>"
            '<ram:SpecifiedLineTradeDelivery><ram:BilledQuantity unitCode="C62">1'
            "</ram:BilledQuantity></ram:SpecifiedLineTradeDelivery>"
            "<ram:SpecifiedLineTradeSettlement><ram:ApplicableTradeTax><ram:TypeCode>VAT"
            f"</ram:TypeCode><ram:CategoryCode>{line.category}</ram:CategoryCode>"
            f"<ram:RateApplicablePercent>{rate}</ram:RateApplicablePercent>"
            "</ram:ApplicableTradeTax><ram:SpecifiedTradeSettlementLineMonetarySummation>"
            f"<ram:LineTotalAmount>{line.amount}</ram:LineTotalAmount>"
            "</ram:SpecifiedTradeSettlementLineMonetarySummation>"
            "</ram:SpecifiedLineTradeSettlement></ram:IncludedSupplyChainTradeLineItem>")
    taxes, tax_total = [], Decimal(0)
    for category, basis in sorted(by_category.items(), key=lambda kv: -RATES[kv[0]]):
        rate = RATES[category]
        tax = (basis * rate / 100).quantize(Decimal(1), ROUND_FLOOR)
        tax_total += tax
        taxes.append(
            f"<ram:ApplicableTradeTax><ram:CalculatedAmount>{tax}</ram:CalculatedAmount>"
            f"<ram:TypeCode>VAT</ram:TypeCode><ram:BasisAmount>{basis}</ram:BasisAmount>"
            f"<ram:CategoryCode>{category}</ram:CategoryCode>"
            f"<ram:RateApplicablePercent>{rate}</ram:RateApplicablePercent>"
            "</ram:ApplicableTradeTax>")
    net = sum(by_category.values(), Decimal(0))
    total = grand_total if grand_total is not None else net + tax_total
    seller_xml = ""
    if seller is not None:
        seller_xml = f"<ram:Name>{escape(seller)}</ram:Name>"
    if registration is not None:
        seller_xml += ('<ram:SpecifiedTaxRegistration><ram:ID schemeID="VA">'
                       f"{escape(registration)}</ram:ID></ram:SpecifiedTaxRegistration>")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<rsm:CrossIndustryInvoice xmlns:rsm="{RSM}" xmlns:ram="{RAM}" xmlns:udt="{UDT}">'
        "<rsm:ExchangedDocumentContext><ram:GuidelineSpecifiedDocumentContextParameter>"
        f"<ram:ID>{EN16931}</ram:ID></ram:GuidelineSpecifiedDocumentContextParameter>"
        "</rsm:ExchangedDocumentContext>"
        f"<rsm:ExchangedDocument><ram:ID>{escape(number)}</ram:ID>"
        f"<ram:TypeCode>{type_code}</ram:TypeCode><ram:IssueDateTime>"
        f'<udt:DateTimeString format="102">{issue}</udt:DateTimeString></ram:IssueDateTime>'
        "</rsm:ExchangedDocument><rsm:SupplyChainTradeTransaction>" + "".join(items) +
        "<ram:ApplicableHeaderTradeAgreement>"
        f"<ram:SellerTradeParty>{seller_xml}</ram:SellerTradeParty>"
        f"<ram:BuyerTradeParty><ram:Name>{escape(buyer)}</ram:Name></ram:BuyerTradeParty>"
        "</ram:ApplicableHeaderTradeAgreement><ram:ApplicableHeaderTradeDelivery/>"
        "<ram:ApplicableHeaderTradeSettlement>"
        f"<ram:InvoiceCurrencyCode>{currency}</ram:InvoiceCurrencyCode>" + "".join(taxes) +
        "<ram:SpecifiedTradeSettlementHeaderMonetarySummation>"
        f"<ram:LineTotalAmount>{net}</ram:LineTotalAmount>"
        f"<ram:TaxBasisTotalAmount>{net}</ram:TaxBasisTotalAmount>"
        f'<ram:TaxTotalAmount currencyID="{currency}">{tax_total}</ram:TaxTotalAmount>'
        f"<ram:GrandTotalAmount>{total}</ram:GrandTotalAmount>"
        f"<ram:DuePayableAmount>{total}</ram:DuePayableAmount>"
        "</ram:SpecifiedTradeSettlementHeaderMonetarySummation>"
        "</ram:ApplicableHeaderTradeSettlement></rsm:SupplyChainTradeTransaction>"
        "</rsm:CrossIndustryInvoice>\n").encode()

