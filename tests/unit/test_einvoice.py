"""Reading JP PINT e-invoices: identification, extraction, and refusing hostile XML."""

from __future__ import annotations

import dataclasses
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from edoc.inspection.einvoice import (
    DEFAULT_MAX_BYTES,
    EINVOICE_DTD_REFUSED,
    EINVOICE_MALFORMED,
    EINVOICE_NOT_JP_PINT,
    EINVOICE_NOT_UBL,
    EINVOICE_TOO_LARGE,
    EINVOICE_UNREADABLE,
    Amount,
    DocKind,
    EinvoiceReading,
    PintInvoice,
    PintSpec,
    hardened_parser,
    read_einvoice,
)
from tests.einvoice_samples import (
    TWO_RATES,
    Line,
    billion_laughs,
    external_dtd_invoice,
    large_invoice,
    pint_invoice,
    xxe_invoice,
)

SECRET = "TOP-SECRET-CONTENT-9f3c"


def read_ok(data: bytes | Path, **kwargs: int) -> PintInvoice:
    reading = read_einvoice(data, **kwargs)
    assert reading.ok, (reading.code, reading.detail)
    assert reading.invoice is not None
    return reading.invoice


def everything_returned(reading: EinvoiceReading) -> str:
    return repr(reading) + reading.detail


# -- identification and extraction ----------------------------------------------------------------


def test_standard_invoice_fields() -> None:
    inv = read_ok(pint_invoice())
    assert inv.kind is DocKind.INVOICE
    assert inv.spec is PintSpec.STANDARD
    assert inv.customization_id == "urn:peppol:pint:billing-1@jp-1"
    assert inv.profile_id == "urn:peppol:bis:billing"
    assert inv.type_code == "380"
    assert inv.number == "INV-2024-0001"
    assert inv.issue_date == date(2024, 4, 1)
    assert inv.document_currency == "JPY"
    assert inv.tax_currency is None
    assert inv.supplier_name == "株式会社サンプル商事"
    assert inv.customer_name == "株式会社テスト購買"
    assert inv.supplier_registration == "T7000012050002"
    assert inv.line_extension == Amount(Decimal(5000), "JPY")
    assert inv.tax_exclusive == Amount(Decimal(5000), "JPY")
    assert inv.tax_inclusive == Amount(Decimal(5500), "JPY")
    assert inv.payable == Amount(Decimal(5500), "JPY")
    (line,) = inv.lines
    assert (line.id, line.name, line.quantity, line.unit) == (
        "1",
        "コピー用紙 A4",
        Decimal(10),
        "H87",
    )
    assert line.line_extension == Amount(Decimal(5000), "JPY")
    assert (line.tax_category, line.tax_percent) == ("S", Decimal(10))
    assert inv.problems == ()


def test_two_tax_rates_give_one_subtotal_each() -> None:
    inv = read_ok(pint_invoice(lines=TWO_RATES))
    (total,) = inv.tax_totals
    assert total.tax == Amount(Decimal(1813), "JPY")
    by_category = {s.category: s for s in inv.tax_breakdown}
    assert set(by_category) == {"S", "AA"}
    assert by_category["S"].percent == 10
    assert by_category["S"].taxable == Amount(Decimal(17345), "JPY")
    assert by_category["S"].tax == Amount(Decimal(1734), "JPY")
    assert by_category["AA"].percent == 8
    assert by_category["AA"].taxable == Amount(Decimal(999), "JPY")
    assert by_category["AA"].tax == Amount(Decimal(79), "JPY")
    assert [line.id for line in inv.lines] == ["1", "2", "3"]


def test_credit_note() -> None:
    inv = read_ok(pint_invoice(credit_note=True, lines=TWO_RATES))
    assert inv.kind is DocKind.CREDIT_NOTE
    assert inv.type_code == "381"
    assert [line.quantity for line in inv.lines] == [10, 3, 1]  # cbc:CreditedQuantity
    assert len(inv.lines) == 3


def test_self_billing() -> None:
    inv = read_ok(pint_invoice(self_billing=True))
    assert inv.kind is DocKind.SELF_BILLING
    assert inv.spec is PintSpec.SELF_BILLING
    assert inv.type_code == "389"


def test_non_tax_invoice() -> None:
    inv = read_ok(pint_invoice(non_tax=True, registration=None))
    assert inv.kind is DocKind.INVOICE
    assert inv.spec is PintSpec.NON_TAX
    assert inv.type_code == "480"
    assert inv.supplier_registration is None


def test_customization_id_with_suffix_is_accepted() -> None:
    inv = read_ok(pint_invoice(customization="urn:peppol:pint:billing-1@jp-1#extension:x"))
    assert inv.spec is PintSpec.STANDARD
    assert inv.customization_id.endswith("#extension:x")


