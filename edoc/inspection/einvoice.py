"""What an e-invoice says: a hardened read of a UBL 2.1 Invoice / CreditNote (JP PINT).

Owns turning the bytes of a Peppol JP PINT (spec 1.1.x) document into a frozen
``PintInvoice`` (``edoc.inspection.einvoice_model``) with the fields edoc keeps and searches
on (number, date, counterparties, registration number, totals, tax breakdown, lines). A
UN/CEFACT Cross Industry Invoice (Factur-X / ZUGFeRD) gets the same hardened parse and is
walked by ``edoc.inspection.cii`` into the same model, marked as not JP PINT. It does not
judge them: the JP PINT business rules are ``edoc.policy.pint_rules``.

Hostile input is expected (an invoice is a file from outside). So:

* the parser never resolves entities, never loads a DTD, never touches the network and keeps
  libxml2's size limits (``huge_tree=False``);
* any document type declaration is refused (``EINVOICE_DTD_REFUSED``) before a field is read:
  UBL has no DTD, so a DOCTYPE in an invoice only ever serves XXE or entity expansion
  ("billion laughs"). The prolog is scanned *before* parsing, and the parsed tree's ``docinfo``
  is checked again after, so neither path alone is trusted;
* the size is capped (``EINVOICE_TOO_LARGE``, default 64 MiB) before anything is parsed.

Bad input is a result, never an exception: ``read_einvoice`` returns an ``EinvoiceReading``
whose ``code`` is ``OK`` or one of the ``EINVOICE_*`` codes below, and for a document that is
XML but not JP PINT, ``missing`` names what is missing.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from lxml import etree

from edoc.inspection.cii import read_cii
from edoc.inspection.einvoice_model import (
    Amount,
    DocKind,
    InvoiceLine,
    PintInvoice,
    PintSpec,
    TaxSubtotal,
    TaxTotal,
    read_decimal,
)
from edoc.inspection.xpath import selector

__all__ = [
    "CAC",
    "CBC",
    "CII_NS",
    "DEFAULT_MAX_BYTES",
    "EINVOICE_DTD_REFUSED",
    "EINVOICE_MALFORMED",
    "EINVOICE_NOT_JP_PINT",
    "EINVOICE_NOT_UBL",
    "EINVOICE_TOO_LARGE",
    "EINVOICE_UNREADABLE",
    "Amount",
    "DocKind",
    "EinvoiceReading",
    "InvoiceLine",
    "PintInvoice",
    "PintSpec",
    "TaxSubtotal",
    "TaxTotal",
    "hardened_parser",
    "read_einvoice",
]

UBL_INVOICE_NS: Final = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
UBL_CREDIT_NOTE_NS: Final = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
#: UN/CEFACT CII D16B (Factur-X 1.0, ZUGFeRD 2.x): ``rsm:CrossIndustryInvoice``.
CII_NS: Final = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
CBC: Final = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
CAC: Final = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
_NS: Final = {"cbc": CBC, "cac": CAC}

#: 64 MiB: far above a real invoice with thousands of lines, small enough that the parsed
#: tree (several times the document's size in memory) cannot exhaust a small host.
DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024

OK: Final = "OK"
EINVOICE_TOO_LARGE: Final = "EINVOICE_TOO_LARGE"
EINVOICE_DTD_REFUSED: Final = "EINVOICE_DTD_REFUSED"
EINVOICE_MALFORMED: Final = "EINVOICE_MALFORMED"
EINVOICE_NOT_UBL: Final = "EINVOICE_NOT_UBL"
EINVOICE_NOT_JP_PINT: Final = "EINVOICE_NOT_JP_PINT"
EINVOICE_UNREADABLE: Final = "EINVOICE_UNREADABLE"


@dataclass(frozen=True)
class EinvoiceReading:
    """The outcome of ``read_einvoice``: ``invoice`` is set exactly when ``code == "OK"``."""

    code: str
    detail: str
    invoice: PintInvoice | None = None
    #: For ``EINVOICE_NOT_UBL`` / ``EINVOICE_NOT_JP_PINT``: what a JP PINT document would have.
    missing: tuple[str, ...] = ()
    #: The document is a UN/CEFACT Cross Industry Invoice (the syntax of Factur-X / ZUGFeRD),
    #: read by ``edoc.inspection.cii``: its ``invoice`` has ``syntax == "cii"`` and no PINT spec.
    cii: bool = False

    @property
    def ok(self) -> bool:
        return self.code == OK


def hardened_parser() -> Any:
    """A parser that cannot be made to read a file, the network, or expand an entity.

    Each flag closes one door: ``resolve_entities=False`` (XXE, billion laughs),
    ``load_dtd=False`` / ``dtd_validation=False`` (external DTD fetch), ``no_network=True``
    (any URL), ``huge_tree=False`` (keeps libxml2's depth and text-node limits)."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        dtd_validation=False,
        load_dtd=False,
        huge_tree=False,
        # Deliberately nothing more: with lxml 6.2 / libxml2 2.14, adding ``collect_ids=False``
        # makes libxml2 read an external DTD subset (``<!DOCTYPE r SYSTEM "file:…">``) despite
        # ``load_dtd=False``; tests/unit/test_einvoice.py pins that the file is not read.
    )


