"""Period verification (一括検証): every record of a period verified, streamed in order, in this
process or on a pool of worker processes.

Owns how a long verification is spread over processes; the checks themselves are
``edoc.services.verification.Verifier``'s. This module is light on purpose: importing it
does not import the verifier (and with it pyHanko, aiohttp and the checkpoint code, ~0.4 s).
The parent of a pool only hands out chunks of record ids and passes the workers' reports on,
so it never needs them; on two cores its imports took time from the workers (the CLI over
10,000 records: 4.0–4.3 s with them, 3.4–3.6 s without; BENCHMARKS.md, 2026-12-07 15:25).
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import forkserver
from typing import TYPE_CHECKING, Final, TypeVar

from edoc.errors import EdocError
from edoc.model.verdict import RecordReport, Status

if TYPE_CHECKING:
    from edoc.services.archive import Archive
    from edoc.services.verification import Verifier

__all__ = ["CHECK_NAMES", "CHUNK_IDS", "PARALLEL_MIN_RECORDS", "Render", "as_reports",
           "chunks", "csv_cells", "default_workers", "reports_json", "start_fork_server",
           "verify_chunks", "verify_stream"]

T = TypeVar("T")
#: What a verifying process makes of one chunk's reports before they leave it: a
#: module-level function (a worker receives it by name), e.g. ``reports_json``.
Render = Callable[[list[RecordReport]], T]

CHECK_NAMES: Final = ("ledger", "manifest", "content", "catalog", "manifest_seal", "seal",
                      "timestamp", "inclusion", "lock", "disposal")
#: records per catalog query (``Verifier.verify_batch``) and per chunk a worker verifies
CHUNK_IDS = 200
#: The fewest records for which ``edoc verify`` starts worker processes by default
#: (``default_workers``): below it the fork server's start-up (~0.6 s on two cores) costs
#: more than a second process saves. Local store: one process won at 2,000 records, two at
#: 10,000; S3 (SeaweedFS), ~10 ms a version: two won at 1,000 (BENCHMARKS.md, 2026-12-07).
PARALLEL_MIN_RECORDS: Final = {"local": 5000, "s3": 500}
#: What the fork server imports once for every worker it forks: the verifier and the
#: evidence code its checks use (each worker forked from it skips ~0.3 s of imports).
#: ``edoc.warnings_policy`` first: pyHanko's import warning must not reach the report's stderr.
_PRELOAD: Final = ["edoc.warnings_policy", "edoc.services.verification", "edoc.evidence.tsa",
                   "edoc.evidence.sealing"]
#: Reader threads per verifying process on a store whose reads wait on the network (S3):
#: requests in flight while the checks run. None on the local store (see ``_readers``).
NETWORK_READERS: Final = 4

_worker: Verifier | None = None
#: why this worker could not open the archive (raised for each chunk it is given)
_open_error: EdocError | None = None


def chunks(ids: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for rid in ids:
        chunk.append(rid)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _context() -> multiprocessing.context.ForkServerContext:
    # A fork server, not fork: workers must not inherit this process's SQLite connections
    # (https://www.sqlite.org/howtocorrupt.html §2.6). It starts as a fresh interpreter and
    # imports ``_PRELOAD`` once; spawned workers paid those imports each (measured: two
    # spawned workers were slower than one on 5,000 records).
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def default_workers(archive: Archive, records: int) -> int:
    """Worker processes for verifying ``records`` records when the user did not say: one
    per core (at most 8) from the store's ``PARALLEL_MIN_RECORDS``, else one."""
    least = PARALLEL_MIN_RECORDS.get(archive.store.kind, PARALLEL_MIN_RECORDS["s3"])
    return min(os.cpu_count() or 1, 8) if records >= least else 1


def _readers(archive: Archive) -> int:
    """Reader threads for this archive's store: on the local store a read is a few
    system calls, and threads beside the checks only contended for the interpreter lock
    (2,100–2,300 versions/s against 2,850–3,000 without, BENCHMARKS.md 2026-12-07 15:25);
    an S3 read waits on the network, and threads keep requests in flight meanwhile."""
    return 0 if archive.store.kind == "local" else NETWORK_READERS


def start_fork_server() -> None:
    """Start the workers' fork server now, ahead of need: it imports the verifier (~0.5 s)
    on another core while this process imports the catalog and counts the period's
    records, which must come first to decide how many workers to start. A server started
    and not used costs that import on an otherwise idle core, and nothing else."""
    _context()
    forkserver.ensure_running()


