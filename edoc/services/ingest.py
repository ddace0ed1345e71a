"""Ingest: from a file on disk to a sealed, logged, write-once record.

The commit protocol (what is written in which order, and what a restart finds):

1. Everything is checked before anything is stored: the file (exists, regular, non-empty,
   readable), the readability gate (見読性), metadata and required search fields (検索性),
   the input deadline, retention, and duplicates. Then one catalog transaction records the
   *intent* to write the version — manifest bytes, ledger entry, catalog row, writer — after
   checking again, under the write lock, that no record holds or is being given the same
   content (two runs racing on one file both pass the first check) and, for a new version,
   that the record is still at the version it builds on.
2. The content, then the manifest's seal (when the profile asks), then the manifest are
   written write-once under ``records/<id>/v<n>/``. The store checks the SHA-256 it
   received. The manifest is last: a stored manifest means the whole version is stored.
3. One catalog transaction inserts the record, its version and its ledger leaf, and deletes
   the intent. Only now does the record exist for users (search, show, verify).
4. The ledger leaf is written to the store (``ledger/<index>.json``).
5. At the end of the run (or per record when the profile asks), a checkpoint seals and
   timestamps the tree head covering the new leaves.

What a restart finds: a writer holds a lock file in the archive directory while it lives
(``flock``: the kernel drops it when the process dies, however it dies). An intent whose
writer is dead is finished by the next ingest, correction, purge or ``edoc doctor --repair``
(``recover_intents``): if its content reached the store, the manifest is (re)written from
the intent and the version catalogued — the dead run may never have reported it, but it is
then whole and verifiable; otherwise the intent is dropped and nothing was stored. A failure
the user is told about (a full disk, say) drops the intent at once: the objects stored
before the manifest are unreferenced and no check counts them. A crash after 3 leaves a leaf
to write or a tree head to checkpoint: every later run, even one that stores nothing new,
and ``edoc doctor --repair`` write pending leaves and checkpoint.

Several files in flight (``Ingestor(jobs=N)``, ``edoc ingest --jobs``): each file follows
the protocol above on its own thread; the catalog transactions of steps 1 and 3 from all
threads are committed in groups (``edoc.catalog.group_commit``), each still durable before its
thread goes on. Two copies of one file in a batch are stored once: the second waits for
the first and is then a duplicate, as in a sequential run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from edoc import clock as edoc_clock
from edoc.catalog import (
    ACTIVE_RECORD_BY_SHA,
    DELETE_INTENT,
    INSERT_INTENT,
    INSERT_RECORD,
    INSERT_VERSION,
    INTENT_BY_SHA,
    INTENT_OWNER,
    MOVE_RECORD,
    RECORD_HEAD,
    VERSION_COLUMNS,
    Catalog,
    intents,
    stray_columns,
    utc_text,
    version_row,
)
from edoc.catalog.group_commit import committer
from edoc.errors import DuplicateContent, EdocError, InputError, ObjectExists, ProfileViolation
from edoc.evidence.ledger import (
    event_entry,
    flush_ledger_objects,
    leaf_hex,
    make_checkpoint,
    work_pending,
)
from edoc.model import canonical, ids
from edoc.model.values import (
    clean_text,
    parse_amount,
    parse_date,
    parse_doc_type,
    printable_name,
    stat_regular_file,
    stored_name,
)
from edoc.policy.profiles import Requirements, combine
from edoc.services.archive import Archive
from edoc.storage import layout

log = logging.getLogger(__name__)
JST = ZoneInfo("Asia/Tokyo")
MANIFEST_SCHEMA = "edoc.manifest/1"
_T = TypeVar("_T")
_R = TypeVar("_R")
#: One checkpoint at a time from the threads of a run (see ``commit_version``).
_CHECKPOINT_LOCK = threading.Lock()


@dataclass(frozen=True)
class IngestRequest:
    """One file and what the user said about it (raw text, validated in ``prepare``)."""

    path: str
    profiles: tuple[str, ...] = ()
    doc_type: str | None = None
    date: str | None = None
    amount: str | None = None
    counterparty: str | None = None
    ledger_ref: str | None = None
    received: str | None = None
    author: str | None = None
    paper_size: str | None = None
    retention: tuple[str, ...] = ()
    fiscal_year_end: str | None = None
    extension_months: str | None = None
    loss_year: bool = False
    tax_year: str | None = None
    period_end: str | None = None
    closing_date: str | None = None
    completed: str | None = None
    #: Where the request came from, for messages (e.g. "row 3" of a CSV manifest).
    origin: str | None = None
    #: Set when the request was already found invalid while it was read (a bad CSV row).
    rejection: EdocError | None = None


@dataclass
class IngestResult:
    file: str
    status: str  # stored | rejected | duplicate
    record_id: str | None = None
    sha256: str | None = None
    retain_until: str | None = None
    input_verdict: str | None = None
    error: dict[str, str | None] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "status": self.status, "record_id": self.record_id,
                "sha256": self.sha256, "retain_until": self.retain_until,
                "input_verdict": self.input_verdict, "error": self.error}


@dataclass
class IngestRun:
    results: list[IngestResult] = field(default_factory=list)
    checkpoint: dict[str, Any] | None = None
    #: Why the closing checkpoint could not be made (the records are stored; the next run
    #: or ``edoc doctor --repair`` checkpoints them).
    checkpoint_error: dict[str, str | None] | None = None

    @property
    def ok(self) -> bool:
        return self.checkpoint_error is None and all(
            r.status in ("stored", "exists") for r in self.results)


@dataclass(frozen=True)
class Prepared:
    request: IngestRequest
    path: Path
    size: int
    sha256: str
    media_type: str
    manifest_body: dict[str, Any]
    requirements: Requirements
    until_at: datetime
    retain_until: date


def _today_jst(now: datetime) -> date:
    return now.astimezone(JST).date()


def _open_input(raw: str) -> tuple[Path, os.stat_result]:
    path = Path(raw)
    raw = printable_name(raw)  # for messages only: names may hold newlines or odd bytes
    st = stat_regular_file(path, raw, dir_hint="give the files inside it, e.g. DIR/*.pdf")
    if st.st_size == 0:
        raise InputError(f"{raw} is empty (0 bytes)", code="FILE_EMPTY")
    if not os.access(path, os.R_OK):
        raise InputError(f"{raw}: permission denied", code="FILE_UNREADABLE")
    return path, st


def _opt_int(value: str | None, field_name: str, lo: int, hi: int) -> int | None:
    if value is None or value == "":
        return None
    try:
        n = int(str(value).strip())
    except ValueError:
        raise InputError(f"{field_name} must be a whole number (got {value!r})",
                         code="BAD_VALUE") from None
    if not lo <= n <= hi:
        raise InputError(f"{field_name} must be from {lo} to {hi} (got {n})", code="BAD_VALUE")
    return n


def _opt_date(value: str | None, field_name: str) -> date | None:
    return parse_date(value, field_name) if value else None


def default_jobs(archive: Archive) -> int:
    """Files in flight at once unless the user says otherwise: store round trips dominate
    on S3; on a local disk the CPU does, and 4 keep fsyncs overlapping without crowding a
    small machine's cores (measured on 2 cores: BENCHMARKS.md, part 1)."""
    return 8 if archive.cfg.storage.kind == "s3" else 4


