"""Part 4 — purge (disposal with a certificate) of expired records.

``edoc.services.disposal.Disposer(archive).run(dry_run=False)`` over N expired records: per record
the objects are deleted, the versions and record marked disposed and a ``purge`` leaf
logged; then the certificate (廃棄証明) is sealed, timestamped and stored, the leaves are
written to the store and a checkpoint is made. Baselines delete the same number of object
versions and nothing else: ``os.unlink`` on the local store's disk, one ``DeleteObjects``
per 1000 versions on SeaweedFS.

The expired records are made directly (ingesting 100,000 records first would take longer
than the whole benchmark): one real ingest of a record kept two seconds gives the template,
and each copy is a real content object and manifest in the store (durability off while
building) plus its catalog rows and ingest ledger leaf, checkpointed once. Only the ingest
leaves' own objects (``ledger/<n>.json``) are not written: purge never reads them.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import multiprocessing
import os
import resource
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    Bench,
    BenchError,
    FsyncCounter,
    Row,
    S3Calls,
    SeaweedEnv,
    Stopwatch,
    fixture_mode,
    jpeg_variants,
    log,
    per_record,
    profiled,
    rate_ratio,
    s3_store,
)
from edoc.catalog import Catalog, ledger, records, utc_text, versions
from edoc.evidence.ledger import event_entry, leaf_hex
from edoc.model import canonical, ids
from edoc.services.archive import Archive
from edoc.services.checkpoint import make_checkpoint
from edoc.services.ingest import Ingestor, IngestRequest
from edoc.storage import layout

PART = "purge"
CONTENT_BYTES = 2048
CHUNK = 5000


def _template(bench: Bench, archive: Archive) -> tuple[dict[str, Any], dict[str, Any]]:
    """One real record under the two-second profile: its versions row and manifest."""
    (src,) = jpeg_variants(bench.path("data", "purge"), 1, size=20_000)
    run = Ingestor(archive).run([IngestRequest(path=str(src), profiles=("bench-short",))])
    if not run.ok:
        raise BenchError(f"template ingest failed: {run.results[0].error}")
    rid = run.results[0].record_id
    (row,) = archive.catalog.version_rows(str(rid))
    manifest = canonical.loads(archive.store.read(row.manifest_key))
    return dataclasses.asdict(row), manifest


def _content(i: int) -> bytes:
    return f"edoc bench purge record {i}\n".encode().ljust(CONTENT_BYTES, b".")


def _fabricate_rows(archive: Archive, template: dict[str, Any],
                    objects: list[tuple[str, str, str, str, str]], expired: datetime) -> None:
    """Catalog rows and ingest leaves for records whose objects are stored:
    ``objects`` holds (record id, manifest sha256, content sha256, content version,
    manifest version) per record."""
    now = datetime.now(UTC)
    with archive.catalog.write() as c:
        idx = Catalog.next_ledger_index(c)
        for start in range(0, len(objects), CHUNK):
            recs, vers, leaves = [], [], []
            for rid, msha, csha, cver, mver in objects[start:start + CHUNK]:
                entry = event_entry("ingest", now, record_id=rid, version=1,
                                    manifest_sha256=msha, content_sha256=csha,
                                    previous_version_sha256=None)
                recs.append({"record_id": rid, "created_at": utc_text(now),
                             "latest_version": 1, "state": "active"})
                vers.append(dict(template, record_id=rid, content_sha256=csha,
                                 content_size=CONTENT_BYTES,
                                 content_key=layout.content_key(rid, 1),
                                 content_version_id=cver,
                                 manifest_key=layout.manifest_key(rid, 1),
                                 manifest_version_id=mver, manifest_sha256=msha,
                                 retain_until_at=utc_text(expired), ledger_index=idx,
                                 ingested_at=utc_text(now), disposed_at=None))
                leaves.append({"idx": idx, "event": "ingest", "record_id": rid, "version": 1,
                               "leaf_hash": leaf_hex(entry), "entry": entry.decode(),
                               "stored": True})
                idx += 1
            c.execute(records.insert(), recs)
            c.execute(versions.insert(), vers)
            c.execute(ledger.insert(), leaves)


def _manifest_for(manifest: dict[str, Any], rid: str, i: int, sha: str) -> bytes:
    body = dict(manifest, record_id=rid,
                content=dict(manifest["content"], sha256=sha, size=CONTENT_BYTES,
                             original_name=f"purge-{i}.txt"))
    return canonical.dumps(body)


def _local_objects(archive_dir: str, first: int, count: int, manifest: bytes,
                   expired_at: str) -> list[tuple[str, str, str, str, str]]:
    """Fixture builder (child process): content and manifest objects of ``count`` records
    through the real ``LocalStore.put``, durability off."""
    archive = Archive.open(archive_dir)
    template = canonical.loads(manifest)
    expired = datetime.fromisoformat(expired_at)
    out = []
    try:
        with fixture_mode(archive):
            for i in range(first, first + count):
                rid = ids.new_record_id()
                data = _content(i)
                sha = hashlib.sha256(data).hexdigest()
                mbytes = _manifest_for(template, rid, i, sha)
                cinfo = archive.store.put_bytes(layout.content_key(rid, 1), data,
                                                retain_until=expired)
                minfo = archive.store.put_bytes(layout.manifest_key(rid, 1), mbytes,
                                                retain_until=expired)
                out.append((rid, hashlib.sha256(mbytes).hexdigest(), sha, cinfo.version_id,
                            minfo.version_id))
    finally:
        archive.close()
    return out


def build_local(bench: Bench, n: int) -> Path:
    archive = bench.local_archive("purge-local")
    template, manifest = _template(bench, archive)
    expired = datetime.now(UTC) - timedelta(minutes=1)
    archive_dir = str(archive.cfg.dir)
    # Creating files is what costs here (~0.35 ms per inode on the reference VM): two
    # processes make the objects, the parent the catalog rows.
    workers = max(1, min(os.cpu_count() or 1, 4, n // 2000 or 1))
    shares = [(i * n // workers, (i + 1) * n // workers - i * n // workers)
              for i in range(workers)]
    args = [(archive_dir, first, count, canonical.dumps(manifest), expired.isoformat())
            for first, count in shares]
    with Stopwatch() as watch:
        if workers == 1:
            objects = _local_objects(*args[0])
        else:
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(workers) as pool:
                objects = [o for part in pool.starmap(_local_objects, args) for o in part]
        _catalogue_fixture(archive, template, objects, expired)
    log(f"purge: {n} local records made in {watch.wall:.0f} s ({workers} processes)")
    archive.close()
    _wait_until(template["retain_until_at"])
    return archive.cfg.dir


def _catalogue_fixture(archive: Archive, template: dict[str, Any],
                       objects: list[tuple[str, str, str, str, str]],
                       expired: datetime) -> None:
    """The fabricated records' catalog rows and ingest leaves, and one checkpoint over them
    (fsync and synchronous=OFF while building: ``fixture_mode``)."""
    with fixture_mode(archive):
        _fabricate_rows(archive, template, objects, expired)
        make_checkpoint(archive.catalog, archive.store, archive.notary,
                        min_retain=datetime.now(UTC) + timedelta(days=1))


def _wait_until(retain_until_at: str) -> None:
    """Sleep until the template record's two-second retention has passed."""
    left = (datetime.fromisoformat(retain_until_at) - datetime.now(UTC)).total_seconds()
    if left > -1:
        time.sleep(left + 1)


