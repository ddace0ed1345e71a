"""Corrections, deletions, holds and disposal on the embedded default archive.

Records expire quickly through a short test profile (``extends`` a shipped one with a plain
``duration``), never through a clock override: purge takes "now" from a real timestamp.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import time
from pathlib import Path

import pytest

from tests import samples
from tests.helpers import Edoc, drop_catalog, jst_today_minus, short_profile, writable

SHORT = 3  # seconds a test-short record is kept


@pytest.fixture
def edoc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Edoc:
    monkeypatch.setenv("EDOC_POLICIES", str(short_profile(tmp_path / "policies", SHORT)))
    e = Edoc(tmp_path / "archive")
    assert e("init", str(e.archive)).exit_code == 0
    return e


def _ingest(edoc: Edoc, path: Path, profile: str, **meta: str) -> str:
    args = ["ingest", str(path), "--profile", profile, "--date", jst_today_minus(1)]
    for k, v in meta.items():
        args += [f"--{k.replace('_', '-')}", v]
    code, doc = edoc.json(*args)
    assert code == 0, doc
    return str(doc["results"][0]["record_id"])


def _img(tmp_path: Path, name: str, seed: int) -> Path:
    p = tmp_path / name
    samples.scan_image(p, dpi=200 + seed, mode="RGB", fmt="PNG")
    return p


def _files_of(edoc: Edoc, rid: str) -> dict[str, bytes]:
    base = edoc.objects / "records" / rid
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*"))
            if p.is_file()}


def test_correction_keeps_history_byte_for_byte(edoc: Edoc, tmp_path: Path) -> None:
    rid = _ingest(edoc, _img(tmp_path, "a.png", 0), "general", amount="1000",
                  counterparty="山田商店")
    before = _files_of(edoc, rid)
    code, doc = edoc.json("correct", rid, "--reason", "amount mistyped", "--amount", "1100")
    assert code == 0, doc
    assert doc["version"] == 2
    new_file = _img(tmp_path, "a-rescanned.png", 50)
    code, doc = edoc.json("correct", rid, str(new_file), "--reason", "rescanned")
    assert code == 0 and doc["version"] == 3
    after = _files_of(edoc, rid)
    assert {k: after[k] for k in before} == before  # v1 untouched
    code, shown = edoc.json("show", rid, "--history")
    vs = shown["versions"]
    assert [v["kind"] for v in vs] == ["original", "correction", "correction"]
    assert [v["metadata"]["amount"] for v in vs] == [1000, 1100, 1100]
    assert vs[1]["reason"] == "amount mistyped" and vs[1]["actor"]
    assert vs[2]["content"]["sha256"] == hashlib.sha256(new_file.read_bytes()).hexdigest()
    # each version points at the one before it
    for prev, cur in itertools.pairwise(vs):
        raw = (edoc.objects / "records" / rid / f"v{prev['version']}" / "manifest.json")
        assert cur["previous_version_sha256"] == hashlib.sha256(raw.read_bytes()).hexdigest()
    code, report = edoc.json("verify", rid)
    assert code == 0, report
    assert [r["version"] for r in report["reports"]] == [1, 2, 3]
    # search finds the latest by default, every version on request
    assert edoc.json("search", "--max-amount", "1050")[1]["count"] == 0
    assert edoc.json("search", "--max-amount", "1050", "--all-versions")[1]["count"] == 1
    # get returns the old bytes for an old version
    out = tmp_path / "v1.png"
    assert edoc("get", rid, "--version", "1", "-o", str(out)).exit_code == 0
    assert out.read_bytes() == (tmp_path / "a.png").read_bytes()


def test_correction_needs_a_reason_and_a_change(edoc: Edoc, tmp_path: Path) -> None:
    rid = _ingest(edoc, _img(tmp_path, "a.png", 0), "general", amount="1000")
    assert edoc("correct", rid, "--amount", "5").exit_code == 2  # --reason is required
    code, doc = edoc.json("correct", rid, "--reason", " ")
    assert code == 1 and doc["error"]["code"] == "REASON_REQUIRED"
    code, doc = edoc.json("correct", rid, "--reason", "nothing", "--amount", "1000")
    assert code == 1 and doc["error"]["code"] == "NO_CHANGE"
    code, doc = edoc.json("correct", "01HZZZZZZZZZZZZZZZZZZZZZZZ", "--reason", "x",
                          "--amount", "1")
    assert code == 1 and doc["error"]["code"] == "NOT_FOUND"


def test_delete_is_a_tombstone(edoc: Edoc, tmp_path: Path) -> None:
    rid = _ingest(edoc, _img(tmp_path, "a.png", 0), "general", counterparty="佐藤工業")
    before = _files_of(edoc, rid)
    code, doc = edoc.json("delete", rid, "--reason", "entered twice")
    assert code == 0 and doc["kind"] == "tombstone"
    assert edoc.json("search", "--counterparty", "佐藤")[1]["count"] == 0
    code, found = edoc.json("search", "--counterparty", "佐藤", "--include-deleted")
    assert found["count"] == 1 and found["records"][0]["state"] == "deleted"
    code, shown = edoc.json("show", rid, "--history")
    assert [v["kind"] for v in shown["versions"]] == ["original", "tombstone"]
    assert shown["versions"][1]["reason"] == "entered twice"
    after = _files_of(edoc, rid)
    assert {k: after[k] for k in before} == before
    assert edoc.json("verify", rid)[0] == 0
    code, doc = edoc.json("correct", rid, "--reason", "x", "--amount", "1")
    assert code == 1 and doc["error"]["code"] == "RECORD_DELETED"


def test_retention_extends_never_shortens(edoc: Edoc, tmp_path: Path) -> None:
    # FY end from edoc.toml (03-31) after yesterday: 7 years from its filing deadline end
    # before general's 10 years from today; a loss year's 10 years end after them.
    rid = _ingest(edoc, _img(tmp_path, "a.png", 0), "general", retention="corporate-tax")
    code, shown = edoc.json("show", rid)
    before = shown["versions"][0]["retention"]["retain_until"]
    code, doc = edoc.json("retention", "extend", rid, "--loss-year", "--reason", "欠損金")
    assert code == 0, doc
    assert doc["retain_until"] > before
    key = edoc.objects / "records" / rid / "v1" / "content"
    meta = json.loads((edoc.archive / "store" / "meta" / "records" / rid / "v1" /
                       "content.json").read_text())
    assert meta["retain_until"][:4] >= doc["retain_until"][:4]  # the lock moved too
    assert key.exists()
    code, doc = edoc.json("retention", "extend", rid, "--loss-year", "--reason", "again")
    assert code == 1 and doc["error"]["code"] == "RETENTION_NOT_EXTENDED"
    assert edoc.json("verify", rid)[0] == 0


def test_hold_blocks_purge_until_released(edoc: Edoc, tmp_path: Path) -> None:
    held = _ingest(edoc, _img(tmp_path, "a.png", 0), "test-short")
    free = _ingest(edoc, _img(tmp_path, "b.png", 10), "test-short")
    kept = _ingest(edoc, _img(tmp_path, "c.png", 20), "general")
    code, doc = edoc.json("hold", held, "--reason", "tax audit", "--case", "TA-7")
    assert code == 0
    assert edoc.json("holds")[1]["holds"][0]["record_id"] == held
    # before expiry nothing is selected, whatever the flags
    code, doc = edoc.json("purge", "--yes")
    assert code == 0 and doc["selected"]["records"] == 0
    time.sleep(SHORT + 1)
    code, dry = edoc.json("purge", "--dry-run")
    assert code == 0 and dry["selected"]["record_ids"] == [free]
    assert dry["selected"]["by_profile"]["test-short"]["records"] == 1
    assert (edoc.objects / "records" / free).exists()  # dry run changed nothing
    snapshot = {rid: _files_of(edoc, rid) for rid in (held, kept)}
    code, done = edoc.json("purge", "--yes")
    assert code == 0, done
    assert [d["record_id"] for d in done["disposed"]] == [free]
    assert not list((edoc.objects / "records" / free).rglob("*.json"))
    assert {rid: _files_of(edoc, rid) for rid in (held, kept)} == snapshot  # untouched
    # the certificate: sealed, timestamped, lists the record; openssl agrees
    (cert_key,) = done["certificates"]
    cert = edoc.objects / cert_key
    body = json.loads(cert.read_bytes())
    assert [e["record_id"] for e in body["disposed"]] == [free]
    keys = edoc.archive / "keys"
    assert subprocess.run(["openssl", "ts", "-verify", "-in", str(cert.with_suffix(".tsr")),
                           "-data", str(cert), "-CAfile", str(keys / "root-ca.pem"),
                           "-untrusted", str(keys / "tsa.pem")],
                          capture_output=True).returncode == 0
    assert subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
                           str(cert.with_suffix(".p7s")), "-content", str(cert), "-CAfile",
                           str(keys / "root-ca.pem"), "-purpose", "any", "-out", "/dev/null"],
                          capture_output=True).returncode == 0
    code, report = edoc.json("verify", "--all")
    assert code == 0, report
    disposed = [c for r in report["reports"] if r["record_id"] == free for c in r["checks"]]
    assert [c["code"] for c in disposed] == ["DISPOSED"]
    assert cert_key in disposed[0]["detail"]
    # release the hold: now it goes
    assert edoc.json("release", held, "--reason", "audit closed")[0] == 0
    code, done = edoc.json("purge", "--yes")
    assert code == 0 and [d["record_id"] for d in done["disposed"]] == [held]
    assert edoc.json("verify", kept)[0] == 0


def test_tampered_certificate_is_caught(edoc: Edoc, tmp_path: Path) -> None:
    rid = _ingest(edoc, _img(tmp_path, "a.png", 0), "test-short")
    time.sleep(SHORT + 1)
    code, done = edoc.json("purge", "--yes")
    assert code == 0
    cert = writable(edoc.objects / done["certificates"][0])
    cert.write_bytes(cert.read_bytes().replace(b'"count":1', b'"count":0'))
    code, report = edoc.json("verify", rid)
    assert code == 1
    assert report["reports"][0]["checks"][0]["code"] == "SEAL_SIGNATURE_INVALID"


def test_purge_requires_a_mode(edoc: Edoc) -> None:
    code, doc = edoc.json("purge")
    assert code == 2 and doc["error"]["code"] == "USAGE_ERROR"


def test_second_purge_while_one_runs_is_refused(edoc: Edoc) -> None:
    import fcntl
    import os

    fd = os.open(edoc.archive / ".purge.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        code, doc = edoc.json("purge", "--dry-run")
    finally:
        os.close(fd)
    assert code == 1 and doc["error"]["code"] == "PURGE_RUNNING"


def test_storage_refusal_is_reported_not_swallowed(edoc: Edoc, tmp_path: Path) -> None:
    rid = _ingest(edoc, _img(tmp_path, "a.png", 0), "test-short")
    # The store's own lock says "later" (as if someone extended it in the bucket): the
    # catalog thinks the record expired, the store refuses the delete.
    meta = edoc.archive / "store" / "meta" / "records" / rid / "v1" / "content.json"
    m = json.loads(meta.read_text())
    m["retain_until"] = "2099-01-01T00:00:00+00:00"
    writable(meta).write_text(json.dumps(m))
    time.sleep(SHORT + 1)
    code, done = edoc.json("purge", "--yes")
    assert code == 1
    assert [r["record_id"] for r in done["refused"]] == [rid]
    assert done["refused"][0]["code"] == "RETENTION_ACTIVE"
    cert = json.loads((edoc.objects / done["certificates"][0]).read_bytes())
    assert cert["disposed"] == [] and cert["not_disposed"][0]["record_id"] == rid
    code, found = edoc.json("search", "--include-deleted")
    assert found["count"] == 1  # still there, still findable


def test_a_deleted_record_stays_deleted_through_retention_extensions(edoc: Edoc,
                                                                      tmp_path: Path) -> None:
    # Deletion is final (訂正削除履歴): a later retention extension adds a version whose kind
    # is not "tombstone", and the record must still be deleted — for corrections, search,
    # verify and a rebuilt catalog alike.
    rid = _ingest(edoc, _img(tmp_path, "a.png", 0), "general", retention="corporate-tax",
                  counterparty="削除商店")
    assert edoc.json("delete", rid, "--reason", "entered twice")[0] == 0
    code, doc = edoc.json("retention", "extend", rid, "--loss-year", "--reason", "欠損金")
    assert code == 0, doc
    assert edoc.json("verify", rid)[0] == 0
    code, doc = edoc.json("correct", rid, "--reason", "x", "--amount", "1")
    assert code == 1 and doc["error"]["code"] == "RECORD_DELETED"
    code, doc = edoc.json("retention", "extend", rid, "--retention", "companies-act",
                          "--closing-date", "2030-03-31", "--reason", "会社法")
    assert code == 0, doc
    assert edoc.json("search", "--counterparty", "削除")[1]["count"] == 0
    code, found = edoc.json("search", "--counterparty", "削除", "--include-deleted")
    assert [r["state"] for r in found["records"]] == ["deleted"]
    assert edoc.json("delete", rid, "--reason", "again")[1]["error"]["code"] == "RECORD_DELETED"
    drop_catalog(edoc.archive)
    assert edoc("catalog", "rebuild").exit_code == 0
    assert edoc.json("search", "--counterparty", "削除")[1]["count"] == 0
    code, doc = edoc.json("verify", rid)
    assert code == 0, doc
    bundle = tmp_path / "deleted.zip"
    assert edoc("evidence", rid, "-o", str(bundle)).exit_code == 0
    res = edoc("verify-bundle", str(bundle), "--trust", str(edoc.archive / "keys" / "root-ca.pem"))
    assert res.exit_code == 0, res.output
