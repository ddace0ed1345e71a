"""What the CLI calls: enqueue a batch, run a worker, count the jobs, retry failed ones.

``enqueue`` does the checks that need no worker (the profiles exist, the typed values parse,
the file is a readable non-empty regular file, its content is not already archived or twice
in the batch) and stages each document with its SHA-256 (``edoc.queue.staging``); everything
that reads the document (readability, e-invoice fields, deadline verdicts) runs in the worker,
so a refused scan is a failed job with the same code ``edoc ingest`` would print.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import procrastinate
import procrastinate.jobs
from procrastinate.types import JSONValue

from edoc import clock as edoc_clock
from edoc.errors import EdocError, InputError
from edoc.policy.values import (
    parse_amount,
    parse_date,
    parse_doc_type,
    printable_name,
    stat_regular_file,
    stored_name,
)
from edoc.queue import app as app_mod
from edoc.queue import staging, work
from edoc.queue.settings import queue_url
from edoc.services.archive import Archive
from edoc.services.checkpoint import work_pending
from edoc.services.ingest import Ingestor, IngestRequest

T = TypeVar("T")
log = logging.getLogger(__name__)
#: Rows staged (and jobs deferred) per transaction.
_CHUNK = 200
#: Seconds between a worker's heartbeats (procrastinate's default). A job whose worker sent
#: none for three of them (killed, host lost) is retried by another worker.
HEARTBEAT_S = 10.0
#: Status names as ``edoc jobs`` shows them (procrastinate's names in the keys).
STATUS_NAMES = {"todo": "queued", "doing": "running", "failed": "failed", "succeeded": "done",
                "cancelled": "cancelled", "aborted": "cancelled"}


@dataclass
class Enqueued:
    file: str
    status: str  # queued | rejected | duplicate | exists
    job_id: int | None = None
    sha256: str | None = None
    record_id: str | None = None
    error: dict[str, str | None] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "status": self.status, "job_id": self.job_id,
                "sha256": self.sha256, "record_id": self.record_id, "error": self.error}


@dataclass
class EnqueueRun:
    batch: str
    results: list[Enqueued] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status in ("queued", "exists") for r in self.results)


def _precheck(ingestor: Ingestor, req: IngestRequest) -> None:
    """The request's own values and the file's accessibility (what ingest would refuse
    before reading the document)."""
    if req.rejection is not None:
        raise req.rejection
    raw = printable_name(req.path)
    st = stat_regular_file(Path(req.path), raw, dir_hint="give the files inside it, e.g. DIR/*.pdf")
    if st.st_size == 0:
        raise InputError(f"{raw} is empty (0 bytes)", code="FILE_EMPTY")
    if not os.access(req.path, os.R_OK):
        raise InputError(f"{raw}: permission denied", code="FILE_UNREADABLE")
    for pid in req.profiles or (ingestor.archive.cfg.default_profile,):
        ingestor.archive.profiles.get(pid)
    if req.doc_type:
        parse_doc_type(req.doc_type)
    for value, flag in ((req.date, "--date"), (req.received, "--received")):
        if value:
            parse_date(value, flag)
    if req.amount not in (None, ""):
        parse_amount(req.amount, "--amount")
    if req.direction not in (None, "received", "sent"):
        raise InputError(f"--direction must be received or sent (got {req.direction!r})",
                         code="BAD_VALUE")
    ingestor.retention_inputs(req)  # rules known, dates and numbers parse


def _read(req: IngestRequest) -> tuple[bytes, str]:
    try:
        with open(req.path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise InputError(f"{printable_name(req.path)}: cannot be read ({exc.strerror})",
                         code="FILE_UNREADABLE") from None
    return data, hashlib.sha256(data).hexdigest()


def _all_or_nothing(ingestor: Ingestor, requests: Sequence[IngestRequest],
                    run: EnqueueRun) -> bool:
    """A CSV manifest is queued whole or not at all, as ``edoc ingest --manifest`` stores
    it: every row is checked first; True when all passed."""
    refused: dict[int, dict[str, str | None]] = {}
    for n, req in enumerate(requests):
        try:
            _precheck(ingestor, req)
        except EdocError as exc:
            err = exc.as_dict()
            err["message"] = (f"{req.origin}: " if req.origin else "") + (err["message"] or "")
            refused[n] = err
    if not refused:
        return True
    for n, req in enumerate(requests):
        name = stored_name(req.path)
        run.results.append(Enqueued(name, "rejected", error=refused[n]) if n in refused
                           else Enqueued(name, "not-queued", error={
                               "code": "BATCH_NOT_QUEUED",
                               "message": "valid, but not queued because other rows failed",
                               "hint": "fix the failing rows and enqueue the manifest again"}))
    return False


def enqueue(archive: Archive, requests: Sequence[IngestRequest], *,
            skip_existing: bool = False, all_or_nothing: bool = False) -> EnqueueRun:
    """Stage each valid request's document and put one ingest job on the queue for it."""
    url = queue_url(archive.cfg)
    app_mod.ensure_schema(url)
    app = app_mod.make_app(url)
    ingestor = Ingestor(archive)
    run = EnqueueRun(batch=f"{socket.gethostname()}:{os.getpid()}:"
                           f"{edoc_clock.now().isoformat(timespec='seconds')}")
    if all_or_nothing and not _all_or_nothing(ingestor, requests, run):
        return run
    in_batch: dict[str, str] = {}
    pending: list[tuple[Enqueued, staging.Staged]] = []
    with app.open():
        for req in requests:
            where = f"{req.origin}: " if req.origin else ""
            name = stored_name(req.path)
            try:
                _precheck(ingestor, req)
                data, sha = _read(req)
            except EdocError as exc:
                err = exc.as_dict()
                err["message"] = where + (err["message"] or "")
                run.results.append(Enqueued(name, "rejected", error=err))
                continue
            existing = archive.catalog.find_by_sha(sha)
            if existing or sha in in_batch:
                if existing and skip_existing:
                    run.results.append(Enqueued(name, "exists", sha256=sha,
                                                record_id=existing))
                    continue
                other = existing or f"{in_batch[sha]} in this batch"
                run.results.append(Enqueued(name, "duplicate", sha256=sha, error={
                    "code": "DUPLICATE_CONTENT",
                    "message": f"{where}{printable_name(req.path)} has the same SHA-256 as "
                               f"{other}; not queued twice", "hint": None}))
                continue
            in_batch[sha] = name
            entry = Enqueued(name, "queued", sha256=sha)
            run.results.append(entry)
            pending.append((entry, staging.Staged(Path(req.path).name, sha, len(data),
                                                  work.request_fields(req), data)))
            if len(pending) >= _CHUNK:
                _stage_chunk(url, app, run.batch, pending)
                pending = []
        if pending:
            _stage_chunk(url, app, run.batch, pending)
    return run