class Ingestor:
    """Ingests files into one archive; holds per-run state (profiles, calendar)."""

    def __init__(self, archive: Archive, *, clock: Callable[[], datetime] | None = None,
                 skip_existing: bool = False, jobs: int = 1) -> None:
        self.archive = archive
        self.skip_existing = skip_existing
        #: Files in flight at once. Each is prepared and stored by the commit protocol on its
        #: own thread (hashing, image decoding and store round trips release the GIL); the
        #: catalog transactions serialise on the catalog's write lock as between processes.
        self.jobs = max(1, jobs)
        self._clock = clock or (lambda: edoc_clock.now())
        #: SHA-256 digests being stored by this run, so two copies of one file in a batch are
        #: stored once and the second reported as a duplicate of the first, as when
        #: sequential (not as "being stored by another run").
        self._claims: dict[str, threading.Event] = {}
        self._claims_lock = threading.Lock()

    # -- validation (nothing stored) -------------------------------------------------------
    def requirements(self, req: IngestRequest) -> tuple[Requirements, str | None]:
        """The profiles' combined rules for this request, and its normalised doc type."""
        a = self.archive
        profile_ids = req.profiles or (a.cfg.default_profile,)
        profiles = [a.profiles.get(pid) for pid in profile_ids]
        doc_type = parse_doc_type(req.doc_type) if req.doc_type else None
        for p in profiles:
            if not p.accepts_type(doc_type):
                raise ProfileViolation(
                    f"doc type {doc_type or '(none)'} is not accepted by profile {p.id} "
                    f"(accepts {', '.join(p.document_types)})", code="DOC_TYPE_NOT_ACCEPTED",
                    hint="give --doc-type with one of those")
        return combine(profiles, doc_type), doc_type

    def metadata(self, req: IngestRequest, reqs: Requirements, doc_type: str | None
                 ) -> dict[str, Any]:
        """Validated search metadata (検索性); required fields per the profiles."""
        tx_date = _opt_date(req.date, "--date")
        amount = parse_amount(req.amount, "--amount") if req.amount not in (None, "") else None
        counterparty = clean_text(req.counterparty, "--counterparty") if req.counterparty \
            else None
        ledger_ref = clean_text(req.ledger_ref, "--ledger-ref", max_len=100) if req.ledger_ref \
            else None
        author = clean_text(req.author, "--author") if req.author else None
        today = _today_jst(self._clock())
        if tx_date and tx_date > today:
            raise InputError(f"--date {tx_date} is in the future", code="BAD_DATE")
        values: dict[str, Any] = {"transaction_date": tx_date, "amount": amount,
                                  "counterparty": counterparty, "ledger_ref": ledger_ref,
                                  "doc_type": doc_type, "author": author}
        missing = [f for f in reqs.required_fields if values.get(f) is None]
        if missing:
            flags = ", ".join("--" + f.replace("transaction_", "").replace("_", "-")
                              for f in missing)
            raise ProfileViolation(
                f"{', '.join(missing)} required by {'+'.join(reqs.profiles)} "
                f"(give {flags})", code="SEARCH_FIELD_MISSING")
        return {
            "transaction_date": tx_date.isoformat() if tx_date else None,
            "amount": amount,
            "counterparty": counterparty,
            "ledger_ref": ledger_ref,
            "author": author,
        }

    def inspect_file(self, raw_path: str, reqs: Requirements, paper_size: str | None
                     ) -> tuple[Path, int, str, str, dict[str, Any]]:
        """Path, size, SHA-256, media type and readability measurements (見読性 gate)."""
        from edoc import inspection
        from edoc.policy.capture import check_capture

        path, st = _open_input(raw_path)
        try:
            with path.open("rb") as f:
                sha256 = hashlib.file_digest(f, "sha256").hexdigest()
        except OSError as exc:
            raise InputError(f"{printable_name(raw_path)}: cannot be read ({exc.strerror})",
                             code="FILE_UNREADABLE") from None
        media_type = inspection.detect_media_type(path)
        for pid in reqs.profiles:
            p = self.archive.profiles.get(pid)
            if not p.accepts_media(media_type):
                raise ProfileViolation(
                    f"{media_type} is not accepted by profile {p.id} "
                    f"(accepts {', '.join(p.media_types)})", code="MEDIA_TYPE_NOT_ACCEPTED")
        try:
            measured = inspection.inspect(path, media_type, paper_size=paper_size)
        except InputError as exc:
            # A scan profile needs measurements: no measurement, no acceptance. Otherwise
            # an image without dpi metadata is simply unmeasured, and electronic-transaction
            # data must be kept exactly as received (電帳法 第7条) even if it cannot be
            # displayed here (e.g. a password-protected PDF invoice) — the manifest says so.
            tolerated = not reqs.capture.demands_scan and (
                exc.code == "RESOLUTION_UNKNOWN" or reqs.document_class == "electronic")
            if not tolerated:
                raise
            return path, st.st_size, sha256, media_type, {
                "measured": False, "error": exc.code, "detail": exc.message}
        check_capture(measured, reqs.capture, "+".join(reqs.profiles))
        return path, st.st_size, sha256, media_type, measured.to_manifest()

    def input_deadline(self, req: IngestRequest, reqs: Requirements, tx_date: date | None
                       ) -> dict[str, Any] | None:
        """The input-deadline verdict (電帳法施行規則 第2条第6項第1号)."""
        from edoc.policy.business_days import BusinessCalendar, input_deadline, input_verdict

        received = _opt_date(req.received, "--received")
        today = _today_jst(self._clock())
        if received and received > today:
            raise InputError(f"--received {received} is in the future", code="BAD_DATE")
        if reqs.deadline.business_days is None:
            return None
        # Without --received the transaction date is taken as the receipt date: the earliest
        # plausible one, so the verdict can only err towards "late" (conservative).
        received_on = received or tx_date or today
        cfg = self.archive.cfg
        cal = BusinessCalendar(cfg.closed_days, cfg.closed_annual)
        deadline = input_deadline(received_on, business_days=reqs.deadline.business_days,
                                  cycle_months=reqs.deadline.cycle_months, calendar=cal)
        verdict = input_verdict(received_on, today, deadline)
        info: dict[str, Any] = {
            "received": received_on.isoformat(),
            "received_source": "--received" if received else (
                "transaction-date" if tx_date else "ingest-date"),
            "business_days": reqs.deadline.business_days,
            "cycle_months": reqs.deadline.cycle_months,
            "deadline": deadline.isoformat(),
            "input_date": today.isoformat(),
            "verdict": verdict,
        }
        if verdict == "late":
            if reqs.deadline.late == "reject":
                raise ProfileViolation(
                    f"input on {today} is after the deadline {deadline} "
                    f"({reqs.deadline.business_days} business days after receipt on "
                    f"{received_on}); {'+'.join(reqs.profiles)} rejects late input",
                    code="LATE_INPUT", hint="keep the paper original")
            info["flag"] = "LATE_INPUT"
        return info

    def retention_inputs(self, req: IngestRequest) -> dict[str, Any]:
        """The retention facts the user gave, validated, kept in the manifest so that a
        correction or extension can recompute retention from them later."""
        from edoc.policy import retention

        for rule in req.retention:
            if not retention.is_known_rule(rule):
                raise InputError(f"--retention {rule} is not a known rule (known: "
                                 f"{', '.join(sorted(retention.RULES))})",
                                 code="RETENTION_UNKNOWN")

        def d(value: str | None, flag: str) -> str | None:
            parsed = _opt_date(value, flag)
            return parsed.isoformat() if parsed else None

        return {
            "rules": list(dict.fromkeys(req.retention)),
            "fiscal_year_end": d(req.fiscal_year_end, "--fiscal-year-end"),
            "extension_months": _opt_int(req.extension_months, "--extension-months", 0, 12)
            or 0,
            "loss_year": req.loss_year,
            "tax_year": _opt_int(req.tax_year, "--tax-year", 1900, 2999),
            "period_end": d(req.period_end, "--period-end"),
            "closing_date": d(req.closing_date, "--closing-date"),
            "completed": d(req.completed, "--completed"),
        }

    def decide_retention(self, reqs: Requirements, inputs: dict[str, Any],
                         tx_date: str | None, ingested_at: datetime) -> Any:
        from edoc.policy import retention

        def d(key: str) -> date | None:
            v = inputs.get(key)
            return date.fromisoformat(v) if v else None

        fye, tx = d("fiscal_year_end"), date.fromisoformat(tx_date) if tx_date else None
        if fye and tx and not timedelta(0) <= fye - tx <= timedelta(days=366):
            # A fiscal year that cannot contain the transaction would start retention from
            # the wrong filing deadline (possibly a year too early): refuse, don't guess.
            raise InputError(f"--fiscal-year-end {fye} is not the end of the fiscal year "
                             f"containing the transaction date {tx}",
                             code="RETENTION_INPUT_INVALID",
                             hint="give the end of the fiscal year the transaction belongs to")

        facts = retention.RetentionFacts(
            ingested_at=ingested_at,
            transaction_date=date.fromisoformat(tx_date) if tx_date else None,
            fiscal_year_end=d("fiscal_year_end"),
            fiscal_year_end_md=self.archive.cfg.fiscal_year_end,
            extension_months=int(inputs.get("extension_months") or 0),
            loss_year=bool(inputs.get("loss_year")),
            tax_year=inputs.get("tax_year"),
            period_end=d("period_end"),
            closing_date=d("closing_date"),
            completed=d("completed"),
        )
        rules = tuple(dict.fromkeys((*reqs.retention.rules, *inputs.get("rules", ()),
                                     *self.archive.cfg.default_retention)))
        return retention.decide(rules, reqs.retention.duration, facts)

    def prepare(self, req: IngestRequest) -> Prepared:
        if req.rejection is not None:
            raise req.rejection
        a = self.archive
        reqs, doc_type = self.requirements(req)
        meta = self.metadata(req, reqs, doc_type)
        deadline_info = self.input_deadline(req, reqs, _opt_date(req.date, "--date"))
        inputs = self.retention_inputs(req)
        now = self._clock()
        decision = self.decide_retention(reqs, inputs, meta["transaction_date"], now)
        if decision.until_at <= now:
            raise InputError(f"retention already ended on {decision.retain_until}; "
                             "nothing to keep", code="RETENTION_ENDED")
        path, size, sha256, media_type, measured = self.inspect_file(req.path, reqs,
                                                                     req.paper_size)
        body: dict[str, Any] = {
            "schema": MANIFEST_SCHEMA,
            "archive_id": a.cfg.archive_id,
            "kind": "original",
            "content": {"sha256": sha256, "size": size, "media_type": media_type,
                        "original_name": stored_name(path.name)},
            "profiles": list(reqs.profiles),
            "document_class": reqs.document_class,
            "doc_type": doc_type,
            "metadata": meta,
            "input": deadline_info,
            "readability": measured,
            "retention": decision.to_manifest(),
            "retention_inputs": inputs,
            "evidence": {"checkpoint": reqs.authenticity.checkpoint,
                         "seal_manifest": reqs.authenticity.seal_manifest,
                         "tsa": a.cfg.tsa.kind,
                         "accredited": a.cfg.tsa.kind != "embedded"},
            "previous_version_sha256": None,
            "reason": None,
        }
        return Prepared(req, path, size, sha256, media_type, body, reqs,
                        decision.until_at, decision.retain_until)

    # -- storing ---------------------------------------------------------------------------
    def store(self, prep: Prepared) -> IngestResult:
        with self._claim(prep.sha256):
            existing = self.archive.catalog.find_by_sha(prep.sha256)
            if existing:
                raise _duplicate(printable_name(prep.request.path), existing)
            record_id = ids.new_record_id()
            commit_version(self.archive, record_id=record_id, version=1,
                           body=prep.manifest_body,
                           content=NewContent(prep.path, prep.size, prep.sha256),
                           until_at=prep.until_at,
                           reqs=prep.requirements, event="ingest", now=self._clock())
        verdict = (prep.manifest_body["input"] or {}).get("verdict")
        return IngestResult(stored_name(prep.request.path), "stored", record_id, prep.sha256,
                            prep.retain_until.isoformat(), verdict)

    @contextlib.contextmanager
    def _claim(self, sha256: str) -> Iterator[None]:
        """Wait while another thread of this run stores the same content, then hold it."""
        while True:
            with self._claims_lock:
                other = self._claims.get(sha256)
                if other is None:
                    mine = self._claims[sha256] = threading.Event()
                    break
            other.wait()
        try:
            yield
        finally:
            with self._claims_lock:
                del self._claims[sha256]
            mine.set()

    def run(self, requests: Iterable[IngestRequest],
            progress: Callable[[IngestResult], None] | None = None,
            validate_all_first: bool = False) -> IngestRun:
        """Ingest every request; a bad file is reported and the batch goes on. Results (and
        ``progress`` calls, on this thread) come in request order, whatever ``jobs`` is."""
        self.archive.notary.ready_to_sign()
        for line in recover_intents(self.archive):  # what a dead run left, before duplicates
            log.info("recovered: %s", line)
        run = IngestRun()

        def report(result: IngestResult) -> None:
            run.results.append(result)
            if progress:
                progress(result)

        if validate_all_first:
            prepared = list(self._in_order(self._prepare_or_fail, requests))
            if any(isinstance(p, IngestResult) for p in prepared):
                # CSV manifests are all-or-nothing at validation: report every row, store
                # none.
                for p in prepared:
                    report(p if isinstance(p, IngestResult) else IngestResult(
                        stored_name(p.request.path), "not-stored", sha256=p.sha256,
                        error={"code": "BATCH_NOT_STORED",
                               "message": "valid, but not stored because other rows failed",
                               "hint": "fix the failing rows and run the manifest again"}))
                return run
            for result in self._in_order(self._store_or_fail, prepared):
                report(result)
        else:
            for result in self._in_order(
                    lambda req: self._store_or_fail(self._prepare_or_fail(req)), requests):
                report(result)
        self._finish(run)
        return run

    def _in_order(self, work: Callable[[_T], _R], items: Iterable[_T]) -> Iterator[_R]:
        """``work`` over ``items``, up to ``jobs`` at once, results in the items' order.

        At most ``2 × jobs`` items are taken ahead, so a long batch (a CSV manifest of
        100,000 rows) is never all in memory. When the consumer stops early (Ctrl-C, a
        failing progress callback) the items not yet started are cancelled and the running
        ones finish their commit protocol before this returns.
        """
        if self.jobs == 1:
            yield from map(work, items)
            return
        pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="edoc-ingest")
        pending: deque[Future[_R]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(work, item))
                if len(pending) >= 2 * self.jobs:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _prepare_or_fail(self, req: IngestRequest) -> Prepared | IngestResult:
        try:
            return self.prepare(req)
        except EdocError as exc:
            return _failed(req, exc)
        except Exception as exc:  # a bug must not lose the rest of the batch
            log.debug("internal error preparing %s", req.path, exc_info=True)
            return _failed(req, EdocError(
                f"internal error ({type(exc).__name__}); see the debug log",
                code="INTERNAL_ERROR"))

    def _store_or_fail(self, item: Prepared | IngestResult) -> IngestResult:
        if isinstance(item, IngestResult):
            return item
        try:
            return self.store(item)
        except DuplicateContent as exc:
            if self.skip_existing:
                # Re-running a batch after a failure: what is already stored is fine.
                return IngestResult(stored_name(item.request.path), "exists",
                                    record_id=exc.record_id, sha256=item.sha256)
            return _failed(item.request, exc, status="duplicate", sha256=item.sha256)
        except EdocError as exc:
            return _failed(item.request, exc, sha256=item.sha256)
        except Exception as exc:
            log.debug("internal error storing %s", item.request.path, exc_info=True)
            return _failed(item.request, EdocError(
                f"internal error ({type(exc).__name__}); see the debug log",
                code="INTERNAL_ERROR"), sha256=item.sha256)

    def _finish(self, run: IngestRun) -> None:
        # Also when nothing new was stored: what an interrupted or failed run left (steps
        # 4-5) is covered by this run's checkpoint.
        if not any(r.status == "stored" for r in run.results) and \
                not work_pending(self.archive.catalog):
            return
        a = self.archive
        far = self._clock() + timedelta(days=1)
        try:
            flush_ledger_objects(a.catalog, a.store, far)
            cp = make_checkpoint(a.catalog, a.store, a.notary, min_retain=far)
        except EdocError as exc:
            run.checkpoint_error = exc.as_dict()
            return
        if cp is not None:
            run.checkpoint = {"tree_size": cp.tree_size, "root_hash": cp.root_hash,
                              "gen_time": utc_text(cp.gen_time), "key": cp.key}


