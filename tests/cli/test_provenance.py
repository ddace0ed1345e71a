"""Provenance sealed with the record (issue 16, part 3): a machine suggestion becomes a
search field only when a person confirmed it, and the record says who and from what.

Through the real CLI: the review CSV that ``edoc capture`` writes (NOT_CONFIRMED, a
confirmed row, a typed row), ``edoc confirm`` (a new version, history kept, ledger event),
``--registration-number`` on ingest, and ``show --json`` / the export carrying the block.
"""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from edoc.services.manifest_csv import ALL_COLUMNS
from tests import einvoice_samples as einvoices
from tests import samples
from tests.helpers import Edoc, jst_today_minus

NTA = "T" + einvoices.CORPORATE_NUMBER_NTA


@pytest.fixture
def edoc(tmp_path: Path) -> Edoc:
    e = Edoc(tmp_path / "archive")
    assert e("init", str(e.archive)).exit_code == 0
    return e


def _scan(directory: Path, name: str, seed: int) -> Path:
    p = directory / name
    samples.scan_image(p, dpi=200 + seed, fmt="PNG")
    return p


def _review_csv(directory: Path, rows: list[dict[str, str]]) -> Path:
    """A review CSV as ``edoc capture`` writes it (UTF-8 BOM, every column)."""
    path = directory / "review.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(ALL_COLUMNS))
        w.writeheader()
        for row in rows:
            w.writerow({k: row.get(k, "") for k in ALL_COLUMNS})
    return path


def _ledger_events(edoc: Edoc, record_id: str) -> list[dict[str, Any]]:
    with edoc.db() as db:
        return [json.loads(e) for (e,) in db.execute(
            "SELECT entry FROM ledger WHERE record_id = ? ORDER BY idx", (record_id,))]


def _suggested_row(file: str, **extra: str) -> dict[str, str]:
    return {"file": file, "profile": "general", "date": jst_today_minus(3),
            "date_source": "ocr", "date_confidence": "0.91", "amount": "3300",
            "amount_source": "ocr", "amount_confidence": "0.875",
            "counterparty": "東京ガス株式会社", **extra}


def test_unconfirmed_suggestion_is_refused_and_nothing_is_stored(edoc: Edoc,
                                                                 tmp_path: Path) -> None:
    _scan(tmp_path, "a.png", 0)
    _scan(tmp_path, "b.png", 1)
    manifest = _review_csv(tmp_path, [
        _suggested_row("a.png"),  # no confirmed_by
        {"file": "b.png", "profile": "general", "date": jst_today_minus(2),
         "amount": "500", "counterparty": "山田商店"},
    ])
    code, doc = edoc.json("ingest", "--manifest", str(manifest))
    assert code == 1
    first, second = doc["results"]
    assert first["status"] == "rejected"
    assert first["error"]["code"] == "NOT_CONFIRMED"
    assert "date (ocr)" in first["error"]["message"] and "amount (ocr)" in \
        first["error"]["message"]
    assert "\n" not in first["error"]["message"]
    # the other row was checked and reported; a manifest is all or nothing at validation
    assert second["error"]["code"] == "BATCH_NOT_STORED"
    assert edoc.version_count() == 0


