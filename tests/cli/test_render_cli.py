"""``edoc render``: a stored e-invoice becomes a readable PDF; the XML stays the record.

Through the real CLI: ingest generated JP PINT invoices (typed fields still given by hand),
render them, read the PDF back with pypdfium2. Re-rendering gives the same bytes; a record
that is not an e-invoice is refused; an existing output is replaced only with --force; the
rendering is logged as an access.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from edoc.errors import ConfigError
from edoc.services.rendering.fonts import find_cjk_font
from tests import samples
from tests.einvoice_samples import TWO_RATES, Line, pint_invoice
from tests.helpers import Edoc

try:
    find_cjk_font()
except ConfigError:
    pytest.skip("no Japanese font (apt-get install fonts-ipaexfont-gothic)",
                allow_module_level=True)


@pytest.fixture
def edoc(tmp_path: Path) -> Edoc:
    e = Edoc(tmp_path / "archive")
    assert e("init", str(e.archive)).exit_code == 0
    return e


def _ingest_invoice(e: Edoc, path: Path, xml: bytes, amount: str) -> str:
    path.write_bytes(xml)
    code, doc = e.json("ingest", str(path), "--profile", "nta-electronic-transaction",
                       "--date", "2024-04-01", "--amount", amount,
                       "--counterparty", "株式会社サンプル商事")
    assert code == 0, doc
    return str(doc["results"][0]["record_id"])


def _text(pdf: Path) -> list[str]:
    doc = pdfium.PdfDocument(pdf)
    try:
        return [" ".join(doc[i].get_textpage().get_text_range().split())
                for i in range(len(doc))]
    finally:
        doc.close()


def test_render_writes_a_readable_copy_the_same_every_time(edoc: Edoc, tmp_path: Path) -> None:
    xml = pint_invoice(lines=TWO_RATES, number="INV-2024-0420")
    rid = _ingest_invoice(edoc, tmp_path / "inv.xml", xml, "20157")
    out = tmp_path / "inv.pdf"

    code, doc = edoc.json("render", rid, "-o", str(out))
    assert code == 0, doc
    sha = hashlib.sha256(xml).hexdigest()
    assert doc["record_id"] == rid and doc["version"] == 1 and doc["content_sha256"] == sha
    assert doc["pages"] == 1 and doc["title"] == "適格請求書" and doc["number"] == "INV-2024-0420"
    data = out.read_bytes()
    assert doc["sha256"] == hashlib.sha256(data).hexdigest() and doc["size"] == len(data)
    [text] = _text(out)
    for expected in ("適格請求書", "INV-2024-0420", "T7000012050002", "17,345", "1,734",
                     "999", "79", "合計", "税込合計 20,157 JPY", "支払額 20,157 JPY",
                     f"記録 {rid} 版 1 SHA-256 {sha}", "原本は XML です。"):
        assert expected in text, expected

    # exists -> refused, nothing changed; --force -> replaced, byte-identical
    res = edoc("render", rid, "-o", str(out))
    assert res.exit_code == 1 and "OUTPUT_EXISTS" in res.stderr
    again = tmp_path / "again.pdf"
    assert edoc("render", rid, "-o", str(again)).exit_code == 0
    assert again.read_bytes() == data
    res = edoc("render", rid, "--version", "1", "-o", str(out), "--force")
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == data
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left over

    with edoc.db() as db:
        logged = db.execute("SELECT actor, record_ids, detail FROM access_log "
                            "WHERE action = 'render'").fetchall()
    assert len(logged) == 3
    assert all(json.loads(ids) == [rid] and json.loads(d) == {"version": 1}
               for _, ids, d in logged)


def test_a_long_invoice_runs_over_several_pages(edoc: Edoc, tmp_path: Path) -> None:
    lines = [Line(f"部品 {n:03d}", Decimal(1), Decimal(100), "AA" if n % 2 else "S")
             for n in range(1, 501)]
    # 50,000 taxable + 2,500 (10 %) + 2,000 (8 %): a typed amount must now agree with the
    # document (FIELD_CONFLICT), and 52000 did not.
    rid = _ingest_invoice(edoc, tmp_path / "long.xml", pint_invoice(lines=lines), "54500")
    out = tmp_path / "long.pdf"
    code, doc = edoc.json("render", rid, "-o", str(out))
    assert code == 0, doc
    pages = _text(out)
    assert doc["pages"] == len(pages) > 1
    assert all(rid in page and doc["content_sha256"] in page for page in pages)
    assert "部品 500" in pages[-1] and "支払額" in pages[-1]


def test_a_record_that_is_not_an_einvoice_is_refused(edoc: Edoc, tmp_path: Path) -> None:
    scan = tmp_path / "receipt.png"
    samples.scan_image(scan, dpi=200, mode="RGB", fmt="PNG")
    code, doc = edoc.json("ingest", str(scan), "--profile", "general", "--amount", "100")
    assert code == 0, doc
    rid = doc["results"][0]["record_id"]
    out = tmp_path / "receipt.pdf"
    code, doc = edoc.json("render", rid, "-o", str(out))
    assert code == 1
    assert doc["error"]["code"] == "NOT_AN_EINVOICE"
    assert "EINVOICE_MALFORMED" in doc["error"]["message"]  # what the reader said
    assert not out.exists()

    res = edoc("render", "01NOSUCHRECORD0000000000000", "-o", str(out))
    assert res.exit_code == 1 and "NOT_FOUND" in res.stderr


def test_font_missing_is_a_one_line_error(edoc: Edoc, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    rid = _ingest_invoice(edoc, tmp_path / "inv.xml", pint_invoice(), "5500")
    monkeypatch.setenv("EDOC_CJK_FONT", str(tmp_path / "no-such-font.ttf"))
    out = tmp_path / "inv.pdf"
    res = edoc("render", rid, "-o", str(out))
    assert res.exit_code == 2
    assert "FONT_MISSING" in res.stderr and "Traceback" not in res.output + res.stderr
    assert not out.exists()
