"""The review CSV: its column contract, Excel safety, paths, and a batch that continues past
bad files. Text-layer PDFs and e-invoices only (no OCR): the OCR path is
tests/integration/test_capture_ocr.py."""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

import pytest
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from edoc.capture.suggest import Suggestion
from edoc.services.capture import (
    CaptureRow,
    capture_file,
    capture_files,
    review_header,
    review_rows,
    write_review_csv,
)
from edoc.services.manifest_csv import COLUMNS
from edoc.services.rendering.fonts import find_cjk_font
from tests.einvoice_samples import pint_invoice
from tests.helpers import Edoc

VALID = "T6010401006754"
RECEIPT_LINES = ("領収書", "山田商事株式会社 御中", "発行日 令和6年6月30日", "小計 ¥5,000",
                 "消費税(10%) ¥500", "合計 ¥5,500", "株式会社東京ガス",
                 "〒105-0022 東京都港区海岸1-5-20", f"登録番号 {VALID}")


def japanese_text_pdf(path: Path, lines: tuple[str, ...] = RECEIPT_LINES) -> Path:
    """A born-digital PDF (a text layer in IPAex Gothic), as accounting software prints."""
    pdfmetrics.registerFont(TTFont("CaptureTestCJK", str(find_cjk_font())))
    c = Canvas(str(path), pagesize=(420, 595))
    y = 560.0
    for line in lines:
        c.setFont("CaptureTestCJK", 12)
        c.drawString(40, y, line)
        y -= 22
    c.showPage()
    c.save()
    return path


def _read(path: Path) -> tuple[bytes, list[dict[str, str]]]:
    raw = path.read_bytes()
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    return raw, rows


def test_header_is_the_manifest_plus_the_fixed_review_columns() -> None:
    header = review_header()
    assert header[: len(COLUMNS)] == list(COLUMNS)
    for name in ("doc_type", "date", "amount", "counterparty", "registration_number"):
        assert name in header
        assert f"{name}_source" in header and f"{name}_confidence" in header
    assert header[-2:] == ["confirmed_by", "note"]
    assert len(header) == len(set(header))


def test_text_pdf_suggestions(tmp_path: Path) -> None:
    row = capture_file(str(japanese_text_pdf(tmp_path / "scan.pdf")))
    assert row.error is None and row.text_source == "pdf-text"
    assert {k: (s.value, s.source) for k, s in row.suggestions.items()} == {
        "doc_type": ("receipt", "pdf-text"), "date": ("2024-06-30", "pdf-text"),
        "amount": ("5500", "pdf-text"), "counterparty": ("株式会社東京ガス", "pdf-text"),
        "registration_number": (VALID, "pdf-text")}


def test_einvoice_fields_come_first_and_filename_fills_the_rest(tmp_path: Path) -> None:
    xml = tmp_path / "請求書_2024-06-30.xml"
    xml.write_bytes(pint_invoice(issue_date="2024-04-01", supplier_name="株式会社サンプル商事"))
    row = capture_file(str(xml))
    assert row.suggestions["date"] == Suggestion("2024-04-01", "einvoice", 1.0)
    assert row.suggestions["counterparty"].value == "株式会社サンプル商事"
    assert row.suggestions["registration_number"] == Suggestion("T7000012050002", "einvoice", 1.0)
    assert row.suggestions["doc_type"].source == "einvoice"


def test_batch_continues_past_bad_files_and_keeps_the_order(tmp_path: Path) -> None:
    good = japanese_text_pdf(tmp_path / "good.pdf")
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n1 0 obj <<>> endobj\n")
    missing = tmp_path / "missing.pdf"
    named = tmp_path / "2024-06-30_株式会社東京ガス_5500.txt"
    named.write_text("no text to read here", encoding="utf-8")
    seen: list[str] = []
    rows = capture_files([str(broken), str(good), str(missing), str(named)], jobs=2,
                         progress=lambda r: seen.append(r.path))
    assert [r.path for r in rows] == [str(broken), str(good), str(missing), str(named)]
    assert sorted(seen) == sorted(r.path for r in rows)
    assert rows[0].error is not None and rows[0].error["code"] == "PDF_UNREADABLE"
    assert rows[1].error is None and rows[1].suggestions["amount"].value == "5500"
    assert rows[2].error is not None and rows[2].error["code"] == "FILE_NOT_FOUND"
    assert rows[3].error is None and rows[3].note is not None
    assert rows[3].note.startswith("CAPTURE_NOT_READ")
    assert {k: s.source for k, s in rows[3].suggestions.items()} == {
        "date": "filename", "counterparty": "filename", "amount": "filename"}