def test_confirmed_row_seals_each_fields_provenance(edoc: Edoc, tmp_path: Path) -> None:
    _scan(tmp_path, "a.png", 0)
    manifest = _review_csv(tmp_path, [_suggested_row("a.png", confirmed_by="佐藤 花子")])
    code, doc = edoc.json("ingest", "--manifest", str(manifest))
    assert code == 0, doc
    result = doc["results"][0]
    rid = result["record_id"]
    expected = {
        "transaction_date": {"source": "suggestion-confirmed", "suggested_by": "ocr",
                             "confidence": "0.910", "confirmed_by": "佐藤 花子"},
        "amount": {"source": "suggestion-confirmed", "suggested_by": "ocr",
                   "confidence": "0.875", "confirmed_by": "佐藤 花子"},
        "counterparty": {"source": "typed"},  # no counterparty_source: a person typed it
    }
    assert result["provenance"] == expected
    manifest_json = edoc.latest_manifest(rid)
    assert manifest_json["provenance"] == expected
    assert manifest_json["metadata"]["amount"] == 3300
    events = _ledger_events(edoc, rid)
    assert [e["event"] for e in events] == ["ingest", "confirmation"]
    confirmation = events[1]
    assert confirmation["fields"] == {"amount": "ocr", "transaction_date": "ocr"}
    assert confirmation["manifest_sha256"] == events[0]["manifest_sha256"]
    # the ledger carries ids and digests only, never the person's name
    assert "佐藤" not in json.dumps(confirmation, ensure_ascii=False)
    code, verified = edoc.json("verify", rid)
    assert code == 0, verified
    code, ledger = edoc.json("ledger", "verify")
    assert code == 0, ledger


def test_typed_row_and_typed_flags_are_typed(edoc: Edoc, tmp_path: Path) -> None:
    code, r = edoc.ingest_one(_scan(tmp_path, "a.png", 0), "--profile", "general",
                              "--date", jst_today_minus(1), "--amount", "1000",
                              "--counterparty", "山田商店")
    assert code == 0, r
    assert "provenance" not in r  # all typed: the result keeps the keys it had
    m = edoc.latest_manifest(r["record_id"])
    assert m["provenance"] == {k: {"source": "typed"}
                               for k in ("transaction_date", "amount", "counterparty")}
    assert [e["event"] for e in _ledger_events(edoc, r["record_id"])] == ["ingest"]


def test_confirm_is_a_new_version_with_history(edoc: Edoc, tmp_path: Path) -> None:
    _scan(tmp_path, "a.png", 0)
    manifest = _review_csv(tmp_path, [_suggested_row("a.png", confirmed_by="佐藤")])
    code, doc = edoc.json("ingest", "--manifest", str(manifest))
    assert code == 0, doc
    rid = doc["results"][0]["record_id"]
    v1 = edoc.latest_manifest(rid)
    code, done = edoc.json("confirm", rid, "--amount", "3080", "--counterparty",
                           "東京ガス株式会社", "--by", "経理 鈴木")
    assert code == 0, done
    assert (done["version"], done["kind"]) == (2, "confirmation")
    code, shown = edoc.json("show", rid, "--history")
    assert code == 0
    first, second = shown["versions"]
    assert first == v1  # the earlier version is kept as it was
    assert second["kind"] == "confirmation"
    assert second["metadata"]["amount"] == 3080
    assert second["previous_version_sha256"] is not None
    assert "経理 鈴木" in second["reason"]
    prov = second["provenance"]
    # a changed value is the person's own; an unchanged one confirmed by them
    assert prov["amount"] == {"source": "typed", "confirmed_by": "経理 鈴木"}
    assert prov["counterparty"] == {"source": "typed", "confirmed_by": "経理 鈴木"}
    assert prov["transaction_date"] == first["provenance"]["transaction_date"]
    assert [e["event"] for e in _ledger_events(edoc, rid)] == \
        ["ingest", "confirmation", "confirm"]
    assert edoc.json("verify", rid)[0] == 0
    # confirming the date unchanged keeps it a confirmed OCR suggestion, by the new person
    code, done = edoc.json("confirm", rid, "--date", first["metadata"]["transaction_date"],
                           "--by", "監査 高橋")
    assert code == 0, done
    third = edoc.latest_manifest(rid)["provenance"]["transaction_date"]
    assert third == {"source": "suggestion-confirmed", "suggested_by": "ocr",
                     "confidence": "0.910", "confirmed_by": "監査 高橋"}
    # an evidence bundle of the confirmed record verifies offline, every version included
    bundle = tmp_path / "bundle.zip"
    code, made = edoc.json("evidence", rid, "-o", str(bundle))
    assert code == 0, made
    res = edoc("verify-bundle", str(bundle), "--json")
    assert res.exit_code == 0, res.output
    # text output names the source and the confirmer
    out = edoc("show", rid).output
    assert "transaction_date: suggestion-confirmed (via ocr, confidence 0.910, confirmed " \
           "by 監査 高橋)" in out


