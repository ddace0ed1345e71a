"""Documents in transit between ``edoc ingest --enqueue`` and a worker on another host.

Workers share nothing but the servers, so the bytes must travel through one. They are kept
in the queue database (``edoc_queue_items``: one row per document, ``bytea``), not in the
bucket under a staging prefix, because:

* the bucket is the write-once store: with a default Object Lock retention (COMPLIANCE mode,
  as recommended for 電子帳簿保存法 archives) every object put there is locked for years, so
  a staged copy could never be deleted after its ingest, and the store API is write-once by
  design (``edoc.storage`` has no delete of live objects);
* a row and its job are written by the same client in one batch, so a job never points at
  bytes that are not there, and ``edoc jobs`` reads the outcome (stored record, failure code
  and reason) from the same row;
* the bytes are removed (``content = NULL``) in the transaction that records the job's
  success; a failed job keeps them so that ``edoc jobs retry`` can run it again.

The SHA-256 computed when the file was read at enqueue travels with the bytes; the worker
hashes what it takes and refuses a mismatch (``STAGED_CONTENT_CORRUPT``), so a damaged row
ends as a failed job, never as a stored record. Documents are scans and invoices (KB to a
few MB); PostgreSQL keeps ``bytea`` up to 1 GB out of line (TOAST).

The SQL here is the queue's own, on the queue's own table, through psycopg (the driver
procrastinate uses); the catalog's statements stay in ``edoc.catalog``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from edoc.errors import EdocError

SCHEMA = """
CREATE TABLE IF NOT EXISTS edoc_queue_items (
    id          bigserial PRIMARY KEY,
    batch       text NOT NULL,
    name        text NOT NULL,
    sha256      text NOT NULL,
    size        bigint NOT NULL,
    request     jsonb NOT NULL,
    content     bytea,
    state       text NOT NULL DEFAULT 'queued',
    code        text,
    message     text,
    hint        text,
    record_id   text,
    job_id      bigint,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS edoc_queue_items_job ON edoc_queue_items (job_id);
"""


class QueueUnavailable(EdocError):
    """The queue database cannot be reached (a transient condition for a worker)."""

    code = "QUEUE_UNAVAILABLE"


@dataclass(frozen=True)
class Staged:
    """A document as enqueued: its bytes and what the user said about it."""

    name: str
    sha256: str
    size: int
    request: dict[str, Any]
    content: bytes


@dataclass(frozen=True)
class Item:
    id: int
    name: str
    sha256: str
    size: int
    request: dict[str, Any]
    content: bytes | None
    state: str


def connect(url: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(url, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise QueueUnavailable(f"the queue database cannot be reached ({_first_line(exc)})",
                               hint="check EDOC_QUEUE_URL / [queue] url and the server"
                               ) from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def ensure_table(conn: psycopg.Connection[Any]) -> None:
    conn.execute(SCHEMA)


def stage(conn: psycopg.Connection[Any], batch: str, docs: Iterable[Staged]) -> list[int]:
    """Insert the documents (one transaction per call); their ids in order."""
    ids: list[int] = []
    with conn.cursor() as cur:
        for d in docs:
            cur.execute(
                "INSERT INTO edoc_queue_items (batch, name, sha256, size, request, content) "
                "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (batch, d.name, d.sha256, d.size, json.dumps(d.request), d.content))
            row = cur.fetchone()
            assert row is not None
            ids.append(int(row[0]))
    return ids


def attach_jobs(conn: psycopg.Connection[Any], pairs: Sequence[tuple[int, int]]) -> None:
    with conn.cursor() as cur:
        cur.executemany("UPDATE edoc_queue_items SET job_id = %s WHERE id = %s",
                        [(job, item) for item, job in pairs])


def load(conn: psycopg.Connection[Any], item_id: int) -> Item | None:
    row = conn.execute(
        "SELECT id, name, sha256, size, request, content, state FROM edoc_queue_items "
        "WHERE id = %s", (item_id,)).fetchone()
    if row is None:
        return None
    request = row[4] if isinstance(row[4], dict) else json.loads(row[4])
    return Item(int(row[0]), str(row[1]), str(row[2]), int(row[3]), request,
                None if row[5] is None else bytes(row[5]), str(row[6]))


def finish(conn: psycopg.Connection[Any], item_id: int, state: str, *,
           record_id: str | None = None, error: dict[str, str | None] | None = None) -> None:
    """Record the outcome; a stored (or already stored) document's bytes are deleted."""
    err = error or {}
    conn.execute(
        "UPDATE edoc_queue_items SET state = %s, record_id = %s, code = %s, message = %s, "
        "hint = %s, finished_at = now(), "
        "content = CASE WHEN %s IN ('stored', 'exists') THEN NULL ELSE content END "
        "WHERE id = %s",
        (state, record_id, err.get("code"), err.get("message"), err.get("hint"), state,
         item_id))


def requeue(conn: psycopg.Connection[Any], job_ids: Sequence[int]) -> None:
    conn.execute("UPDATE edoc_queue_items SET state = 'queued', code = NULL, message = NULL, "
                 "hint = NULL, finished_at = NULL WHERE job_id = ANY(%s)", (list(job_ids),))


def outcomes(conn: psycopg.Connection[Any], job_ids: Sequence[int]
             ) -> dict[int, dict[str, Any]]:
    rows = conn.execute(
        "SELECT job_id, name, sha256, state, code, message, hint, record_id "
        "FROM edoc_queue_items WHERE job_id = ANY(%s)", (list(job_ids),)).fetchall()
    return {int(r[0]): {"file": r[1], "sha256": r[2], "state": r[3], "code": r[4],
                        "message": r[5], "hint": r[6], "record_id": r[7]} for r in rows}