def _failed(req: IngestRequest, exc: EdocError, *, status: str = "rejected",
            sha256: str | None = None) -> IngestResult:
    where = f"{req.origin}: " if req.origin else ""
    err = exc.as_dict()
    err["message"] = where + (err["message"] or "")
    return IngestResult(stored_name(req.path), status, sha256=sha256, error=err)


@dataclass(frozen=True)
class NewContent:
    """Bytes to store for a new version (a metadata-only correction has none)."""

    path: Path
    size: int
    sha256: str


def commit_version(archive: Archive, *, record_id: str, version: int, body: dict[str, Any],
                   content: NewContent | None, until_at: datetime,
                   reqs: Requirements, event: str, now: datetime,
                   reuse_content: tuple[str, str | None] | None = None,
                   state: str = "active") -> str:
    """Write one version by the commit protocol (module docstring); returns its manifest
    digest. ``reuse_content`` points a metadata-only version at an earlier content object."""
    a = archive
    body = dict(body, record_id=record_id, version=version, ingested_at=utc_text(now),
                actor=a.actor)
    manifest = canonical.dumps(body)
    manifest_sha = hashlib.sha256(manifest).hexdigest()
    c_meta = body.get("content") or {}
    entry = event_entry(event, now, record_id=record_id, version=version,
                        manifest_sha256=manifest_sha, content_sha256=c_meta.get("sha256"),
                        previous_version_sha256=body.get("previous_version_sha256"))
    ckey, cver = ((layout.content_key(record_id, version), None) if content is not None
                  else reuse_content or (None, None))
    # The catalog row is derived from the manifest alone, exactly as `catalog rebuild`
    # derives it, so the two can never disagree.
    row = version_row(body, manifest_sha256=manifest_sha, content_ref=(ckey, cver),
                      seal_key=layout.manifest_seal_key(record_id, version)
                      if reqs.authenticity.seal_manifest else None)
    intent = _Intent(record_id=record_id, version=version, event=event, state=state,
                     content_sha256=c_meta.get("sha256") if version == 1 else None,
                     own_content=content is not None, manifest=manifest,
                     seal=reqs.authenticity.seal_manifest, entry=entry, row=row)
    _reserve(a, intent)  # step 1 ends: duplicates and concurrent changes are excluded here
    try:
        if content is not None:
            with content.path.open("rb") as f:
                row["content_version_id"] = a.store.put(
                    ckey or "", f, size=content.size, sha256=content.sha256,
                    retain_until=until_at).version_id
        manifest_version = _put_seal_and_manifest(a, intent, until_at)
    except Exception:
        # Nothing was promised: the manifest (written last) is not stored, so what did get
        # stored (content, seal) is an unreferenced object no check counts; the user is told.
        _drop_intent(a, record_id, version)
        raise
    if not _catalogue(a, intent, row["content_version_id"], manifest_version):
        raise EdocError(f"record {record_id} changed while v{version} was written; "
                        "nothing catalogued", code="RECORD_CHANGED",
                        hint="run the command again")
    try:
        # The leaf object (step 4) is written with the run's checkpoint, not per record: one
        # object fewer per record; work_pending() makes any run or doctor finish it.
        if reqs.authenticity.checkpoint == "record":
            # Made before the record is reported stored. It covers the tree as it stands,
            # so records catalogued meanwhile (by this run's other threads, or by another
            # process, as ever) share it; the lock only spares duplicate TSA requests.
            with _CHECKPOINT_LOCK:
                make_checkpoint(a.catalog, a.store, a.notary, min_retain=until_at)
    except EdocError as exc:
        # Step 3 committed the version: it exists. Steps 4-5 are idempotent and are finished
        # at the end of the run, by the next run or by `edoc doctor --repair`.
        log.warning("%s v%d is stored; its ledger leaf or checkpoint is left for later: %s",
                    record_id, version, exc)
    return manifest_sha


