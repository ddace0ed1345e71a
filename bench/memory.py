"""Part 6 — memory: peak RSS of ``edoc ingest`` and ``edoc verify`` on one large file.

The file is sparse (``truncate``): reading it costs no disk, but every byte still passes
through edoc's hashing, storing and verifying. Each command runs as its own child process
and its peak RSS is the child's ``ru_maxrss`` from wait4(2), forked from a small wrapper
(Linux carries peak RSS across fork and exec: see ``bench.common.run_child``). The baseline
is the floor of any edoc command, ``edoc --help``, in the same run. The S3 run goes through
a multipart upload (16 MiB parts), the local one through the store's streaming copy.
"""

from __future__ import annotations

import json
import os

from bench.common import Bench, BenchError, Row, edoc_command, log, require_ok, run_child
from edoc.archive import Archive

PART = "memory"
TARGET_MB = 150


def _measure(bench: Bench, archive: Archive, size: int, where: str, floor: float) -> None:
    big = bench.workdir / f"big-{where}.bin"
    with big.open("wb") as f:
        f.truncate(size)
    archive_dir = str(archive.cfg.dir)
    archive.close()
    edoc = [*edoc_command(), "--archive", archive_dir]
    ingest = require_ok(run_child([*edoc, "ingest", str(big), "--json"], capture=True,
                                  rss=True), "edoc ingest")
    if json.loads(ingest.stdout).get("stored") != 1:
        raise BenchError(f"edoc ingest of {big.name} did not store it")
    verify = require_ok(run_child([*edoc, "verify", "--all", "--json"], capture=True,
                                  rss=True), "edoc verify --all")
    if not json.loads(verify.stdout).get("ok"):
        raise BenchError("edoc verify --all did not pass on the large file")
    big.unlink()
    gib = size / 1024**3
    label = f"{gib:g} GiB" if gib >= 1 else f"{size // 1024**2} MiB"
    for what, child in (("ingest", ingest), ("verify --all", verify)):
        bench.add(Row(PART, f"{where}: edoc {what}, one {label} file, peak RSS",
                      child.maxrss_mb, "MB", baseline="edoc --help", baseline_value=floor,
                      ratio=floor / child.maxrss_mb, target=f"≤ {TARGET_MB} MB",
                      met=child.maxrss_mb <= TARGET_MB,
                      note=f"wall {child.wall:.1f} s ({size / 1e6 / child.wall:.0f} MB/s)"))


def run(bench: Bench) -> None:
    size = bench.counts.memory_bytes
    floor = require_ok(run_child([*edoc_command(), "--help"], rss=True),
                       "edoc --help").maxrss_mb
    if floor <= 0:
        raise BenchError("could not read the peak RSS of a child process")
    free = os.statvfs(bench.workdir)
    if free.f_bavail * free.f_frsize < 3 * size:
        raise BenchError(f"not enough free disk for a {size / 1e9:.1f} GB file stored twice")
    log(f"memory: {size / 1e9:.1f} GB file on the local store")
    _measure(bench, bench.local_archive("memory-local"), size, "local store", floor)
    if not bench.counts.memory_s3:
        return
    if bench.seaweed() is None:
        log(f"memory: S3 row skipped: {bench.seaweed_missing}")
        return
    log(f"memory: {size / 1e9:.1f} GB file on SeaweedFS")
    _measure(bench, bench.s3_archive("memory-s3"), size, "S3 (SeaweedFS)", floor)
