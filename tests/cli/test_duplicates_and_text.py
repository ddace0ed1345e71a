"""Duplicates by business key and the derived full text (issue 16, parts 4 and 5).

A rescan (other bytes, same counterparty + date + amount) and the same invoice as PDF and as
XML are stored with ``DUPLICATE_SUSPECT`` naming the other record; ``search --duplicates``
lists the pairs. The text read at ingest is searchable by one- and two-character Japanese
fragments, goes with the record at purge, and comes back with ``catalog rebuild``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests import einvoice_samples as einvoices
from tests import pdf_invoice_samples as pdfs
from tests import samples
from tests.helpers import Edoc, drop_catalog, jst_today_minus, short_profile

SHORT = 3
NTA = "T" + einvoices.CORPORATE_NUMBER_NTA
XML_PROFILE = ("--profile", "nta-electronic-transaction")


@pytest.fixture
def edoc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Edoc:
    monkeypatch.setenv("EDOC_POLICIES", str(short_profile(tmp_path / "policies", SHORT)))
    e = Edoc(tmp_path / "archive")
    assert e("init", str(e.archive)).exit_code == 0
    return e


def _scan(directory: Path, name: str, seed: int) -> Path:
    p = directory / name
    samples.scan_image(p, dpi=200 + seed, fmt="PNG")
    return p


def _invoice(directory: Path, name: str, **kw: Any) -> Path:
    p = directory / name
    p.write_bytes(einvoices.pint_invoice(**kw))
    return p


def _suspects(result: dict[str, Any]) -> list[str]:
    return [w["record_id"] for w in result.get("warnings") or ()
            if w["code"] == "DUPLICATE_SUSPECT"]


def _text_hits(edoc: Edoc, fragment: str, *extra: str) -> list[str]:
    code, doc = edoc.json("search", "--text", fragment, *extra)
    assert code == 0, doc
    return sorted(h["record_id"] for h in doc["records"])


def test_rescan_is_a_duplicate_suspect(edoc: Edoc, tmp_path: Path) -> None:
    meta = ("--profile", "general", "--date", jst_today_minus(5), "--amount", "12,800",
            "--counterparty", "株式会社山田商事")
    code, first = edoc.ingest_one(_scan(tmp_path, "scan.png", 0), *meta)
    assert code == 0 and _suspects(first) == []
    # the same receipt scanned again: other bytes, same key (the name in another width)
    code, again = edoc.ingest_one(_scan(tmp_path, "rescan.png", 7), *meta[:-1],
                                  "株式会社ﾔﾏﾀﾞ商事".replace("ﾔﾏﾀﾞ", "山田"))
    assert code == 0, again
    assert _suspects(again) == [first["record_id"]]
    sealed = edoc.latest_manifest(again["record_id"])["warnings"]
    assert [w["record_id"] for w in sealed] == [first["record_id"]]
    # another amount is another transaction
    code, other = edoc.ingest_one(_scan(tmp_path, "other.png", 9), *meta[:4], "--amount",
                                  "12801", "--counterparty", "株式会社山田商事")
    assert code == 0 and _suspects(other) == []
    code, listed = edoc.json("search", "--duplicates")
    assert code == 0
    assert listed["count"] == 1
    pair = listed["pairs"][0]
    assert {pair["record_id"], pair["other_record_id"]} == {first["record_id"],
                                                            again["record_id"]}
    assert (pair["matched_on"], pair["amount"]) == ("counterparty", 12800)
    # the same bytes again is still the content-hash duplicate, refused
    code, same = edoc.ingest_one(tmp_path / "scan.png", *meta)
    assert code == 1 and same["error"]["code"] == "DUPLICATE_CONTENT"
    # a deleted twin is no longer listed
    assert edoc.json("delete", again["record_id"], "--reason", "rescan of the same")[0] == 0
    assert edoc.json("search", "--duplicates")[1]["count"] == 0


def test_same_invoice_as_pdf_and_as_xml(edoc: Edoc, tmp_path: Path) -> None:
    xml = einvoices.pint_invoice(number="INV-DUP")
    code, as_xml = edoc.ingest_one(_invoice(tmp_path, "inv.xml", number="INV-DUP"),
                                   *XML_PROFILE)
    assert code == 0, as_xml
    # the same invoice as a hybrid PDF: its attached XML gives the same key
    hybrid = pdfs.hybrid_pdf(tmp_path / "inv.pdf", {"invoice.xml": xml})
    code, as_pdf = edoc.ingest_one(hybrid, *XML_PROFILE)
    assert code == 0, as_pdf
    assert _suspects(as_pdf) == [as_xml["record_id"]]
    # a PDF print of it with the T-number typed and the name spelt otherwise: still found
    printed = tmp_path / "printed.pdf"
    samples.text_pdf(printed, "Invoice INV-DUP")
    amount = str(as_xml["fields"]["amount"]["value"])
    code, as_print = edoc.ingest_one(printed, *XML_PROFILE, "--date", "2024-04-01",
                                     "--amount", amount, "--counterparty", "サンプル商事",
                                     "--registration-number", NTA)
    assert code == 0, as_print
    assert sorted(_suspects(as_print)) == sorted([as_xml["record_id"], as_pdf["record_id"]])
    code, listed = edoc.json("search", "--duplicates")
    on = {(p["record_id"], p["other_record_id"]): p["matched_on"] for p in listed["pairs"]}
    assert len(on) == 3
    assert sorted(on.values()) == ["counterparty", "registration_number",
                                   "registration_number"]
    res = edoc("search", "--duplicates", "--counterparty", "x")
    assert res.exit_code != 0 and "USAGE_ERROR" in res.output


def test_text_search_finds_short_japanese_fragments(edoc: Edoc, tmp_path: Path) -> None:
    gas = _invoice(tmp_path, "gas.xml", supplier_name="東京ガス株式会社", number="G-1",
                   lines=(einvoices.Line("ガス料金 6月分", einvoices.Decimal(10),
                                         einvoices.Decimal(4000)),))
    water = _invoice(tmp_path, "water.xml", supplier_name="横浜市水道局", number="W-1",
                     lines=(einvoices.Line("水道料金", einvoices.Decimal(10),
                                           einvoices.Decimal(2000)),))
    ids = {}
    for name, path in (("gas", gas), ("water", water)):
        code, r = edoc.ingest_one(path, *XML_PROFILE)
        assert code == 0, r
        ids[name] = r["record_id"]
    assert _text_hits(edoc, "東") == [ids["gas"]]
    assert _text_hits(edoc, "ガス") == [ids["gas"]]
    assert _text_hits(edoc, "水道") == [ids["water"]]
    assert _text_hits(edoc, "料金") == sorted(ids.values())
    assert _text_hits(edoc, "ｶﾞｽ料金") == [ids["gas"]]  # half-width typed, NFKC matched
    assert _text_hits(edoc, "ガス水道") == []  # every pair present, not in that order
    assert _text_hits(edoc, "料") == sorted(ids.values())
    # combined with the legal search fields
    assert _text_hits(edoc, "料金", "--counterparty", "水道") == [ids["water"]]
    # the counterparty search itself finds one and two characters too
    code, doc = edoc.json("search", "--counterparty", "東")
    assert [h["record_id"] for h in doc["records"]] == [ids["gas"]]
    code, doc = edoc.json("search", "--counterparty", "ガス")
    assert [h["record_id"] for h in doc["records"]] == [ids["gas"]]
    res = edoc("search", "--text", "   ")
    assert res.exit_code != 0 and "BAD_VALUE" in res.output


def test_pdf_text_layer_is_read_at_ingest_and_ocr_only_when_asked(edoc: Edoc,
                                                                   tmp_path: Path) -> None:
    pdf = samples.text_pdf(tmp_path / "letter.pdf", "Quarterly water meter reading")
    code, r = edoc.ingest_one(pdf, "--profile", "general")
    assert code == 0, r
    assert _text_hits(edoc, "meter") == [r["record_id"]]
    # a scan without --ocr: stored, no text, no warning
    code, s = edoc.ingest_one(_scan(tmp_path, "scan.png", 0), "--profile", "general")
    assert code == 0 and not s.get("warnings")
    with edoc.db() as db:
        assert db.execute("SELECT count(*) FROM texts WHERE record_id = ?",
                          (s["record_id"],)).fetchone()[0] == 0
        source = db.execute("SELECT source FROM texts WHERE record_id = ?",
                            (r["record_id"],)).fetchone()[0]
    assert source == "pdf-text"


def test_purge_removes_the_text_and_rebuild_restores_it(edoc: Edoc, tmp_path: Path) -> None:
    brief = _invoice(tmp_path, "brief.xml", supplier_name="東邦ガス株式会社", number="S-1")
    code, gone = edoc.ingest_one(brief, "--profile", "test-short", "--received",
                                 jst_today_minus(1))
    assert code == 0, gone
    kept = _invoice(tmp_path, "kept.xml", supplier_name="東京ガス株式会社", number="K-1")
    code, stays = edoc.ingest_one(kept, *XML_PROFILE)
    assert code == 0, stays
    assert _text_hits(edoc, "ガス") == sorted([gone["record_id"], stays["record_id"]])
    time.sleep(SHORT + 1)
    code, done = edoc.json("purge", "--yes")
    assert code == 0, done
    assert [d["record_id"] for d in done["disposed"]] == [gone["record_id"]]
    with edoc.db() as db:
        left = {r for (r,) in db.execute("SELECT record_id FROM texts")}
        grams = {r for (r,) in db.execute("SELECT DISTINCT record_id FROM text_grams")}
    assert left == grams == {stays["record_id"]}
    assert _text_hits(edoc, "ガス", "--include-deleted") == [stays["record_id"]]
    # the certificate still verifies and lists the version
    code, report = edoc.json("verify", "--all")
    assert code == 0, report
    # lose the catalog: rebuild re-derives the text from the stored content
    drop_catalog(edoc.archive)
    code, rebuilt = edoc.json("catalog", "rebuild")
    assert code == 0, rebuilt
    assert rebuilt["texts"] == 1
    assert _text_hits(edoc, "東") == [stays["record_id"]]
    assert edoc.json("verify", "--all")[0] == 0


def test_the_text_ingest_keeps_of_an_xml_is_what_rebuild_derives(edoc: Edoc,
                                                                  tmp_path: Path) -> None:
    """Ingest indexes an XML file's text from the parse its fields came from; `catalog
    rebuild` reads it afresh from the stored bytes: both must index the same text."""
    invoice = _invoice(tmp_path, "gas.xml", supplier_name="東京ガス株式会社", number="G-9")
    commented = tmp_path / "commented.xml"  # not JP PINT: typed fields; a comment is no value
    commented.write_bytes(b"<?xml version='1.0'?><receipt><!-- internal note -->"
                          b"<shop>\xe6\x9d\xb1\xe6\xb5\xb7\xe5\x95\x86\xe4\xba\x8b</shop>"
                          b"<?pi skipped?><total> 1,100 </total></receipt>")
    code, einv = edoc.ingest_one(invoice, *XML_PROFILE)
    assert code == 0, einv
    code, plain = edoc.ingest_one(commented, "--date", "2024-04-01", "--amount", "1100",
                                  "--counterparty", "東海商事")
    assert code == 0, plain

    def texts() -> dict[str, tuple[str, str, int]]:
        with edoc.db() as db:
            return {r: (t, s, p) for r, t, s, p in db.execute(
                "SELECT record_id, text, source, pages FROM texts")}

    at_ingest = texts()
    assert at_ingest[plain["record_id"]] == ("東海商事\n1,100", "einvoice", 1)
    assert "東京ガス株式会社" in at_ingest[einv["record_id"]][0]
    drop_catalog(edoc.archive)
    code, rebuilt = edoc.json("catalog", "rebuild")
    assert code == 0, rebuilt
    assert texts() == at_ingest
    assert _text_hits(edoc, "海商") == [plain["record_id"]]


IPAEX = Path("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf")


def _japanese_scan(path: Path, lines: list[str]) -> Path:
    """A 300-dpi scan of a receipt printed in a Japanese font (fonts-ipaexfont)."""
    from PIL import Image, ImageDraw, ImageFont

    im = Image.new("L", (1800, 900), 255)
    draw = ImageDraw.Draw(im)
    font = ImageFont.truetype(str(IPAEX), 72)
    for n, line in enumerate(lines):
        draw.text((120, 120 + n * 160), line, font=font, fill=0)
    im.save(path, dpi=(300, 300))
    return path


@pytest.mark.skipif(not IPAEX.is_file(), reason="fonts-ipaexfont not installed")
def test_ocr_text_at_ingest_when_asked_and_later_by_catalog_text(edoc: Edoc,
                                                                 tmp_path: Path) -> None:
    asked = _japanese_scan(tmp_path / "gas.png", ["東京ガス株式会社", "領収書 合計 3300円"])
    code, r = edoc.ingest_one(asked, "--profile", "general", "--ocr")
    assert code == 0, r
    assert _text_hits(edoc, "ガス") == [r["record_id"]]
    later = _japanese_scan(tmp_path / "water.png", ["横浜市水道局", "請求書 合計 2200円"])
    code, w = edoc.ingest_one(later, "--profile", "general")
    assert code == 0, w
    assert _text_hits(edoc, "水道") == []  # no OCR unasked
    code, done = edoc.json("catalog", "text")
    assert code == 0 and done["derived"] == 0  # without --ocr a scan has no text
    code, done = edoc.json("catalog", "text", "--ocr")
    assert code == 0 and (done["records"], done["derived"]) == (1, 1)  # only the missing one
    assert _text_hits(edoc, "水道") == [w["record_id"]]
    with edoc.db() as db:
        source, confidence = db.execute("SELECT source, confidence FROM texts WHERE "
                                        "record_id = ?", (w["record_id"],)).fetchone()
    assert source == "ocr" and 0 < confidence <= 1