# -- intents: versions being written ----------------------------------------------------------

@dataclass(frozen=True)
class _Intent:
    record_id: str
    version: int
    event: str
    state: str
    content_sha256: str | None
    own_content: bool
    manifest: bytes
    seal: bool
    entry: bytes
    row: dict[str, Any]


#: Lock files of live writers, ``<archive>/.writers/<owner>.lock``: a writer holds an
#: exclusive flock(2) on its own for as long as it lives, so the kernel releases it the
#: moment the writer dies, however it dies. Keyed by (archive directory, pid): a forked
#: child is a writer of its own.
_OWNERS: dict[tuple[Path, int], str] = {}
_OWNERS_LOCK = threading.Lock()
_WRITERS_DIR = ".writers"


def _owner(archive: Archive) -> str:
    """This process's writer token for ``archive`` (its lock file is made on first use;
    the threads of one run share it)."""
    with _OWNERS_LOCK:
        return _new_owner(archive)


def _new_owner(archive: Archive) -> str:
    import atexit
    import fcntl
    import re
    import secrets
    import socket

    key = (archive.cfg.dir, os.getpid())
    token = _OWNERS.get(key)
    if token is not None:
        return token
    host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:60]
    token = f"{host}-{os.getpid()}-{secrets.token_hex(4)}"
    lock_dir = archive.cfg.dir / _WRITERS_DIR
    path = lock_dir / f"{token}.lock"
    # Locked under a temporary name, then renamed: no one ever sees the file unlocked.
    tmp = lock_dir / f".{token}.tmp"
    try:
        lock_dir.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        tmp.replace(path)
    except OSError as exc:
        import errno

        raise EdocError(f"cannot write in the archive directory {archive.cfg.dir} "
                        f"({exc.strerror}); nothing stored",
                        code="ARCHIVE_READ_ONLY" if exc.errno == errno.EROFS
                        else "ARCHIVE_NOT_WRITABLE",
                        hint="run edoc where the archive directory is writable") from None
    _OWNERS[key] = token
    pid = os.getpid()

    def release() -> None:
        if os.getpid() == pid:
            with contextlib.suppress(OSError):
                path.unlink()

    atexit.register(release)
    return token


