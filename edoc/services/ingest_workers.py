"""One ingest batch over worker processes (``edoc ingest --processes N``; default 1).

Why processes: a file's ingest is mostly the interpreter's work (XML, JSON, SQLAlchemy,
botocore), so the threads of one process share one interpreter lock and one process
uses ~1.2–1.4 cores however many files are in flight. Worker processes are how one host
uses more cores than that. On the two cores edoc is measured on they buy little, because
one process already keeps both busy together with the kernel's fsyncs or SeaweedFS:
2,000 e-invoices 1.0–1.5× (mean 1.17×), scan images on the local store and on S3 0.9–1.1×
(BENCHMARKS.md, 2026-12-07 10:00) — hence opt-in, not the default.

What a worker is: a process forked from a fork server, never from this process (workers
must not inherit its SQLite connections: https://www.sqlite.org/howtocorrupt.html §2.6),
with the archive opened from its directory and an ``Ingestor`` of its own. Each worker is a
writer of its own (its lock, ``edoc.catalog.coordination``), so the commit protocol and its
recovery hold per worker exactly as between two ``edoc ingest`` runs at once.

What the batch keeps from a run in one process:

- **Order.** Results come back in request order; at most ``AHEAD × CHUNK × processes`` files
  are taken ahead, so a 100,000-row manifest is never all in memory.
- **Duplicates.** Every file goes to the worker its SHA-256 picks, so two copies of one
  file in a batch meet in one worker and the second is a duplicate of the first, as when
  sequential. The business keys of the run (``DUPLICATE_SUSPECT``) are one table served
  to all workers by a manager process (``edoc.services.duplicates.RunKeys``), so twins
  stored by two workers still meet.
- **A worker that dies** (killed, out of memory): the files it held are reported
  ``WORKER_DIED`` and the batch goes on with a new worker. Its half-written version is
  the commit protocol's to settle: its lock is gone, so the run's own recovery (before the
  closing checkpoint) finishes or drops it, and ``--skip-existing`` makes a re-run safe.
- **A worker that cannot open the archive** (its catalog gone, its store unreachable):
  each of its files is reported with that error, not as a dead worker.
- **Ctrl-C.** Workers ignore SIGINT; the parent cancels what has not started and waits
  for what has, so no file is left half-stored by the interruption.
- **The closing steps** (pending ledger objects, the checkpoint) stay with the caller's
  run, once, after every worker is done.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import stat
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.managers import BaseManager
from pathlib import Path

from edoc.errors import EdocError
from edoc.evidence.hashing import hash_file
from edoc.services.archive import Archive
from edoc.services.duplicates import RunKeys
from edoc.services.ingest import Ingestor, IngestRequest, IngestResult, failed_result

#: Files a worker takes at a time: enough to keep it busy between two round trips to this
#: process, few enough that the results of a small batch are not held back.
CHUNK = 8
#: Chunks each worker may have queued or in hand: with fewer, a worker whose files came
#: quickly sat idle while this process waited, in request order, on the other's.
AHEAD = 6
_ingestor: Ingestor | None = None
#: why this worker could not open the archive (each of its files is reported with it)
_open_error: EdocError | None = None


class _KeysManager(BaseManager):
    """Serves one ``RunKeys`` to every worker of a batch."""


_KeysManager.register("RunKeys", RunKeys)


def start_fork_server() -> multiprocessing.context.ForkServerContext:
    """The fork server workers are forked from, started (once per interpreter) without
    waiting for it: what every worker imports is imported there once, while this process
    goes on with its own start (a worker then starts in milliseconds, not ~0.4 s). The
    seal's imports (pyHanko) are left to a worker that seals per record."""
    from multiprocessing import forkserver

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])  # with it, edoc.services.ingest
    forkserver.ensure_running()
    return ctx


def _start_worker(archive_dir: str, cwd: str, env: Mapping[str, str], jobs: int,
                  skip_existing: bool, keys: RunKeys) -> None:
    """Initializer of a worker process: this run's environment and directory (the fork
    server was started earlier, perhaps by another run), the archive, one ``Ingestor``."""
    global _ingestor, _open_error
    # The parent decides when to stop: a Ctrl-C must not interrupt a commit in a worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.clear()
    os.environ.update(env)  # the passphrase and S3 credentials live in the environment
    os.chdir(cwd)  # request paths may be relative to the caller's directory
    try:
        _ingestor = Ingestor(Archive.open(archive_dir), skip_existing=skip_existing,
                             jobs=jobs, keys=keys)
    except EdocError as exc:
        # Raised here, it would break the pool: every file reported WORKER_DIED, the
        # reason (a catalog gone, a store unreachable) lost. Each file says it instead.
        _open_error = exc


def _ingest_chunk(requests: list[IngestRequest]) -> list[IngestResult]:
    if _open_error is not None:
        return [failed_result(r, _open_error) for r in requests]
    assert _ingestor is not None
    return list(_ingestor.ingest_each(requests))