def _s3_puts(sw: SeaweedEnv, keyed: list[tuple[str, bytes]]) -> dict[str, str]:
    """PUT each (full key, bytes) with COMPLIANCE retention ending 1-2 seconds after its
    upload (S3 refuses a retain-until in the past); returns key → version id."""
    client = sw.client("writer")

    def put(item: tuple[str, bytes]) -> tuple[str, str]:
        key, data = item
        until = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
        resp = client.put_object(
            Bucket=sw.BUCKET, Key=key, Body=data, ChecksumAlgorithm="SHA256",
            ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
            ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until)
        return key, str(resp["VersionId"])

    with ThreadPoolExecutor(8) as pool:
        return dict(pool.map(put, keyed))


def build_s3(bench: Bench, sw: SeaweedEnv, n: int) -> tuple[Path, list[dict[str, str]]]:
    """An S3 archive with ``n`` expired records, and a same-sized set of plain object
    versions for the baseline (``[{Key, VersionId}]``)."""
    archive = bench.s3_archive("purge-s3")
    template, manifest = _template(bench, archive)
    prefix = s3_store(archive).prefix
    items, base_items, plan = [], [], []
    for i in range(n):
        rid = ids.new_record_id()
        data = _content(i)
        sha = hashlib.sha256(data).hexdigest()
        mbytes = _manifest_for(manifest, rid, i, sha)
        plan.append((rid, sha, mbytes))
        items += [(f"{prefix}/{layout.content_key(rid, 1)}", data),
                  (f"{prefix}/{layout.manifest_key(rid, 1)}", mbytes)]
        base_items += [(f"purge-baseline/{rid}/content", data),
                       (f"purge-baseline/{rid}/manifest.json", mbytes)]
    with Stopwatch() as watch:
        got = _s3_puts(sw, items)
        base = _s3_puts(sw, base_items)
    objects = [(rid, hashlib.sha256(mbytes).hexdigest(), sha,
                got[f"{prefix}/{layout.content_key(rid, 1)}"],
                got[f"{prefix}/{layout.manifest_key(rid, 1)}"]) for rid, sha, mbytes in plan]
    expired = datetime.now(UTC)
    _catalogue_fixture(archive, template, objects, expired)
    log(f"purge: {n} S3 records (+ baseline set) made in {watch.wall:.0f} s")
    archive.close()
    time.sleep(3)  # every retention (at most two seconds after its PUT) has now passed
    _wait_until(template["retain_until_at"])
    return archive.cfg.dir, [{"Key": k, "VersionId": v} for k, v in base.items()]


