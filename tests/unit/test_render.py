"""The readable copy of an e-invoice (edoc.services.rendering): what the PDF says, that it says
it on every page, that it is the same bytes every time, and that it never falls back to a
font it does not embed."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from edoc.errors import ConfigError
from edoc.inspection.einvoice import PintInvoice, read_einvoice
from edoc.services.rendering import fonts, layout
from edoc.services.rendering.fonts import find_cjk_font
from edoc.services.rendering.layout import DERIVED_NOTE, RecordFacts, render_invoice
from tests.einvoice_samples import TWO_RATES, Line, pint_invoice

FACTS = RecordFacts("01HZX0TESTRECORD000000000A", 3, "ab" * 32, "2024-04-02T01:02:03+00:00")

try:
    FONT: Path | None = find_cjk_font()
except ConfigError:
    FONT = None
needs_font = pytest.mark.skipif(FONT is None, reason="apt-get install fonts-ipaexfont-gothic")


def _invoice(xml: bytes) -> PintInvoice:
    reading = read_einvoice(xml)
    assert reading.invoice is not None, reading
    return reading.invoice


def _render(xml: bytes, facts: RecordFacts = FACTS) -> layout.RenderedPdf:
    assert FONT is not None
    return render_invoice(_invoice(xml), facts, FONT)


def page_texts(data: bytes) -> list[str]:
    doc = pdfium.PdfDocument(data)
    try:
        return [doc[i].get_textpage().get_text_range() for i in range(len(doc))]
    finally:
        doc.close()


def _flat(text: str) -> str:
    return " ".join(text.split())


@needs_font
def test_a_two_rate_invoice_shows_what_a_qualified_invoice_must() -> None:
    pdf = _render(pint_invoice(lines=TWO_RATES))
    assert pdf.data.startswith(b"%PDF-")
    [text] = page_texts(pdf.data)
    flat = _flat(text)
    assert "適格請求書" in flat
    assert "INV-2024-0001" in flat and "2024年4月1日" in flat
    assert "株式会社サンプル商事" in flat and "株式会社テスト購買" in flat
    assert "登録番号 T7000012050002" in flat
    for name in ("コピー用紙 A4", "お茶 (軽減税率)", "トナー"):
        assert name in flat
    # per rate: 10 % on 5,000 + 12,345 (tax rounded down), 8 % on 999
    assert "10% (標準税率) 17,345 1,734" in flat
    assert "8% (軽減税率) 999 79" in flat
    assert "税抜合計 18,344 JPY" in flat
    assert "消費税 1,813 JPY" in flat
    assert "税込合計 20,157 JPY" in flat
    assert "支払額 20,157 JPY" in flat
    assert DERIVED_NOTE in flat
    assert f"記録 {FACTS.record_id} 版 3 SHA-256 {FACTS.content_sha256}" in flat


@needs_font
def test_the_same_invoice_renders_to_the_same_bytes_and_another_record_does_not() -> None:
    xml = pint_invoice(lines=TWO_RATES)
    first, second = _render(xml), _render(xml)
    assert first.data == second.data
    assert b"/CreationDate (D:20240402010203+00'00')" in first.data
    other = _render(xml, RecordFacts(FACTS.record_id, 4, FACTS.content_sha256,
                                     FACTS.ingested_at))
    assert other.data != first.data
    trailer_id = first.data[first.data.rindex(b"/ID"):][:80]
    assert trailer_id not in other.data  # the document ID names the record version


@needs_font
def test_500_lines_flow_over_pages_with_the_footer_on_every_one() -> None:
    lines = [Line(f"品目 {n:03d} 事務用品", Decimal(n % 7 + 1), Decimal(120),
                  "AA" if n % 3 == 0 else "S") for n in range(1, 501)]
    pdf = _render(pint_invoice(lines=lines, number="INV-LONG-500"))
    texts = page_texts(pdf.data)
    assert pdf.pages == len(texts) > 1
    for n, text in enumerate(texts, start=1):
        flat = _flat(text)
        assert DERIVED_NOTE in flat
        assert FACTS.content_sha256 in flat and FACTS.record_id in flat
        assert f"{n} / {len(texts)} ページ" in flat
        assert "品名" in flat  # the table header is repeated on every page
    everything = _flat(" ".join(texts))
    assert "品目 001 事務用品" in everything and "品目 500 事務用品" in everything
    assert "支払額" in _flat(texts[-1])


@needs_font
@pytest.mark.parametrize(("knobs", "title"), [
    ({"credit_note": True}, "返還請求書・クレジットノート"),
    ({"self_billing": True}, "仕入明細書"),
    ({"non_tax": True, "registration": None}, "請求書"),
])
def test_the_document_kind_is_named_in_japanese(knobs: dict[str, object], title: str) -> None:
    [text] = page_texts(_render(pint_invoice(lines=TWO_RATES, **knobs)).data)  # type: ignore[arg-type]
    assert text.splitlines()[0].strip() == title


@needs_font
def test_a_foreign_currency_invoice_shows_the_tax_in_yen_too() -> None:
    lines = (Line("Consulting", Decimal(2), Decimal("150.25")),
             Line("Books", Decimal(1), Decimal("20.00"), "AA"))
    [text] = page_texts(_render(pint_invoice(lines=lines, document_currency="EUR",
                                             tax_currency="JPY")).data)
    flat = _flat(text)
    assert "税率ごとの内訳 (EUR)" in flat and "税率ごとの内訳 (JPY)" in flat
    assert "300.50" in flat
    # JPY: 300.50 x 160 = 48,080 at 10 % -> 4,808; 20.00 x 160 = 3,200 at 8 % -> 256
    assert "10% (標準税率) 48,080 4,808" in flat
    assert "8% (軽減税率) 3,200 256" in flat
    assert "消費税 (JPY) 5,064 JPY" in flat


@needs_font
def test_a_very_long_item_name_wraps_and_never_overflows_a_page() -> None:
    lines = (Line("長い品名" * 400, Decimal(1), Decimal(100)),)
    pdf = _render(pint_invoice(lines=lines))
    assert pdf.pages >= 2
    assert "長い品名長い品名" in page_texts(pdf.data)[0]


def test_font_missing_is_one_error_naming_the_package(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.delenv(fonts.FONT_ENV, raising=False)
    with pytest.raises(ConfigError) as err:
        find_cjk_font(search=(tmp_path / "nowhere.ttf",))
    assert err.value.code == "FONT_MISSING"
    assert "fonts-ipaexfont-gothic" in str(err.value) and "\n" not in str(err.value)

    monkeypatch.setenv(fonts.FONT_ENV, str(tmp_path / "also-nowhere.ttf"))
    with pytest.raises(ConfigError) as err:
        find_cjk_font(search=fonts.DEFAULT_FONT_PATHS)  # an override that is wrong never falls back
    assert err.value.code == "FONT_MISSING" and fonts.FONT_ENV in str(err.value)


def test_the_override_wins_and_a_file_that_is_no_font_is_refused(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "fake.ttf"
    fake.write_bytes(b"not a font")
    monkeypatch.setenv(fonts.FONT_ENV, str(fake))
    assert find_cjk_font(search=()) == fake
    with pytest.raises(ConfigError) as err:
        render_invoice(_invoice(pint_invoice()), FACTS, fake)
    assert err.value.code == "FONT_UNUSABLE"


def test_tax_labels() -> None:
    assert layout.tax_label("S", Decimal("10")) == "10% (標準税率)"
    assert layout.tax_label("AA", Decimal("8.00")) == "8% (軽減税率)"
    assert layout.tax_label("E", Decimal(0)) == "非課税"
    assert layout.tax_label("O", None) == "不課税"
