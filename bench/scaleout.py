"""Part — scale-out: ingest workers on PostgreSQL + SeaweedFS, and the ledger alone.

* The single-host figure: ``edoc ingest`` (one process, its default files in flight) into
  SeaweedFS with a SQLite catalog — what one machine does today.
* The same documents enqueued (``edoc ingest --enqueue``, not timed) and ingested by 1, 2
  and 4 ``edoc worker --until-idle`` processes on a PostgreSQL catalog (the queue in the
  same database): aggregate records/s from the workers' start to the last one's exit, and
  the figure per worker. Every run gets a fresh database and a fresh bucket prefix.
* The ledger append rate alone: one catalog write transaction per position (as each
  ingest's cataloguing does), from 1 and 4 threads, through PostgreSQL's archive-wide
  advisory write lock — the ceiling that no number of workers can pass.

On a 2-core machine PostgreSQL, SeaweedFS and the workers share the CPU, so the curve bends
early; BENCHMARKS.md says where and what separate hosts should expect.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from pathlib import Path

from bench.common import (
    Bench,
    BenchError,
    Row,
    edoc_command,
    log,
    rate_ratio,
    require_ok,
    run_child,
)

PART = "scaleout"
WORKER_COUNTS = (1, 2, 4)
#: Jobs each worker process runs at once (threads): store round trips overlap.
CONCURRENCY = 4


def _docs(dest: Path, n: int) -> list[Path]:
    """Small distinct documents (a few hundred bytes: the queue and the commit protocol are
    what is measured, not hashing or inspection of large scans)."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = dest / f"doc-{i:05d}.txt"
        p.write_text(f"scale-out document {i} {os.urandom(16).hex()}\n" * 8, encoding="utf-8")
        out.append(p)
    return out


def _init(bench: Bench, name: str, catalog_url: str | None) -> Path:
    from edoc.services.archive import init_archive

    sw = bench.seaweed()
    if sw is None:
        raise BenchError(bench.seaweed_missing)
    a = init_archive(bench.workdir / "archives" / name, organisation="edoc bench",
                     storage=sw.storage(f"{name}-{os.urandom(3).hex()}"),
                     catalog_url=catalog_url)
    a.close()
    return a.cfg.dir