def test_confirm_needs_a_field_and_a_person(edoc: Edoc, tmp_path: Path) -> None:
    code, r = edoc.ingest_one(_scan(tmp_path, "a.png", 0), "--profile", "general",
                              "--date", jst_today_minus(1), "--amount", "1000")
    assert code == 0
    res = edoc("confirm", r["record_id"], "--by", "x")
    assert res.exit_code == 1 and "NO_CHANGE" in res.output
    res = edoc("confirm", r["record_id"], "--amount", "1000", "--by", "  ")
    assert res.exit_code == 1 and "NOT_CONFIRMED" in res.output
    assert edoc.version_count() == 1


def test_confirm_refuses_a_field_the_einvoice_supplies(edoc: Edoc, tmp_path: Path) -> None:
    path = tmp_path / "inv.xml"
    path.write_bytes(einvoices.pint_invoice())
    code, r = edoc.ingest_one(path, "--profile", "nta-electronic-transaction")
    assert code == 0, r
    m = edoc.latest_manifest(r["record_id"])
    # an e-invoice's fields: "document" as before, and which reader
    assert m["provenance"]["amount"] == {"source": "document", "via": "einvoice"}
    assert m["einvoice"]["field_sources"]["amount"] == "document"
    res = edoc("confirm", r["record_id"], "--amount", "1", "--by", "x")
    assert res.exit_code == 1 and "FIELD_FROM_DOCUMENT" in res.output
    assert edoc.version_count() == 1


def test_registration_number_typed_for_a_scan(edoc: Edoc, tmp_path: Path) -> None:
    code, r = edoc.ingest_one(_scan(tmp_path, "a.png", 0), "--profile", "general",
                              "--date", jst_today_minus(1), "--registration-number",
                              "Ｔ" + einvoices.CORPORATE_NUMBER_NTA)
    assert code == 0, r
    m = edoc.latest_manifest(r["record_id"])
    assert m["metadata"]["registration_number"] == NTA
    assert m["provenance"]["registration_number"] == {"source": "typed"}
    code, found = edoc.json("search", "--registration-number", NTA)
    assert [h["record_id"] for h in found["records"]] == [r["record_id"]]
    code, bad = edoc.ingest_one(_scan(tmp_path, "b.png", 1), "--profile", "general",
                                "--registration-number", "T123")
    assert code == 1 and bad["error"]["code"] == "REGISTRATION_NUMBER_INVALID"
    # a check digit that is not the 法人番号's: kept, flagged
    code, odd = edoc.ingest_one(_scan(tmp_path, "c.png", 2), "--profile", "general",
                                "--registration-number", "T1000012050002")
    assert code == 0
    assert [w["code"] for w in odd["warnings"]] == ["REGISTRATION_CHECK_DIGIT"]


def test_export_carries_provenance(edoc: Edoc, tmp_path: Path) -> None:
    _scan(tmp_path, "a.png", 0)
    manifest = _review_csv(tmp_path, [_suggested_row("a.png", confirmed_by="佐藤")])
    code, doc = edoc.json("ingest", "--manifest", str(manifest))
    assert code == 0, doc
    rid = doc["results"][0]["record_id"]
    out = tmp_path / "export.zip"
    code, _ = edoc.json("export", "-o", str(out))
    assert code == 0
    with zipfile.ZipFile(out) as zf:
        prov = json.loads(zf.read("provenance.json"))
    assert prov[rid]["fields"]["amount"]["confirmed_by"] == "佐藤"
    assert prov[rid]["fields"]["amount"]["suggested_by"] == "ocr"