def test_foreign_currency_invoice_keeps_the_yen_tax_breakdown() -> None:
    lines = [
        Line("Widget", Decimal(3), Decimal("12.35")),
        Line("Tea", Decimal(2), Decimal("4.99"), "AA"),
    ]
    inv = read_ok(pint_invoice(lines=lines, document_currency="EUR", tax_currency="JPY"))
    assert (inv.document_currency, inv.tax_currency) == ("EUR", "JPY")
    assert len(inv.tax_totals) == 2
    eur = inv.tax_total_in("EUR")
    yen = inv.tax_total_in("JPY")
    assert eur is not None and yen is not None
    assert eur.tax == Amount(Decimal("4.49"), "EUR")  # 3.705 → 3.70 and 0.7984 → 0.79
    # 37.05 EUR × 160 = 5928 JPY → 592; 9.98 EUR × 160 = 1597 JPY (1596.8) → 127
    assert [(s.category, s.taxable, s.tax) for s in inv.tax_breakdown] == [
        ("S", Amount(Decimal(5928), "JPY"), Amount(Decimal(592), "JPY")),
        ("AA", Amount(Decimal(1597), "JPY"), Amount(Decimal(127), "JPY")),
    ]
    assert inv.tax_inclusive == Amount(Decimal("51.52"), "EUR")


def test_whitespace_around_values_is_stripped() -> None:
    data = pint_invoice().replace(
        b"<cbc:ID>INV-2024-0001</cbc:ID>", b"<cbc:ID>\n  INV-1 \n</cbc:ID>"
    )
    assert read_ok(data).number == "INV-1"


def test_unreadable_values_are_reported_not_raised() -> None:
    data = (
        pint_invoice()
        .replace(b">5500</cbc:TaxInclusiveAmount>", b">5,500</cbc:TaxInclusiveAmount>")
        .replace(b"2024-04-01", b"2024/04/01")
    )
    inv = read_ok(data)
    assert inv.tax_inclusive is None and inv.issue_date is None
    assert any("TaxInclusiveAmount" in p for p in inv.problems)
    assert any("IssueDate" in p for p in inv.problems)


def test_reading_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "invoice.xml"
    path.write_bytes(pint_invoice())
    assert read_ok(path).number == "INV-2024-0001"


def test_results_are_frozen() -> None:
    reading = read_einvoice(pint_invoice())
    with pytest.raises(dataclasses.FrozenInstanceError):
        reading.code = "X"  # type: ignore[misc]
    assert reading.invoice is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        reading.invoice.number = "X"  # type: ignore[misc]


# -- not JP PINT, not XML: a result naming what is missing, never an exception --------------------

UBL_INVOICE = (
    b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"'
    b' xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">'
)


@pytest.mark.parametrize(
    ("data", "code", "missing_mentions"),
    [
        (b"<html><body/></html>", EINVOICE_NOT_UBL, "Invoice-2}Invoice"),
        (b"<Invoice><cbc:ID xmlns:cbc='x'>1</cbc:ID></Invoice>", EINVOICE_NOT_UBL, "CreditNote"),
        (
            b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"/>',
            EINVOICE_NOT_UBL,
            "Invoice",
        ),
        (
            UBL_INVOICE + b"<cbc:ID>1</cbc:ID></Invoice>",
            EINVOICE_NOT_JP_PINT,
            "cbc:CustomizationID",
        ),
        (
            UBL_INVOICE
            + b"<cbc:CustomizationID>urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:"
            b"poacc:billing:3.0</cbc:CustomizationID></Invoice>",
            EINVOICE_NOT_JP_PINT,
            "urn:peppol:pint:billing-1@jp-1",
        ),
        (
            UBL_INVOICE + b"<cbc:CustomizationID>urn:peppol:pint:billing-1@aunz-1"
            b"</cbc:CustomizationID></Invoice>",
            EINVOICE_NOT_JP_PINT,
            "selfbilling",
        ),
    ],
)
def test_not_jp_pint_names_what_is_missing(data: bytes, code: str, missing_mentions: str) -> None:
    reading = read_einvoice(data)
    assert reading.code == code and not reading.ok and reading.invoice is None
    assert any(missing_mentions in m for m in reading.missing), reading.missing


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not xml at all",
        b"<Invoice",
        b"\x00\xff\xfe garbage",
        b"<?xml version='1.0'?>",
        b"<a></b>",
    ],
)
def test_malformed_input_is_a_result(data: bytes) -> None:
    reading = read_einvoice(data)
    assert reading.code == EINVOICE_MALFORMED
    assert reading.invoice is None


def test_missing_file_is_a_result(tmp_path: Path) -> None:
    reading = read_einvoice(tmp_path / "nope.xml")
    assert reading.code == EINVOICE_UNREADABLE


# -- hostile XML ----------------------------------------------------------------------------------


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET)
    return path


def test_xxe_is_refused_and_the_file_is_not_read(secret: Path, tmp_path: Path) -> None:
    data = xxe_invoice(str(secret))
    reading = read_einvoice(data)
    assert reading.code == EINVOICE_DTD_REFUSED
    assert reading.invoice is None
    assert SECRET not in everything_returned(reading)
    path = tmp_path / "xxe.xml"
    path.write_bytes(data)
    from_file = read_einvoice(path)
    assert from_file.code == EINVOICE_DTD_REFUSED
    assert SECRET not in everything_returned(from_file)


