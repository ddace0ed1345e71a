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

import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Final

from edoc.errors import EdocError
from edoc.model.verdict import RecordReport

if TYPE_CHECKING:
    from edoc.services.archive import Archive
    from edoc.services.verification import Verifier

__all__ = ["CHECK_NAMES", "CHUNK_IDS", "PARALLEL_MIN_RECORDS", "chunks", "default_workers",
           "verify_stream"]

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


def _verify_chunk(record_ids: list[str]) -> list[RecordReport]:
    if _open_error is not None:
        raise _open_error
    assert _worker is not None
    return _worker.verify_batch(record_ids)


def verify_stream(archive: Archive, record_ids: Iterator[str], *, workers: int,
                  batch: bool = True) -> Iterator[RecordReport]:
    """Reports for every version of every record, in order, with bounded memory: at most
    ``2 × workers`` chunks of ids are in flight, and nothing is collected.

    ``workers`` is how many processes verify: 1 verifies in this process; more start a
    pool of worker processes from a fork server, each verifying whole chunks. Each process
    reads ahead on threads where the store's reads wait on the network (``_readers``).
    On the local store, two processes gave 3,570–3,730 versions/s over 10,000 records, one
    2,850–3,000, and one with reader threads 2,100–2,300 (the threads contended for the
    interpreter lock)."""
    if workers <= 1:
        from edoc.services.verification import Verifier

        verifier = Verifier(archive, batch=batch, readers=_readers(archive))
        try:
            yield from verifier.verify_many(record_ids)
        finally:
            verifier.close()
        return
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=_context(),
                                 initializer=_init_worker,
                                 initargs=(str(archive.cfg.dir),)) as pool:
            pending: deque[Future[list[RecordReport]]] = deque()
            for chunk in chunks(record_ids, CHUNK_IDS):
                pending.append(pool.submit(_verify_chunk, chunk))
                if len(pending) >= 2 * workers:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
    except BrokenProcessPool:
        # A worker killed (out of memory, kill -9): the reports so far stand, the rest of
        # the period is unverified — said as an error, never as a pass.
        raise EdocError("a verifying worker process died; the period is not fully verified",
                        code="VERIFY_WORKER_DIED",
                        hint="run the same command again (--workers 1 verifies in one "
                             "process)") from None