@contextlib.contextmanager
def _dead_owner(archive: Archive, owner: str, *, release: bool = True) -> Iterator[bool]:
    """Yields whether ``owner`` is dead; while True, this process holds its lock, so no
    other process recovers the same writer's versions at the same time. ``release``
    removes a dead writer's lock file afterwards (its versions were recovered)."""
    import fcntl

    path = archive.cfg.dir / _WRITERS_DIR / f"{owner}.lock"
    try:
        fd = os.open(path, os.O_RDONLY)  # flock(2) needs no write access
    except FileNotFoundError:
        yield True  # never got a lock file, or was recovered by a run that just finished
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
        if release:
            with contextlib.suppress(OSError):
                path.unlink()
    finally:
        os.close(fd)


def _duplicate(path: str, existing: str, *, in_flight: bool = False) -> DuplicateContent:
    how = "is being stored by another run as record" if in_flight else \
        "has the same SHA-256 as record"
    dup = DuplicateContent(f"{path} {how} {existing}; not stored twice",
                           hint=f"see 'edoc show {existing}'; --skip-existing "
                           "treats this as success when re-running a batch")
    dup.record_id = existing
    return dup


def _reserve(archive: Archive, intent: _Intent) -> None:
    """Record the intent to write ``intent``'s version, in one transaction with the checks
    that must hold when it is catalogued: a new record's content is not already stored or
    being stored (two runs racing on one file both pass the early check), and a new version
    builds on the record's latest one."""
    owner = _owner(archive)
    rid, version = intent.record_id, intent.version

    def reserve(c: sa.Connection) -> None:
        # Prebuilt statements with bind parameters (edoc.catalog, issue 8).
        if intent.content_sha256 is not None:
            sha = {"sha256": intent.content_sha256}
            holder = c.execute(ACTIVE_RECORD_BY_SHA, sha).scalar()
            pending = None if holder else c.execute(INTENT_BY_SHA, sha).scalar()
            if holder or pending:
                raise _duplicate(str(intent.row.get("original_name")),
                                 str(holder or pending), in_flight=not holder)
        if version > 1:
            cur = c.execute(RECORD_HEAD, {"record_id": rid}).first()
            busy = c.execute(INTENT_OWNER, {"record_id": rid, "version": version}).first()
            if cur is None or cur.latest_version != version - 1 or \
                    cur.state == "disposed" or busy:
                raise EdocError(f"record {rid} is being changed by another run (v{version} "
                                "is taken); nothing stored", code="RECORD_CHANGED",
                                hint="run the command again")
        c.execute(INSERT_INTENT, {
            "record_id": rid, "version": version, "event": intent.event,
            "state": intent.state, "content_sha256": intent.content_sha256,
            "own_content": intent.own_content, "manifest": intent.manifest.decode(),
            "seal": intent.seal, "entry": intent.entry.decode(),
            "row": json.dumps(intent.row, sort_keys=True), "owner": owner,
            "created_at": utc_text(edoc_clock.now())})

    committer(archive.catalog).run(reserve)


