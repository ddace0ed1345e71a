"""``edoc capture`` with real Tesseract (jpn+eng) on generated scans with known fields.

Tesseract and its Japanese model are Debian packages ``.ci/run`` installs (tesseract-ocr,
tesseract-ocr-jpn); without them this fails, as it should: capture without OCR is not what
is tested here."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from bench.capture_corpus import Truth, render
from tests.helpers import Edoc

REPO = Path(__file__).resolve().parents[2]

RECEIPT = Truth(kind="receipt", doc_type="receipt", date=date(2024, 6, 30),
                date_text="令和6年6月30日", date_form="era-kanji", amount=5500, subtotal=5000,
                tax=500, counterparty="株式会社東京ガス", registration_number="T6010401006754",
                addressee="山田商事株式会社", item="打合せ飲食代",
                address="東京都港区海岸1-5-20", due_text="")
INVOICE = Truth(kind="invoice", doc_type="invoice", date=date(2019, 4, 30),
                date_text="平成31年4月30日", date_form="era-kanji", amount=110000,
                subtotal=100000, tax=10000, counterparty="青葉システム合同会社",
                registration_number="T7120001077127", addressee="株式会社テスト購買",
                item="保守点検費", address="大阪府大阪市北区梅田2-4-9",
                due_text="令和元年5月31日")


def _rows(path: Path) -> dict[str, dict[str, str]]:
    text = path.read_bytes().decode("utf-8-sig")
    return {r["file"]: r for r in csv.DictReader(io.StringIO(text, newline=""))}


def test_capture_reads_a_scanned_receipt_and_an_image_only_pdf(tmp_path: Path) -> None:
    render(RECEIPT, 300).save(tmp_path / "receipt.png", dpi=(300, 300))
    render(INVOICE, 200).convert("RGB").save(tmp_path / "invoice.pdf", resolution=200)
    out = tmp_path / "review.csv"
    res = Edoc(tmp_path / "archive")("capture", str(tmp_path / "receipt.png"),
                                      str(tmp_path / "invoice.pdf"), "-o", str(out),
                                      "--jobs", "2", "--profile", "nta-scan-important")
    assert res.exit_code == 0, res.stderr
    rows = _rows(out)
    receipt, invoice = rows["receipt.png"], rows["invoice.pdf"]
    assert {k: receipt[k] for k in ("doc_type", "date", "amount", "counterparty",
                                    "registration_number", "profile")} == {
        "doc_type": "receipt", "date": "2024-06-30", "amount": "5500",
        "counterparty": "株式会社東京ガス", "registration_number": "T6010401006754",
        "profile": "nta-scan-important"}
    # 平成31年4月30日 is the last day of 平成; the payment deadline (令和元年5月31日) is not
    # the transaction date; the ご請求金額, not the 小計.
    assert {k: invoice[k] for k in ("doc_type", "date", "amount", "counterparty",
                                    "registration_number")} == {
        "doc_type": "invoice", "date": "2019-04-30", "amount": "110000",
        "counterparty": "青葉システム合同会社", "registration_number": "T7120001077127"}
    for row in (receipt, invoice):
        assert {row[f"{f}_source"] for f in ("date", "amount", "counterparty")} == {"ocr"}
        assert all(0.3 < float(row[f"{f}_confidence"]) <= 1.0
                   for f in ("date", "amount", "counterparty", "registration_number"))
        assert row["confirmed_by"] == "" and row["note"] == ""


def test_missing_tesseract_is_reported_per_file(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    scan = tmp_path / "2024-06-30_株式会社東京ガス_5500.png"
    render(RECEIPT, 200).save(scan, dpi=(200, 200))
    monkeypatch.setenv("EDOC_TESSERACT", str(tmp_path / "no-tesseract-here"))
    out = tmp_path / "review.csv"
    res = Edoc(tmp_path / "archive")("capture", str(scan), "-o", str(out), "--jobs", "1")
    assert res.exit_code == 1
    assert "OCR_UNAVAILABLE" in res.stderr
    (row,) = _rows(out).values()
    assert row["note"].startswith("OCR_UNAVAILABLE")
    # the file name still suggests what it spells
    assert (row["date"], row["amount"], row["counterparty"]) == ("2024-06-30", "5500",
                                                                 "株式会社東京ガス")
    assert row["date_source"] == "filename"


def test_capture_confirm_ingest_round_trip(tmp_path: Path) -> None:
    """The review CSV capture writes is the manifest ingest reads: once a person has
    filled confirmed_by, each suggested field is stored with its provenance."""
    edoc = Edoc(tmp_path / "archive")
    assert edoc("init", str(edoc.archive)).exit_code == 0
    scans = tmp_path / "scans"
    scans.mkdir()
    render(RECEIPT, 300).save(scans / "receipt.png", dpi=(300, 300))
    review = scans / "review.csv"
    res = edoc("capture", str(scans / "receipt.png"), "-o", str(review), "--jobs", "1")
    assert res.exit_code == 0, res.stderr
    text = review.read_bytes().decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    header = list(rows[0])
    for row in rows:
        row["confirmed_by"] = "経理 山田"
    with review.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    code, doc = edoc.json("ingest", "--manifest", str(review))
    assert code == 0, doc
    (result,) = doc["results"]
    provenance = result["provenance"]
    assert provenance["amount"]["suggested_by"] == "ocr"
    assert provenance["amount"]["confirmed_by"] == "経理 山田"
    assert provenance["transaction_date"]["source"] == "suggestion-confirmed"
    shown = json.loads(edoc("show", result["record_id"], "--json").stdout)
    metadata = shown["versions"][-1]["metadata"]
    assert (metadata["amount"], metadata["counterparty"]) == (5500, "株式会社東京ガス")
    assert metadata["transaction_date"] == "2024-06-30"


def _expect(fd: int, pattern: str, seen: bytearray, timeout: float = 120.0) -> None:
    """Read the terminal until ``pattern`` has appeared (after what was already matched)."""
    deadline = time.monotonic() + timeout
    want = pattern.encode("utf-8")
    while want not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {pattern!r} on the terminal; got {seen.decode('utf-8', 'replace')}"
        # poll, not select: a long suite has file descriptors past select()'s FD_SETSIZE
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if poller.poll(left * 1000):
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                chunk = b""
            assert chunk, f"terminal closed before {pattern!r}: {seen.decode('utf-8', 'replace')}"
            seen += chunk
    del seen[: seen.index(want) + len(want)]


def test_ingest_suggest_on_a_terminal(tmp_path: Path) -> None:
    """Enter accepts (suggestion-confirmed, by the name given), typed text corrects (typed)."""
    edoc = Edoc(tmp_path / "archive")
    assert edoc("init", str(edoc.archive)).exit_code == 0
    scan = tmp_path / "receipt.png"
    render(RECEIPT, 300).save(scan, dpi=(300, 300))
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONIOENCODING="utf-8", LC_ALL="C.UTF-8")
    child = subprocess.Popen(
        [sys.executable, str(REPO / "cli.py"), "--archive", str(edoc.archive), "ingest",
         str(scan), "--suggest", "--json"], stdin=slave, stderr=slave,
        stdout=subprocess.PIPE, env=env)
    os.close(slave)
    seen = bytearray()
    try:
        _expect(master, "Confirmed by", seen)
        os.write(master, "経理 山田\n".encode())
        _expect(master, "doc_type [receipt] (ocr", seen)
        os.write(master, b"\n")
        _expect(master, "date [2024-06-30] (ocr", seen)
        os.write(master, b"\n")
        _expect(master, "amount [5500] (ocr", seen)
        os.write(master, b"5600\n")  # the person corrects the amount
        _expect(master, "counterparty [株式会社東京ガス] (ocr", seen)
        os.write(master, b"\n")
        _expect(master, "registration_number [T6010401006754] (ocr", seen)
        os.write(master, b"-\n")  # and leaves the T-number out
        out, _ = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
        os.close(master)
    assert child.returncode == 0, out
    (result,) = json.loads(out)["results"]
    provenance = result["provenance"]
    assert provenance["counterparty"]["source"] == "suggestion-confirmed"
    assert provenance["counterparty"]["confirmed_by"] == "経理 山田"
    assert provenance["transaction_date"]["suggested_by"] == "ocr"
    assert provenance["amount"]["source"] == "typed"
    assert "registration_number" not in provenance
    shown = json.loads(edoc("show", result["record_id"], "--json").stdout)
    metadata = shown["versions"][-1]["metadata"]
    assert (metadata["amount"], metadata["counterparty"]) == (5600, "株式会社東京ガス")
