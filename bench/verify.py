"""Part 2 — period verification (一括検証) of every record on the local store.

``edoc verify --all`` (and ``verify_stream(..., workers=N)``) over N records, each version
checked for content digest, manifest, catalog, ledger inclusion, checkpoint seal and
timestamp and storage lock, against tools that only hash: ``openssl dgst -sha256`` over the
same content files and ``bagit.py --validate`` (bagit-python) on a bag of the same files.
Same parallelism on both sides; the page cache is warm for all of them (the files were just
written, and each tool reads them once before its timed run).

The archive is built by real ingests (several processes at once, with fsync off while
building: durability is not what this part measures).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import (
    Bench,
    BenchError,
    Row,
    Stopwatch,
    edoc_command,
    fixture_mode,
    ingest_requests,
    jpeg_variants,
    local_objects_dir,
    log,
    profiled,
    rate_ratio,
    require_ok,
    run_child,
)
from edoc.services.archive import Archive

PART = "verify"


def _ingest_worker(archive_dir: str, paths: list[str]) -> int:
    """Fixture builder (child process): real ingests, durability off."""
    from edoc.services.ingest import Ingestor

    archive = Archive.open(archive_dir)
    try:
        with fixture_mode(archive):
            run = Ingestor(archive).run(ingest_requests([Path(p) for p in paths], "general",
                                                        seed=len(paths)))
        return sum(1 for r in run.results if r.status == "stored")
    finally:
        archive.close()


def build_archive(bench: Bench, n: int) -> tuple[Archive, list[Path]]:
    """An archive of ``n`` ingested 200 KB scans, and the paths of its content files."""
    files = jpeg_variants(bench.path("data", "verify"), n)
    archive = bench.local_archive("verify")
    archive_dir = str(archive.cfg.dir)
    archive.close()
    workers = max(1, min(os.cpu_count() or 1, 4, n // 50 or 1))
    chunks = [[str(f) for f in files[i::workers]] for i in range(workers)]
    with Stopwatch() as watch:
        if workers == 1:
            stored = _ingest_worker(archive_dir, chunks[0])
        else:
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(workers) as pool:
                stored = sum(pool.starmap(_ingest_worker, [(archive_dir, c) for c in chunks]))
    if stored != n:
        raise BenchError(f"fixture: {stored} of {n} records stored")
    log(f"verify: fixture of {n} records built in {watch.wall:.0f} s ({workers} processes)")
    archive = Archive.open(archive_dir)
    root = local_objects_dir(archive)
    with archive.catalog.read() as c:
        from edoc.catalog import versions

        keys = [k for (k,) in c.execute(versions.select().with_only_columns(
            versions.c.content_key).order_by(versions.c.record_id))]
    contents = [root / k for k in keys]
    missing = [p for p in contents if not p.is_file()]
    if missing:
        raise BenchError(f"content file {missing[0]} not found: the local store layout changed")
    shutil.rmtree(bench.workdir / "data" / "verify", ignore_errors=True)
    return archive, contents


def make_bag(bench: Bench, contents: Sequence[Path]) -> Path | None:
    """A BagIt bag (sha256 manifest) of hard links to the same content files."""
    try:
        import bagit  # type: ignore[import-untyped]
    except ImportError:
        return None
    bag = bench.workdir / "bag"
    bag.mkdir()
    for n, path in enumerate(contents):
        os.link(path, bag / f"{n:06d}-{path.parent.parent.name}.bin")
    bagit.make_bag(str(bag), checksums=["sha256"], processes=os.cpu_count() or 1)
    return bag


def _openssl(paths: Sequence[Path], procs: int) -> float:
    listing = b"\0".join(str(p).encode() for p in paths) + b"\0"
    child = require_ok(run_child(["xargs", "-0", "-n", "500", "-P", str(procs), "openssl",
                                  "dgst", "-sha256"], stdin=listing), "openssl dgst")
    return child.wall


def _bagit(bag: Path, procs: int) -> float:
    script = Path(sys.executable).parent / "bagit.py"
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "bagit"]
    child = require_ok(run_child([*cmd, "--validate", "--quiet", "--processes", str(procs),
                                  str(bag)]), "bagit.py --validate")
    return child.wall


def _library(bench: Bench, archive_dir: Path, workers: int) -> tuple[float, float, float]:
    """Wall time of ``verify_stream`` over every record, the time its first report took
    (start-up: imports, workers, the checkpoint checks) and the rate after the first tenth
    of the reports (the steady state a long period verification runs at)."""
    from edoc.model.verdict import Status
    from edoc.services.period_verification import verify_stream

    archive = Archive.open(str(archive_dir))
    reports = []
    first = tenth = 0.0
    try:
        with profiled(bench, f"verify-library-{workers}"), Stopwatch() as watch:
            start = time.perf_counter()
            for report in verify_stream(archive, archive.catalog.record_ids(),
                                        workers=workers, batch=True):
                reports.append(report)
                if len(reports) == 1:
                    first = time.perf_counter() - start
                if len(reports) == max(1, bench.counts.verify_records // 10):
                    tenth = time.perf_counter() - start
    finally:
        archive.close()
    bad = [r for r in reports if r.status is not Status.PASS]
    if bad:
        codes = sorted({c.code for r in bad for c in r.checks if c.status is not Status.PASS})
        raise BenchError(f"verify: {len(bad)} of {len(reports)} versions did not pass: {codes}")
    rest = len(reports) - max(1, bench.counts.verify_records // 10)
    steady = rest / (watch.wall - tenth) if rest > 0 and watch.wall > tenth else 0.0
    return watch.wall, first, steady


def _cli(archive_dir: Path, n: int) -> tuple[float, int]:
    child = require_ok(run_child([*edoc_command(), "--archive", str(archive_dir), "verify",
                                  "--all", "--json"], capture=True), "edoc verify --all")
    doc = json.loads(child.stdout)
    if not doc.get("ok") or doc["summary"]["versions"] != n:
        raise BenchError(f"edoc verify --all: ok={doc.get('ok')}, summary {doc.get('summary')}")
    return child.wall, int(doc["summary"]["workers"])


def run(bench: Bench) -> None:
    n = bench.counts.verify_records
    log(f"verify: building an archive of {n} records")
    archive, contents = build_archive(bench, n)
    archive_dir = archive.cfg.dir
    archive.close()
    cores = os.cpu_count() or 1
    mb = sum(p.stat().st_size for p in contents) / 1e6
    _openssl(contents, cores)  # warm the page cache for every tool alike
    ossl = {procs: _openssl(contents, procs) for procs in sorted({1, cores})}
    bag = make_bag(bench, contents)
    bags: dict[int, float] = {}
    if bag is not None:
        _bagit(bag, cores)
        bags = {procs: _bagit(bag, procs) for procs in sorted({1, cores})}
    measured = {w: _library(bench, archive_dir, w) for w in sorted({1, cores})}
    lib = {w: wall for w, (wall, _first, _steady) in measured.items()}
    cli_wall, cli_workers = _cli(archive_dir, n)
    checks = ("all checks per version: ledger, manifest, content digest, catalog, inclusion "
              "(root recomputed per checkpoint), checkpoint seal and timestamp, lock")
    plural = "s" if cli_workers > 1 else ""
    edoc_rows = [(f"edoc verify --all --json (CLI, {cli_workers} worker{plural})", cli_wall,
                  cli_workers),
                 *((f"verify_stream, {w} worker{'s' if w > 1 else ''} (library)", secs, w)
                   for w, secs in lib.items())]
    for name, secs, procs in edoc_rows:
        rate = n / secs
        startup = ""
        if name.startswith("verify_stream"):
            _wall, first, steady = measured[procs]
            startup = (f"; first report after {first:.2f} s (imports, workers, checkpoint seal "
                       f"and token checks), then {steady:,.0f} records/s after the first tenth")
        baselines = [(f"openssl dgst -sha256, {procs} proc", ossl.get(procs))]
        if bags:
            baselines.append((f"bagit.py --validate, {procs} proc", bags.get(procs)))
        for base_name, base_secs in baselines:
            if base_secs is None:
                continue
            base_rate = n / base_secs
            ratio = rate_ratio(rate, base_rate)
            bench.add(Row(PART, f"{n} records: {name}", rate, "records/s",
                          baseline=base_name, baseline_value=base_rate, ratio=ratio,
                          target="faster (> 1×)", met=ratio > 1,
                          note=f"{mb:.0f} MB of content, warm page cache; edoc: {checks}"
                          f"{startup}" if base_name.startswith("openssl") else ""))
    if bag is None:
        log("verify: bagit not installed (pip install bagit): bagit rows skipped")
    shutil.rmtree(bench.workdir / "bag", ignore_errors=True)
    shutil.rmtree(archive_dir, ignore_errors=True)
