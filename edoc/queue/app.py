"""The procrastinate app: its connection, its schema and the two tasks edoc runs.

* ``edoc.ingest_document`` — one per enqueued document; retried with exponential backoff on
  a transient failure (store, TSA, database unreachable: ``work.TransientFailure``), never on
  a refusal (a scan below the profile's dpi stays refused however often it is tried).
* ``edoc.checkpoint`` — seal and timestamp the tree head after ingests. Its procrastinate
  ``lock`` makes checkpoint jobs run one at a time across every worker on every host, and its
  ``queueing_lock`` keeps at most one waiting, so a burst of ingests is covered by a few
  checkpoints rather than one each (RFC 3161 stamps cost a round trip to the TSA).

The schema is applied on first use (``ensure_schema``): under a PostgreSQL advisory lock, so
workers starting together on several hosts apply it once.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import procrastinate
import procrastinate.exceptions
import psycopg
from procrastinate.schema import SchemaManager

from edoc.queue import staging, work

INGEST_TASK = "edoc.ingest_document"
CHECKPOINT_TASK = "edoc.checkpoint"
CHECKPOINT_LOCK = "edoc-checkpoint"
#: pg_advisory_lock key for applying the schema: "edocqueu" as a 64-bit integer.
_SCHEMA_LOCK = 0x65646F6371756575
#: 2, 4, 8 … 256 s between attempts (~8.5 minutes in all): rides out a database failover or
#: a restarting store; procrastinate's ``exponential_wait`` waits ``w ** (attempts + 1)``.
RETRY = procrastinate.RetryStrategy(max_attempts=9, exponential_wait=2,
                                    retry_exceptions=[work.TransientFailure])


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
        outcome = work.ingest_document(url, item, attempt=context.job.attempts)
        if outcome.get("state") == "stored":
            defer_checkpoint(app)
        return outcome

    @app.task(name=CHECKPOINT_TASK, lock=CHECKPOINT_LOCK, queueing_lock=CHECKPOINT_LOCK,
              retry=RETRY)
    def checkpoint() -> dict[str, Any] | None:
        return work.checkpoint()

    return app


def defer_checkpoint(app: procrastinate.App) -> None:
    """Ask for a checkpoint unless one is already waiting (then it covers this too)."""
    with contextlib.suppress(procrastinate.exceptions.AlreadyEnqueued):
        app.configure_task(CHECKPOINT_TASK, lock=CHECKPOINT_LOCK,
                           queueing_lock=CHECKPOINT_LOCK).defer()


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the queue database going away (restart, failover, network)."""
    return isinstance(exc, (psycopg.OperationalError, staging.QueueUnavailable,
                            procrastinate.exceptions.ConnectorException, ConnectionError,
                            OSError))