def _flush_worker() -> None:
    """The worker's last task: write the texts it still holds (derived data, batched)."""
    if _ingestor is not None:
        _ingestor.flush_texts()


def _route(request: IngestRequest, processes: int) -> int:
    """The worker for ``request``: picked by the file's SHA-256, so equal files share one.
    Only a regular file is read here (a FIFO or a device is never opened: it could block
    or never end); anything else goes to the first worker, whose checks report why."""
    try:
        path = Path(request.path)
        if not stat.S_ISREG(path.stat().st_mode):
            return 0
        digest = hash_file(path).sha256
    except (OSError, EdocError):
        return 0
    return int(digest[:8], 16) % processes


@dataclass
class _Chunk:
    requests: list[IngestRequest] = field(default_factory=list)
    future: Future[list[IngestResult]] | None = None


class WorkerPool:
    """The worker processes of one batch (see the module docstring)."""

    def __init__(self, ingestor: Ingestor, processes: int, jobs: int) -> None:
        self._ingestor = ingestor
        self.processes = processes
        self._jobs = max(1, jobs)
        self._ctx = start_fork_server()
        self._manager = _KeysManager(ctx=self._ctx)
        self._manager.start(signal.signal, (signal.SIGINT, signal.SIG_IGN))
        self._keys = self._manager.RunKeys()  # type: ignore[attr-defined]
        self._workers: list[ProcessPoolExecutor | None] = [None] * processes
        self._submitted: list[Future[list[IngestResult]]] = []

    def _worker(self, n: int) -> ProcessPoolExecutor:
        pool = self._workers[n]
        if pool is None:
            a = self._ingestor.archive
            pool = self._workers[n] = ProcessPoolExecutor(
                max_workers=1, mp_context=self._ctx, initializer=_start_worker,
                initargs=(str(a.cfg.dir), str(Path.cwd()), dict(os.environ), self._jobs,
                          self._ingestor.skip_existing, self._keys))
        return pool

    def _submit(self, n: int, chunk: _Chunk) -> None:
        try:
            chunk.future = self._worker(n).submit(_ingest_chunk, chunk.requests)
        except BrokenProcessPool:
            self._workers[n] = None  # a worker that died: the next chunk gets a new one
            chunk.future = self._worker(n).submit(_ingest_chunk, chunk.requests)
        self._submitted.append(chunk.future)

    def _result(self, n: int, chunk: _Chunk, pos: int) -> IngestResult:
        assert chunk.future is not None
        try:
            return chunk.future.result()[pos]
        except BrokenProcessPool:
            self._workers[n] = None
            return failed_result(chunk.requests[pos], EdocError(
                "the worker process ingesting this file died; it may have been stored",
                code="WORKER_DIED",
                hint="run the same command again with --skip-existing"))

    def run(self, requests: Iterable[IngestRequest]) -> Iterator[IngestResult]:
        """Every request's result, in request order (module docstring)."""
        open_chunks: list[_Chunk] = [_Chunk() for _ in range(self.processes)]
        pending: deque[tuple[int, _Chunk, int] | IngestResult] = deque()
        window = AHEAD * CHUNK * self.processes

        def head() -> IngestResult:
            entry = pending.popleft()
            if not isinstance(entry, tuple):
                return entry
            n, chunk, pos = entry
            if chunk.future is None:  # the head's chunk is still filling: send it now
                self._submit(n, chunk)
                open_chunks[n] = _Chunk()
            return self._result(n, chunk, pos)

        for req in requests:
            if req.rejection is not None:  # found invalid while read: nothing to send
                pending.append(failed_result(req, req.rejection))
            else:
                n = _route(req, self.processes)
                chunk = open_chunks[n]
                chunk.requests.append(req)
                pending.append((n, chunk, len(chunk.requests) - 1))
                if len(chunk.requests) == CHUNK:
                    self._submit(n, chunk)
                    open_chunks[n] = _Chunk()
            while len(pending) >= window:
                yield head()
        for n, chunk in enumerate(open_chunks):
            if chunk.requests:
                self._submit(n, chunk)
        while pending:
            yield head()

    def close(self) -> None:
        """Cancel what has not started (a consumer that stopped early, Ctrl-C), let every
        worker finish what it holds and write its batched texts, then stop them."""
        for f in self._submitted:
            f.cancel()
        flushes: list[Future[None]] = []
        for pool in self._workers:
            if pool is not None:
                with contextlib.suppress(BrokenProcessPool):
                    flushes.append(pool.submit(_flush_worker))
        for flush in flushes:
            # derived texts: `edoc catalog text` fills in what a dead worker did not write
            with contextlib.suppress(BrokenProcessPool, EdocError):
                flush.result()
        for pool in self._workers:
            if pool is not None:
                pool.shutdown(wait=True)
        self._manager.shutdown()