def _purge(bench: Bench, archive_dir: Path, expected: int, name: str
           ) -> tuple[Stopwatch, Archive, Any]:
    from edoc.services.disposal import Disposer

    archive = Archive.open(str(archive_dir))
    with profiled(bench, name), Stopwatch() as watch:
        report = Disposer(archive).run(dry_run=False)
    if not report.ok or len(report.disposed) != expected:
        first = report.refused[0] if report.refused else None
        raise BenchError(f"{name}: {len(report.disposed)} of {expected} disposed; first "
                         f"refusal {json.dumps(first, ensure_ascii=False)}")
    return watch, archive, report


def _unlink_baseline(bench: Bench, n: int) -> float:
    """Seconds to unlink 2·n files laid out as the store lays out records."""
    root = bench.path("purge-baseline")
    paths = []
    for i in range(n):
        d = root / f"{i:07d}"
        d.mkdir()
        for name in ("content", "manifest.json"):
            (d / name).write_bytes(_content(i))
            paths.append(d / name)
    with Stopwatch() as watch:
        for p in paths:
            os.unlink(p)
    return watch.wall


def run(bench: Bench) -> None:
    from sqlalchemy import event

    c = bench.counts
    log(f"purge: making {c.purge_local} expired records on the local store")
    archive_dir = build_local(bench, c.purge_local)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with FsyncCounter() as fs:
        watch, archive, _report = _purge(bench, archive_dir, c.purge_local + 1, "purge-local")
    archive.close()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = c.purge_local + 1
    base = c.purge_local / _unlink_baseline(bench, c.purge_local)
    rate = n / watch.wall
    bench.add(Row(PART, f"local store, {n:,} expired records", rate, "records/s",
                  baseline="os.unlink of the same 2 files/record", baseline_value=base,
                  ratio=rate_ratio(rate, base),
                  note=f"{watch.wall:.0f} s in all; {fs.calls / n:.1f} fsync per record "
                  f"({100 * fs.seconds / watch.wall:.0f}% of wall); includes selection, "
                  "journal, per-record catalog transaction, certificate, leaf objects and "
                  f"checkpoint; this process's peak RSS {rss_before:.0f} MB before the purge, "
                  f"{rss_after:.0f} MB after"))
    sw = bench.seaweed()
    if sw is None:
        log(f"purge: S3 rows skipped: {bench.seaweed_missing}")
        return
    log(f"purge: making {c.purge_s3} expired records on SeaweedFS")
    s3_dir, base_versions = build_s3(bench, sw, c.purge_s3)
    archive = Archive.open(str(s3_dir))
    commits = [0]

    def count(_conn: Any) -> None:
        commits[0] += 1

    try:
        with S3Calls(s3_store(archive).client) as calls:
            event.listen(archive.catalog.engine, "commit", count)
            from edoc.services.disposal import Disposer

            with profiled(bench, "purge-s3"), Stopwatch() as watch:
                report = Disposer(archive).run(dry_run=False)
            event.remove(archive.catalog.engine, "commit", count)
    finally:
        archive.close()
    n = c.purge_s3 + 1
    if not report.ok or len(report.disposed) != n:
        raise BenchError(f"S3 purge: {len(report.disposed)} of {n} disposed: "
                         f"{report.refused[:1]}")
    client = sw.client("writer")
    with Stopwatch() as base_watch:
        for start in range(0, len(base_versions), 1000):
            resp = client.delete_objects(Bucket=sw.BUCKET, Delete={
                "Objects": base_versions[start:start + 1000], "Quiet": True})
            if resp.get("Errors"):
                raise BenchError(f"DeleteObjects refused: {resp['Errors'][:1]}")
    base = c.purge_s3 / base_watch.wall
    rate = n / watch.wall
    bench.add(Row(PART, f"S3 (SeaweedFS), {n:,} expired records", rate, "records/s",
                  baseline="boto3 DeleteObjects, same versions", baseline_value=base,
                  ratio=rate_ratio(rate, base),
                  note=f"{calls.summary(n, watch.wall)}; {per_record(commits[0], n)} catalog "
                  "commits per record; fewer records than on the local store to fit the "
                  "run's time"))