def test_billion_laughs_is_refused() -> None:
    started = time.monotonic()
    reading = read_einvoice(billion_laughs())
    assert reading.code == EINVOICE_DTD_REFUSED
    assert "lol" not in everything_returned(reading)
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    "prefix",
    [
        b"",
        b'<?xml version="1.0" encoding="UTF-8"?>\n',
        b"\xef\xbb\xbf<?xml version='1.0'?><!-- a comment <r/> -->\n<?pi x?>",
    ],
)
def test_any_doctype_in_the_prolog_is_refused(prefix: bytes) -> None:
    body = pint_invoice(prolog="")
    reading = read_einvoice(prefix + b"<!DOCTYPE Invoice>\n" + body)
    assert reading.code == EINVOICE_DTD_REFUSED


def test_utf16_doctype_is_refused(secret: Path) -> None:
    text = xxe_invoice(str(secret)).decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    for data in (text.encode("utf-16"), text.encode("utf-16-le"), text.encode("utf-16-be")):
        reading = read_einvoice(data)
        assert reading.code == EINVOICE_DTD_REFUSED, reading.detail
        assert SECRET not in everything_returned(reading)


def test_doctype_text_in_the_body_is_not_a_doctype() -> None:
    data = pint_invoice(lines=[Line("<!DOCTYPE x> in a name", Decimal(1), Decimal(1))])
    data = data.replace(b"</Invoice>", b"<!-- <!DOCTYPE y> --></Invoice>")
    assert read_ok(data).lines[0].name == "<!DOCTYPE x> in a name"


def test_hardened_parser_expands_nothing_and_reads_no_file(secret: Path, tmp_path: Path) -> None:
    """Behind the DOCTYPE refusal, the parser itself is safe: pinned so a changed flag (with
    lxml 6.2, ``collect_ids=False`` re-enables reading an external DTD) is caught."""
    root = etree.fromstring(xxe_invoice(str(secret)), hardened_parser())
    assert SECRET.encode() not in etree.tostring(root)
    # libxml2 either leaves the bomb unexpanded or stops it at its amplification limit.
    try:
        bomb = etree.fromstring(billion_laughs(), hardened_parser())
    except etree.XMLSyntaxError as exc:
        assert "amplification" in str(exc)
    else:
        assert len(etree.tostring(bomb)) < 10_000
    # An external DTD subset that is not a DTD: had the parser read it, parsing would fail.
    not_a_dtd = tmp_path / "not-a.dtd"
    not_a_dtd.write_text(SECRET + " <<<\n")
    root = etree.fromstring(external_dtd_invoice(str(not_a_dtd)), hardened_parser())
    assert SECRET.encode() not in etree.tostring(root)
    # …and read_einvoice refuses it all the same.
    assert read_einvoice(external_dtd_invoice(str(not_a_dtd))).code == EINVOICE_DTD_REFUSED


# -- size -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def large() -> bytes:
    return large_invoice(50_000_000)


def test_large_invoice_parses_within_the_limit(large: bytes) -> None:
    assert 45_000_000 < len(large) <= DEFAULT_MAX_BYTES
    started = time.monotonic()
    inv = read_ok(large)
    assert len(inv.lines) > 10_000
    assert inv.lines[-1].id == str(len(inv.lines))
    assert time.monotonic() - started < 30


def test_over_the_limit_is_refused(large: bytes, tmp_path: Path) -> None:
    reading = read_einvoice(large, max_bytes=40 * 1024 * 1024)
    assert reading.code == EINVOICE_TOO_LARGE
    assert reading.invoice is None
    path = tmp_path / "big.xml"
    path.write_bytes(large)
    assert read_einvoice(path, max_bytes=len(large) - 1).code == EINVOICE_TOO_LARGE
    assert read_einvoice(path, max_bytes=len(large)).ok


def test_over_the_default_limit_is_refused_from_its_size(tmp_path: Path) -> None:
    sparse = tmp_path / "sparse.xml"
    with sparse.open("wb") as f:
        f.truncate(DEFAULT_MAX_BYTES + 1)  # sparse: refused by size, never read
    assert read_einvoice(sparse).code == EINVOICE_TOO_LARGE
    assert read_einvoice(b" " * (DEFAULT_MAX_BYTES + 1)).code == EINVOICE_TOO_LARGE


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_truncated_or_corrupted_invoices_never_raise(data: st.DataObject) -> None:
    good = pint_invoice(lines=TWO_RATES)
    cut = data.draw(st.integers(0, len(good)))
    junk = data.draw(st.binary(max_size=16))
    reading = read_einvoice(good[:cut] + junk + good[cut + len(junk) :])
    assert isinstance(reading, EinvoiceReading)
    assert (reading.invoice is not None) == reading.ok
