"""The procrastinate app: its connection, its schema and the two tasks edoc runs.

* ``edoc.ingest_document`` — one per enqueued document; retried with exponential backoff on
  a transient failure (store, TSA, database unreachable: ``work.TransientFailure``), never on
  a refusal (a scan below the profile's dpi stays refused however often it is tried).
* ``edoc.checkpoint`` — seal and timestamp the tree head after ingests. Its procrastinate
  ``lock`` makes checkpoint jobs run one at a time across every worker on every host, and its
  ``queueing_lock`` keeps at most one waiting, so a burst of ingests is covered by a few
  checkpoints rather than one each (RFC 3161 stamps cost a round trip to the TSA). A failed
  or stalled checkpoint is never put back on the queue (procrastinate's retry would collide
  with the waiting one's ``queueing_lock`` and leave it running for ever, holding the
  ``lock`` against every later checkpoint): it ends, and a new one is queued, later for a
  transient failure — a waiting one covers it just as well.

Recording a job's outcome rides out a database restart (``_riding_out_restarts``): a job
whose outcome is lost stays "running" under a live worker, and a running checkpoint holds
the checkpoint lock.

The schema is applied on first use (``ensure_schema``): under a PostgreSQL advisory lock, so
workers starting together on several hosts apply it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import procrastinate
import procrastinate.exceptions
import procrastinate.jobs
import psycopg
import psycopg_pool
from procrastinate.schema import SchemaManager
from procrastinate.types import JSONValue

from edoc.errors import EdocError
from edoc.queue import staging, work

INGEST_TASK = "edoc.ingest_document"
CHECKPOINT_TASK = "edoc.checkpoint"
CHECKPOINT_LOCK = "edoc-checkpoint"
#: pg_advisory_lock key for applying the schema: "edocqueu" as a 64-bit integer.
_SCHEMA_LOCK = 0x65646F6371756575
#: 2, 4, 8 … 256 s between attempts (~8.5 minutes in all): rides out a database failover or
#: a restarting store; procrastinate's ``exponential_wait`` waits ``w ** (attempts + 1)``.
ATTEMPTS = 9
RETRY = procrastinate.RetryStrategy(max_attempts=ATTEMPTS, exponential_wait=2,
                                    retry_exceptions=[work.TransientFailure])
#: How long recording a job's outcome is retried while the queue database is unreachable
#: (a restart or failover takes seconds; a server down for longer is the worker loop's to
#: wait for).
PERSIST_WITHIN_S = 120.0

R = TypeVar("R")
log = logging.getLogger(__name__)


def ensure_schema(url: str) -> None:
    """procrastinate's tables and edoc's staging table, created if absent (idempotent)."""
    with staging.connect(url) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
        try:
            found = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
            if found is None or found[0] is None:
                conn.execute(SchemaManager.get_schema())
            staging.ensure_table(conn)
            conn.commit()
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))
            conn.commit()


@functools.lru_cache(maxsize=4)
def make_app(url: str) -> procrastinate.App:
    """The app for the queue at ``url``, with edoc's tasks registered on it."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=url, kwargs={"connect_timeout": 10}))

    @app.task(name=INGEST_TASK, retry=RETRY, pass_context=True)
    def ingest_document(context: procrastinate.JobContext, item: int) -> dict[str, Any]:
        try:
            outcome = work.ingest_document(url, item, attempt=context.job.attempts)
        except (work.TransientFailure, work.JobRefused):
            raise
        except Exception as exc:
            # Raised on the way to a verdict (a lookup or a repair after a duplicate, the
            # database going away): anything that may pass is tried again, never a job
            # failed with no reason recorded.
            if work.is_transient(exc) or lost_connection(exc):
                log.warning("job %s: %s; tried again later", context.job.id,
                            exc if isinstance(exc, EdocError) else type(exc).__name__)
                raise work.TransientFailure(str(exc)) from exc
            raise
        if outcome.get("state") == "stored":
            try:
                defer_checkpoint(app)
            except Exception as exc:
                # The document is stored: the job succeeded. Its checkpoint is asked for
                # again by the next stored document, or by a worker going idle with the
                # tree head not checkpointed (``work_pending``).
                log.warning("job %s: stored; asking for its checkpoint failed (%s), left "
                            "for later", context.job.id, type(exc).__name__)
        return outcome

    # No retry strategy: a checkpoint is never put back (module docstring).
    @app.task(name=CHECKPOINT_TASK, lock=CHECKPOINT_LOCK, queueing_lock=CHECKPOINT_LOCK)
    def checkpoint(attempt: int = 0) -> dict[str, Any] | None:
        try:
            return work.checkpoint()
        except work.TransientFailure as exc:
            if attempt + 1 < ATTEMPTS:
                wait = retry_wait(attempt)
                log.warning("checkpoint failed (%s); another is queued in %d s", exc, wait)
                defer_checkpoint(app, attempt=attempt + 1, in_s=wait)
            raise

    for name in ("finish_job", "retry_job"):
        setattr(app.job_manager, name,
                _riding_out_restarts(app, getattr(app.job_manager, name)))
    return app


