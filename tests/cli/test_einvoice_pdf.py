"""``edoc ingest invoice.pdf`` for a hybrid PDF (Factur-X / ZUGFeRD style): the search fields
come from the JP PINT XML attached to it, as for the XML itself; the PDF is what is stored."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests import einvoice_samples as samples
from tests.cii_samples import EN16931, cii_invoice
from tests.helpers import Edoc
from tests.pdf_invoice_samples import CII, hybrid_pdf
from tests.samples import text_pdf

PROFILE = ("--profile", "nta-electronic-transaction")
NTA = "T" + samples.CORPORATE_NUMBER_NTA


@pytest.fixture(scope="module")
def edoc(tmp_path_factory: pytest.TempPathFactory) -> Edoc:
    e = Edoc(tmp_path_factory.mktemp("einvoice-pdf") / "archive")
    assert e("init", str(e.archive)).exit_code == 0
    return e


def _ingest(e: Edoc, path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    return e.ingest_one(path, *PROFILE, *extra)




def test_fields_come_from_the_attached_invoice(edoc: Edoc, tmp_path: Path) -> None:
    xml = samples.pint_invoice(lines=samples.TWO_RATES, number="INV-PDF-2RATE")
    path = hybrid_pdf(tmp_path / "hybrid.pdf", {"factur-x.xml": xml})
    code, r = _ingest(edoc, path)
    assert code == 0, r
    fields = r["fields"]
    assert fields["amount"] == {"value": 17345 + 1734 + 999 + 79, "source": "document"}
    assert fields["transaction_date"] == {"value": "2024-04-01", "source": "document"}
    assert fields["counterparty"]["value"] == "株式会社サンプル商事"
    assert fields["invoice_number"]["value"] == "INV-PDF-2RATE"
    assert fields["registration_number"]["value"] == NTA
    m = edoc.latest_manifest(r["record_id"])
    assert m["content"]["size"] == path.stat().st_size  # the PDF is stored, byte for byte
    assert m["content"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    block = m["einvoice"]
    assert block["container"] == "pdf-attachment"
    assert block["attachment"]["name"] == "factur-x.xml"
    assert block["attachment"]["sha256"] == hashlib.sha256(xml).hexdigest()
    assert block["attachment"]["size"] == len(xml)
    assert block["kind"] == "invoice"
    code, found = edoc.json("search", "--invoice-number", "INV-PDF-2RATE")
    assert code == 0 and found


def test_a_cii_attachment_gives_the_fields_without_typing(edoc: Edoc, tmp_path: Path) -> None:
    xml = cii_invoice(lines=samples.TWO_RATES, number="FX-CII-1")
    path = hybrid_pdf(tmp_path / "facturx.pdf", {"factur-x.xml": xml})
    code, r = _ingest(edoc, path)
    assert code == 0, r
    fields = r["fields"]
    assert fields["amount"] == {"value": 17345 + 1734 + 999 + 79, "source": "document"}
    assert fields["transaction_date"] == {"value": "2024-06-30", "source": "document"}
    assert fields["counterparty"]["value"] == "株式会社ファクトゥール"
    assert fields["invoice_number"]["value"] == "FX-CII-1"
    assert fields["registration_number"]["value"] == NTA
    block = edoc.latest_manifest(r["record_id"])["einvoice"]
    assert block["syntax"] == "cii" and block["container"] == "pdf-attachment"
    assert block["customization_id"] == EN16931
    assert {(t["category"], t["tax"]) for t in block["tax_breakdown"]} == {("S", "1734"),
                                                                          ("AA", "79")}
    # CII is not the Digital Agency's specification: never 特定電磁的記録
    code, shown = edoc.json("show", r["record_id"])
    assert code == 0
    conditions = {c["id"]: c["status"] for c in shown["seamless"]["conditions"]}
    assert conditions["a"] == "unmet" and shown["seamless"]["ready"] is False


def test_an_empty_cii_attachment_names_what_is_missing(edoc: Edoc, tmp_path: Path) -> None:
    path = hybrid_pdf(tmp_path / "cii.pdf", {"factur-x.xml": CII})
    before = edoc.version_count()
    code, r = _ingest(edoc, path)
    assert code != 0 and r["error"]["code"] == "SEARCH_FIELD_MISSING"
    assert "the document has no IssueDateTime" in r["error"]["message"]
    assert "no GrandTotalAmount" in r["error"]["message"]
    assert edoc.version_count() == before
    code, r = _ingest(edoc, path, "--date", "2024-04-01", "--amount", "1100",
                      "--counterparty", "Example GmbH")
    assert code == 0, r
    assert r["fields"]["amount"] == {"value": 1100, "source": "typed"}
    assert any(w["code"] == "EINVOICE_FIELD_MISSING" for w in r["warnings"])


def test_an_xxe_attachment_is_refused_without_typed_fields(edoc: Edoc, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-PDF")
    path = hybrid_pdf(tmp_path / "xxe.pdf", {"factur-x.xml": samples.xxe_invoice(str(secret))})
    before = edoc.version_count()
    code, r = _ingest(edoc, path)
    assert code != 0 and r["error"]["code"] == "EINVOICE_DTD_REFUSED", r
    assert "TOP-SECRET-PDF" not in str(r)
    assert edoc.version_count() == before


def test_a_pdf_without_attachment_is_unchanged(edoc: Edoc, tmp_path: Path) -> None:
    path = text_pdf(tmp_path / "plain.pdf", "plain invoice")
    code, r = _ingest(edoc, path)
    assert code != 0 and r["error"]["code"] == "SEARCH_FIELD_MISSING"
    code, r = _ingest(edoc, path, "--date", "2024-04-01", "--amount", "1100",
                      "--counterparty", "株式会社サンプル商事")
    assert code == 0, r
    assert "fields" not in r or not r.get("fields")
    m = edoc.latest_manifest(r["record_id"])
    assert "einvoice" not in m


def test_a_typed_disagreeing_amount_is_a_field_conflict(edoc: Edoc, tmp_path: Path) -> None:
    path = hybrid_pdf(tmp_path / "conflict.pdf",
                      {"factur-x.xml": samples.pint_invoice(number="INV-PDF-CONFLICT")})
    before = edoc.version_count()
    code, r = _ingest(edoc, path, "--amount", "1")
    assert code != 0 and r["error"]["code"] == "FIELD_CONFLICT", r
    assert edoc.version_count() == before