def _drop_intent(archive: Archive, record_id: str, version: int) -> None:
    try:
        with archive.catalog.write() as c:
            c.execute(DELETE_INTENT, {"record_id": record_id, "version": version})
    except EdocError:
        # Left for the next run: once this process is gone, recovery finds no manifest in
        # the store for it and drops it then.
        log.warning("could not drop the intent for %s v%d", record_id, version)


def _put_seal_and_manifest(archive: Archive, intent: _Intent, until: datetime) -> str:
    """Store the manifest's seal (when asked), then the manifest: the manifest is the last
    object of a version, so a stored manifest means every object of it is there. Objects an
    interrupted attempt stored are kept: a seal of the same bytes is as good as a new one."""
    a = archive
    rid, version = intent.record_id, intent.version
    if intent.seal:
        with contextlib.suppress(ObjectExists):
            a.store.put_bytes(layout.manifest_seal_key(rid, version),
                              a.notary.seal(intent.manifest), retain_until=until)
    mkey = layout.manifest_key(rid, version)
    try:
        return a.store.put_bytes(mkey, intent.manifest, retain_until=until).version_id
    except ObjectExists:
        if a.store.read(mkey) != intent.manifest:
            raise EdocError(f"{mkey} exists with other contents; not catalogued",
                            code="MANIFEST_CONFLICT", hint="run 'edoc ledger verify'") from None
        return a.store.stat(mkey).version_id


