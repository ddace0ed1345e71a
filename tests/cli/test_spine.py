"""End to end on the embedded default archive: init, ingest, search, get, verify, tamper.

No mocks: the real local store, SQLite catalog, embedded RFC 3161 TSA and pyHanko seals;
evidence is cross-checked with the openssl command line.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tests import samples
from tests.helpers import Edoc, jst_today_minus, writable


@pytest.fixture
def edoc(tmp_path: Path) -> Edoc:
    e = Edoc(tmp_path / "archive")
    res = e("init", str(e.archive), "--org", "テスト株式会社")
    assert res.exit_code == 0, res.output
    return e


@pytest.fixture
def docs(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "inbox"
    d.mkdir()
    out = {
        "pdf": d / "invoice.pdf",
        "jpeg": d / "receipt.jpg",
        "png": d / "note.png",
        "tiff": d / "quote.tiff",
    }
    samples.scan_pdf(out["pdf"], dpi_per_page=[300, 200])
    samples.scan_image(out["jpeg"], dpi=200, mode="RGB", fmt="JPEG")
    samples.scan_image(out["png"], dpi=300, mode="RGB", fmt="PNG")
    samples.scan_image(out["tiff"], dpi=200, mode="L", fmt="TIFF", pages=2)
    return out


def ingest_all(edoc: Edoc, docs: dict[str, Path]) -> dict[str, dict[str, object]]:
    code, doc = edoc.json("ingest", *map(str, docs.values()), "--profile", "general",
                          "--date", jst_today_minus(1), "--amount", "10800",
                          "--counterparty", "山田商店", "--doc-type", "receipt")
    assert code == 0, doc
    return {Path(str(r["file"])).name: r for r in doc["results"]}


def test_round_trip_every_format(edoc: Edoc, docs: dict[str, Path], tmp_path: Path) -> None:
    results = ingest_all(edoc, docs)
    assert {r["status"] for r in results.values()} == {"stored"}
    code, report = edoc.json("verify", "--all")
    assert code == 0, report
    assert report["summary"]["pass"] == 4
    names = {c["name"] for r in report["reports"] for c in r["checks"]}
    assert {"content", "manifest", "catalog", "inclusion", "seal", "timestamp", "lock"} <= names
    for path in docs.values():
        rid = str(results[path.name]["record_id"])
        out = tmp_path / f"out-{path.name}"
        assert edoc("get", rid, "-o", str(out)).exit_code == 0
        assert out.read_bytes() == path.read_bytes()
        assert results[path.name]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_evidence_passes_openssl(edoc: Edoc, docs: dict[str, Path], tmp_path: Path) -> None:
    ingest_all(edoc, dict(list(docs.items())[:2]))
    ingest_all(edoc, dict(list(docs.items())[2:]))  # a second run: a second checkpoint
    keys = edoc.archive / "keys"
    cps = edoc.checkpoints()
    assert len(cps) == 2
    for cp in cps:
        body = json.loads(cp.read_bytes())
        assert body["tree_size"] == int(cp.stem)
        ts = subprocess.run(
            ["openssl", "ts", "-verify", "-in", str(cp.with_suffix(".tsr")), "-data", str(cp),
             "-CAfile", str(keys / "root-ca.pem"), "-untrusted", str(keys / "tsa.pem")],
            capture_output=True, text=True)
        assert ts.returncode == 0 and "Verification: OK" in ts.stdout, ts.stderr
        digest = hashlib.sha256(cp.read_bytes()).hexdigest()
        ts2 = subprocess.run(
            ["openssl", "ts", "-verify", "-in", str(cp.with_suffix(".tsr")), "-digest", digest,
             "-CAfile", str(keys / "root-ca.pem"), "-untrusted", str(keys / "tsa.pem")],
            capture_output=True, text=True)
        assert ts2.returncode == 0, ts2.stderr
        cms = subprocess.run(
            ["openssl", "cms", "-verify", "-binary", "-inform", "DER",
             "-in", str(cp.with_suffix(".p7s")), "-content", str(cp),
             "-CAfile", str(keys / "root-ca.pem"), "-purpose", "any", "-out", "/dev/null"],
            capture_output=True, text=True)
        assert cms.returncode == 0, cms.stderr


def _only_failures(report: dict[str, object]) -> set[str]:
    return {c["code"] for r in report["reports"] for c in r["checks"]  # type: ignore[union-attr]
            if c["status"] != "pass"}


@pytest.fixture
def stored(edoc: Edoc, docs: dict[str, Path]) -> tuple[Edoc, dict[str, dict[str, object]]]:
    return edoc, ingest_all(edoc, docs)


def _content(edoc: Edoc, rid: str) -> Path:
    return writable(edoc.objects / "records" / rid / "v1" / "content")


def test_flipped_byte_is_caught(stored: tuple[Edoc, dict[str, dict[str, object]]]) -> None:
    edoc, results = stored
    rid = str(results["receipt.jpg"]["record_id"])
    path = _content(edoc, rid)
    data = bytearray(path.read_bytes())
    data[100] ^= 0x40
    path.write_bytes(bytes(data))
    code, report = edoc.json("verify", rid)
    assert code == 1
    assert _only_failures(report) == {"DIGEST_MISMATCH"}
    # --all reports it too, and only that record fails
    code, report = edoc.json("verify", "--all")
    assert code == 1
    assert report["summary"]["fail"] == 1 and report["summary"]["pass"] == 3


def test_truncated_object_is_caught(stored: tuple[Edoc, dict[str, dict[str, object]]]) -> None:
    edoc, results = stored
    rid = str(results["invoice.pdf"]["record_id"])
    path = _content(edoc, rid)
    path.write_bytes(path.read_bytes()[:-500])
    code, report = edoc.json("verify", rid)
    assert code == 1
    assert _only_failures(report) == {"CONTENT_TRUNCATED"}


def test_edited_manifest_is_caught(stored: tuple[Edoc, dict[str, dict[str, object]]]) -> None:
    edoc, results = stored
    rid = str(results["note.png"]["record_id"])
    path = writable(edoc.objects / "records" / rid / "v1" / "manifest.json")
    path.write_bytes(path.read_bytes().replace(b'"amount":10800', b'"amount":1080'))
    code, report = edoc.json("verify", rid)
    assert code == 1
    assert "MANIFEST_ALTERED" in _only_failures(report)


@pytest.mark.parametrize(("column", "value"), [("amount", 99), ("counterparty", "偽商店")])
def test_changed_catalog_column_is_caught(
        stored: tuple[Edoc, dict[str, dict[str, object]]], column: str, value: object) -> None:
    edoc, results = stored
    rid = str(results["quote.tiff"]["record_id"])
    with edoc.db() as db:
        db.execute(f"UPDATE versions SET {column} = ? WHERE record_id = ?", (value, rid))
    code, report = edoc.json("verify", rid)
    assert code == 1
    assert _only_failures(report) == {"CATALOG_MISMATCH"}
    check = next(c for r in report["reports"] for c in r["checks"] if c["status"] == "fail")
    assert column in check["detail"]


def test_removed_ledger_entry_is_caught(
        stored: tuple[Edoc, dict[str, dict[str, object]]]) -> None:
    edoc, results = stored
    rid = str(results["receipt.jpg"]["record_id"])
    with edoc.db() as db:
        db.execute("DELETE FROM ledger WHERE record_id = ?", (rid,))
    code, report = edoc.json("verify", "--all")
    assert code == 1
    failures = {r["record_id"]: {c["code"] for c in r["checks"] if c["status"] == "fail"}
                for r in report["reports"]}
    assert "LEDGER_ENTRY_MISSING" in failures[rid]
    # the tree recomputed without that leaf no longer matches the sealed root
    assert any("INCLUSION_FAILED" in f or "LEDGER_TRUNCATED" in f
               for r, f in failures.items() if r != rid)


def test_forged_checkpoint_is_caught(stored: tuple[Edoc, dict[str, dict[str, object]]],
                                     tmp_path: Path) -> None:
    from edoc.evidence import pki
    from edoc.evidence.sealing import Sealer

    edoc, results = stored
    other = pki.generate_dev_pki(tmp_path / "mallory", organisation="Mallory")
    sealer = Sealer(pki.load_certificate(other.seal_cert),
                    pki.load_private_key(other.seal_key, None),
                    [pki.load_certificate(other.root_cert)])
    cp = edoc.checkpoints()[-1]
    writable(cp.with_suffix(".p7s")).write_bytes(sealer.seal(cp.read_bytes()))
    code, report = edoc.json("verify", str(results["receipt.jpg"]["record_id"]))
    assert code == 1
    assert _only_failures(report) == {"SEAL_CHAIN_UNTRUSTED"}


def test_token_from_untrusted_tsa_is_caught(
        stored: tuple[Edoc, dict[str, dict[str, object]]], tmp_path: Path) -> None:
    from edoc.evidence import pki, tsa, tsa_embedded, tsa_transport

    edoc, results = stored
    other = pki.generate_dev_pki(tmp_path / "mallory", organisation="Mallory")
    stamper = tsa_transport.InProcessTimeStamper(tsa_embedded.EmbeddedTsa(
        pki.load_certificate(other.tsa_cert), pki.load_private_key(other.tsa_key, None),
        [pki.load_certificate(other.root_cert)], serial_file=tmp_path / "serial"))
    cp = edoc.checkpoints()[-1]
    forged = tsa.request_timestamp(stamper, hashlib.sha256(cp.read_bytes()).digest())
    writable(cp.with_suffix(".tsr")).write_bytes(forged.response_der)
    code, report = edoc.json("verify", str(results["note.png"]["record_id"]))
    assert code == 1
    assert _only_failures(report) == {"TSA_CHAIN_UNTRUSTED"}


def test_store_refuses_overwrite_and_early_delete(
        stored: tuple[Edoc, dict[str, dict[str, object]]]) -> None:
    from edoc.errors import ObjectExists, RetentionActive
    from edoc.services.archive import Archive

    edoc, results = stored
    rid = str(results["receipt.jpg"]["record_id"])
    a = Archive.open(str(edoc.archive))
    key = f"records/{rid}/v1/content"
    info = a.store.stat(key)
    with pytest.raises(ObjectExists, match="written once"):
        a.store.put_bytes(key, b"forged", retain_until=info.retain_until)  # type: ignore[arg-type]
    with pytest.raises(RetentionActive, match="retained until"):
        a.store.delete(key, info.version_id)
    assert a.store.read(key) == (edoc.objects / key).read_bytes()


def test_duplicate_is_reported_not_stored(edoc: Edoc, docs: dict[str, Path]) -> None:
    first = ingest_all(edoc, {"jpeg": docs["jpeg"]})
    code, doc = edoc.json("ingest", str(docs["jpeg"]), "--profile", "general")
    assert code == 1
    (r,) = doc["results"]
    assert r["status"] == "duplicate"
    assert r["error"]["code"] == "DUPLICATE_CONTENT"
    assert first["receipt.jpg"]["record_id"] in r["error"]["message"]
    code, found = edoc.json("search")
    assert found["count"] == 1


def test_search_filters_combine(edoc: Edoc, docs: dict[str, Path]) -> None:
    rows = [("jpeg", 2, "10800", "ｶﾌﾞｼｷｶﾞｲｼｬ山田"), ("png", 3, "54000", "Ｓｕｚｕｋｉ Trading"),
            ("tiff", 4, "120000", "佐藤工業")]
    for key, days, amount, cp in rows:
        code, doc = edoc.json("ingest", str(docs[key]), "--profile", "general",
                              "--date", jst_today_minus(days), "--amount", amount,
                              "--counterparty", cp)
        assert code == 0, doc

    def ids(*args: str) -> list[int]:
        code, doc = edoc.json("search", *args)
        assert code == 0
        return sorted(r["amount"] for r in doc["records"])

    assert ids("--counterparty", "カブシキガイシャ") == [10800]
    assert ids("--counterparty", "suzuki") == [54000]
    assert ids("--min-amount", "10,800", "--max-amount", "¥54,000") == [10800, 54000]
    assert ids("--from", jst_today_minus(3), "--to", jst_today_minus(2)) == [10800, 54000]
    assert ids("--from", jst_today_minus(3), "--min-amount", "20000") == [54000]
    assert ids("--counterparty", "佐藤", "--max-amount", "100000") == []


@pytest.mark.parametrize(("args", "code", "exit_code"), [
    (["missing.pdf"], "FILE_NOT_FOUND", 1),
    (["{dir}"], "NOT_A_FILE", 1),
    (["{empty}"], "FILE_EMPTY", 1),
    (["{ok}", "--date", "2024-13-01"], "BAD_DATE", 1),
    (["{ok}", "--date", "yesterday"], "BAD_DATE", 1),
    (["{ok}", "--amount", "--500"], "BAD_AMOUNT", 1),
    (["{ok}", "--amount", "10.5"], "BAD_AMOUNT", 1),
])
def test_bad_input_one_line_error_nothing_stored(
        edoc: Edoc, tmp_path: Path, args: list[str], code: str, exit_code: int) -> None:
    empty = tmp_path / "empty.pdf"
    empty.touch()
    ok = tmp_path / "ok.png"
    samples.scan_image(ok, dpi=300, mode="RGB", fmt="PNG")
    argv = [a.format(dir=tmp_path, empty=empty, ok=ok) for a in args]
    res = edoc("ingest", *argv, "--profile", "general")
    assert res.exit_code == exit_code
    assert code in res.stderr
    assert "Traceback" not in res.output
    js_code, doc = edoc.json("ingest", *argv, "--profile", "general")
    assert js_code == exit_code
    assert doc["results"][0]["error"]["code"] == code
    assert edoc.json("search")[1]["count"] == 0
    assert not (edoc.objects / "records").exists() or not any(
        (edoc.objects / "records").iterdir())


def test_unknown_profile_is_a_usage_error(edoc: Edoc, docs: dict[str, Path]) -> None:
    code, doc = edoc.json("ingest", str(docs["png"]), "--profile", "no-such-profile")
    assert code == 2
    assert doc == {"ok": False, "error": {
        "code": "PROFILE_UNKNOWN", "message": "unknown profile 'no-such-profile'",
        "hint": doc["error"]["hint"]}}
    assert "general" in doc["error"]["hint"]


def test_unreadable_file_error_path(edoc: Edoc, docs: dict[str, Path],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root in CI, where chmod 000 does not stop reads: a narrow seam instead.
    import os

    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p).endswith(".png")
                        else real(p, m))
    code, doc = edoc.json("ingest", str(docs["png"]), str(docs["jpeg"]), "--profile",
                          "general")
    assert code == 1
    by = {Path(r["file"]).suffix: r for r in doc["results"]}
    assert by[".png"]["error"]["code"] == "FILE_UNREADABLE"
    assert by[".jpg"]["status"] == "stored"  # the batch went on


def test_init_refuses_existing_archive(edoc: Edoc) -> None:
    before = (edoc.archive / "keys" / "seal.key").read_bytes()
    code, doc = edoc.json("init", str(edoc.archive))
    assert code == 2
    assert doc["error"]["code"] == "ARCHIVE_EXISTS"
    assert (edoc.archive / "keys" / "seal.key").read_bytes() == before


def test_no_archive_is_a_configuration_error(tmp_path: Path) -> None:
    e = Edoc(tmp_path / "nowhere")
    code, doc = e.json("search")
    assert code == 2
    assert doc["error"]["code"] == "ARCHIVE_NOT_FOUND"
