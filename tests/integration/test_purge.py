"""Purge in pages: selection, batched deletes, commits and the certificate, page by page.

The page sizes of ``edoc.services.disposal`` are shrunk here (two records a page, one record a
transaction, two journal rows a certificate query) so that a handful of real records cross
every page boundary. Forked fault-injection children (``tests/integration/faults.py``)
inherit them. Records expire for real (a two-second profile), never by a clock override.

What is checked is what a user and an auditor would see: every expired version disposed and
certified exactly once, across interruptions; nothing else touched; the certificate in the
same canonical form (and verifiable with openssl) however it was written; a hold placed in
the middle of a run still wins; on S3, objects deleted by their pinned version ids with
``DeleteObjects``, without a HEAD per object.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import edoc.services.disposal
from edoc.model import canonical
from edoc.storage.local import LocalStore
from tests import samples
from tests.helpers import (
    Edoc,
    catalog_db,
    copy_archive,
    init_on_s3,
    jst_today_minus,
    profiles_in_env,
    writable,
)
from tests.integration.faults import Child, ChildOutcome, ChildSpec, FaultPoint, run_child
from tests.seaweed import SeaweedServer, StoreFactory, use_identity

SHORT = 2  # seconds a test-short record is kept
PROFILES = {
    "test-short": 'id = "test-short"\nextends = "general"\ntitle = "expires fast (tests)"\n'
                  f'[retention]\nduration = "PT{SHORT}S"\n',
    # A sealed manifest (a seal object beside it) and a checkpoint per record.
    "test-short-sealed": 'id = "test-short-sealed"\nextends = "general"\n'
                         'title = "sealed, expires fast (tests)"\n'
                         '[authenticity]\ncheckpoint = "record"\nseal_manifest = true\n'
                         f'[retention]\nduration = "PT{SHORT}S"\n',
}
Version = tuple[str, int]


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with profiles_in_env(tmp_path_factory.mktemp("policies"), PROFILES) as pol:
        yield pol


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(edoc.services.disposal, "PAGE_RECORDS", 2)
    monkeypatch.setattr(edoc.services.disposal, "COMMIT_RECORDS", 1)
    monkeypatch.setattr(edoc.services.disposal, "CERTIFICATE_PAGE", 2)


def _receipts(where: Path, n: int) -> list[Path]:
    where.mkdir(parents=True, exist_ok=True)
    return [samples.small_jpeg(where / f"receipt-{i}.jpg", seed=100 + i, target_bytes=20_000)
            for i in range(n)]


def _ingest(e: Edoc, files: list[Path], profile: str) -> list[str]:
    code, doc = e.json("ingest", *map(str, files), "--profile", profile,
                       "--date", jst_today_minus(1))
    assert code == 0, doc
    return [str(r["record_id"]) for r in doc["results"]]


@pytest.fixture(scope="module")
def template(policies: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[Path, set[Version], str]:
    """Five expired records — one corrected (two versions), one with a sealed manifest —
    and one kept record. Returns the archive, the versions a purge must dispose, and the
    kept record."""
    root = tmp_path_factory.mktemp("purge")
    e = Edoc(root / "archive")
    assert e("init", str(e.archive)).exit_code == 0
    files = _receipts(root / "inbox", 6)
    short = _ingest(e, files[:4], "test-short")
    sealed = _ingest(e, files[4:5], "test-short-sealed")
    (kept,) = _ingest(e, files[5:], "general")
    code, doc = e.json("correct", short[0], "--reason", "amount mistyped", "--amount", "1200")
    assert code == 0, doc
    time.sleep(SHORT + 1)
    expected = {(rid, 1) for rid in short + sealed} | {(short[0], 2)}
    return e.archive, expected, kept


def _copy(template: Path, dest: Path) -> Edoc:
    copy_archive(template, dest)
    return Edoc(dest)


def _certified(e: Edoc) -> Counter[Version]:
    """How often each version is listed as disposed across every certificate."""
    listed: Counter[Version] = Counter()
    for cert in sorted((e.objects / "disposals").glob("*.json")):
        for item in json.loads(cert.read_bytes())["disposed"]:
            listed[(item["record_id"], item["version"])] += 1
    return listed


def _files(e: Edoc, rid: str) -> dict[str, bytes]:
    base = e.objects / "records" / rid
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*"))
            if p.is_file()}


def _consistent(e: Edoc, where: str) -> None:
    code, report = e.json("verify", "--all")
    bad = [(r["record_id"], [(c["name"], c["code"]) for c in r["checks"]
                             if c["status"] != "pass"])
           for r in report.get("reports", []) if r["status"] != "pass"]
    assert code == 0, f"{where}: verify --all: {bad or report}"
    code, led = e.json("ledger", "verify")
    assert code == 0, f"{where}: ledger verify: {led}"


def _openssl_accepts(e: Edoc, cert: Path) -> None:
    keys = e.archive / "keys"
    ts = subprocess.run(["openssl", "ts", "-verify", "-in", str(cert.with_suffix(".tsr")),
                         "-data", str(cert), "-CAfile", str(keys / "root-ca.pem"),
                         "-untrusted", str(keys / "tsa.pem")], capture_output=True, text=True)
    assert ts.returncode == 0, ts.stderr
    cms = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
                          str(cert.with_suffix(".p7s")), "-content", str(cert), "-CAfile",
                          str(keys / "root-ca.pem"), "-purpose", "any", "-out", "/dev/null"],
                         capture_output=True, text=True)
    assert cms.returncode == 0, cms.stderr


# -- pages ----------------------------------------------------------------------------------

def test_paged_purge_disposes_and_certifies_every_version_once(
        template: tuple[Path, set[Version], str], small_pages: None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    source, expected, kept = template
    e = _copy(source, tmp_path / "archive")
    rids = sorted({rid for rid, _v in expected})
    batches: list[list[tuple[str, str]]] = []
    real = LocalStore.delete_many

    def recording(self: LocalStore, items: Any) -> Any:
        batches.append(list(items))
        return real(self, items)

    monkeypatch.setattr(LocalStore, "delete_many", recording)
    kept_files = _files(e, kept)

    code, dry = e.json("purge", "--dry-run")
    assert code == 0, dry
    assert sorted(dry["selected"]["record_ids"]) == rids
    assert dry["selected"]["versions"] == len(expected)
    assert batches == []  # the dry run deletes nothing

    code, done = e.json("purge", "--yes")
    assert code == 0, done
    assert {(d["record_id"], v) for d in done["disposed"] for v in d["versions"]} == expected
    assert done["selected"]["records"] == len(rids)
    assert done["selected"]["by_profile"] == dry["selected"]["by_profile"]
    # Pages of two records: contents, then manifests and seals, one batch each per page.
    assert len(batches) == 2 * -(-len(rids) // 2)
    for batch in batches:
        assert len({key.split("/")[1] for key, _vid in batch}) <= 2
    assert all(key.endswith("/content") for key, _v in batches[0])
    deleted = {key for batch in batches for key, _vid in batch}
    assert {k for k in deleted if k.endswith(".p7s")}, "the sealed manifest's seal"
    for rid in rids:
        assert _files(e, rid) == {}, rid
    assert _files(e, kept) == kept_files

    (cert_key,) = done["certificates"]
    cert = e.objects / cert_key
    data = cert.read_bytes()
    body = json.loads(data)
    assert canonical.dumps(body) == data  # written a page at a time, still canonical JSON
    assert Counter((i["record_id"], i["version"]) for i in body["disposed"]) == Counter(
        dict.fromkeys(expected, 1))
    assert body["count"] == len(expected) and body["not_disposed"] == []
    assert [(i["record_id"], i["version"]) for i in body["disposed"]] == sorted(expected)
    _openssl_accepts(e, cert)
    with catalog_db(e.archive) as db:
        leaves = db.execute("SELECT record_id, version FROM ledger WHERE event = 'purge'"
                            ).fetchall()
    assert sorted(leaves) == sorted(expected)
    _consistent(e, "after a paged purge")


def _journal_certificate(db: sqlite3.Connection, run_id: str, archive_id: str) -> bytes:
    """The certificate as one dict of every journal row, serialised at once (the way it was
    built before it was streamed)."""
    run = db.execute("SELECT actor, now FROM disposal_runs WHERE run_id = ?",
                     (run_id,)).fetchone()
    items = db.execute("SELECT record_id, version, state, entry, error, disposed_at "
                       "FROM disposal_items WHERE run_id = ? ORDER BY record_id, version",
                       (run_id,)).fetchall()
    disposed = [dict(json.loads(entry), disposed_at=at)
                for _r, _v, state, entry, _e, at in items if state == "disposed"]
    refused = [{"record_id": r, "version": v, "error": err}
               for r, v, state, _entry, err, _at in items if state != "disposed"]
    return canonical.dumps({
        "schema": "edoc.disposal-certificate/1", "archive_id": archive_id, "run_id": run_id,
        "time_source_gen_time": run[1], "actor": run[0], "disposed": disposed,
        "not_disposed": refused, "count": len(disposed)})


def test_a_refused_content_keeps_its_manifest_and_the_certificate_says_so(
        template: tuple[Path, set[Version], str], small_pages: None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    source, expected, _kept = template
    e = _copy(source, tmp_path / "archive")
    monkeypatch.setenv("EDOC_ACTOR", "経理部 山田")  # non-ASCII survives canonical form
    refused = sorted({rid for rid, _v in expected})[1]
    # The store's own lock says "later" (as if extended in the bucket): the catalog thinks
    # the record expired, the store refuses to delete its content.
    meta = e.archive / "store" / "meta" / "records" / refused / "v1" / "content.json"
    m = json.loads(meta.read_text())
    m["retain_until"] = "2099-01-01T00:00:00+00:00"
    writable(meta).write_text(json.dumps(m))
    before = _files(e, refused)

    code, done = e.json("purge", "--yes")

    assert code == 1
    assert [(r["record_id"], r["code"]) for r in done["refused"]] == [(refused,
                                                                      "RETENTION_ACTIVE")]
    assert _files(e, refused) == before  # content refused: its manifest was not touched
    assert e.json("verify", refused)[0] == 0
    (cert_key,) = done["certificates"]
    data = (e.objects / cert_key).read_bytes()
    run_id = json.loads(data)["run_id"]
    archive_id = json.loads(data)["archive_id"]
    with catalog_db(e.archive) as db:
        assert data == _journal_certificate(db, run_id, archive_id)
    body = json.loads(data)
    assert body["actor"] == "経理部 山田"
    assert [(i["record_id"], i["version"]) for i in body["not_disposed"]] == sorted(
        v for v in expected if v[0] == refused)
    assert all("RETENTION_ACTIVE" in i["error"] for i in body["not_disposed"])
    assert {(i["record_id"], i["version"]) for i in body["disposed"]} == {
        v for v in expected if v[0] != refused}
    _openssl_accepts(e, e.objects / cert_key)


def test_limit_takes_the_records_whose_retention_ended_first(
        template: tuple[Path, set[Version], str], small_pages: None, tmp_path: Path) -> None:
    source, expected, _kept = template
    e = _copy(source, tmp_path / "archive")
    with catalog_db(e.archive) as db:
        ends = db.execute("SELECT record_id, max(retain_until_at) AS e FROM versions "
                          "GROUP BY record_id").fetchall()
    rids = {rid for rid, _v in expected}
    # Oldest retention end first (a record's end is its latest version's); ties by id.
    order = sorted(((end, rid) for rid, end in ends if rid in rids))
    first = {rid for _end, rid in order[:3]}

    code, dry = e.json("purge", "--dry-run", "--limit", "3")
    assert code == 0 and set(dry["selected"]["record_ids"]) == first, dry
    code, done = e.json("purge", "--yes", "--limit", "3")
    assert code == 0, done
    assert {d["record_id"] for d in done["disposed"]} == first
    code, rest = e.json("purge", "--yes")
    assert code == 0 and {d["record_id"] for d in rest["disposed"]} == rids - first
    assert sum(_certified(e).values()) == len(expected)
    _consistent(e, "after two limited runs")


# -- interruptions --------------------------------------------------------------------------

def _trace(source: Path, tmp_path: Path) -> list[str]:
    counting = run_child(ChildSpec(str(_copy(source, tmp_path / "count").archive), "purge"))
    assert counting.returncode == 0 and counting.error is None, counting
    return counting.trace


def _after_first_journal(trace: list[str]) -> int:
    """The operation number of the commit that journals the first page."""
    first_delete = next(n for n, label in enumerate(trace, 1)
                        if label.startswith("delete_many"))
    assert trace[first_delete - 2] == "commit", trace
    return first_delete - 1


def _finish_and_check(e: Edoc, expected: set[Version], kept: str, where: str) -> None:
    code, doc = e.json("purge", "--yes")  # resumes the interrupted run first
    assert code == 0, f"{where}: {doc}"
    listed = _certified(e)
    assert set(listed) == expected, f"{where}: certified {listed}"
    assert all(n == 1 for n in listed.values()), f"{where}: certified twice: {listed}"
    for rid in {rid for rid, _v in expected}:
        assert _files(e, rid) == {}, f"{where}: left in the store: {rid}"
    assert _files(e, kept), where
    _consistent(e, where)


def test_paged_purge_killed_at_every_operation_until_the_certificate(
        template: tuple[Path, set[Version], str], small_pages: None, tmp_path: Path) -> None:
    source, expected, kept = template
    trace = _trace(source, tmp_path)
    # Every page's journal, batches and per-record commits; what follows the first
    # certificate object (leaves, checkpoint) is the same as before paging and is covered
    # by tests/integration/test_crash.py.
    last = next(n for n, label in enumerate(trace, 1) if label.startswith("put_bytes disposals/"))
    assert sum(label.startswith("delete_many") for label in trace[:last]) == 6, trace
    # Nothing is stored between one operation's end and the next one's start, so "after N"
    # leaves what "before N+1" leaves: one kill per operation covers every state.
    points = [FaultPoint(n, "before", trace[n - 1]) for n in range(1, last + 1)]
    for i, point in enumerate(points):
        e = _copy(source, tmp_path / f"p{i}")
        out = run_child(ChildSpec(str(e.archive), "purge", kill=point))
        assert out.killed, f"{point}: not reached ({out.returncode}, {out.error})"
        _finish_and_check(e, expected, kept, f"killed {point}")
        shutil.rmtree(e.archive)


def test_disposed_but_not_yet_certified_is_in_progress_not_failed(
        template: tuple[Path, set[Version], str], small_pages: None, tmp_path: Path) -> None:
    """Killed as the certificate is about to be stored: every version is disposed, none
    certified. An auditor's verify in that window says a disposal is under way (exit 1,
    indeterminate), not that a record was destroyed without a certificate; the next purge
    writes it and verify passes."""
    source, expected, kept = template
    trace = _trace(source, tmp_path)
    put = next(n for n, label in enumerate(trace, 1) if label.startswith("put_bytes disposals/"))
    e = _copy(source, tmp_path / "archive")
    out = run_child(ChildSpec(str(e.archive), "purge", kill=FaultPoint(put, "before")))
    assert out.killed
    code, doc = e.json("verify", "--all")
    assert code == 1, doc
    disposed = {(r["record_id"], r["version"]): r for r in doc["reports"]
                if (r["record_id"], r["version"]) in expected}
    assert set(disposed) == expected
    for report in disposed.values():
        assert report["status"] == "indeterminate", report
        (check,) = [c for c in report["checks"] if c["name"] == "disposal"]
        assert check["code"] == "DISPOSAL_IN_PROGRESS" and "edoc purge" in check["detail"]
    _finish_and_check(e, expected, kept, "killed before the certificate")
    code, doc = e.json("verify", "--all")
    assert code == 0, doc


def _killed_after_first_journal(template: tuple[Path, set[Version], str], tmp_path: Path
                                ) -> Edoc:
    """A copy of the template archive whose purge was killed with its first page journaled
    (nothing of it deleted or marked yet)."""
    source = template[0]
    op = _after_first_journal(_trace(source, tmp_path))
    e = _copy(source, tmp_path / "archive")
    out = run_child(ChildSpec(str(e.archive), "purge", kill=FaultPoint(op, "after")))
    assert out.killed
    return e


def test_a_page_partly_deleted_is_finished_by_the_next_run(
        template: tuple[Path, set[Version], str], small_pages: None, tmp_path: Path) -> None:
    """Killed with the first page journaled; then one of its contents disappears (as if the
    batch had got that far): the next run finds it gone and carries on."""
    _source, expected, kept = template
    e = _killed_after_first_journal(template, tmp_path)
    with catalog_db(e.archive) as db:
        (run_id,) = db.execute("SELECT run_id FROM disposal_runs").fetchone()
        rid, key, vid = db.execute(
            "SELECT v.record_id, v.content_key, v.content_version_id FROM disposal_items i "
            "JOIN versions v USING (record_id, version) WHERE i.state = 'pending' "
            "ORDER BY v.record_id LIMIT 1").fetchone()
    LocalStore(e.archive / "store").delete(key, vid)
    assert (e.objects / "records" / rid / "v1" / "manifest.json").exists()
    # An auditor verifying now sees a disposal under way, not a lost record.
    code, doc = e.json("verify", rid)
    assert code == 1, doc
    (report,) = [r for r in doc["reports"] if r["version"] == 1]
    assert report["status"] == "indeterminate", report
    assert [c["code"] for c in report["checks"]] == ["DISPOSAL_IN_PROGRESS"]
    code, doc = e.json("purge", "--yes")
    assert code == 0, doc
    assert doc["resumed_runs"] == [run_id]
    _finish_and_check(e, expected, kept, "after a partly deleted page")


def test_a_purge_marking_between_verifys_two_reads_is_no_false_fail(
        template: tuple[Path, set[Version], str], small_pages: None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A verify finds a version's objects gone and asks the catalog why; the purge marks
    the version disposed (one transaction: item and version) right after the first of
    those two reads. The verdict is "indeterminate" (a disposal under way), never "fail":
    asked the other way round (the disposed mark first, the journal second) it was
    MANIFEST_MISSING and CONTENT_MISSING, the fail the multi-host test once met."""
    from edoc.catalog import Catalog
    from edoc.services.archive import Archive
    from edoc.services.verification import Verifier

    e = _killed_after_first_journal(template, tmp_path)
    with catalog_db(e.archive) as db:
        rid, key, vid, mkey, mvid = db.execute(
            "SELECT v.record_id, v.content_key, v.content_version_id, v.manifest_key, "
            "v.manifest_version_id FROM disposal_items i JOIN versions v "
            "USING (record_id, version) WHERE i.state = 'pending' AND v.version = 1 "
            "ORDER BY v.record_id LIMIT 1").fetchone()
    store = LocalStore(e.archive / "store")
    store.delete(key, vid)  # the purge's deletions (step 2) went through
    store.delete(mkey, mvid)

    def mark_disposed() -> None:  # the purge's step 3, committed by "another process"
        with catalog_db(e.archive) as db:
            db.execute("UPDATE disposal_items SET state = 'disposed', disposed_at = "
                       "'2026-01-01T00:00:00Z' WHERE record_id = ? AND version = 1", (rid,))
            db.execute("UPDATE versions SET disposed_at = '2026-01-01T00:00:00Z' "
                       "WHERE record_id = ? AND version = 1", (rid,))

    lookups: list[str] = []

    def after_read(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def read(self: Catalog, *args: Any) -> Any:
            result = real(self, *args)
            lookups.append(name)
            if len(lookups) == 1:
                mark_disposed()
            return result
        return read

    a = Archive.open(str(e.archive))
    try:
        (row,) = [r for r in a.catalog.version_rows(rid) if r.version == 1]
        for name in ("version_rows", "disposal_in_progress"):
            monkeypatch.setattr(Catalog, name, after_read(name, getattr(Catalog, name)))
        report = Verifier(a).verify_version(row)
    finally:
        a.close()
    assert lookups, "verify did not look again at the catalog"  # the race was staged
    codes = [(c.name, c.status.value, c.code) for c in report.checks]
    assert report.status.value == "indeterminate", codes
    # the journal, read before the mark committed, still said "pending": under way
    assert [c.code for c in report.checks] == ["DISPOSAL_IN_PROGRESS"], codes


def test_a_hold_placed_during_the_run_wins(
        template: tuple[Path, set[Version], str], small_pages: None, tmp_path: Path) -> None:
    source, expected, _kept = template
    op = _after_first_journal(_trace(source, tmp_path))
    e = _copy(source, tmp_path / "archive")
    child = Child(ChildSpec(str(e.archive), "purge", kill=FaultPoint(op, "after",
                                                                     action="stop")))
    try:
        child.wait_stopped()
        with catalog_db(e.archive) as db:
            (held,) = db.execute("SELECT min(record_id) FROM disposal_items").fetchone()
        before = _files(e, held)
        code, doc = e.json("hold", held, "--reason", "tax audit")
        assert code == 0, doc
    finally:
        child.resume()
    out: ChildOutcome = child.wait()
    assert out.returncode == 1 and out.done is not None, out
    assert [(r["record_id"], r["code"]) for r in out.done["refused"]] == [(held,
                                                                          "RECORD_ON_HOLD")]
    assert _files(e, held) == before
    held_versions = {v for v in expected if v[0] == held}
    assert set(_certified(e)) == expected - held_versions
    (cert,) = (e.objects / "disposals").glob("*.json")
    assert {i["record_id"] for i in json.loads(cert.read_bytes())["not_disposed"]} == {held}
    _consistent(e, "with the held record")
    assert e.json("release", held, "--reason", "audit closed")[0] == 0
    code, doc = e.json("purge", "--yes")
    assert code == 0 and [d["record_id"] for d in doc["disposed"]] == [held], doc
    assert set(_certified(e)) == expected


# -- S3 -------------------------------------------------------------------------------------

@pytest.fixture
def s3_archive(tmp_path: Path, policies: Path, seaweed: SeaweedServer,
               s3_store_factory: StoreFactory, monkeypatch: pytest.MonkeyPatch
               ) -> tuple[Edoc, str, str]:
    bucket = s3_store_factory.bucket("edoc-archive")
    use_identity(monkeypatch, seaweed, "writer", tmp_path)
    prefix = f"purge-{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]}"
    return init_on_s3(tmp_path / "archive", bucket, prefix), bucket, prefix


def _requests(client: Any) -> Callable[[], Counter[str]]:
    """Count requests by operation, and HEADs of record objects separately."""
    seen: Counter[str] = Counter()

    def count(params: dict[str, Any], model: Any, **_: Any) -> None:
        seen[model.name] += 1
        if model.name == "HeadObject" and "/records/" in params.get("Key", ""):
            seen["HeadObject records/"] += 1

    client.meta.events.register("provide-client-params.s3", count)
    return lambda: seen


@pytest.mark.s3
def test_s3_purge_deletes_pinned_versions_with_delete_objects(
        s3_archive: tuple[Edoc, str, str], seaweed: SeaweedServer, tmp_path: Path) -> None:
    from edoc.services.archive import Archive
    from edoc.services.disposal import Disposer

    e, bucket, prefix = s3_archive
    files = _receipts(tmp_path / "inbox", 4)
    short = _ingest(e, files[:3], "test-short")
    sealed = _ingest(e, files[3:], "test-short-sealed")
    time.sleep(SHORT + 2)  # S3 keeps whole seconds: retention rounded up

    archive = Archive.open(str(e.archive))
    try:
        seen = _requests(archive.store.client)  # type: ignore[attr-defined]
        report = Disposer(archive).run(dry_run=False)
    finally:
        archive.close()

    assert report.ok, report.refused
    assert {d.record_id for d in report.disposed} == set(short + sealed)
    counts = seen()
    # One page: all contents in one request, then all manifests and the seal in another.
    assert counts["DeleteObjects"] == 2, counts
    assert counts["DeleteObject"] == 0, counts
    # No HEAD before a delete, except for the seal, whose version the catalog does not pin.
    assert counts["HeadObject records/"] == 1, counts
    listed = seaweed.client("reader").list_object_versions(Bucket=bucket,
                                                           Prefix=f"{prefix}/records/")
    assert not listed.get("Versions") and not listed.get("DeleteMarkers")
    assert sum(_certified_s3(seaweed, bucket, prefix).values()) == 4
    _consistent(e, "after the S3 purge")


def _certified_s3(seaweed: SeaweedServer, bucket: str, prefix: str) -> Counter[Version]:
    client = seaweed.client("reader")
    listed: Counter[Version] = Counter()
    for obj in client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/disposals/"
                                      ).get("Contents", []):
        if obj["Key"].endswith(".json"):
            body = json.loads(client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
            for item in body["disposed"]:
                listed[(item["record_id"], item["version"])] += 1
    return listed


# -- ledger leaves --------------------------------------------------------------------------

def test_leaf_flush_marks_what_it_stored_and_raises_for_what_it_could_not(
        template: tuple[Path, set[Version], str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Leaves go to the store as segments of many (edoc.services.ledger_objects): every
    segment the store took has its leaves marked stored; the one it refused leaves its
    leaves unmarked for the next run, and so do the segments after it. The next flush
    writes them, and a segment an earlier flush stored but never marked is read, not
    overwritten."""
    from datetime import UTC, datetime, timedelta

    import edoc.services.checkpoint
    import edoc.services.ledger_objects
    from edoc.errors import StorageError
    from edoc.services.archive import Archive
    from edoc.storage import layout

    source, _expected, _kept = template
    e = _copy(source, tmp_path / "archive")
    with catalog_db(e.archive) as db:
        db.execute("UPDATE ledger SET stored = 0")
        total = db.execute("SELECT count(*) FROM ledger").fetchone()[0]
    monkeypatch.setattr(edoc.services.ledger_objects, "SEGMENT_LEAVES", 3)
    failing = (total // 2) // 3 * 3  # the first index of a segment
    assert 0 < failing < total
    keys: list[str] = []

    class RefusingStore:
        kind = "s3"

        def __init__(self, inner: LocalStore) -> None:
            self.inner = inner

        def put_bytes(self, key: str, data: bytes, *, retain_until: datetime) -> Any:
            keys.append(key)
            if key == layout.ledger_segment_key(failing):
                raise StorageError(f"{key}: refused", code="STORAGE_ACCESS_DENIED")
            return self.inner.put_bytes(key, data, retain_until=retain_until)

        def read(self, key: str, version_id: str | None = None) -> bytes:
            return self.inner.read(key, version_id)

    far = datetime.now(UTC) + timedelta(days=1)
    archive = Archive.open(str(e.archive))
    try:
        with pytest.raises(StorageError):
            edoc.services.checkpoint.flush_ledger_objects(
                archive.catalog, RefusingStore(archive.store), far)  # type: ignore[arg-type]
        with catalog_db(e.archive) as db:
            unmarked = [i for (i,) in db.execute("SELECT idx FROM ledger WHERE NOT stored")]
        # one PUT per segment of three; the refused one stops the run
        assert keys == [layout.ledger_segment_key(i) for i in range(0, failing + 1, 3)]
        assert unmarked == list(range(failing, total))
        # A crash after a put, before its leaves were marked: the retry reads that segment.
        with catalog_db(e.archive) as db:
            db.execute("UPDATE ledger SET stored = 0 WHERE idx < 3")
        keys.clear()
        written = edoc.services.checkpoint.flush_ledger_objects(archive.catalog,
                                                                archive.store, far)
        assert written == 3 + total - failing
    finally:
        archive.close()
    with catalog_db(e.archive) as db:
        assert db.execute("SELECT count(*) FROM ledger WHERE NOT stored").fetchone()[0] == 0
    assert e.json("ledger", "verify")[0] == 0
