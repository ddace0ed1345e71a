"""Ordinance profiles enforced at ingest: readability gate, required search fields, input
deadlines, statutory retention, electronic transactions and CSV batch manifests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import samples
from tests.helpers import Edoc, jst_today_minus


@pytest.fixture
def edoc(tmp_path: Path) -> Edoc:
    e = Edoc(tmp_path / "archive")
    assert e("init", str(e.archive)).exit_code == 0
    return e


IMPORTANT = ["--profile", "nta-scan-important", "--doc-type", "receipt", "--amount", "1000",
             "--counterparty", "山田商店", "--ledger-ref", "JV-1"]
GENERAL = ["--profile", "nta-scan-general", "--doc-type", "quote", "--amount", "1000",
           "--counterparty", "山田商店"]
METI = ["--profile", "meti-general", "--counterparty", "山田商店"]


@pytest.mark.parametrize(("dpi", "mode", "profile", "expected"), [
    (150, "RGB", IMPORTANT, "SCAN_RESOLUTION_TOO_LOW"),
    (200, "RGB", IMPORTANT, "stored"),
    (300, "RGB", IMPORTANT, "stored"),
    (300, "L", IMPORTANT, "SCAN_COLOUR_INSUFFICIENT"),
    (300, "1", IMPORTANT, "SCAN_COLOUR_INSUFFICIENT"),
    (150, "L", GENERAL, "SCAN_RESOLUTION_TOO_LOW"),
    (200, "L", GENERAL, "stored"),
    (300, "1", GENERAL, "SCAN_COLOUR_INSUFFICIENT"),
    (150, "L", METI, "stored"),
    (150, "1", METI, "SCAN_RESOLUTION_TOO_LOW"),
    (200, "1", METI, "stored"),
])
def test_scans_accepted_or_rejected_per_profile(
        edoc: Edoc, tmp_path: Path, dpi: int, mode: str, profile: list[str],
        expected: str) -> None:
    path = tmp_path / f"scan-{dpi}-{mode}.png"
    samples.scan_image(path, dpi=dpi, mode=mode, fmt="PNG")
    code, doc = edoc.json("ingest", str(path), *profile, "--date", jst_today_minus(1))
    (r,) = doc["results"]
    if expected == "stored":
        assert code == 0, doc
        assert r["status"] == "stored"
        measured = edoc.json("show", r["record_id"])[1]["versions"][0]["readability"]
        assert round(measured["min_dpi"]) == dpi  # the measurements are in the manifest
        assert measured["rendered"] is True
    else:
        assert code == 1
        assert r["error"]["code"] == expected
        assert str(dpi) in r["error"]["message"] or mode in ("L", "1")
        assert edoc.json("search")[1]["count"] == 0


def test_pdf_names_the_failing_page(edoc: Edoc, tmp_path: Path) -> None:
    path = tmp_path / "invoice.pdf"
    samples.scan_pdf(path, dpi_per_page=[300, 150, 300])
    code, doc = edoc.json("ingest", str(path), *IMPORTANT, "--date", jst_today_minus(1))
    assert code == 1
    err = doc["results"][0]["error"]
    assert err["code"] == "SCAN_RESOLUTION_TOO_LOW"
    assert "page 2" in err["message"] and "150" in err["message"] and "200" in err["message"]


def test_required_search_fields(edoc: Edoc, tmp_path: Path) -> None:
    path = tmp_path / "r.png"
    samples.scan_image(path, dpi=300, mode="RGB", fmt="PNG")
    code, doc = edoc.json("ingest", str(path), "--profile", "nta-scan-important",
                          "--doc-type", "receipt", "--date", jst_today_minus(1),
                          "--counterparty", "山田商店")
    assert code == 1
    err = doc["results"][0]["error"]
    assert err["code"] == "SEARCH_FIELD_MISSING"
    assert "amount" in err["message"] and "ledger_ref" in err["message"]
    # a delivery note (納品書) needs no amount
    code, doc = edoc.json("ingest", str(path), "--profile", "nta-scan-important",
                          "--doc-type", "delivery-note", "--date", jst_today_minus(1),
                          "--counterparty", "山田商店", "--ledger-ref", "JV-9")
    assert code == 0, doc
    # a type the profile does not cover
    code, doc = edoc.json("ingest", str(path), "--profile", "nta-scan-important",
                          "--doc-type", "quote")
    assert doc["results"][0]["error"]["code"] == "DOC_TYPE_NOT_ACCEPTED"


def test_late_input_rejected_or_flagged(edoc: Edoc, tmp_path: Path) -> None:
    path = tmp_path / "late.png"
    samples.scan_image(path, dpi=300, mode="RGB", fmt="PNG")
    old = jst_today_minus(40)
    code, doc = edoc.json("ingest", str(path), *IMPORTANT, "--date", old, "--received", old)
    assert code == 1
    assert doc["results"][0]["error"]["code"] == "LATE_INPUT"
    code, doc = edoc.json("ingest", str(path), *GENERAL, "--date", old, "--received", old)
    assert code == 0, doc
    assert doc["results"][0]["input_verdict"] == "late"
    m = edoc.json("show", doc["results"][0]["record_id"])[1]["versions"][0]
    assert m["input"]["flag"] == "LATE_INPUT" and m["input"]["received"] == old


def test_statutory_retention_worked_examples(edoc: Edoc, tmp_path: Path) -> None:
    path = tmp_path / "r.png"
    samples.scan_image(path, dpi=300, mode="RGB", fmt="PNG")
    args = ["ingest", str(path), "--profile", "general", "--retention", "corporate-tax",
            "--date", "2024-03-15", "--fiscal-year-end", "2024-03-31"]
    code, doc = edoc.json(*args)
    assert code == 0, doc
    rid = doc["results"][0]["record_id"]
    retention = edoc.json("show", rid)[1]["versions"][0]["retention"]
    by_rule = {r["rule"]: r["retain_until"] for r in retention["rules"]}
    assert by_rule["corporate-tax"] == "2031-05-31"  # REQUIREMENTS.md worked example
    code, ext = edoc.json("retention", "extend", rid, "--loss-year", "--reason", "欠損金")
    assert code == 0, ext
    latest = edoc.json("show", rid)[1]["versions"][0]["retention"]
    assert {r["rule"]: r["retain_until"] for r in latest["rules"]}["corporate-tax"] == \
        "2034-05-31"
    # a fiscal-year end that cannot contain the transaction is refused, not guessed
    code, doc = edoc.json("ingest", str(tmp_path / "r.png"), "--profile", "general",
                          "--retention", "corporate-tax", "--date", "2024-05-01",
                          "--fiscal-year-end", "2024-03-31")
    assert doc["results"][0]["error"]["code"] == "RETENTION_INPUT_INVALID"


def test_retention_that_already_ended_is_refused(edoc: Edoc, tmp_path: Path) -> None:
    path = tmp_path / "old.png"
    samples.scan_image(path, dpi=300, mode="RGB", fmt="PNG")
    code, doc = edoc.json("ingest", str(path), "--profile", "general", "--retention",
                          "medical-charts", "--completed", "2001-01-10")
    # general keeps 10 years from today, so this is stored; medical-charts alone ends
    assert code == 0, doc
    pol = tmp_path / "pol"
    pol.mkdir()
    (pol / "chart.toml").write_text('id = "chart"\ntitle = "t"\nbasis = "医師法 第24条"\n'
                                    '[retention]\nrules = ["medical-charts"]\n')
    import os
    os.environ["EDOC_POLICIES"] = str(pol)
    try:
        code, doc = edoc.json("ingest", str(path), "--profile", "chart", "--completed",
                              "2001-01-10")
    finally:
        del os.environ["EDOC_POLICIES"]
    assert code == 1 and doc["results"][0]["error"]["code"] == "RETENTION_ENDED"


def test_electronic_transaction_keeps_any_data_byte_for_byte(edoc: Edoc, tmp_path: Path
                                                             ) -> None:
    xml = tmp_path / "invoice.xml"
    xml.write_bytes(b'<?xml version="1.0" encoding="UTF-8"?><Invoice><ID>INV-1</ID>'
                    b'<Total currency="JPY">10800</Total></Invoice>')
    locked = tmp_path / "locked-invoice.pdf"
    samples.encrypted_pdf(locked, user_password="secret")
    code, doc = edoc.json("ingest", str(xml), str(locked), "--profile",
                          "nta-electronic-transaction", "--doc-type", "invoice",
                          "--date", jst_today_minus(1), "--amount", "10800",
                          "--counterparty", "取引先")
    assert code == 0, doc
    for r, src in zip(doc["results"], (xml, locked), strict=True):
        out = tmp_path / f"out-{src.name}"
        assert edoc("get", r["record_id"], "-o", str(out)).exit_code == 0
        assert out.read_bytes() == src.read_bytes()
    m = edoc.json("show", doc["results"][1]["record_id"])[1]["versions"][0]
    assert m["readability"]["measured"] is False
    assert m["readability"]["error"] == "PDF_ENCRYPTED"
    # the same password-protected PDF is refused as a scan
    code, doc = edoc.json("ingest", str(locked), *IMPORTANT, "--date", jst_today_minus(1))
    assert doc["results"][0]["error"]["code"] == "PDF_ENCRYPTED"


def test_csv_manifest_is_validated_before_anything_is_stored(edoc: Edoc, tmp_path: Path
                                                             ) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(3):
        samples.scan_image(inbox / f"r{i}.png", dpi=300, mode="RGB", fmt="PNG",
                           metadata_dpi=300 + i)
    rows = [("r0.png", jst_today_minus(1), "¥1,080", "山田商店", "JV-1"),
            ("r1.png", jst_today_minus(1), "5.5", "鈴木商店", "JV-2"),  # a fraction of a yen
            ("r2.png", jst_today_minus(2), "3000", "佐藤商店", "JV-3")]
    csv_path = inbox / "batch.csv"

    def write(rs: list[tuple[str, ...]]) -> None:
        import csv

        with csv_path.open("w", encoding="utf-8-sig", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "date", "amount", "counterparty", "ledger_ref", "doc_type"])
            w.writerows((*r, "receipt") for r in rs)

    write(rows)
    code, doc = edoc.json("ingest", "--manifest", str(csv_path), "--profile",
                          "nta-scan-important")
    assert code == 1
    by = {Path(r["file"]).name: r for r in doc["results"]}
    assert by["r1.png"]["error"]["code"] == "BAD_AMOUNT"
    assert "row 3" in by["r1.png"]["error"]["message"]
    assert by["r0.png"]["status"] == by["r2.png"]["status"] == "not-stored"
    assert edoc.json("search")[1]["count"] == 0
    rows[1] = ("r1.png", jst_today_minus(1), "5", "鈴木商店", "JV-2")
    write(rows)
    code, doc = edoc.json("ingest", "--manifest", str(csv_path), "--profile",
                          "nta-scan-important")
    assert code == 0, doc
    found = edoc.json("search", "--csv")
    assert found[0] == 0
    amounts = sorted(r["amount"] for r in edoc.json("search")[1]["records"])
    assert amounts == [5, 1080, 3000]


def test_profiles_command(edoc: Edoc) -> None:
    res = edoc("profiles")
    assert res.exit_code == 0 and "nta-scan-important" in res.stdout
    code, doc = edoc.json("profiles", "nta-scan-important")
    (p,) = doc["profiles"]
    assert p["capture"]["min_dpi"] == 200 and "電子帳簿保存法" in p["basis"]
    res = edoc("profiles", "nta-scan-important")
    assert "basis:" in res.stdout and "note:" in res.stdout
    code, doc = edoc.json("profiles", "nope")
    assert code == 2 and doc["error"]["code"] == "PROFILE_UNKNOWN"
    assert json.dumps(doc)  # one document
