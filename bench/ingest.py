"""Part 1 — ingest throughput.

edoc's records/s
(``edoc.services.ingest.Ingestor(archive, jobs=default_jobs(archive)).run(requests)``,
the files in flight the CLI's ``ingest`` uses by default) into SeaweedFS with Object
Lock, against a plain boto3 uploader with 8 threads that PUTs the same files with the same
lock and checksum headers and nothing else; the same for the local store against a plain
copy (write, fsync, rename). The CLI's overhead is measured apart, and three raw request
patterns show where the S3 time goes and what the proposed fixes can gain (BENCHMARKS.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import statistics
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    Bench,
    BenchError,
    CpuShare,
    FsyncCounter,
    Row,
    S3Calls,
    SeaweedEnv,
    Stopwatch,
    edoc_command,
    ingest_requests,
    jpeg_variants,
    log,
    pdf_variants,
    profiled,
    rate_ratio,
    require_ok,
    run_child,
    s3_store,
)
from edoc.services.archive import Archive
from edoc.services.ingest import Ingestor, IngestRequest, IngestRun, default_jobs

PART = "ingest"
RAW_THREADS = 8
#: The rows "…, N worker processes" (``edoc ingest --processes N``), beside one process.
WORKER_PROCESSES = 2
#: The default profile ("general") keeps records ten years: the raw uploader locks as long.
TEN_YEARS = timedelta(days=3653)


def _b64sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def warm_imports() -> None:
    """Import what the first seal and the first inspection would import (pyHanko, Pillow,
    pikepdf): a process ingesting thousands of files pays that once, and the CLI rows
    measure it where it does count."""


def check_run(run: IngestRun, expected: int, what: str) -> None:
    stored = [r for r in run.results if r.status == "stored"]
    if len(stored) != expected or run.checkpoint_error is not None:
        bad = next((r.error for r in run.results if r.status != "stored"), None)
        raise BenchError(f"{what}: {len(stored)} of {expected} stored; first error {bad}; "
                         f"checkpoint error {run.checkpoint_error}")


def timed_ingest(bench: Bench, archive: Archive, requests: list[IngestRequest], name: str,
                 processes: int = 1) -> tuple[Stopwatch, IngestRun]:
    """``edoc ingest``'s defaults (one process unless ``processes``), with the files in
    flight ``default_jobs`` gives."""
    with profiled(bench, name), Stopwatch() as sw:
        run = Ingestor(archive, jobs=default_jobs(archive, processes), processes=processes
                       ).run(requests)
    check_run(run, len(requests), name)
    return sw, run


# -- baselines --------------------------------------------------------------------------------

def raw_upload(client: Any, bucket: str, prefix: str, files: Sequence[Path],
               retain_until: datetime, threads: int = RAW_THREADS) -> float:
    """Seconds to PUT every file with COMPLIANCE retention and its SHA-256, ``threads`` at
    a time (boto3 clients are thread-safe): what any uploader must do, and nothing else."""

    def put(path: Path) -> None:
        data = path.read_bytes()
        client.put_object(Bucket=bucket, Key=f"{prefix}/{path.name}", Body=data,
                          ChecksumAlgorithm="SHA256", ChecksumSHA256=_b64sha(data),
                          ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=retain_until)

    with Stopwatch() as sw, ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, files))
    return sw.wall


def plain_copy(files: Sequence[Path], dest: Path) -> float:
    """Seconds to copy every file durably, the least a local store must do: write to a
    temporary name, fsync, rename."""
    dest.mkdir(parents=True, exist_ok=True)
    with Stopwatch() as sw:
        for path in files:
            tmp = dest / f".{path.name}.part"
            with tmp.open("wb") as out:
                out.write(path.read_bytes())
                out.flush()
                os.fsync(out.fileno())
            tmp.replace(dest / path.name)
    return sw.wall


# -- request pattern (the ceiling for the S3 store) -----------------------------------------

def _pattern(client: Any, bucket: str, prefix: str, files: Sequence[Path], small: list[bytes],
             until: datetime, *, threads: int) -> float:
    """Seconds to store ``files`` as records would be: each file plus the ``small`` objects
    (manifest, ledger leaf) of a record, ``threads`` records at a time."""

    def store(i: int, path: Path) -> None:
        for n, data in enumerate([path.read_bytes(), *small]):
            client.put_object(Bucket=bucket, Key=f"{prefix}/{i:06d}/{n}", Body=data,
                              ChecksumAlgorithm="SHA256", ChecksumSHA256=_b64sha(data),
                              IfNoneMatch="*", ObjectLockMode="COMPLIANCE",
                              ObjectLockRetainUntilDate=until)

    with Stopwatch() as sw, ThreadPoolExecutor(threads) as pool:
        list(pool.map(store, range(len(files)), files))
    return sw.wall


# -- the part ---------------------------------------------------------------------------------

def run(bench: Bench) -> None:
    c = bench.counts
    log(f"ingest: generating {c.images} scan images and {c.pdfs} PDFs")
    images = jpeg_variants(bench.path("data", "ingest-images"), c.images)
    pdfs = pdf_variants(bench.path("data", "ingest-pdfs"), c.pdfs)
    warm_imports()
    sets = {"images": images, "PDFs": pdfs}
    others = {"images": images[:c.other_images], "PDFs": pdfs[:c.other_pdfs]}
    sw = bench.seaweed()
    if sw is None:
        log(f"ingest: S3 rows skipped: {bench.seaweed_missing}")
    else:
        _s3(bench, sw, sets, others)
        _cli(bench, images[:c.cli_files], images[c.cli_files:c.cli_files + 3])
    _local(bench, others)
    _components(bench, images, pdfs)


def _mb(files: Sequence[Path]) -> float:
    return sum(p.stat().st_size for p in files) / 1e6


def _s3(bench: Bench, sw: SeaweedEnv, sets: dict[str, list[Path]],
        others: dict[str, list[Path]]) -> None:
    c = bench.counts
    client = sw.client("writer")
    until = datetime.now(UTC) + TEN_YEARS
    raw: dict[str, list[float]] = {kind: [] for kind in sets}
    raw_cpu: dict[str, str] = {}

    def raw_round(tag: str) -> None:
        for kind, files in sets.items():
            if files:
                with CpuShare(sw.server.pid) as share:
                    secs = raw_upload(client, sw.BUCKET, f"raw-{tag}-{kind}", files, until)
                raw[kind].append(len(files) / secs)
                raw_cpu.setdefault(kind, share.per_record(len(files)))
                log(f"ingest: raw uploader ({tag}), {kind}: {len(files) / secs:.0f} files/s; "
                    f"{share.per_record(len(files))}")

    raw_round("before")
    measured: list[tuple[str, str, str, int, Stopwatch, str]] = []
    for profile, label, chosen in (("general", "default profile", sets),
                                   ("bench-sealed", "per-record seals", others)):
        archive = bench.s3_archive(f"ingest-s3-{profile}")
        try:
            store_client = s3_store(archive).client
            for kind, files in chosen.items():
                if not files:
                    continue
                # one process, so the request counter sees every request
                with S3Calls(store_client) as calls, CpuShare(sw.server.pid) as share:
                    watch, _run = timed_ingest(bench, archive, ingest_requests(files, profile),
                                               f"ingest-s3-{profile}-{kind}", processes=1)
                note = (f"{len(files)} files, {_mb(files) / watch.wall:.1f} MB/s; one "
                        f"process; {calls.summary(len(files), watch.wall)}; "
                        f"{share.per_record(len(files))}")
                measured.append((profile, label, kind, len(files), watch, note))
        finally:
            archive.close()
        files = chosen["images"]
        procs = WORKER_PROCESSES
        if files:  # the same on worker processes (``--processes``), side by side
            archive = bench.s3_archive(f"ingest-s3-{profile}-processes")
            try:
                with CpuShare(sw.server.pid) as share:
                    watch, _run = timed_ingest(bench, archive, ingest_requests(files, profile),
                                               f"ingest-s3-{profile}-images-processes",
                                               processes=procs)
            finally:
                archive.close()
            measured.append((profile, f"{label}, {procs} worker processes", "images",
                             len(files), watch, f"{len(files)} files, `--processes {procs}`;"
                             " SeaweedFS "
                             f"{1000 * share.server / len(files):.1f} ms CPU per record"))
    if c.raw_repeats > 1:
        raw_round("after")
    for profile, label, kind, n, watch, note in measured:
        base = max(raw[kind])
        rate = n / watch.wall
        if profile == "general":
            target, met = "≥ 0.7× raw", rate_ratio(rate, base) >= 0.7
        else:
            target, met = "≥ 100 records/s", rate >= 100
        spread = ", ".join(f"{r:.0f}" for r in raw[kind])
        bench.add(Row(PART, f"S3 (SeaweedFS, Object Lock), {label}, {kind}", rate,
                      "records/s", baseline=f"boto3 {RAW_THREADS} threads (best of {spread})",
                      baseline_value=base, ratio=rate_ratio(rate, base), target=target,
                      met=met, note=f"{note}; the raw uploader's {raw_cpu[kind]}"))
    _patterns(bench, sw, sets["images"][:c.pattern_records], until, max(raw["images"]))


def _patterns(bench: Bench, sw: SeaweedEnv, files: list[Path], until: datetime,
              raw_rate: float) -> None:
    """A raw boto3 replay of edoc's S3 traffic per record (content, manifest, and before
    ledger segments a leaf: two or three conditional PUTs) with as many records in flight
    as edoc ingests at once: the ceiling of this request pattern on this server, with no
    edoc code and no catalog."""
    if not files:
        return
    client = sw.client("writer")
    # sizes of a scan manifest and an ingest leaf; since ledger segments
    # (edoc.ledger-segment/1) a record is content + manifest, its leaf one 500th of a segment
    patterns = [("3 objects/record: content, manifest, leaf (before segments)",
                 [b"m" * 1750, b"l" * 335]),
                ("2 objects/record: content, manifest (ledger segments)", [b"m" * 1750])]
    cases: list[tuple[str, dict[str, Any]]] = [
        (f"PUT with If-None-Match, {RAW_THREADS} records in flight",
         {"threads": RAW_THREADS}),
    ]
    for n, ((what, small), (label, opts)) in enumerate(
            (p, c) for p in patterns for c in cases):
        with CpuShare(sw.server.pid) as share:
            secs = _pattern(client, sw.BUCKET, f"pattern-{n}", files, small, until, **opts)
        rate = len(files) / secs
        bench.add(Row(PART, f"ceiling: edoc's request pattern alone ({what}), "
                      f"{label}", rate, "records/s",
                      baseline="boto3 raw uploader, images", baseline_value=raw_rate,
                      ratio=rate_ratio(rate, raw_rate),
                      note=f"{len(files)} records; request pattern only (no edoc code, no "
                      "catalog): the ceiling for edoc with this pattern; "
                      f"{share.per_record(len(files))}"))


def _cli(bench: Bench, files: list[Path], singles: list[Path]) -> None:
    """The CLI's cost on top of the library: one process ingesting ``files``, and one
    process per file."""
    if not files:
        return
    meta = {"date": "2025-06-30", "amount": "10800", "counterparty": "山田商事"}
    lib = bench.s3_archive("ingest-cli-library")
    try:
        reqs = [IngestRequest(path=str(f), profiles=("general",), date=meta["date"],
                              amount=meta["amount"], counterparty=meta["counterparty"])
                for f in files]
        watch, _run = timed_ingest(bench, lib, reqs, "ingest-cli-library")
    finally:
        lib.close()
    cli_archive = bench.s3_archive("ingest-cli")
    cli_archive.close()
    flags = ["--profile", "general", "--date", meta["date"], "--amount", meta["amount"],
             "--counterparty", meta["counterparty"], "--json"]
    base = [*edoc_command(), "--archive", str(cli_archive.cfg.dir), "ingest"]
    child = require_ok(run_child([*base, *map(str, files), *flags], capture=True), "edoc ingest")
    doc = json.loads(child.stdout)
    if doc.get("stored") != len(files):
        raise BenchError(f"edoc ingest stored {doc.get('stored')} of {len(files)}")
    rate, lib_rate = len(files) / child.wall, len(files) / watch.wall
    bench.add(Row(PART, f"CLI, one process for {len(files)} images (S3)", rate, "records/s",
                  baseline="library, same files", baseline_value=lib_rate,
                  ratio=rate_ratio(rate, lib_rate),
                  note=f"fixed cost per invocation ≈ {child.wall - watch.wall:.2f} s "
                  "(interpreter, imports, archive open, key load)"))
    walls = []
    for path in singles:
        one = require_ok(run_child([*base, str(path), *flags], capture=True), "edoc ingest")
        walls.append(one.wall)
    if walls:
        per = statistics.median(walls)
        bench.add(Row(PART, "CLI, one process per image (S3), wall per file", per, "s",
                      baseline="library, per record", baseline_value=watch.wall / len(files),
                      ratio=(watch.wall / len(files)) / per,
                      note=f"median of {len(walls)}; scripts should pass many files per "
                      "invocation"))


def _local(bench: Bench, sets: dict[str, list[Path]]) -> None:
    from sqlalchemy import event

    copy_rate = {kind: len(files) / plain_copy(files, bench.workdir / "copies" / kind)
                 for kind, files in sets.items() if files}
    for profile, label in (("general", "default profile"), ("bench-sealed", "per-record seals")):
        archive = bench.local_archive(f"ingest-local-{profile}")
        commits = [0]

        def count(_conn: Any, counter: list[int] = commits) -> None:
            counter[0] += 1

        event.listen(archive.catalog.engine, "commit", count)
        try:
            for kind, files in sets.items():
                if not files:
                    continue
                commits[0] = 0
                # one process, so the counters see every fsync and commit
                with FsyncCounter() as fs:
                    watch, _run = timed_ingest(bench, archive, ingest_requests(files, profile),
                                               f"ingest-local-{profile}-{kind}", processes=1)
                rate = len(files) / watch.wall
                target: str | None = None
                met: bool | None = None
                if profile == "bench-sealed":
                    target, met = "≥ 100 records/s", rate >= 100
                bench.add(Row(
                    PART, f"local store, {label}, {kind}", rate, "records/s",
                    baseline="plain copy (write, fsync, rename)",
                    baseline_value=copy_rate[kind], ratio=rate_ratio(rate, copy_rate[kind]),
                    target=target, met=met,
                    note=f"{len(files)} files; per record {fs.calls / len(files):.1f} fsync "
                    f"(their time summed over threads: {100 * fs.seconds / watch.wall:.0f}% "
                    f"of wall) and {commits[0] / len(files):.2f} catalog commits (group "
                    "commit, synchronous=FULL); "
                    f"CPU {100 * watch.cpu / watch.wall:.0f}% of wall; one process"))
        finally:
            event.remove(archive.catalog.engine, "commit", count)
            archive.close()
        files = sets["images"]
        procs = WORKER_PROCESSES
        if files:  # the same on worker processes (``--processes``), side by side
            archive = bench.local_archive(f"ingest-local-{profile}-processes")
            try:
                watch, _run = timed_ingest(bench, archive, ingest_requests(files, profile),
                                           f"ingest-local-{profile}-images-processes",
                                           processes=procs)
            finally:
                archive.close()
            rate = len(files) / watch.wall
            bench.add(Row(
                PART, f"local store, {label}, images, {procs} worker processes", rate,
                "records/s", baseline="plain copy (write, fsync, rename)",
                baseline_value=copy_rate["images"],
                ratio=rate_ratio(rate, copy_rate["images"]),
                target="≥ 100 records/s" if profile == "bench-sealed" else None,
                met=rate >= 100 if profile == "bench-sealed" else None,
                note=f"{len(files)} files, `--processes {procs}`"))


def _components(bench: Bench, images: list[Path], pdfs: list[Path]) -> None:
    """What one record costs in CPU outside storage: the manifest seal (pyHanko CAdES)
    against a bare ECDSA P-256 signature, the RFC 3161 token, and the readability gate."""
    import hashlib as _hashlib

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from edoc import inspection

    archive = bench.local_archive("ingest-components")
    try:
        manifest = b'{"schema":"edoc.manifest/1"' + b" " * 1600 + b"}"
        notary = archive.notary
        notary.seal(manifest)  # loads the key once, as a run does
        n = 10 if bench.quick else 100
        with Stopwatch() as seal_watch:
            for _ in range(n):
                notary.seal(manifest)
        key = ec.generate_private_key(ec.SECP256R1())
        with Stopwatch() as raw_watch:
            for _ in range(n):
                key.sign(manifest, ec.ECDSA(hashes.SHA256()))
        digest = _hashlib.sha256(manifest).digest()
        with Stopwatch() as tsa_watch:
            for _ in range(n):
                notary.timestamp(digest)
    finally:
        archive.close()
    per_seal, per_sign = seal_watch.wall / n * 1000, raw_watch.wall / n * 1000
    bench.add(Row(PART, "component: CAdES seal of one manifest (pyHanko)", per_seal, "ms",
                  baseline="ECDSA P-256 signature alone", baseline_value=per_sign,
                  ratio=per_sign / per_seal,
                  note=f"mean of {n}; the embedded TSA's token costs "
                  f"{tsa_watch.wall / n * 1000:.1f} ms more per checkpoint"))
    for kind, files in (("scan image", images[:40]), ("scan PDF", pdfs[:10])):
        if not files:
            continue
        with Stopwatch() as watch:
            for path in files:
                inspection.inspect(path, inspection.detect_media_type(path))
        with Stopwatch() as hash_watch:
            for path in files:
                with path.open("rb") as f:
                    _hashlib.file_digest(f, "sha256")
        per, per_hash = watch.wall / len(files) * 1000, hash_watch.wall / len(files) * 1000
        bench.add(Row(PART, f"component: readability gate (見読性), one {kind}", per, "ms",
                      baseline="SHA-256 of the same file", baseline_value=per_hash,
                      ratio=per_hash / per, note=f"mean of {len(files)}; decodes the "
                      "image(s) to measure dpi, colour and bit depth"))