def _stage_chunk(url: str, app: procrastinate.App, batch: str,
                 chunk: Sequence[tuple[Enqueued, staging.Staged]]) -> None:
    """Stage the rows (committed first: a worker may take a job the moment it exists), then
    defer their jobs; if deferring fails the rows are removed again."""
    with staging.connect(url) as conn:
        item_ids = staging.stage(conn, batch, [s for _, s in chunk])
        conn.commit()
        try:
            job_ids = app.configure_task(app_mod.INGEST_TASK).batch_defer(
                *(dict[str, JSONValue](item=i) for i in item_ids))
        except Exception:
            conn.execute("DELETE FROM edoc_queue_items WHERE id = ANY(%s)", (item_ids,))
            conn.commit()
            raise
        staging.attach_jobs(conn, list(zip(item_ids, job_ids, strict=True)))
        conn.commit()
    for (entry, _), job_id in zip(chunk, job_ids, strict=True):
        entry.job_id = job_id


# -- the worker ------------------------------------------------------------------------------

@dataclass
class WorkerRun:
    restarts: int = 0
    stalled_retried: int = 0


async def _retry_stalled(app: procrastinate.App, after_s: float) -> int:
    """Jobs whose worker stopped sending heartbeats (killed, host lost) go back to the
    queue; the retry is safe (``edoc.queue.work`` docstring). A stalled checkpoint ends
    instead and a new one is asked for (``edoc.queue.app`` docstring: its retry would
    collide with the checkpoint waiting behind it)."""
    stalled = list(await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=after_s))
    for job in stalled:
        # Another worker may have retried or ended it first: then this one fails, harmlessly.
        if job.task_name == app_mod.CHECKPOINT_TASK:
            log.info("ending checkpoint job %s of a stalled worker; a new one is queued",
                     job.id)
            with contextlib.suppress(Exception):
                await app.job_manager.finish_job(job, status=procrastinate.jobs.Status.FAILED,
                                                 delete_job=False)
            with contextlib.suppress(Exception):
                await app_mod.defer_checkpoint_async(app)
            continue
        log.info("retrying job %s of a stalled worker", job.id)
        with contextlib.suppress(Exception):
            await app.job_manager.retry_job(job)
    return len(stalled)


