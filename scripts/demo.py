"""`make demo`: the main job end to end on a fresh embedded archive.

init → generate sample scans and born-digital documents → ingest (one rejected scan on
purpose) → search → verify → check the evidence with openssl → tamper with a copy of the
archive and watch verify catch it. Every step runs the real `edoc` command, as a user would.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import capture_corpus  # noqa: E402  (generated receipts with known fields)
from tests import einvoice_samples, samples  # noqa: E402  (the test suite's generators)

WORK = ROOT / "demo-archive"
ARCHIVE = WORK / "archive"
INBOX = WORK / "inbox"
EDOC = [str(Path(sys.executable).parent / "edoc")]


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def run(*args: str, expect: int = 0, archive: Path = ARCHIVE) -> str:
    cmd = [*EDOC, "--archive", str(archive), *args]
    shown = " ".join(a if " " not in a else repr(a) for a in ["edoc", *args])
    print(f"$ {shown}", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    sys.stdout.write(proc.stdout)
    sys.stdout.write(proc.stderr)
    if proc.returncode != expect:
        sys.exit(f"demo failed: exit {proc.returncode}, expected {expect}")
    print(f"(exit {proc.returncode})", flush=True)
    return proc.stdout


def sh(*cmd: str, expect: int = 0) -> None:
    print("$ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    sys.stdout.write(proc.stdout + proc.stderr)
    if proc.returncode != expect:
        sys.exit(f"demo failed: exit {proc.returncode}, expected {expect}")


def main() -> None:
    # Dates relative to today: scanner preservation wants input within 7 business days of
    # receipt (電帳法施行規則 第2条第6項), so fixed dates would make the demo "late" one day.
    today = datetime.now(ZoneInfo("Asia/Tokyo")).date()
    d = {n: (today - timedelta(days=n)).isoformat() for n in (1, 2, 3, 5)}
    if WORK.exists():
        for p in WORK.rglob("*"):  # the store makes objects read-only
            if p.is_dir():
                p.chmod(0o700)
        shutil.rmtree(WORK)
    INBOX.mkdir(parents=True)

    step("1. Create an archive (embedded defaults: local store, SQLite, dev PKI + TSA)")
    run("init", str(ARCHIVE), "--org", "デモ商事株式会社")

    step("2. Generate sample documents")
    samples.scan_image(INBOX / "receipt.jpg", dpi=200, mode="RGB", fmt="JPEG")
    samples.scan_pdf(INBOX / "invoice-0815.pdf", dpi_per_page=[300, 300])
    samples.scan_image(INBOX / "delivery-note.png", dpi=300, mode="RGB", fmt="PNG")
    samples.scan_image(INBOX / "quote.tiff", dpi=200, mode="L", fmt="TIFF")
    samples.text_pdf(INBOX / "e-invoice.pdf", "Invoice INV-2025-0042 total 54,000 JPY")
    samples.scan_image(INBOX / "blurry-receipt.jpg", dpi=150, mode="RGB", fmt="JPEG")
    for p in sorted(INBOX.iterdir()):
        print(f"  {p.name:28} {p.stat().st_size:>9,} bytes")

    step("3. Ingest: scanner preservation (重要書類) — the 150 dpi scan is refused")
    run("ingest", str(INBOX / "receipt.jpg"), str(INBOX / "blurry-receipt.jpg"),
        "--profile", "nta-scan-important", "--doc-type", "receipt", "--date", d[3],
        "--received", d[2], "--amount", "¥10,800", "--counterparty", "ｶﾌﾞｼｷｶﾞｲｼｬ山田",
        "--ledger-ref", "JV-0412", expect=1)
    run("ingest", str(INBOX / "invoice-0815.pdf"), "--profile", "nta-scan-important",
        "--doc-type", "invoice", "--date", d[2], "--amount", "54000",
        "--counterparty", "Ｓｕｚｕｋｉ Trading", "--ledger-ref", "JV-0815")
    run("ingest", str(INBOX / "quote.tiff"), "--profile", "nta-scan-general",
        "--doc-type", "quote", "--date", d[1], "--amount", "120000",
        "--counterparty", "佐藤工業", "--paper-size", "A4")
    run("ingest", str(INBOX / "delivery-note.png"), str(INBOX / "e-invoice.pdf"),
        "--profile", "general", "--date", d[5], "--counterparty", "鈴木運輸")

    step("3b. Ingest a JP PINT e-invoice with nothing typed, then render it to a PDF")
    xml = INBOX / "pint-invoice.xml"
    xml.write_bytes(einvoice_samples.pint_invoice(
        lines=einvoice_samples.TWO_RATES, number="INV-DEMO-0001", issue_date=d[1]))
    out = run("ingest", str(xml), "--profile", "nta-electronic-transaction", "--received", d[1])
    einvoice_id = out.split()[0]
    run("show", einvoice_id)
    run("search", "--registration-number", "T" + einvoice_samples.CORPORATE_NUMBER_NTA)
    run("render", einvoice_id, "-o", str(WORK / "pint-invoice.pdf"))

    step("3c. Capture a scanned receipt: suggested fields -> review CSV -> confirm -> ingest")
    capture_step(INBOX / "capture", today - timedelta(days=3), d[2])

    step("4. Search (NFKC: half-width カナ and full-width Latin match)")
    run("search", "--counterparty", "カブシキガイシャ")
    run("search", "--counterparty", "suzuki", "--min-amount", "50000")
    run("search", "--from", d[3], "--to", d[2])

    step("5. Verify every record (digest, manifest, catalog, inclusion, seal, token, lock)")
    run("verify", "--all")

    step("6. Check the newest checkpoint with openssl alone (no edoc code involved)")
    cps = sorted((ARCHIVE / "store" / "objects" / "checkpoints").glob("*.json"))
    cp = cps[-1]
    keys = ARCHIVE / "keys"
    sh("openssl", "ts", "-verify", "-in", str(cp.with_suffix(".tsr")), "-data", str(cp),
       "-CAfile", str(keys / "root-ca.pem"), "-untrusted", str(keys / "tsa.pem"))
    sh("openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
       str(cp.with_suffix(".p7s")), "-content", str(cp), "-CAfile", str(keys / "root-ca.pem"),
       "-purpose", "any", "-out", os.devnull)

    step("7. Tamper with a copy of the archive: flip one byte of a stored scan")
    tampered = WORK / "tampered"
    shutil.copytree(ARCHIVE, tampered)
    (tampered / "edoc.toml").write_text((ARCHIVE / "edoc.toml").read_text())
    victim = sorted((tampered / "store" / "objects" / "records").rglob("content"))[0]
    victim.chmod(0o600)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    print(f"  flipped a byte in {victim.relative_to(tampered)}")
    run("verify", "--all", archive=tampered, expect=1)

    step("Done")
    print(f"The archive is in {ARCHIVE}. Try: .venv/bin/edoc --archive {ARCHIVE} show ID")
    print("Evidence uses a development PKI and the embedded TSA: NOT ACCREDITED.")

    # The web viewer (edoc serve): no demo password is made up here or printed anywhere; the
    # one who tries it chooses one.
    print()
    print("See the archive in a browser (read-only viewer, Japanese by default):")
    print(f"  .venv/bin/edoc --archive {ARCHIVE} user add auditor --role auditor "
          "--password-stdin   # type a password (10+ characters), then Enter")
    print(f"  .venv/bin/edoc --archive {ARCHIVE} serve    # then open http://127.0.0.1:8080/")


def capture_step(directory: Path, day: date, received: str) -> None:
    """``edoc capture`` reads a generated 300 dpi colour scan (real Tesseract), writes the
    review CSV; the person checks it and signs confirmed_by (done here by the demo, as the
    person would in a spreadsheet); ``ingest --manifest`` stores it with each field's
    provenance."""
    directory.mkdir(parents=True)
    truth = capture_corpus.Truth(
        kind="receipt", doc_type="receipt", date=day,
        date_text=capture_corpus.date_text(day, "era-kanji"), date_form="era-kanji",
        amount=16500, subtotal=15000, tax=1500, counterparty="株式会社東京ガス",
        registration_number="T6010401006754", addressee="デモ商事株式会社",
        item="打合せ飲食代", address="東京都港区海岸1-5-20", due_text="")
    scan = directory / "receipt-scan.png"
    capture_corpus.render(truth, 300).convert("RGB").save(scan, dpi=(300, 300))
    print(f"  {scan.name}: a receipt dated {truth.date_text}, ¥{truth.amount:,}, "
          f"issued by {truth.counterparty}")
    review = directory / "review.csv"
    run("capture", str(scan), "-o", str(review), "--profile", "nta-scan-important")
    with review.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        shown = {k: row[k] for k in ("file", "doc_type", "date", "amount", "counterparty",
                                     "registration_number", "amount_source",
                                     "amount_confidence")}
        print(f"  review.csv: {shown}")
        row["received"] = received
        row["ledger_ref"] = "JV-0420"  # what only the books know: the voucher it belongs to
        row["confirmed_by"] = "経理 山田"  # the person checked the row and signs it
    with review.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    print("  (the demo fills received, ledger_ref and confirmed_by = 経理 山田, as the person "
          "would)")
    out = run("ingest", "--manifest", str(review), "--json")
    record = json.loads(out)["results"][0]
    print(f"  provenance of the amount: {record['provenance']['amount']}")


if __name__ == "__main__":
    main()
