"""What one job does on a worker: take a staged document, check it, ingest it.

A job never re-implements ingest: it writes the staged bytes to a scratch file named as the
original and calls ``Ingestor.prepare`` and ``Ingestor.store`` from ``edoc.services.ingest`` —
the same readability, metadata, deadline and retention checks and the same crash-safe commit
protocol (``edoc.services.commit``) as ``edoc ingest``.

Why a retry can never store a document twice or lose it: a job is retried only when its
attempt did not record success. If that attempt died after the commit protocol catalogued the
record, the retry finds the content's SHA-256 in the catalog and ends as ``exists`` with that
record. If it died before, its intent is recovered (finished or dropped) by
``recover_intents`` and the retry stores the content; a content still reserved by a live
writer is retried later, never reported as stored.

Failures are sorted once, here: a refusal (``InputError``, ``ConfigError``: a scan below the
profile's dpi, a missing search field, corrupted staged bytes) fails the job at once with its
code; anything that may pass on a second try (store, TSA, seal or database unreachable, a
record being changed by another run) raises ``TransientFailure``, which the task's retry
strategy (``edoc.queue.app.RETRY``) retries with backoff.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

from edoc import clock as edoc_clock
from edoc.catalog.coordination import coordination_for
from edoc.clock import utc_text
from edoc.errors import ConfigError, DuplicateContent, EdocError, InputError, NotFound
from edoc.queue import staging
from edoc.services.archive import Archive
from edoc.services.checkpoint import flush_ledger_objects, make_checkpoint
from edoc.services.ingest import Ingestor, IngestRequest, recover_intents

log = logging.getLogger(__name__)

#: Exceptions from these libraries are the servers going away (connection reset, failover,
#: timeouts), not the document: worth another attempt. Named by module so that this package
#: needs neither SQLAlchemy nor boto3 (each stays in its own package).
_TRANSIENT_MODULES = ("sqlalchemy", "psycopg", "botocore", "boto3", "urllib3", "requests",
                      "s3transfer", "procrastinate")


class TransientFailure(Exception):
    """This attempt failed for a reason that may pass: retry the job later."""


class JobRefused(Exception):
    """The document is refused (its code and reason are recorded): fail the job, no retry."""


@dataclass
class WorkerContext:
    """What the jobs of one worker process share: the archive and a scratch directory."""

    archive: Archive
    ingestor: Ingestor
    scratch: Path


_context: WorkerContext | None = None
_context_lock = threading.Lock()


def open_context(archive: Archive) -> WorkerContext:
    """Make ``archive`` the one this process's jobs ingest into (ready to sign)."""
    global _context
    archive.notary.ready_to_sign()
    for line in recover_intents(archive):  # what a killed worker of this host left
        log.info("recovered: %s", line)
    scratch = Path(tempfile.mkdtemp(prefix="edoc-worker-"))
    with _context_lock:
        _context = WorkerContext(archive, Ingestor(archive), scratch)
        return _context


def close_context() -> None:
    global _context
    with _context_lock:
        ctx, _context = _context, None
    if ctx is not None:
        shutil.rmtree(ctx.scratch, ignore_errors=True)


def _require_context() -> WorkerContext:
    if _context is None:
        raise ConfigError("no archive is open in this worker", code="WORKER_NOT_READY")
    return _context


def is_transient(exc: BaseException) -> bool:
    """Whether another attempt may succeed where ``exc`` ended this one."""
    if isinstance(exc, (InputError, ConfigError, NotFound)):
        return False
    if isinstance(exc, (EdocError, OSError, TimeoutError)):
        return True  # storage, TSA, seal, catalog: servers and disks, not the document
    return type(exc).__module__.split(".", 1)[0] in _TRANSIENT_MODULES


def request_fields(req: IngestRequest) -> dict[str, Any]:
    """What travels with a staged document: the request but for its local path."""
    out: dict[str, Any] = {}
    for f in fields(IngestRequest):
        if f.name in ("path", "rejection"):
            continue
        value = getattr(req, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def _request(raw: dict[str, Any], path: Path) -> IngestRequest:
    known = {f.name for f in fields(IngestRequest)} - {"path", "rejection"}
    values: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v)
                              for k, v in raw.items() if k in known}
    return IngestRequest(path=str(path), **values)


def _record(url: str, item_id: int, state: str, *, record_id: str | None = None,
            error: dict[str, str | None] | None = None) -> None:
    with staging.connect(url) as conn:
        staging.finish(conn, item_id, state, record_id=record_id, error=error)


def _refuse(url: str, item_id: int, exc: EdocError) -> JobRefused:
    """The refusal to raise, its reason recorded first; when the reason cannot be recorded
    (the queue database went away) the job is tried again instead of failing silently."""
    try:
        _record(url, item_id, "failed", error=exc.as_dict())
    except Exception as lost:
        if is_transient(lost):
            raise TransientFailure(f"refused ({exc.code}), but the reason could not be "
                                   f"recorded: {type(lost).__name__}") from lost
        raise
    return JobRefused(str(exc))


