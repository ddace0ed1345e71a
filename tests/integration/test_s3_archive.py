"""The whole archive on S3 Object Lock, against a real SeaweedFS server (no mocks).

Credentials reach edoc the standard AWS way (environment variables); edoc.toml holds none.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import samples
from tests.helpers import Edoc, drop_catalog, init_on_s3, jst_today_minus, short_profile
from tests.seaweed import SeaweedServer, StoreFactory, use_identity

pytestmark = pytest.mark.s3
SHORT = 3


@pytest.fixture
def s3_edoc(tmp_path: Path, seaweed: SeaweedServer, s3_store_factory: StoreFactory,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Edoc, str, str]]:
    bucket = s3_store_factory.bucket("edoc-archive")  # created by the admin identity
    use_identity(monkeypatch, seaweed, "writer", tmp_path)
    monkeypatch.setenv("EDOC_POLICIES", str(short_profile(tmp_path / "policies", SHORT)))
    prefix = f"arch-{tmp_path.name[-12:]}"
    yield init_on_s3(tmp_path / "archive", bucket, prefix), bucket, prefix


def _docs(tmp_path: Path, n: int) -> list[Path]:
    out = []
    for i in range(n):
        p = tmp_path / f"scan-{i}.jpg"
        samples.scan_image(p, dpi=200 + i, mode="RGB", fmt="JPEG")
        out.append(p)
    return out


def test_config_holds_no_secret(s3_edoc: tuple[Edoc, str, str], seaweed: SeaweedServer) -> None:
    e, bucket, _prefix = s3_edoc
    text = (e.archive / "edoc.toml").read_text()
    assert f'bucket = "{bucket}"' in text
    for ident in seaweed.identities.values():
        assert ident.secret_key not in text and ident.access_key not in text


def test_round_trip_on_s3(s3_edoc: tuple[Edoc, str, str], tmp_path: Path,
                          seaweed: SeaweedServer) -> None:
    e, bucket, prefix = s3_edoc
    files = _docs(tmp_path, 3)
    code, doc = e.json("ingest", *map(str, files), "--date", jst_today_minus(1),
                       "--counterparty", "東京商事")
    assert code == 0, doc
    code, report = e.json("verify", "--all")
    assert code == 0, report
    locks = [c for r in report["reports"] for c in r["checks"] if c["name"] == "lock"]
    assert all("COMPLIANCE" in c["detail"] for c in locks)
    rid = doc["results"][0]["record_id"]
    out = tmp_path / "copy.jpg"
    assert e("get", rid, "-o", str(out)).exit_code == 0
    assert out.read_bytes() == files[0].read_bytes()
    # the server holds the object under COMPLIANCE retention with our checksum
    head = seaweed.client("reader").head_object(
        Bucket=bucket, Key=f"{prefix}/records/{rid}/v1/content", ChecksumMode="ENABLED")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"].year >= 2036
    assert e.json("ledger", "verify")[0] == 0
    code, doc = e.json("doctor")
    assert code == 0, doc
    assert {c["code"] for c in doc["checks"]} >= {"OK"}


def test_foreign_version_is_caught(s3_edoc: tuple[Edoc, str, str], tmp_path: Path,
                                   seaweed: SeaweedServer) -> None:
    e, bucket, prefix = s3_edoc
    (f,) = _docs(tmp_path, 1)
    code, doc = e.json("ingest", str(f), "--date", jst_today_minus(1))
    rid = doc["results"][0]["record_id"]
    key = f"{prefix}/records/{rid}/v1/content"
    forged = b"not the original receipt"
    seaweed.client("writer").put_object(
        Bucket=bucket, Key=key, Body=forged,
        ChecksumSHA256=__import__("base64").b64encode(hashlib.sha256(forged).digest()).decode())
    code, report = e.json("verify", rid)
    assert code == 1
    failed = {c["code"] for r in report["reports"] for c in r["checks"] if c["status"] == "fail"}
    assert failed == {"FOREIGN_VERSION"}  # the pinned version still has the original bytes
    out = tmp_path / "copy.jpg"
    assert e("get", rid, "-o", str(out)).exit_code == 0
    assert out.read_bytes() == f.read_bytes()


def test_catalog_rebuilt_from_bucket(s3_edoc: tuple[Edoc, str, str], tmp_path: Path) -> None:
    e, _bucket, _prefix = s3_edoc
    files = _docs(tmp_path, 3)
    code, doc = e.json("ingest", *map(str, files), "--date", jst_today_minus(2),
                       "--amount", "5000")
    assert code == 0
    rid = doc["results"][1]["record_id"]
    assert e.json("correct", rid, "--reason", "amount", "--amount", "5500")[0] == 0
    before = e.json("search", "--all-versions")[1]["records"]
    drop_catalog(e.archive)
    code, summary = e.json("catalog", "rebuild")
    assert code == 0, summary
    after = e.json("search", "--all-versions")[1]["records"]
    assert sorted(map(json.dumps, after)) == sorted(map(json.dumps, before))
    assert e.json("verify", "--all")[0] == 0
    assert e.json("ledger", "verify")[0] == 0


def test_server_stopped_mid_batch(s3_edoc: tuple[Edoc, str, str], tmp_path: Path,
                                  seaweed: SeaweedServer) -> None:
    """The server goes away after two files: the rest are reported, nothing is half-stored,
    and a re-run with --skip-existing finishes the job without duplicates."""
    from edoc.services.archive import Archive
    from edoc.services.ingest import Ingestor, IngestRequest

    e, _bucket, _prefix = s3_edoc
    files = _docs(tmp_path, 4)
    a = Archive.open(str(e.archive))
    stored: list[str] = []

    def stop_after_two(result: object) -> None:
        if getattr(result, "status", None) == "stored":
            stored.append(str(getattr(result, "file", "")))
            if len(stored) == 2:
                seaweed.stop(grace=0)

    try:
        run = Ingestor(a).run([IngestRequest(path=str(p), date=jst_today_minus(1))
                               for p in files], stop_after_two)
    finally:
        seaweed.start()
    assert not run.ok
    statuses = [r.status for r in run.results]
    assert statuses[:2] == ["stored", "stored"]
    assert all(s == "rejected" for s in statuses[2:])
    assert {r.error["code"] for r in run.results[2:] if r.error} <= {
        "STORAGE_UNREACHABLE", "STORAGE_ERROR", "STORAGE_SERVER_ERROR"}
    code, doc = e.json("ingest", *map(str, files), "--date", jst_today_minus(1),
                       "--skip-existing")
    assert code == 0, doc
    assert [r["status"] for r in doc["results"]] == ["exists", "exists", "stored", "stored"]
    code, found = e.json("search")
    assert found["count"] == 4
    assert sorted(r["content_sha256"] for r in found["records"]) == sorted(
        hashlib.sha256(p.read_bytes()).hexdigest() for p in files)
    assert e.json("verify", "--all")[0] == 0
    assert e.json("ledger", "verify")[0] == 0


def test_hold_and_purge_on_s3(s3_edoc: tuple[Edoc, str, str], tmp_path: Path,
                              seaweed: SeaweedServer) -> None:
    e, bucket, prefix = s3_edoc
    a, b = _docs(tmp_path, 2)
    held = e.json("ingest", str(a), "--profile", "test-short", "--date",
                  jst_today_minus(1))[1]["results"][0]["record_id"]
    free = e.json("ingest", str(b), "--profile", "test-short", "--date",
                  jst_today_minus(1))[1]["results"][0]["record_id"]
    assert e.json("hold", held, "--reason", "litigation")[0] == 0
    client = seaweed.client("reader")
    hold = client.get_object_legal_hold(Bucket=bucket, Key=f"{prefix}/records/{held}/v1/content")
    assert hold["LegalHold"]["Status"] == "ON"
    time.sleep(SHORT + 2)
    code, done = e.json("purge", "--yes")
    assert code == 0, done
    assert [d["record_id"] for d in done["disposed"]] == [free]
    listed = client.list_object_versions(Bucket=bucket, Prefix=f"{prefix}/records/{free}/")
    assert not listed.get("Versions")  # really gone from the bucket
    assert client.head_object(Bucket=bucket, Key=f"{prefix}/records/{held}/v1/content")
    code, report = e.json("verify", "--all")
    assert code == 0, report
    assert e.json("ledger", "verify")[0] == 0