def _workers(edoc: list[str], archives: list[Path], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    procs = [subprocess.Popen([*edoc, "--archive", str(d), "worker", "--until-idle",
                               "--concurrency", str(CONCURRENCY)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for d in archives]
    failed = []
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            failed.append(err.decode(errors="replace").strip().splitlines()[-1:])
    wall = time.perf_counter() - t0
    if failed:
        raise BenchError(f"worker failed: {failed}")
    return wall


def _job_span(url: str) -> float:
    """Seconds from the first ingest job's start to the last one's end (procrastinate's
    event log): the workers' throughput without their start-up and idle exit."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM max(e.at) - min(e.at)) FROM procrastinate_events e "
            "JOIN procrastinate_jobs j ON j.id = e.job_id WHERE j.task_name = "
            "'edoc.ingest_document' AND e.type IN ('started', 'succeeded')").fetchone()
        retried = conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE task_name = "
            "'edoc.ingest_document' AND attempts > 1").fetchone()
        codes = conn.execute("SELECT code, count(*) FROM edoc_queue_items WHERE code IS NOT "
                             "NULL GROUP BY code").fetchall()
        done = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FROM "
            "procrastinate_jobs WHERE task_name = 'edoc.ingest_document'").fetchone()
    if row is None or row[0] is None or done is None:
        raise BenchError("no ingest job events recorded")
    log(f"scaleout: jobs retried: {retried[0] if retried else '?'}; codes seen: "
        f"{dict(codes)}")
    if done[0] != done[1]:
        raise BenchError(f"only {done[0]} of {done[1]} ingest jobs succeeded: {dict(codes)}")
    return float(row[0])


def _ledger_rate(url: str, archive_dir: Path, threads: int, per_thread: int) -> float:
    from edoc.catalog import Catalog

    catalog = Catalog(url, archive_dir)
    errors: list[BaseException] = []

    def append(t: int) -> None:
        try:
            for i in range(per_thread):
                leaf = hashlib.sha256(f"{t}:{i}".encode()).hexdigest()
                with catalog.transaction() as tx:
                    tx.append_leaf(event_type="bench", entry="{}", leaf_hash=leaf)
        except BaseException as exc:  # reported below
            errors.append(exc)

    pool = [threading.Thread(target=append, args=(t,)) for t in range(threads)]
    t0 = time.perf_counter()
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    wall = time.perf_counter() - t0
    catalog.dispose()
    if errors:
        raise BenchError(f"ledger append failed: {errors[0]!r}")
    return threads * per_thread / wall


def run(bench: Bench) -> None:
    from tests.postgres import PostgresServer, find_pg_bin

    pg_bin = find_pg_bin()
    if pg_bin is None:
        raise BenchError("PostgreSQL binaries not found (apt-get install postgresql)")
    n = 40 if bench.quick else int(os.environ.get("EDOC_BENCH_SCALEOUT_DOCS", "600"))
    files = _docs(bench.path("scaleout", "docs"), n)
    edoc = edoc_command()

    # Single host, SQLite catalog: the figure to beat.
    base = _init(bench, "scaleout-sqlite", None)
    # Taken after SeaweedFS started: its credentials are in the environment from then on.
    env = {**os.environ}
    env.pop("EDOC_QUEUE_URL", None)
    child = require_ok(run_child([*edoc, "--archive", str(base), "ingest",
                                  *map(str, files)]), "ingest (single host, SQLite)")
    single = n / child.wall
    bench.add(Row(PART, "single host, SQLite catalog (edoc ingest)", single, "rec/s",
                  note=f"{n} docs, one process, default files in flight"))

    server = PostgresServer(pg_bin)
    server.start()
    try:
        rates: dict[int, float] = {}
        for k in WORKER_COUNTS:
            url = server.url(server.create_database())
            first = _init(bench, f"scaleout-pg-{k}", url)
            require_ok(run_child([*edoc, "--archive", str(first), "ingest", "--enqueue",
                                  *map(str, files)]), f"enqueue for {k} workers")
            # Each worker its own copy of the archive directory (edoc.toml + keys).
            hosts = [first]
            for i in range(1, k):
                d = bench.workdir / "archives" / f"scaleout-pg-{k}-host{i}"
                d.mkdir(parents=True)
                (d / "edoc.toml").write_bytes((first / "edoc.toml").read_bytes())
                subprocess.run(["cp", "-a", str(first / "keys"), str(d / "keys")], check=True)
                hosts.append(d)
            wall = _workers(edoc, hosts, env)
            span = _job_span(url)
            rates[k] = n / span
            bench.add(Row(PART, f"{k} worker process(es), PostgreSQL + SeaweedFS", rates[k],
                          "rec/s", baseline="single host SQLite", baseline_value=single,
                          ratio=rate_ratio(rates[k], single),
                          note=f"{rates[k] / k:.1f} rec/s per worker; {CONCURRENCY} jobs "
                               f"each; first job start to last job end ({span:.1f} s; "
                               f"{n / wall:.1f} rec/s over the processes' wall {wall:.1f} s)"))
            log(f"scaleout: {k} workers: {span:.1f} s of jobs, {wall:.1f} s wall")
        url = server.url(server.create_database())
        probe = _init(bench, "scaleout-ledger", url)
        per = 100 if bench.quick else 1000
        for threads in (1, 4):
            rate = _ledger_rate(url, probe, threads, per // threads)
            bench.add(Row(PART, f"ledger append alone, {threads} writer thread(s)", rate,
                          "positions/s", baseline="Tessera on Aurora (published)",
                          baseline_value=1500.0, ratio=rate_ratio(rate, 1500.0),
                          note="one transaction per position, advisory write lock"))
    finally:
        server.stop()
