"""extract_text: e-invoice values, the PDF text layer, refusals with codes, OCR errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from edoc.capture.ocr import OCR_UNAVAILABLE, OcrError, parse_tsv
from edoc.capture.text import extract_text
from edoc.errors import InputError
from tests.einvoice_samples import billion_laughs, pint_invoice
from tests.samples import scan_pdf, text_pdf


def test_einvoice_values(tmp_path: Path) -> None:
    xml = tmp_path / "inv.xml"
    xml.write_bytes(pint_invoice(supplier_name="株式会社東京ガス", issue_date="2024-06-30"))
    got = extract_text(xml, "application/xml")
    assert got is not None and got.source == "einvoice" and got.confidence is None
    lines = got.text.splitlines()
    assert "株式会社東京ガス" in lines and "2024-06-30" in lines and "T7000012050002" in lines


def test_einvoice_with_a_doctype_is_refused(tmp_path: Path) -> None:
    xml = tmp_path / "bomb.xml"
    xml.write_bytes(billion_laughs())
    with pytest.raises(InputError) as err:
        extract_text(xml, "application/xml")
    assert err.value.code == "EINVOICE_DTD_REFUSED"


def test_pdf_text_layer(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "t.pdf", "Invoice 2024-06-30 total 5500", pages=2)
    got = extract_text(pdf, "application/pdf")
    assert got is not None and got.source == "pdf-text" and got.pages == 2
    assert got.confidence is None
    assert got.text.split("\f")[1].startswith("Invoice 2024-06-30 total 5500")


def test_scan_pdf_without_ocr_gives_none(tmp_path: Path) -> None:
    pdf = scan_pdf(tmp_path / "s.pdf", dpi_per_page=[200])
    assert extract_text(pdf, "application/pdf", ocr=False) is None


def test_garbage_pdf_has_a_code(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.7\nthis is not a pdf")
    with pytest.raises(InputError) as err:
        extract_text(bad, "application/pdf")
    assert err.value.code == "PDF_UNREADABLE"


def test_unread_type_is_none(tmp_path: Path) -> None:
    txt = tmp_path / "a.txt"
    txt.write_text("合計 ¥5,500", encoding="utf-8")
    assert extract_text(txt, "text/plain") is None


def test_missing_tesseract_is_ocr_unavailable(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    png = tmp_path / "a.png"
    Image.new("L", (100, 100), 255).save(png)
    monkeypatch.setenv("EDOC_TESSERACT", str(tmp_path / "no-such-tesseract"))
    with pytest.raises(OcrError) as err:
        extract_text(png, "image/png")
    assert err.value.code == OCR_UNAVAILABLE


def test_parse_tsv_joins_japanese_words_and_averages_confidence() -> None:
    header = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth" \
             "\theight\tconf\ttext"
    rows = [
        "1\t1\t0\t0\t0\t0\t0\t0\t100\t100\t-1\t",
        "5\t1\t1\t1\t1\t1\t0\t0\t10\t10\t90\t合計",
        "5\t1\t1\t1\t1\t2\t0\t0\t10\t10\t80\t¥5,500",
        "5\t1\t1\t1\t2\t1\t0\t0\t10\t10\t70\tTEL",
        "5\t1\t1\t1\t2\t2\t0\t0\t10\t10\t60\t03-1234",
        "5\t1\t1\t1\t2\t3\t0\t0\t10\t10\t-1\t ",
    ]
    page = parse_tsv("\n".join([header, *rows]))
    assert page.text == "合計¥5,500\nTEL 03-1234"
    assert page.confidence == 0.75 and page.words == 4


def test_hostile_pdfs_end_in_a_code_not_in_memory(tmp_path: Path) -> None:
    """The form fan-out ('billion laughs' of form XObjects) took pdfium's text extraction to
    22 GB before capture ran the archive's readability gate first; every hostile PDF of the
    suite's corpus now ends in a one-line code, or reads."""
    from tests.hostile import build_corpus

    cases = [c for c in build_corpus(tmp_path) if c.case.startswith("pdf-")
             and c.path.suffix == ".pdf" and c.path.is_file()]
    assert any(c.case == "pdf-form-fanout" for c in cases)
    for case in cases:
        try:
            extract_text(case.path, "application/pdf", ocr=False)
        except InputError as exc:
            assert exc.code.startswith(("PDF_", "IMAGE_", "CAPTURE_")), (case.case, exc.code)