def test_csv_is_excel_safe_and_relative(tmp_path: Path) -> None:
    sub = tmp_path / "scans"
    sub.mkdir()
    row = CaptureRow(str(sub / "a.png"), suggestions={
        "counterparty": Suggestion("=HYPERLINK(\"http://x\")", "ocr", 0.5),
        "amount": Suggestion("5500", "ocr", 0.91234)},
        error={"code": "OCR_TIMEOUT", "message": "took too long"})
    out = tmp_path / "review.csv"
    write_review_csv(out, review_rows([row], tmp_path, ("nta-scan-important", "general")))
    raw, rows = _read(out)
    assert raw.startswith(codecs.BOM_UTF8) and b"\r\n" in raw
    (cells,) = rows
    assert cells["file"] == "scans/a.png"
    assert cells["profile"] == "nta-scan-important;general"
    assert cells["counterparty"] == "'=HYPERLINK(\"http://x\")"
    assert cells["amount"] == "5500" and cells["amount_confidence"] == "0.91"
    assert cells["amount_source"] == "ocr" and cells["date_source"] == ""
    assert cells["confirmed_by"] == "" and cells["note"] == "OCR_TIMEOUT: took too long"


def test_cli_capture_writes_rows_and_reports_bad_files(tmp_path: Path) -> None:
    japanese_text_pdf(tmp_path / "good.pdf")
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.7 nothing")
    out = tmp_path / "review.csv"
    edoc = Edoc(tmp_path / "no-archive-needed")
    res = edoc("capture", str(tmp_path / "good.pdf"), str(tmp_path / "bad.pdf"),
               "/etc/hostname", "-o", str(out), "--jobs", "1")
    assert res.exit_code == 1
    assert "not read: " in res.stderr and "PDF_UNREADABLE" in res.stderr
    assert "skipped: /etc/hostname: CAPTURE_OUTSIDE_CSV_DIR" in res.stderr
    _, rows = _read(out)
    assert [r["file"] for r in rows] == ["good.pdf", "bad.pdf"]
    assert rows[0]["amount"] == "5500" and rows[0]["counterparty"] == "株式会社東京ガス"
    assert rows[1]["note"].startswith("PDF_UNREADABLE")
    again = edoc("capture", str(tmp_path / "good.pdf"), "-o", str(out))
    assert again.exit_code == 1 and "OUTPUT_EXISTS" in again.stderr
    forced = edoc("capture", str(tmp_path / "good.pdf"), "-o", str(out), "--force", "--json")
    assert forced.exit_code == 0
    assert '"registration_number"' in forced.stdout


@pytest.mark.parametrize("jobs", ["0", "65"])
def test_cli_jobs_bounds(tmp_path: Path, jobs: str) -> None:
    res = Edoc(tmp_path)("capture", "x.pdf", "-o", str(tmp_path / "r.csv"), "--jobs", jobs)
    assert res.exit_code == 2 and "USAGE_ERROR" in res.stderr


def test_ingest_suggest_refuses_without_a_terminal(tmp_path: Path) -> None:
    edoc = Edoc(tmp_path / "archive")
    assert edoc("init", str(edoc.archive)).exit_code == 0
    pdf = japanese_text_pdf(tmp_path / "r.pdf")
    res = edoc("ingest", str(pdf), "--suggest")
    assert res.exit_code == 2 and "SUGGEST_NEEDS_TTY" in res.stderr
    assert "edoc capture" in res.stderr  # the hint names the batch way
    assert edoc.version_count() == 0
    both = edoc("ingest", "--manifest", str(tmp_path / "x.csv"), "--suggest")
    assert both.exit_code == 2 and "USAGE_ERROR" in both.stderr


def test_confirmed_request_records_who_accepted_what(tmp_path: Path) -> None:
    from edoc.services.capture import confirmed_request
    from edoc.services.ingest import IngestRequest

    ocr_amount = Suggestion("5500", "ocr", 0.8234)
    by_name = Suggestion("2024-06-30", "filename", 0.6)
    req = confirmed_request(IngestRequest(path="x.png", counterparty="株式会社A"), {
        "amount": ("5500", ocr_amount), "date": ("2024-07-01", by_name),  # corrected
        "doc_type": ("", None)}, "経理 山田")
    assert (req.amount, req.date, req.counterparty, req.doc_type) == (
        "5500", "2024-07-01", "株式会社A", None)
    assert set(req.field_provenance) == {"amount"}
    amount = req.field_provenance["amount"]
    assert (amount.suggested_by, amount.confirmed_by) == ("ocr", "経理 山田")
    assert amount.confidence == pytest.approx(0.823)
    assert req.ocr is True


def test_a_worker_that_dies_costs_its_file_only(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A real crash: the 'tesseract' the worker runs kills the worker (SIGKILL of its
    parent), as a decoder crashing the process would; the pool breaks, the innocent file in
    flight is read again alone, the culprit alone breaks a pool again and is reported."""
    from PIL import Image

    killer = tmp_path / "tesseract-that-kills"
    killer.write_text("#!/bin/sh\nkill -KILL $PPID\nsleep 5\n", encoding="utf-8")
    killer.chmod(0o755)
    monkeypatch.setenv("EDOC_TESSERACT", str(killer))
    first = japanese_text_pdf(tmp_path / "first.pdf")
    scan = tmp_path / "scan.png"
    Image.new("L", (200, 200), 255).save(scan)
    last = japanese_text_pdf(tmp_path / "last.pdf")
    rows = capture_files([str(first), str(scan), str(last)], jobs=2)
    assert [r.error["code"] if r.error else None for r in rows] == [
        None, "CAPTURE_WORKER_DIED", None]
    assert rows[0].suggestions["amount"].value == rows[2].suggestions["amount"].value == "5500"