def read_einvoice(source: bytes | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> EinvoiceReading:
    """Read a JP PINT Invoice or CreditNote from bytes or a file, never raising for bad input.

    A file larger than ``max_bytes`` is refused from its size alone, before it is read."""
    parsed = parse_xml(source, max_bytes=max_bytes)
    return parsed if isinstance(parsed, EinvoiceReading) else _identify(parsed)


def read_einvoice_and_text(source: bytes | Path, *, max_bytes: int = DEFAULT_MAX_BYTES
                           ) -> tuple[EinvoiceReading, str | None]:
    """``read_einvoice``, and the values text (``values_text``) of the XML it parsed, from
    one parse: ingest reads an XML file's fields and its full text both (None: the XML was
    refused before it was parsed, and has no text to index)."""
    parsed = parse_xml(source, max_bytes=max_bytes)
    if isinstance(parsed, EinvoiceReading):
        return parsed, None
    return _identify(parsed), values_text(parsed)


def values_text(root: Any) -> str:
    """The text of ``root``'s element values, one per line (comments and processing
    instructions are not values): what full-text search indexes of an XML document."""
    values: list[str] = []
    for element in root.iter():
        if not isinstance(element.tag, str):  # comments, processing instructions
            continue
        text = (element.text or "").strip()
        if text:
            values.append(text)
    return "\n".join(values)


def parse_xml(source: bytes | Path, *, max_bytes: int = DEFAULT_MAX_BYTES
              ) -> Any | EinvoiceReading:
    """The root element of the XML in ``source``, parsed with ``hardened_parser``; or the
    refusal (``EINVOICE_UNREADABLE``, ``_TOO_LARGE``, ``_DTD_REFUSED``, ``_MALFORMED``) as
    a reading. What ``read_einvoice`` and the full-text extraction both parse with."""
    if isinstance(source, Path):
        try:
            size = source.stat().st_size
            if size > max_bytes:
                return _too_large(size, max_bytes)
            with source.open("rb") as f:
                data = f.read(max_bytes + 1)  # +1: a file that grew since stat() is caught too
        except OSError as exc:
            return EinvoiceReading(EINVOICE_UNREADABLE, f"cannot read {source.name}: {exc}")
    else:
        data = bytes(source)
    if len(data) > max_bytes:
        return _too_large(len(data), max_bytes)
    if _declares_doctype(data):
        return _dtd_refused()
    try:
        root = etree.fromstring(data, hardened_parser())
    except etree.XMLSyntaxError as exc:
        # Also where libxml2 stops an entity bomb whose DOCTYPE the prolog scan did not reach.
        return EinvoiceReading(EINVOICE_MALFORMED, f"not well-formed XML: {exc}")
    except (etree.LxmlError, ValueError) as exc:  # e.g. an encoding lxml cannot honour
        return EinvoiceReading(EINVOICE_MALFORMED, f"not readable as XML: {exc}")
    if root is None:
        return EinvoiceReading(EINVOICE_MALFORMED, "no root element")
    docinfo = root.getroottree().docinfo
    # Second line of defence: the prolog scan missed an encoding it could not decode.
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        return _dtd_refused()
    return root


# -- refusing before parsing ----------------------------------------------------------------


def _too_large(size: int, limit: int) -> EinvoiceReading:
    return EinvoiceReading(
        EINVOICE_TOO_LARGE, f"{size} bytes is over the e-invoice limit of {limit} bytes"
    )


def _dtd_refused() -> EinvoiceReading:
    return EinvoiceReading(
        EINVOICE_DTD_REFUSED,
        "the document declares a DOCTYPE; UBL invoices have none, and entities are never expanded",
    )


_BOMS: Final = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
#: How far into the document a prolog may reach before the root element (comments, PIs).
_PROLOG_SCAN: Final = 1024 * 1024


def _declares_doctype(data: bytes) -> bool:
    """Does the prolog (everything before the root element) contain ``<!DOCTYPE``?

    Decodes by BOM or UTF-16's zero bytes (UTF-8 otherwise; any other encoding is caught after
    parsing by ``docinfo``) and skips the XML declaration, processing instructions and comments."""
    head = data[:_PROLOG_SCAN]
    encoding = "utf-8"
    for bom, name in _BOMS:
        if head.startswith(bom):
            head, encoding = head[len(bom) :], name
            break
    else:  # no BOM: UTF-16 still shows itself by the zero byte beside the first '<'
        if head.startswith(b"<\x00"):
            encoding = "utf-16-le"
        elif head.startswith(b"\x00<"):
            encoding = "utf-16-be"
    text = head.decode(encoding, errors="replace")
    pos = 0
    while True:
        start = text.find("<", pos)
        if start < 0:
            return False
        if text.startswith("<?", start):
            end = text.find("?>", start + 2)
        elif text.startswith("<!--", start):
            end = text.find("-->", start + 4)
        else:
            return text.startswith("<!DOCTYPE", start) or text.startswith("<!doctype", start)
        if end < 0:
            return False
        pos = end + 2


# -- identifying and extracting -------------------------------------------------------------


def _identify(root: Any) -> EinvoiceReading:
    qname = etree.QName(root)
    if qname.localname == "Invoice" and qname.namespace == UBL_INVOICE_NS:
        credit_note = False
    elif qname.localname == "CreditNote" and qname.namespace == UBL_CREDIT_NOTE_NS:
        credit_note = True
    elif qname.localname == "CrossIndustryInvoice" and qname.namespace == CII_NS:
        # Factur-X / ZUGFeRD: the same business terms in the other EN 16931 syntax. Read, so
        # its search fields need no typing, but never taken for JP PINT (``spec`` is None).
        cii = read_cii(root)
        return EinvoiceReading(
            OK, f"CII {cii.kind.value} {cii.number or '(no ID)'} (not JP PINT)",
            invoice=cii, cii=True)
    else:
        found = f"{{{qname.namespace}}}{qname.localname}" if qname.namespace else qname.localname
        return EinvoiceReading(
            EINVOICE_NOT_UBL,
            f"root element {found} is not a UBL 2.1 Invoice or CreditNote",
            missing=(f"{{{UBL_INVOICE_NS}}}Invoice or {{{UBL_CREDIT_NOTE_NS}}}CreditNote",),
        )
    customization = _text(root, "cbc:CustomizationID")
    if customization is None:
        return EinvoiceReading(
            EINVOICE_NOT_JP_PINT,
            "UBL document without cbc:CustomizationID: not JP PINT",
            missing=("cbc:CustomizationID",),
        )
    spec = _spec_of(customization)
    if spec is None:
        return EinvoiceReading(
            EINVOICE_NOT_JP_PINT,
            f"cbc:CustomizationID {customization[:120]!r} is not a JP PINT specification",
            missing=(f"cbc:CustomizationID starting with one of: {', '.join(PintSpec)}",),
        )
    invoice = _extract(root, spec, customization, credit_note)
    return EinvoiceReading(
        OK, f"JP PINT {invoice.kind.value} {invoice.number or '(no ID)'}", invoice=invoice
    )


def _spec_of(customization: str) -> PintSpec | None:
    """JP PINT allows a CustomizationID to extend a specification with a suffix (``…@jp-1#x``),
    so a prefix match; the longest identifier wins should one ever prefix another."""
    for spec in sorted(PintSpec, key=lambda s: len(s.value), reverse=True):
        if customization.startswith(spec.value):
            return spec
    return None


def _extract(root: Any, spec: PintSpec, customization: str, credit_note: bool) -> PintInvoice:
    problems: list[str] = []
    if credit_note:
        kind = DocKind.CREDIT_NOTE
        type_code = _text(root, "cbc:CreditNoteTypeCode")
        line_path, quantity_name = "cac:CreditNoteLine", "cbc:CreditedQuantity"
    else:
        kind = DocKind.SELF_BILLING if spec is PintSpec.SELF_BILLING else DocKind.INVOICE
        type_code = _text(root, "cbc:InvoiceTypeCode")
        line_path, quantity_name = "cac:InvoiceLine", "cbc:InvoicedQuantity"
    supplier = "cac:AccountingSupplierParty/cac:Party"
    customer = "cac:AccountingCustomerParty/cac:Party"
    totals = "cac:LegalMonetaryTotal"
    return PintInvoice(
        kind=kind,
        spec=spec,
        customization_id=customization,
        profile_id=_text(root, "cbc:ProfileID"),
        type_code=type_code,
        number=_text(root, "cbc:ID"),
        issue_date=_date(root, "cbc:IssueDate", problems),
        document_currency=_text(root, "cbc:DocumentCurrencyCode"),
        tax_currency=_text(root, "cbc:TaxCurrencyCode"),
        supplier_name=_text(root, f"{supplier}/cac:PartyLegalEntity/cbc:RegistrationName"),
        supplier_registration=_supplier_registration(root, supplier),
        customer_name=_text(root, f"{customer}/cac:PartyLegalEntity/cbc:RegistrationName"),
        line_extension=_amount(root, f"{totals}/cbc:LineExtensionAmount", problems),
        tax_exclusive=_amount(root, f"{totals}/cbc:TaxExclusiveAmount", problems),
        tax_inclusive=_amount(root, f"{totals}/cbc:TaxInclusiveAmount", problems),
        payable=_amount(root, f"{totals}/cbc:PayableAmount", problems),
        tax_totals=tuple(_tax_total(t, problems) for t in _all(root, "cac:TaxTotal")),
        lines=tuple(_line(line, quantity_name, problems) for line in _all(root, line_path)),
        problems=tuple(problems),
    )


def _supplier_registration(root: Any, supplier: str) -> str | None:
    """ibt-031, the seller's tax identifier: the PartyTaxScheme whose TaxScheme is ``VAT``
    (JP PINT codes consumption tax as VAT), else the first PartyTaxScheme's CompanyID."""
    schemes = _all(root, f"{supplier}/cac:PartyTaxScheme")
    for scheme in schemes:
        if _text(scheme, "cac:TaxScheme/cbc:ID") == "VAT":
            return _text(scheme, "cbc:CompanyID")
    return _text(schemes[0], "cbc:CompanyID") if schemes else None


def _tax_total(node: Any, problems: list[str]) -> TaxTotal:
    return TaxTotal(
        tax=_amount(node, "cbc:TaxAmount", problems),
        subtotals=tuple(
            TaxSubtotal(
                category=_text(sub, "cac:TaxCategory/cbc:ID"),
                percent=_decimal(sub, "cac:TaxCategory/cbc:Percent", problems),
                taxable=_amount(sub, "cbc:TaxableAmount", problems),
                tax=_amount(sub, "cbc:TaxAmount", problems),
            )
            for sub in _all(node, "cac:TaxSubtotal")
        ),
    )


def _line(node: Any, quantity_name: str, problems: list[str]) -> InvoiceLine:
    quantity_nodes = _all(node, quantity_name)
    return InvoiceLine(
        id=_text(node, "cbc:ID"),
        name=_text(node, "cac:Item/cbc:Name"),
        quantity=_decimal(node, quantity_name, problems),
        unit=quantity_nodes[0].get("unitCode") if quantity_nodes else None,
        line_extension=_amount(node, "cbc:LineExtensionAmount", problems),
        tax_category=_text(node, "cac:Item/cac:ClassifiedTaxCategory/cbc:ID"),
        tax_percent=_decimal(node, "cac:Item/cac:ClassifiedTaxCategory/cbc:Percent", problems),
    )


# -- typed XPath helpers: every lookup is a namespaced XPath relative to a node ---------------


#: the elements at a namespaced path relative to a node (compiled once per thread)
_all: Final = selector(_NS)


def _text(node: Any, path: str) -> str | None:
    """The stripped text of the first element at ``path``; None when absent or empty."""
    found = _all(node, path)
    text = found[0].text if found else None
    return text.strip() or None if isinstance(text, str) else None


def _decimal(node: Any, path: str, problems: list[str]) -> Decimal | None:
    return read_decimal(_text(node, path), path, problems)


def _amount(node: Any, path: str, problems: list[str]) -> Amount | None:
    value = _decimal(node, path, problems)
    if value is None:
        return None
    element = _all(node, path)[0]
    currency = element.get("currencyID")
    return Amount(value, currency.strip() if isinstance(currency, str) else None)


def _date(node: Any, path: str, problems: list[str]) -> date | None:
    text = _text(node, path)
    if text is None:
        return None
    # UBL dates are xsd:date; PINT examples use the plain YYYY-MM-DD form, and a time zone
    # suffix or any other form is reported rather than guessed at.
    if len(text) == 10:
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    problems.append(f"{path}: {text[:40]!r} is not a YYYY-MM-DD date")
    return None