def _catalogue(archive: Archive, intent: _Intent, content_version: str | None,
               manifest_version: str) -> bool:
    """Step 3: one transaction inserts the version, its ledger leaf and the record (or moves
    the record to this version) and deletes the intent. False if the intent is gone (another
    process recovered it) or the record moved on meanwhile (then the intent is dropped)."""
    rid, version = intent.record_id, intent.version

    def catalogue(c: sa.Connection) -> bool:
        if stray := stray_columns(intent.row, VERSION_COLUMNS):
            raise EdocError(f"record {rid} v{version}: the catalog has no column for "
                            f"{', '.join(stray)}; nothing catalogued",
                            code="CATALOG_SCHEMA_MISMATCH",
                            hint="run the edoc version that wrote this record's intent")
        key = {"record_id": rid, "version": version}
        if c.execute(DELETE_INTENT, key).rowcount == 0:
            return False
        if version == 1:
            c.execute(INSERT_RECORD, {"record_id": rid, "created_at": intent.row["ingested_at"],
                                      "latest_version": 1, "state": intent.state})
        else:
            cur = c.execute(RECORD_HEAD, {"record_id": rid}).first()
            if cur is None or cur.latest_version != version - 1 or cur.state == "disposed":
                return False
            c.execute(MOVE_RECORD, {"rid": rid, "latest_version": version,
                                    "state": intent.state})
        idx = Catalog.append_ledger(c, event_type=intent.event, entry=intent.entry.decode(),
                                    leaf_hash=leaf_hex(intent.entry), record_id=rid,
                                    version=version)
        c.execute(INSERT_VERSION, dict(intent.row, content_version_id=content_version,
                                       manifest_version_id=manifest_version,
                                       ledger_index=idx))
        return True

    return committer(archive.catalog).run(catalogue)