def _open_counts(url: str) -> int:
    """Jobs still to do: waiting (also those scheduled later, for a retry) or running."""
    with staging.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM procrastinate_jobs "
                           "WHERE status IN ('todo', 'doing')").fetchone()
    return int(row[0]) if row else 0


#: How often a starting worker tries to reach the catalog (with backoff up to 10 s: about
#: two minutes) before it gives up with the database's error.
STARTUP_ATTEMPTS = 15


def when_reachable(attempt: Callable[[], T], what: str = "catalog") -> T:
    """``attempt()``, tried again with backoff (1 s doubling to 10 s, ``STARTUP_ATTEMPTS``
    times) while it fails with a transient error (``work.is_transient``): a worker started
    — by systemd, or after its host came back — while the database fails over waits for
    it instead of exiting. A configuration error ends it at once; the last error is
    raised when the attempts run out."""
    backoff = 1.0
    for tried in range(1, STARTUP_ATTEMPTS + 1):
        try:
            return attempt()
        except Exception as exc:
            if tried == STARTUP_ATTEMPTS or not work.is_transient(exc):
                raise
            # A warning: the operator watching a worker that does nothing sees why.
            # The message names the server (its URL without the password) and the
            # driver's reason; EdocError messages never hold document content.
            log.warning("%s not reachable at start (%s); retrying in %.0f s "
                        "(attempt %d of %d)", what, exc if isinstance(exc, EdocError) else
                        type(exc).__name__, backoff, tried, STARTUP_ATTEMPTS)
            time.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
    raise AssertionError("unreachable")  # the loop returns or raises


