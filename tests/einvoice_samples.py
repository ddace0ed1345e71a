"""JP PINT (Peppol PINT JP 1.1) e-invoice generators for tests: good, broken and hostile.

String templates in the shape of the official JP PINT examples (UBL 2.1), built with exact
``Decimal`` arithmetic so a "good" invoice really adds up: line amounts, one tax subtotal per
category and rate, tax rounded down (切り捨て) per rate, totals. Knobs break one thing at a
time. Everything is returned as ``bytes``; nothing is committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from xml.sax.saxutils import escape, quoteattr

__all__ = [
    "CORPORATE_NUMBER_NTA",
    "Line",
    "billion_laughs",
    "external_dtd_invoice",
    "large_invoice",
    "pint_invoice",
    "xxe_invoice",
]

#: 国税庁's own 法人番号: a known-valid check digit.
CORPORATE_NUMBER_NTA = "7000012050002"

STANDARD = "urn:peppol:pint:billing-1@jp-1"
SELF_BILLING = "urn:peppol:pint:selfbilling-1@jp-1"
NON_TAX = "urn:peppol:pint:nontaxinvoice-1@jp-1"

_RATES = {"S": Decimal(10), "AA": Decimal(8), "E": Decimal(0), "G": Decimal(0), "O": Decimal(0)}


@dataclass(frozen=True)
class Line:
    name: str
    quantity: Decimal
    price: Decimal
    category: str = "S"
    description: str = ""

    @property
    def amount(self) -> Decimal:
        return self.quantity * self.price


ONE_RATE = (Line("コピー用紙 A4", Decimal(10), Decimal(500)),)
TWO_RATES = (
    Line("コピー用紙 A4", Decimal(10), Decimal(500), "S"),
    Line("お茶 (軽減税率)", Decimal(3), Decimal(333), "AA"),
    Line("トナー", Decimal(1), Decimal(12345), "S"),
)


def pint_invoice(
    *,
    lines: Sequence[Line] = ONE_RATE,
    number: str | None = "INV-2024-0001",
    issue_date: str | None = "2024-04-01",
    credit_note: bool = False,
    self_billing: bool = False,
    non_tax: bool = False,
    customization: str | None = None,
    registration: str | None = "T" + CORPORATE_NUMBER_NTA,
    supplier_name: str | None = "株式会社サンプル商事",
    customer_name: str = "株式会社テスト購買",
    document_currency: str = "JPY",
    tax_currency: str | None = None,
    exchange_rate: Decimal = Decimal(160),
    total_off_by: Decimal = Decimal(0),
    line_total_off_by: Decimal = Decimal(0),
    tax_off_by: Decimal = Decimal(0),
    duplicate_subtotal: bool = False,
    omit_tax_inclusive: bool = False,
    prolog: str = '<?xml version="1.0" encoding="UTF-8"?>\n',
) -> bytes:
    """A JP PINT invoice (or credit note) that is correct unless a knob breaks it.

    ``tax_currency="JPY"`` with ``document_currency="EUR"`` adds the second TaxTotal in yen
    (taxable converted at ``exchange_rate`` and rounded to the yen). ``tax_off_by`` shifts the
    first subtotal's tax amount (and the tax total with it, so only the rounding rule breaks);
    ``total_off_by`` shifts TaxInclusiveAmount and PayableAmount."""
    if self_billing:
        spec, type_code = SELF_BILLING, "389"
    elif non_tax:
        spec, type_code = NON_TAX, "480"
    else:
        spec, type_code = STANDARD, "380"
    if credit_note:
        type_code = "381"
    root = "CreditNote" if credit_note else "Invoice"
    cur = document_currency
    doc_unit = Decimal(1) if cur == "JPY" else Decimal("0.01")

    groups: dict[str, Decimal] = {}
    for line in lines:
        groups[line.category] = groups.get(line.category, Decimal(0)) + line.amount
    subtotals = [
        (cat, taxable, _tax(taxable, _RATES[cat], doc_unit)) for cat, taxable in groups.items()
    ]
    if tax_off_by and subtotals:
        cat, taxable, tax = subtotals[0]
        subtotals[0] = (cat, taxable, tax + tax_off_by)
    if duplicate_subtotal and subtotals:
        subtotals.append(subtotals[0])
    tax_sum = sum((t for _, _, t in subtotals), Decimal(0))
    line_sum = sum((line.amount for line in lines), Decimal(0)) + line_total_off_by
    exclusive = line_sum - line_total_off_by
    inclusive = exclusive + tax_sum + total_off_by

    out: list[str] = [prolog]
    out.append(
        f'<{root} xmlns="urn:oasis:names:specification:ubl:schema:xsd:{root}-2"'
        ' xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"'
        ' xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">\n'
    )
    out.append(f"<cbc:CustomizationID>{escape(customization or spec)}</cbc:CustomizationID>\n")
    out.append("<cbc:ProfileID>urn:peppol:bis:billing</cbc:ProfileID>\n")
    if number is not None:
        out.append(f"<cbc:ID>{escape(number)}</cbc:ID>\n")
    if issue_date is not None:
        out.append(f"<cbc:IssueDate>{issue_date}</cbc:IssueDate>\n")
    out.append(f"<cbc:{root}TypeCode>{type_code}</cbc:{root}TypeCode>\n")
    out.append(f"<cbc:DocumentCurrencyCode>{cur}</cbc:DocumentCurrencyCode>\n")
    if tax_currency is not None:
        out.append(f"<cbc:TaxCurrencyCode>{tax_currency}</cbc:TaxCurrencyCode>\n")
    out.append(_party("AccountingSupplierParty", supplier_name, registration, "1234567890123"))
    out.append(_party("AccountingCustomerParty", customer_name, None, "3210987654321"))
    out.append(_tax_total(cur, tax_sum, subtotals))
    if tax_currency is not None and tax_currency != cur:
        yen = []
        for cat, taxable, _ in subtotals:
            taxable_yen = (taxable * exchange_rate).quantize(Decimal(1), ROUND_HALF_UP)
            yen.append((cat, taxable_yen, _tax(taxable_yen, _RATES[cat], Decimal(1))))
        out.append(_tax_total(tax_currency, sum((t for _, _, t in yen), Decimal(0)), yen))
    out.append("<cac:LegalMonetaryTotal>\n")
    out.append(_amount("LineExtensionAmount", line_sum, cur))
    out.append(_amount("TaxExclusiveAmount", exclusive, cur))
    if not omit_tax_inclusive:
        out.append(_amount("TaxInclusiveAmount", inclusive, cur))
    out.append(_amount("PayableAmount", inclusive, cur))
    out.append("</cac:LegalMonetaryTotal>\n")
    line_tag = "CreditNoteLine" if credit_note else "InvoiceLine"
    qty_tag = "CreditedQuantity" if credit_note else "InvoicedQuantity"
    for n, line in enumerate(lines, start=1):
        out.append(_line(n, line, line_tag, qty_tag, cur))
    out.append(f"</{root}>\n")
    return "".join(out).encode("utf-8")


def large_invoice(target_bytes: int = 50_000_000, *, description_size: int = 4000) -> bytes:
    """A correct invoice of about ``target_bytes``: many lines with long descriptions (long
    text keeps the element count, and so the parse's memory, modest)."""
    probe = Line("品目", Decimal(1), Decimal(100), "S", "x" * description_size)
    per_line = len(_line(1, probe, "InvoiceLine", "InvoicedQuantity", "JPY").encode()) + 4
    count = max(1, target_bytes // per_line)
    filler = "x" * description_size
    lines = [
        Line(
            f"品目 {n}",
            Decimal(1),
            Decimal(100 + n % 7),
            "S" if n % 3 else "AA",
            filler,
        )
        for n in range(count)
    ]
    return pint_invoice(lines=lines)


def xxe_invoice(secret_path: str) -> bytes:
    """A good invoice whose DOCTYPE declares an external entity naming a local file, used in
    the supplier name: a parser that resolves it would put the file's content there."""
    body = pint_invoice(supplier_name="SUPPLIER_PLACEHOLDER", prolog="").decode()
    body = body.replace("SUPPLIER_PLACEHOLDER", "&xxe;")
    doctype = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<!DOCTYPE Invoice [<!ENTITY xxe SYSTEM {quoteattr('file://' + secret_path)}>]>\n"
    )
    return (doctype + body).encode()


def external_dtd_invoice(dtd_path: str) -> bytes:
    """A good invoice naming an external DTD subset (a local file)."""
    body = pint_invoice(prolog="").decode()
    return (f"<!DOCTYPE Invoice SYSTEM {quoteattr('file://' + dtd_path)}>\n" + body).encode()


def billion_laughs(levels: int = 10) -> bytes:
    """The classic entity-expansion bomb around a good invoice's supplier name."""
    ents = ['<!ENTITY lol0 "lol">']
    for n in range(1, levels):
        ents.append(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">')
    body = pint_invoice(supplier_name="SUPPLIER_PLACEHOLDER", prolog="").decode()
    body = body.replace("SUPPLIER_PLACEHOLDER", f"&lol{levels - 1};")
    return (f"<!DOCTYPE Invoice [{''.join(ents)}]>\n" + body).encode()


# -- pieces ------------------------------------------------------------------------------------


def _tax(taxable: Decimal, rate: Decimal, unit: Decimal) -> Decimal:
    """切り捨て: the tax per rate rounded down to the currency unit."""
    return (taxable * rate / 100).quantize(unit, rounding=ROUND_FLOOR)


def _amount(tag: str, value: Decimal, currency: str) -> str:
    return f'<cbc:{tag} currencyID="{currency}">{value}</cbc:{tag}>\n'


def _party(tag: str, name: str | None, registration: str | None, endpoint: str) -> str:
    out = [f"<cac:{tag}>\n<cac:Party>\n"]
    out.append(f'<cbc:EndpointID schemeID="0188">{endpoint}</cbc:EndpointID>\n')
    if registration is not None:
        out.append(
            "<cac:PartyTaxScheme>"
            f"<cbc:CompanyID>{escape(registration)}</cbc:CompanyID>"
            "<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme>"
            "</cac:PartyTaxScheme>\n"
        )
    if name is not None:
        out.append(
            "<cac:PartyLegalEntity>"
            f"<cbc:RegistrationName>{escape(name)}</cbc:RegistrationName>"
            "</cac:PartyLegalEntity>\n"
        )
    out.append(f"</cac:Party>\n</cac:{tag}>\n")
    return "".join(out)


def _tax_total(
    currency: str, tax: Decimal, subtotals: Sequence[tuple[str, Decimal, Decimal]]
) -> str:
    out = ["<cac:TaxTotal>\n", _amount("TaxAmount", tax, currency)]
    for cat, taxable, sub_tax in subtotals:
        out.append("<cac:TaxSubtotal>\n")
        out.append(_amount("TaxableAmount", taxable, currency))
        out.append(_amount("TaxAmount", sub_tax, currency))
        out.append(
            f"<cac:TaxCategory><cbc:ID>{cat}</cbc:ID><cbc:Percent>{_RATES[cat]}</cbc:Percent>"
            "<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory>\n"
        )
        out.append("</cac:TaxSubtotal>\n")
    out.append("</cac:TaxTotal>\n")
    return "".join(out)


def _line(n: int, line: Line, line_tag: str, qty_tag: str, currency: str) -> str:
    description = (
        f"<cbc:Description>{escape(line.description)}</cbc:Description>" if line.description else ""
    )
    return (
        f"<cac:{line_tag}><cbc:ID>{n}</cbc:ID>"
        f'<cbc:{qty_tag} unitCode="H87">{line.quantity}</cbc:{qty_tag}>'
        + _amount("LineExtensionAmount", line.amount, currency).rstrip("\n")
        + f"<cac:Item>{description}<cbc:Name>{escape(line.name)}</cbc:Name>"
        f"<cac:ClassifiedTaxCategory><cbc:ID>{line.category}</cbc:ID>"
        f"<cbc:Percent>{_RATES[line.category]}</cbc:Percent>"
        "<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:ClassifiedTaxCategory>"
        f"</cac:Item><cac:Price>{_amount('PriceAmount', line.price, currency).rstrip()}"
        f"</cac:Price></cac:{line_tag}>\n"
    )