def pending_intents(archive: Archive) -> tuple[list[str], list[str]]:
    """Versions being written, as ``<record id> v<n>``: (those whose writer died, those of
    live writers). Changes nothing."""
    with archive.catalog.read() as c:
        rows = list(c.execute(sa.select(intents.c.record_id, intents.c.version,
                                        intents.c.owner)))
    dead: list[str] = []
    live: list[str] = []
    verdicts: dict[str, bool] = {}
    for rid, version, owner in rows:
        if owner not in verdicts:
            with _dead_owner(archive, owner, release=False) as is_dead:
                verdicts[owner] = is_dead
        (dead if verdicts[owner] else live).append(f"{rid} v{version}")
    return dead, live


def recover_intents(archive: Archive) -> list[str]:
    """Finish or drop the versions whose writer died between reserving and cataloguing them
    (commit protocol, module docstring); versions of live writers are left alone. Returns
    what was done, one line each."""
    from edoc.errors import ObjectMissing

    a = archive
    with a.catalog.read() as c:
        pending = list(c.execute(sa.select(intents).order_by(intents.c.created_at)))
    by_owner: dict[str, list[Any]] = {}
    for r in pending:
        by_owner.setdefault(r.owner, []).append(r)
    done: list[str] = []
    for owner, rows in by_owner.items():
        with _dead_owner(a, owner) as dead:
            if not dead:
                continue
            for r in rows:
                intent = _Intent(r.record_id, r.version, r.event, r.state, r.content_sha256,
                                 r.own_content, r.manifest.encode(), r.seal, r.entry.encode(),
                                 json.loads(r.row))
                what = f"{r.record_id} v{r.version}"
                until = datetime.fromisoformat(intent.row["retain_until_at"])
                cver = intent.row["content_version_id"]
                try:
                    if r.own_content:
                        ckey = intent.row["content_key"]
                        try:
                            cver = a.store.stat(ckey).version_id
                            digest = hashlib.sha256()
                            with a.store.open(ckey, cver) as f:
                                while chunk := f.read(1 << 20):
                                    digest.update(chunk)
                        except ObjectMissing:
                            _drop_intent(a, r.record_id, r.version)
                            done.append(f"dropped {what}: its writer died before storing it")
                            continue
                        if digest.hexdigest() != intent.row["content_sha256"]:
                            _drop_intent(a, r.record_id, r.version)
                            done.append(f"dropped {what}: its stored content does not match")
                            continue
                        if a.store.stat(ckey, cver).retain_until is None:
                            # The writer died inside the store's put (bytes stored, their
                            # retention not): the same bytes again complete it.
                            with contextlib.suppress(ObjectExists), a.store.open(ckey) as src:
                                cver = a.store.put(
                                    ckey, src, size=int(intent.row["content_size"]),
                                    sha256=intent.row["content_sha256"],
                                    retain_until=until).version_id
                    mver = _put_seal_and_manifest(a, intent, until)
                    if _catalogue(a, intent, cver, mver):
                        done.append(f"completed {what} (its writer died before cataloguing "
                                    "it)")
                    else:
                        _drop_intent(a, r.record_id, r.version)
                except EdocError as exc:
                    log.warning("could not recover %s: %s", what, exc)
                    done.append(f"left {what} for later: {exc}")
    return done