def _init_worker(archive_dir: str) -> None:
    from edoc.services.archive import Archive
    from edoc.services.verification import Verifier

    global _worker, _open_error  # one archive and one cache of checkpoint verdicts each
    try:
        archive = Archive.open(archive_dir)
        _worker = Verifier(archive, batch=True, readers=_readers(archive))
    except EdocError as exc:
        # Raised here, it would break the pool and be lost (BrokenProcessPool); raised from
        # the chunk, it reaches the caller as itself (ARCHIVE_NOT_FOUND, …).
        _open_error = exc


def _verify_chunk(record_ids: list[str], render: Render[T]) -> tuple[tuple[Status, ...], T]:
    if _open_error is not None:
        raise _open_error
    assert _worker is not None
    reports = _worker.verify_batch(record_ids)
    return tuple(r.status for r in reports), render(reports)


def as_reports(reports: list[RecordReport]) -> list[RecordReport]:
    """The reports themselves (``verify_stream``, the CLI's text output)."""
    return reports


def reports_json(reports: list[RecordReport]) -> str:
    """The reports as JSON texts joined by commas: the members of the period report's
    ``reports`` array, made where they were verified."""
    return ",".join(json.dumps(r.as_dict(), ensure_ascii=False) for r in reports)


def csv_cells(reports: list[RecordReport]) -> list[list[str | int]]:
    """One row per report: record, version, status, then per check in ``CHECK_NAMES`` the
    codes that did not pass, ``OK``, or empty when the check did not run."""
    rows: list[list[str | int]] = []
    for rep in reports:
        cells: list[str | int] = [rep.record_id, rep.version, rep.status.value]
        for name in CHECK_NAMES:
            mine = [c for c in rep.checks if c.name == name]
            bad = [c.code for c in mine if c.status is not Status.PASS]
            cells.append(" ".join(bad) if bad else ("OK" if mine else ""))
        rows.append(cells)
    return rows


def verify_stream(archive: Archive, record_ids: Iterator[str], *, workers: int,
                  batch: bool = True) -> Iterator[RecordReport]:
    """Reports for every version of every record, in order (``verify_chunks``)."""
    for _statuses, reports in verify_chunks(archive, record_ids, workers=workers,
                                            render=as_reports, batch=batch):
        yield from reports


def verify_chunks(archive: Archive, record_ids: Iterator[str], *, workers: int,
                  render: Render[T], batch: bool = True
                  ) -> Iterator[tuple[tuple[Status, ...], T]]:
    """Every version of every record verified, in order, a chunk at a time: for each
    chunk the status of each of its versions and what ``render`` made of its reports.
    Memory is bounded: at most ``2 × workers`` chunks of ids are in flight, and nothing
    is collected.

    ``workers`` is how many processes verify: 1 verifies in this process; more start a
    pool of worker processes from a fork server, each verifying whole chunks and
    rendering them itself: the reports leave a worker as text, not as objects this
    process unpickles and serialises again (on two cores that work took CPU from the
    workers; BENCHMARKS.md, 2026-12-07 20:45). Each process reads ahead on threads where
    the store's reads wait on the network (``_readers``). On the local store, two
    processes gave 3,570–3,730 versions/s over 10,000 records, one 2,850–3,000, and one
    with reader threads 2,100–2,300 (the threads contended for the interpreter lock)."""
    if workers <= 1:
        from edoc.services.verification import Verifier

        verifier = Verifier(archive, batch=batch, readers=_readers(archive))
        try:
            for chunk in chunks(record_ids, CHUNK_IDS):
                reports = verifier.verify_batch(chunk)
                yield tuple(r.status for r in reports), render(reports)
        finally:
            verifier.close()
        return
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=_context(),
                                 initializer=_init_worker,
                                 initargs=(str(archive.cfg.dir),)) as pool:
            pending: deque[Future[tuple[tuple[Status, ...], T]]] = deque()
            for chunk in chunks(record_ids, CHUNK_IDS):
                pending.append(pool.submit(_verify_chunk, chunk, render))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
    except BrokenProcessPool:
        # A worker killed (out of memory, kill -9): the reports so far stand, the rest of
        # the period is unverified — said as an error, never as a pass.
        raise EdocError("a verifying worker process died; the period is not fully verified",
                        code="VERIFY_WORKER_DIED",
                        hint="run the same command again (--workers 1 verifies in one "
                             "process)") from None
