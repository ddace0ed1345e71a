"""Ingest reads a PDF's text from the very bytes its readability gate passed and it stored,
so the gate (a render of page 1) is not run twice — and only then: a PDF stored although its
gate failed (electronic-transaction data is kept as received) is gated again before pdfium
reads its text, and a file that changed after it was stored gives no text at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edoc.capture import text as capture_text
from edoc.services import ingest as ingest_mod
from edoc.services.archive import Archive, init_archive
from edoc.services.ingest import Ingestor, IngestRequest
from tests import samples
from tests.hostile import build_corpus

ELECTRONIC = "nta-electronic-transaction"


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    return init_archive(tmp_path / "archive", organisation="テスト株式会社")


@pytest.fixture
def pdf_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What capture's PDF reader was given, in order: "bytes" or "path"; and "gate" for
    every readability gate capture ran itself."""
    seen: list[str] = []
    real_pdf_text, real_inspect = capture_text._pdf_text, capture_text.inspect

    def pdf_text(source: Path | bytes, *, ocr: bool) -> Any:
        seen.append("bytes" if isinstance(source, bytes) else "path")
        return real_pdf_text(source, ocr=ocr)

    def inspect(*args: Any, **kw: Any) -> Any:
        seen.append("gate")
        return real_inspect(*args, **kw)

    monkeypatch.setattr(capture_text, "_pdf_text", pdf_text)
    monkeypatch.setattr(capture_text, "inspect", inspect)
    return seen


def _text(archive: Archive, record_id: str) -> str | None:
    row = archive.catalog.text_of(record_id)
    return None if row is None else row.text


def _ingest(archive: Archive, path: Path, **kw: Any) -> Any:
    req = IngestRequest(path=str(path), date="2024-04-01", amount="11000",
                        counterparty="株式会社サンプル商事", **kw)
    [result] = Ingestor(archive).run([req]).results
    return result


def test_a_gated_pdf_is_read_from_its_stored_bytes_without_a_second_gate(
        archive: Archive, tmp_path: Path, pdf_reads: list[str]) -> None:
    pdf = samples.text_pdf(tmp_path / "invoice.pdf", "INVOICE 2024-04-01 TOTAL 11000 JPY")
    result = _ingest(archive, pdf, profiles=(ELECTRONIC,))
    assert result.status == "stored", result
    assert pdf_reads == ["bytes"]
    assert "TOTAL 11000" in (_text(archive, result.record_id) or "")


def test_a_pdf_stored_with_its_gate_failed_is_gated_again_before_its_text(
        archive: Archive, tmp_path: Path, pdf_reads: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    fanout = next(c for c in build_corpus(tmp_path / "corpus") if c.case == "pdf-form-fanout")

    def never(source: Path | bytes, *, ocr: bool) -> Any:
        # pdfium on this file takes tens of GB: fail here instead of trying
        pdf_reads.append("bytes" if isinstance(source, bytes) else "path")
        raise AssertionError("pdfium was given the form fan-out")

    monkeypatch.setattr(capture_text, "_pdf_text", never)
    result = _ingest(archive, fanout.path, profiles=(ELECTRONIC,))
    # kept as received (電帳法 第7条), unmeasured; pdfium never reads its text
    assert result.status == "stored", result
    assert pdf_reads == ["gate"]
    assert [w["code"] for w in result.warnings or []] == ["TEXT_NOT_DERIVED"]
    assert "PDF_TOO_COMPLEX" in result.warnings[0]["message"]
    assert _text(archive, result.record_id) is None


def test_a_pdf_changed_after_it_was_stored_gives_no_text(
        archive: Archive, tmp_path: Path, pdf_reads: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    pdf = samples.text_pdf(tmp_path / "invoice.pdf", "THE STORED TEXT")
    real_commit = ingest_mod.commit_version

    def commit_then_change(*args: Any, **kw: Any) -> Any:
        out = real_commit(*args, **kw)
        samples.text_pdf(pdf, "OTHER TEXT")  # the user's file changes once it is stored
        return out

    monkeypatch.setattr(ingest_mod, "commit_version", commit_then_change)
    result = _ingest(archive, pdf)
    assert result.status == "stored", result
    assert pdf_reads == []
    assert [w["code"] for w in result.warnings or []] == ["TEXT_NOT_DERIVED"]
    assert "changed after it was stored" in result.warnings[0]["message"]
    assert _text(archive, result.record_id) is None