def _note_attempt(url: str, item_id: int, exc: BaseException, attempt: int) -> None:
    """Keep the latest transient reason on the row: if the retries run out, ``edoc jobs``
    shows why. Best effort: the database may be the thing that is down."""
    err = exc.as_dict() if isinstance(exc, EdocError) else {
        "code": "TRANSIENT_ERROR", "message": f"{type(exc).__name__}: "
        f"{staging._first_line(exc)}", "hint": None}
    err["message"] = f"attempt {attempt + 1}: {err['message']}"
    try:
        _record(url, item_id, "retrying", error=err)
    except Exception:  # the retry itself is what matters
        log.debug("could not note the failed attempt of item %d", item_id, exc_info=True)


def _retire_if_orphaned_here(archive: Archive, sha256: str) -> None:
    """An intent for ``sha256`` held by this very process, after this job's own attempt
    failed: the commit failed and so did dropping its intent (the database went away
    between the two). This long-lived process would look alive to every repair forever, so
    it gives up its writer token: the intent is then repaired as a dead writer's (finished
    if its objects are stored, dropped if not) and the next attempt stores or finds it.
    Other jobs of this process still committing under the old token are safe: a repair that
    takes one makes its cataloguing fail (``RECORD_CHANGED``), and that job is retried."""
    coordination = coordination_for(archive.catalog, archive.cfg.dir)
    mine = coordination.writer_token()
    if any(p.owner == mine and p.intent.row.get("content_sha256") == sha256
           for p in archive.catalog.pending_intents()):
        log.info("retiring writer %s: it holds an intent no job of it is writing", mine)
        coordination.retire_writer()


def ingest_document(url: str, item_id: int, *, attempt: int = 0) -> dict[str, Any]:
    """Run one ingest job; returns its outcome (``state``, ``record_id``)."""
    ctx = _require_context()
    try:
        with staging.connect(url) as conn:
            item = staging.load(conn, item_id)
    except Exception as exc:
        if is_transient(exc):
            raise TransientFailure(str(exc)) from exc
        raise
    if item is None:
        raise JobRefused(f"staged item {item_id} is gone (removed from the queue)")
    if item.state in ("stored", "exists"):
        return {"state": item.state}  # an earlier attempt finished and recorded it
    if item.content is None:
        raise _refuse(url, item_id, InputError(
            f"{item.name}: its staged bytes are gone", code="STAGED_CONTENT_MISSING"))
    # The bytes as enqueued, or nothing: a row damaged in transit is refused, not stored.
    if hashlib.sha256(item.content).hexdigest() != item.sha256 or len(item.content) != item.size:
        raise _refuse(url, item_id, InputError(
            f"{item.name}: the staged copy does not match the SHA-256 taken at enqueue",
            code="STAGED_CONTENT_CORRUPT", hint="enqueue the file again"))
    workdir = Path(tempfile.mkdtemp(prefix=f"item-{item_id}-", dir=ctx.scratch))
    try:
        path = workdir / Path(item.name).name
        path.write_bytes(item.content)
        req = _request(item.request, path)
        try:
            result = ctx.ingestor.store(ctx.ingestor.prepare(req))
            ctx.ingestor.flush_texts()
        except DuplicateContent as exc:
            existing = ctx.archive.catalog.find_by_sha(item.sha256)
            if existing is None:
                # Reserved by an intent, not yet a record: its writer may be alive (another
                # worker) or dead (this job's killed attempt). Recover the dead, try later.
                _retire_if_orphaned_here(ctx.archive, item.sha256)
                for line in recover_intents(ctx.archive):
                    log.info("recovered: %s", line)
                _note_attempt(url, item_id, exc, attempt)
                raise TransientFailure(str(exc)) from exc
            _record(url, item_id, "exists", record_id=existing)
            return {"state": "exists", "record_id": existing}
        except EdocError as exc:
            if is_transient(exc):
                _note_attempt(url, item_id, exc, attempt)
                raise TransientFailure(str(exc)) from exc
            raise _refuse(url, item_id, exc) from None
        except Exception as exc:
            if is_transient(exc):
                _note_attempt(url, item_id, exc, attempt)
                raise TransientFailure(f"{type(exc).__name__}: {exc}") from exc
            log.debug("internal error on item %d", item_id, exc_info=True)
            raise _refuse(url, item_id, EdocError(
                f"internal error ({type(exc).__name__}); see the worker's debug log",
                code="INTERNAL_ERROR")) from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    try:
        _record(url, item_id, "stored", record_id=result.record_id)
    except Exception as exc:
        # The record is stored; the retry finds it by its SHA-256 and records ``exists``.
        raise TransientFailure(f"stored as {result.record_id}, not yet recorded: {exc}"
                               ) from exc
    return {"state": "stored", "record_id": result.record_id}


def checkpoint() -> dict[str, Any] | None:
    """Write pending ledger leaves and checkpoint the tree head (``edoc.checkpoint`` job)."""
    a = _require_context().archive
    far = edoc_clock.now() + timedelta(days=1)
    try:
        flush_ledger_objects(a.catalog, a.store, far)
        cp = make_checkpoint(a.catalog, a.store, a.notary, min_retain=far)
    except Exception as exc:
        if is_transient(exc):
            raise TransientFailure(str(exc)) from exc
        raise
    if cp is None:
        return None
    return {"tree_size": cp.tree_size, "root_hash": cp.root_hash,
            "gen_time": utc_text(cp.gen_time)}
