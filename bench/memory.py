"""Part 6 — memory: peak RSS of ``edoc ingest`` and ``edoc verify`` on one large file.

The file is sparse (``truncate``): reading it costs no disk, but every byte still passes
through edoc's hashing, storing and verifying. Each command runs as its own child process
and its peak RSS is the child's ``ru_maxrss`` from wait4(2), forked from a small wrapper
(Linux carries peak RSS across fork and exec: see ``bench.common.run_child``). The baseline
is the floor of any edoc command, ``edoc --help``, in the same run. The S3 run goes through
a multipart upload (8 MiB parts), the local one through the store's streaming copy. On the
local store the verification's wall time is also set against ``openssl dgst`` of the
stored object.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench.common import (
    Bench,
    BenchError,
    Child,
    Row,
    edoc_command,
    local_objects_dir,
    log,
    require_ok,
    run_child,
)
from edoc.services.archive import Archive

PART = "memory"
TARGET_MB = 150


def _measure(bench: Bench, archive: Archive, size: int, where: str, floor: float) -> None:
    big = bench.workdir / f"big-{where}.bin"
    with big.open("wb") as f:
        f.truncate(size)
    archive_dir = str(archive.cfg.dir)
    objects = local_objects_dir(archive) if archive.cfg.storage.kind == "local" else None
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
    if objects is not None:
        _versus_openssl(bench, objects, verify, label)
    for what, child in (("ingest", ingest), ("verify --all", verify)):
        bench.add(Row(PART, f"{where}: edoc {what}, one {label} file, peak RSS",
                      child.maxrss_mb, "MB", baseline="edoc --help", baseline_value=floor,
                      ratio=floor / child.maxrss_mb, target=f"≤ {TARGET_MB} MB",
                      met=child.maxrss_mb <= TARGET_MB,
                      note=f"wall {child.wall:.1f} s ({size / 1e6 / child.wall:.0f} MB/s)"))


def _versus_openssl(bench: Bench, objects: Path, verify: Child, label: str) -> None:
    """A large record is where verification should be hash-bound: ``edoc verify --all``
    (the CLI, start-up included) against ``openssl dgst -sha256`` of the stored object."""
    stored = max((p for p in objects.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    openssl = require_ok(run_child(["openssl", "dgst", "-sha256", str(stored)], capture=True),
                         "openssl dgst")
    bench.add(Row("verify", f"one {label} record: edoc verify --all (CLI), wall", verify.wall,
                  "s", baseline="openssl dgst -sha256 of the stored object",
                  baseline_value=openssl.wall, ratio=openssl.wall / verify.wall,
                  note="same bytes, warm page cache; edoc's figure includes its start-up and "
                  "every check, the hash of the content once"))


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
