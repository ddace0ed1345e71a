"""Ingest: from a file on disk to a sealed, logged, write-once record.

This module checks a file and what the user said about it, builds its manifest and
runs a batch (``Ingestor``, ``--jobs``; worker processes, ``--processes``:
``edoc.services.ingest_workers``); each file is then written by the commit protocol of
``edoc.services.commit`` (what is written in which order, and what a restart finds).
Two copies of one file in a batch are stored once: the second waits for the first and
is then a duplicate, as in a sequential run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from edoc import clock as edoc_clock
from edoc.clock import utc_text
from edoc.errors import DuplicateContent, EdocError, InputError, ProfileViolation
from edoc.evidence.hashing import hash_stream
from edoc.evidence.ledger import leaf_hex
from edoc.model import ids
from edoc.model.manifest import MANIFEST_SCHEMA, ContentRef, Manifest, SearchFields
from edoc.model.provenance import FieldProvenance, read_block
from edoc.policy.profiles import Requirements, combine
from edoc.policy.registration import Finding
from edoc.policy.schematron import RuleSet
from edoc.policy.values import (
    clean_text,
    parse_amount,
    parse_date,
    parse_doc_type,
    printable_name,
    stat_regular_file,
    stored_name,
)
from edoc.services.archive import Archive
from edoc.services.checkpoint import flush_ledger_objects, make_checkpoint, work_pending
from edoc.services.commit import (
    NewContent,
    commit_version,
    duplicate_error,
    pending_intents,
    recover_intents,
)
from edoc.services.duplicates import DuplicateWatch, RunKeys
from edoc.services.einvoice_fields import DocumentFields, document_fields
from edoc.services.fulltext import PendingTexts, text_at_ingest, text_row
from edoc.services.provenance import (
    CONFIRMATION_EVENT,
    confirmation_entry,
    confirmed_fields,
    field_provenance,
    manifest_extra,
    typed_registration,
)
from edoc.services.registry import RegistrationStatus, registration_status

log = logging.getLogger(__name__)
JST = ZoneInfo("Asia/Tokyo")
_T = TypeVar("_T")
_R = TypeVar("_R")
#: Re-exported for callers written against this module (``edoc.services.commit``).
__all__ = ["IngestRequest", "IngestResult", "IngestRun", "Ingestor", "NewContent", "Prepared",
           "commit_version", "default_jobs", "pending_intents", "recover_intents"]


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
    #: ``received`` (default) or ``sent``: whose counterparty an e-invoice names
    #: (``edoc.services.einvoice_fields``).
    direction: str | None = None
    #: Where the request came from, for messages (e.g. "row 3" of a CSV manifest).
    origin: str | None = None
    #: Set when the request was already found invalid while it was read (a bad CSV row).
    rejection: EdocError | None = None
    #: The seller's 登録番号 (T-number) typed for a record that is not an e-invoice; checked
    #: with ``edoc.policy.registration`` (an e-invoice supplies its own).
    registration_number: str | None = None
    #: Where each typed-looking field really came from, when not a person's typing: a
    #: machine suggestion a person confirmed (``edoc.model.provenance``; field names as in
    #: the manifest: doc_type, transaction_date, amount, counterparty, registration_number).
    #: A field not named here is ``typed``; an e-invoice's own fields are ``document``.
    field_provenance: Mapping[str, FieldProvenance] = field(default_factory=dict)
    #: Run OCR at ingest for the derived full text of an image or image-only PDF
    #: (``edoc.services.fulltext``); the PDF text layer and an e-invoice are always read.
    ocr: bool = False


@dataclass
class IngestResult:
    file: str
    status: str  # stored | rejected | duplicate
    record_id: str | None = None
    sha256: str | None = None
    retain_until: str | None = None
    input_verdict: str | None = None
    error: dict[str, str | None] | None = None
    #: For a file read as an e-invoice: each search field's value and source
    #: (``document`` | ``typed``).
    fields: dict[str, dict[str, Any]] | None = None
    #: Warnings on the document (PINT rules, T-number) and fallback notes.
    warnings: list[dict[str, str]] | None = None
    #: Per search field, its provenance as sealed (``edoc.model.provenance``): given when
    #: any field was not simply typed (an e-invoice's, a confirmed suggestion).
    provenance: dict[str, dict[str, Any]] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.file, "status": self.status, "record_id": self.record_id,
            "sha256": self.sha256, "retain_until": self.retain_until,
            "input_verdict": self.input_verdict, "error": self.error}
        # Only for XML read as (or refused as) an e-invoice: every other result keeps the
        # keys it always had.
        if self.fields is not None:
            out["fields"] = self.fields
        if self.warnings is not None:
            out["warnings"] = self.warnings
        if self.provenance is not None:
            out["provenance"] = self.provenance
        return out


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
    #: The version's manifest, but for what ``commit_version`` sets (record id, version,
    #: ingested_at, actor).
    manifest_body: Manifest
    requirements: Requirements
    until_at: datetime
    retain_until: date
    document: DocumentFields = field(default_factory=DocumentFields)


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


def default_jobs(archive: Archive, processes: int = 1) -> int:
    """Files in flight at once unless the user says otherwise: store round trips dominate
    on S3; on a local disk the CPU does, and in one process 4 keep fsyncs overlapping
    without crowding a small machine's cores (measured on 2 cores: BENCHMARKS.md, part 1),
    while worker processes did best with one file each (issue 15)."""
    if archive.cfg.storage.kind == "s3":
        return 8
    return 4 if processes <= 1 else processes


class Ingestor:
    """Ingests files into one archive; holds per-run state (profiles, calendar)."""

    def __init__(self, archive: Archive, *, clock: Callable[[], datetime] | None = None,
                 skip_existing: bool = False, jobs: int = 1, processes: int = 1,
                 keys: RunKeys | None = None) -> None:
        self.archive = archive
        self.skip_existing = skip_existing
        #: Files in flight at once. Each is prepared and stored by the commit protocol on its
        #: own thread (hashing, image decoding and store round trips release the GIL); the
        #: catalog transactions serialise on the catalog's write lock as between processes.
        self.jobs = max(1, jobs)
        #: Worker processes for ``run`` (``edoc.services.ingest_workers``); ``jobs`` is then
        #: split among them. A run with its own clock (tests) stays in this process.
        self.processes = max(1, processes) if clock is None else 1
        self._clock = clock or (lambda: edoc_clock.now())
        #: SHA-256 digests being stored by this run, so two copies of one file in a batch are
        #: stored once and the second reported as a duplicate of the first, as when
        #: sequential (not as "being stored by another run").
        self._claims: dict[str, threading.Event] = {}
        self._claims_lock = threading.Lock()
        #: ``[einvoice] rules``, compiled on the first e-invoice (Saxon is slow to start and
        #: most ingests carry none); one lock, as Saxon's processor is not shared safely.
        self._rules: RuleSet | None = None
        self._rules_lock = threading.Lock()
        #: business keys of this run (``DUPLICATE_SUSPECT``, edoc.services.duplicates)
        self._duplicates = DuplicateWatch(archive.catalog, keys)
        #: derived texts, written in batches (``edoc.services.fulltext.PendingTexts``)
        self._texts = PendingTexts(archive.catalog)

    # -- validation (nothing stored) -------------------------------------------------------
    def _check_einvoice_rules(self, xml: bytes) -> list[Finding]:
        """The operator's Schematron findings on one accepted e-invoice (none configured:
        nothing); a rule file that is missing or broken is ``EINVOICE_RULES_INVALID``."""
        configured = self.archive.cfg.einvoice_rules
        if not configured:
            return []
        with self._rules_lock:
            if self._rules is None:
                base = self.archive.cfg.dir
                self._rules = RuleSet([base / p for p in configured])
            return self._rules.check(xml)

    def _register_lookup(self, number: str, on: date) -> RegistrationStatus:
        """The seller's registration on the issue date, from the imported NTA register."""
        return registration_status(self.archive.catalog, number, on)

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
                sha256 = hash_stream(f).sha256
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

        entity = self.archive.cfg.entity
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
            entity=entity,
        )
        # The profiles' rules for this archive's entity type (a sole proprietor's base rule
        # is income-tax, a company's corporate-tax), then --retention and the archive's
        # defaults; retention.decide keeps the latest date.
        rules = tuple(dict.fromkeys((*reqs.retention.rules_for(entity),
                                     *inputs.get("rules", ()),
                                     *self.archive.cfg.default_retention)))
        return retention.decide(rules, reqs.retention.duration, facts)

    def prepare(self, req: IngestRequest) -> Prepared:
        if req.rejection is not None:
            raise req.rejection
        a = self.archive
        doc, req = self.document(req)
        reqs, doc_type = self.requirements(req)
        try:
            meta = self.metadata(req, reqs, doc_type)
        except ProfileViolation as exc:
            raise _with_document_reason(exc, doc) from None
        deadline_info = self.input_deadline(req, reqs, _opt_date(req.date, "--date"))
        inputs = self.retention_inputs(req)
        now = self._clock()
        decision = self.decide_retention(reqs, inputs, meta["transaction_date"], now)
        if decision.until_at <= now:
            raise InputError(f"retention already ended on {decision.retain_until}; "
                             "nothing to keep", code="RETENTION_ENDED")
        path, size, sha256, media_type, measured = self.inspect_file(req.path, reqs,
                                                                     req.paper_size)
        search_extra = {**doc.extra_metadata,
                        **typed_registration(req.registration_number, doc)}
        provenance = field_provenance({**meta, **search_extra, "doc_type": doc_type}, doc,
                                      req.field_provenance)
        extra: dict[str, Any] = {"einvoice": doc.einvoice} if doc.einvoice is not None else {}
        extra.update(manifest_extra(provenance))
        body = Manifest(
            # record_id, version, ingested_at and actor: set by commit_version
            record_id="", version=0, schema=MANIFEST_SCHEMA,
            archive_id=a.cfg.archive_id,
            kind="original",
            content=ContentRef(sha256=sha256, size=size, media_type=media_type,
                               original_name=stored_name(path.name)),
            profiles=tuple(reqs.profiles),
            document_class=reqs.document_class,
            doc_type=doc_type,
            metadata=SearchFields(**meta, extra=search_extra),
            input=deadline_info,
            readability=measured,
            retention=decision.to_manifest(),
            retention_inputs=inputs,
            evidence={"checkpoint": reqs.authenticity.checkpoint,
                      "seal_manifest": reqs.authenticity.seal_manifest,
                      "tsa": a.cfg.tsa.kind,
                      "accredited": a.cfg.tsa.kind != "embedded"},
            previous_version_sha256=None,
            reason=None,
            extra=extra,
        )
        return Prepared(req, path, size, sha256, media_type, body, reqs,
                        decision.until_at, decision.retain_until, doc)

    def document(self, req: IngestRequest) -> tuple[DocumentFields, IngestRequest]:
        """What the file itself says (a JP PINT e-invoice), and the request with the
        document's values in place of the typed ones (an agreeing typed value is replaced by
        the document's; a disagreeing one was refused, ``FIELD_CONFLICT``). A file that
        cannot be opened is left to ``inspect_file``, which reports it as always."""
        from edoc import inspection

        if req.direction not in (None, "received", "sent"):
            raise InputError(f"--direction must be received or sent (got {req.direction!r})",
                             code="BAD_VALUE")
        try:
            path, _ = _open_input(req.path)
            media_type = inspection.detect_media_type(path)
        except InputError:
            return DocumentFields(), req
        typed = {"transaction_date": req.date, "amount": req.amount,
                 "counterparty": req.counterparty, "doc_type": req.doc_type}
        doc = document_fields(path, media_type, typed, direction=req.direction,
                              register=self._register_lookup,
                              rules=self._check_einvoice_rules)
        doc.finish(typed)
        v = doc.values
        return doc, replace(req, date=v.get("transaction_date", req.date),
                            amount=v.get("amount", req.amount),
                            counterparty=v.get("counterparty", req.counterparty),
                            doc_type=v.get("doc_type", req.doc_type))

    # -- storing ---------------------------------------------------------------------------
    def store(self, prep: Prepared) -> IngestResult:
        with self._claim(prep.sha256):
            existing = self.archive.catalog.find_by_sha(prep.sha256)
            if existing:
                raise duplicate_error(printable_name(prep.request.path), existing)
            record_id = ids.new_record_id()
            now = self._clock()
            body = prep.manifest_body
            suspects = self._duplicates.check(body, prep.sha256, record_id)
            if suspects:
                # Sealed with the record: the suspicion is part of what was known at ingest.
                body = body.evolve(extra={**body.extra,
                                          "warnings": [*body.warnings, *suspects]})
            manifest_sha = commit_version(
                self.archive, record_id=record_id, version=1, body=body,
                content=NewContent(prep.path, prep.size, prep.sha256),
                until_at=prep.until_at, reqs=prep.requirements, event="ingest", now=now)
            confirmed = confirmed_fields(read_block(prep.manifest_body.provenance))
            if confirmed:
                # The confirmation of machine suggestions as a ledger event of its own,
                # covered by the run's closing checkpoint (the sealed manifest holds the
                # confirmer's name; the event, its digest).
                entry = confirmation_entry(record_id=record_id, version=1,
                                           manifest_sha256=manifest_sha, fields=confirmed,
                                           at=now)
                self.archive.catalog.append_leaves([{
                    "event": CONFIRMATION_EVENT, "entry": entry.decode(),
                    "leaf_hash": leaf_hex(entry), "record_id": record_id, "version": 1}])
        verdict = (prep.manifest_body.input or {}).get("verdict")
        result = IngestResult(stored_name(prep.request.path), "stored", record_id,
                              prep.sha256, prep.retain_until.isoformat(), verdict)
        found, text_warning = text_at_ingest(
            prep.path, prep.media_type, sha256=prep.sha256, size=prep.size,
            ocr=prep.request.ocr, xml_text=prep.document.xml_text,
            gated=(prep.manifest_body.readability or {}).get("measured") is not False)
        if found is not None:
            self._texts.add(text_row(record_id, 1, found))
        doc = prep.document
        if doc.einvoice is not None:
            m = prep.manifest_body
            shown = {**m.metadata.as_json(), "doc_type": m.doc_type}
            result.fields = {name: {"value": shown.get(name), "source": source}
                             for name, source in doc.sources.items()}
        if doc.warnings or doc.einvoice is not None or suspects or text_warning:
            result.warnings = [*doc.warnings, *suspects,
                               *([text_warning] if text_warning else [])]
        sealed = prep.manifest_body.provenance or {}
        if any(p.get("source") != "typed" for p in sealed.values()):
            result.provenance = dict(sealed)
        return result

    def flush_texts(self) -> None:
        """Write the derived texts ``store`` has batched (``run`` does this itself; a caller
        of ``store`` alone, like a queue worker, calls it after each document)."""
        self._texts.flush()

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
        if self.processes > 1 and not validate_all_first:
            from edoc.services.ingest_workers import start_fork_server

            start_fork_server()  # its imports overlap with the checks below
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
            try:
                for result in self._in_order(self._store_or_fail, prepared):
                    report(result)
            finally:
                self._texts.flush()
        elif self.processes > 1:
            from edoc.services.ingest_workers import WorkerPool

            pool = WorkerPool(self, self.processes,
                              jobs=max(1, self.jobs // self.processes))
            try:
                for result in pool.run(requests):
                    report(result)
            finally:
                pool.close()
            # A worker that died left its version to the commit protocol's recovery: its
            # lock is gone now, so it is settled here, before the closing checkpoint.
            for line in recover_intents(self.archive):
                log.info("recovered: %s", line)
        else:
            try:
                for result in self.ingest_each(requests):
                    report(result)
            finally:
                # derived, so an interrupted run still writes what it read (a crash loses at
                # most one batch: `edoc catalog text` derives what is missing)
                self._texts.flush()
        self._finish(run)
        return run

    def ingest_each(self, requests: Iterable[IngestRequest]) -> Iterator[IngestResult]:
        """Prepare and store every request, ``jobs`` at a time, results in request order;
        no closing steps (``run`` takes them, once per batch)."""
        return self._in_order(lambda req: self._store_or_fail(self._prepare_or_fail(req)),
                              requests)

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


def _with_document_reason(exc: ProfileViolation, doc: DocumentFields) -> EdocError:
    """A required search field the document did not supply: the refusal names what the
    document lacked; a DOCTYPE'd XML is refused with its own code (never expanded)."""
    if exc.code != "SEARCH_FIELD_MISSING":
        return exc
    if doc.refusal is not None:
        code, detail = doc.refusal
        return ProfileViolation(f"{detail}; so no search field is read from it, and "
                                f"{exc.message}", code=code, hint=exc.hint)
    lacking = "; ".join(doc.lacking.values())
    if not lacking:
        return exc
    return ProfileViolation(f"{exc.message}; {lacking}", code=exc.code, hint=exc.hint)


def failed_result(req: IngestRequest, exc: EdocError) -> IngestResult:
    """The result of a request that was not stored because of ``exc``."""
    return _failed(req, exc)


def _failed(req: IngestRequest, exc: EdocError, *, status: str = "rejected",
            sha256: str | None = None) -> IngestResult:
    where = f"{req.origin}: " if req.origin else ""
    err = exc.as_dict()
    err["message"] = where + (err["message"] or "")
    return IngestResult(stored_name(req.path), status, sha256=sha256, error=err)