def run_worker(archive: Archive, *, concurrency: int = 1, until_idle: bool = False,
               name: str | None = None, heartbeat_s: float = HEARTBEAT_S) -> WorkerRun:
    """Process jobs until stopped (SIGTERM, SIGINT) or, with ``until_idle``, until no job is
    waiting or running anywhere. The queue database going away (restart, failover) does not
    end the worker: it reconnects with backoff."""
    url = queue_url(archive.cfg)
    out = WorkerRun()
    # A server restarting under the schema check ends its statement, not only the connect.
    when_reachable(lambda: app_mod.ensure_schema(url), "queue")
    app = app_mod.make_app(url)
    # Opening the context repairs what dead writers left (recover_intents), through the
    # catalog: a worker (re)started during a database failover waits for it, as above,
    # instead of ending with an internal error.
    when_reachable(lambda: work.open_context(archive))
    stalled_s = 3 * heartbeat_s
    #: Set by SIGTERM/SIGINT; outlives each event loop (one per connection attempt).
    stop = threading.Event()
    worker_name = name or f"{socket.gethostname()}:{os.getpid()}"

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()

        def on_signal() -> None:
            stop.set()
            stopping.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        if stop.is_set():
            return
        async with app.open_async():
            out.stalled_retried += await _retry_stalled(app, stalled_s)
            task = asyncio.ensure_future(app.run_worker_async(
                concurrency=concurrency, wait=not until_idle, name=worker_name,
                install_signal_handlers=False, delete_jobs="never",
                update_heartbeat_interval=heartbeat_s, stalled_worker_timeout=stalled_s))
            stopper = asyncio.ensure_future(stopping.wait())
            watcher = asyncio.ensure_future(watch_stalled())
            done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if task not in done:
                task.cancel()  # procrastinate finishes the running jobs, then returns
            with contextlib.suppress(asyncio.CancelledError):
                await task
            stopper.cancel()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def watch_stalled() -> None:
        # While this worker runs, the jobs of workers that died elsewhere go back too, and
        # a tree head left without a checkpoint (asking for one failed: a restart) gets one.
        while True:
            await asyncio.sleep(stalled_s)
            try:
                out.stalled_retried += await _retry_stalled(app, stalled_s)
                if await asyncio.to_thread(work_pending, archive.catalog):
                    await app_mod.defer_checkpoint_async(app)
            except Exception as exc:  # the next round tries again
                log.debug("stalled-job check failed: %s", type(exc).__name__)

    backoff = 1.0
    next_note = 0.0
    try:
        while not stop.is_set():
            try:
                asyncio.run(serve())
                backoff = 1.0
            except Exception as exc:
                if not app_mod.is_connection_error(exc):
                    raise
                out.restarts += 1
                log.warning("queue connection lost (%s); reconnecting in %.0f s",
                            type(exc).__name__, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if stop.is_set() or not until_idle:
                break
            try:
                if work_pending(archive.catalog):
                    with app.open():
                        if app_mod.defer_checkpoint(app):
                            continue  # queued now: run it
                    # else one waits already: scheduled later (a retry), or held back
                    # while another worker runs one
                elif (left := _open_counts(url)) == 0:
                    break
                elif time.monotonic() >= next_note:
                    log.info("waiting for %d job(s) scheduled later or running on other "
                             "workers", left)
                    next_note = time.monotonic() + 30.0
            except Exception as exc:
                if not (app_mod.is_connection_error(exc) or work.is_transient(exc)):
                    raise
            time.sleep(1.0)  # retries scheduled later, or jobs running elsewhere
    finally:
        work.close_context()
    return out


# -- status and retry ------------------------------------------------------------------------

def status(archive: Archive, *, limit: int = 100) -> dict[str, Any]:
    """Counts of ingest jobs by status, and the failed ones with their reasons."""
    url = queue_url(archive.cfg)
    app_mod.ensure_schema(url)
    counts = {"queued": 0, "running": 0, "failed": 0, "done": 0, "cancelled": 0}
    with staging.connect(url) as conn:
        for state, n in conn.execute(
                "SELECT status::text, count(*) FROM procrastinate_jobs WHERE task_name = %s "
                "GROUP BY status", (app_mod.INGEST_TASK,)).fetchall():
            counts[STATUS_NAMES.get(str(state), str(state))] += int(n)
        rows = conn.execute(
            "SELECT id, attempts FROM procrastinate_jobs WHERE task_name = %s AND "
            "status = 'failed' ORDER BY id LIMIT %s", (app_mod.INGEST_TASK, limit)).fetchall()
        reasons = staging.outcomes(conn, [int(r[0]) for r in rows])
    failed = []
    for job_id, attempts in rows:
        o = reasons.get(int(job_id), {})
        failed.append({"id": int(job_id), "attempts": int(attempts),
                       "file": o.get("file"), "sha256": o.get("sha256"),
                       "code": o.get("code") or "JOB_FAILED",
                       "message": o.get("message") or "the job failed (no reason recorded)",
                       "hint": o.get("hint")})
    return {"counts": counts, "failed": failed}


def retry(archive: Archive, job_ids: Sequence[int] = (), *, all_failed: bool = False
          ) -> list[int]:
    """Put failed ingest jobs back on the queue (their staged bytes were kept)."""
    url = queue_url(archive.cfg)
    app_mod.ensure_schema(url)
    app = app_mod.make_app(url)
    with staging.connect(url) as conn:
        if all_failed:
            ids = [int(r[0]) for r in conn.execute(
                "SELECT id FROM procrastinate_jobs WHERE task_name = %s AND "
                "status = 'failed' ORDER BY id", (app_mod.INGEST_TASK,)).fetchall()]
        else:
            found = {int(r[0]): str(r[1]) for r in conn.execute(
                "SELECT id, status::text FROM procrastinate_jobs WHERE id = ANY(%s) AND "
                "task_name = %s", (list(job_ids), app_mod.INGEST_TASK)).fetchall()}
            for jid in job_ids:
                if jid not in found:
                    raise InputError(f"job {jid} is not an ingest job of this queue",
                                     code="JOB_NOT_FOUND", hint="see 'edoc jobs'")
                if found[jid] != "failed":
                    raise InputError(f"job {jid} is {STATUS_NAMES.get(found[jid])}, not "
                                     "failed; only failed jobs are retried",
                                     code="JOB_NOT_FAILED")
            ids = list(job_ids)
        staging.requeue(conn, ids)
        conn.commit()
    with app.open():
        for jid in ids:
            app.job_manager.retry_job_by_id(jid, retry_at=edoc_clock.now())
    return ids