def retry_wait(attempt: int) -> int:
    """Seconds before attempt ``attempt + 1``, as ``RETRY`` waits for an ingest job."""
    return int(RETRY.exponential_wait ** (attempt + 1))


def _checkpoint_job(app: procrastinate.App, in_s: int) -> procrastinate.jobs.JobDeferrer:
    return app.configure_task(CHECKPOINT_TASK, lock=CHECKPOINT_LOCK,
                              queueing_lock=CHECKPOINT_LOCK,
                              schedule_in={"seconds": in_s} if in_s else None)


def defer_checkpoint(app: procrastinate.App, *, attempt: int = 0, in_s: int = 0) -> bool:
    """Ask for a checkpoint unless one is already waiting (then it covers this too); True
    when this call queued one."""
    try:
        _checkpoint_job(app, in_s).defer(**_attempt_args(attempt))
    except procrastinate.exceptions.AlreadyEnqueued:
        return False
    return True


async def defer_checkpoint_async(app: procrastinate.App) -> bool:
    """``defer_checkpoint`` from a coroutine (the worker's event loop)."""
    try:
        await _checkpoint_job(app, 0).defer_async()
    except procrastinate.exceptions.AlreadyEnqueued:
        return False
    return True


def _attempt_args(attempt: int) -> dict[str, JSONValue]:
    return {"attempt": attempt} if attempt else {}


def lost_connection(exc: BaseException) -> bool:
    """Whether ``exc`` (or what procrastinate wrapped) is the connection to the database
    failing, not a statement the server refused."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (psycopg.OperationalError, psycopg_pool.PoolTimeout,
                             ConnectionError)):
            return True
        seen = seen.__cause__
    return False


def _riding_out_restarts(app: procrastinate.App, record: Callable[..., Awaitable[R]]
                         ) -> Callable[..., Awaitable[R]]:
    """``record`` (finish or retry a job), tried again while the connection is lost.

    procrastinate records a job's outcome once; when that fails the job stays "running"
    under a worker whose heartbeat goes on, so no other worker takes it back while this one
    lives. The pool's idle connections all died with the server: they are checked (and
    replaced) before the next attempt."""

    @functools.wraps(record)
    async def attempt(*args: Any, **kwargs: Any) -> R:
        deadline = time.monotonic() + PERSIST_WITHIN_S
        backoff = 0.5
        while True:
            try:
                return await record(*args, **kwargs)
            except Exception as exc:
                if not lost_connection(exc) or time.monotonic() + backoff > deadline:
                    raise
                log.warning("queue connection lost while recording a job's outcome (%s); "
                            "trying again in %.1f s", type(exc).__name__, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
            with contextlib.suppress(Exception):  # the next attempt reports what is wrong
                await app.connector.pool.check()  # type: ignore[attr-defined]

    return attempt


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the queue database going away (restart, failover, network)."""
    return isinstance(exc, (psycopg.OperationalError, staging.QueueUnavailable,
                            procrastinate.exceptions.ConnectorException, ConnectionError,
                            OSError))
