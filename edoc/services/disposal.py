"""Disposal (`edoc purge`): destroy what has expired, and certify what was destroyed.

Selection is per record: a record is disposable when every one of its versions has passed
its retain-until (history lives as long as the record), no legal hold is active, and it was
not disposed before. "Now" is the genTime of a fresh RFC 3161 timestamp, never the local
clock alone and never a date the caller picks (DESIGN.md "Time"); a run refuses to start if
that time is behind the newest checkpoint.

Crash safety — the run is a journal in the catalog, worked through a page of records
(``PAGE_RECORDS``) at a time so that memory stays bounded however many records expire:
1. the run is recorded, and each page's versions as ``pending`` (one transaction per page,
   selection and journal together);
2. the page's content, manifest and seal objects are deleted by the version ids the catalog
   pinned, in batches (``ObjectStore.delete_many``: one ``DeleteObjects`` per 1,000
   versions on S3); a version already gone counts as deleted (an earlier run got that far);
   then transactions of up to ``COMMIT_RECORDS`` records mark the versions disposed, the
   records disposed, and append a ``purge`` ledger leaf per version (hashes only, so the
   ledger never has to be rewritten);
3. the certificate (廃棄証明) lists every disposed version, is built from the journal a page
   at a time, sealed and timestamped and stored write-once; the run is marked ``certified``.
A run that stopped anywhere is finished by the next ``purge`` before it selects anything new;
records it had not journaled yet are selected again, into the new run.
A store refusing a delete (lock still active, hold) is recorded per version as ``refused``;
a store that cannot be reached at all stops the run with its items still ``pending``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from edoc import clock as edoc_clock
from edoc.catalog import Transaction, VersionRow
from edoc.catalog.coordination import PurgeLease
from edoc.clock import utc_text
from edoc.errors import EdocError, ObjectExists, ObjectMissing
from edoc.evidence.ledger import event_entry, leaf_hex
from edoc.model import canonical, ids
from edoc.services.archive import Archive
from edoc.services.checkpoint import flush_ledger_objects, make_checkpoint, work_pending
from edoc.services.commit import recover_intents
from edoc.storage import layout

CERTIFICATE_SCHEMA = "edoc.disposal-certificate/1"
#: Certificates prove destruction; they hold no personal data and are kept ten years.
CERTIFICATE_RETENTION = timedelta(days=3653)
#: Records selected, journaled and deleted together. Bounds the rows held in memory, and on
#: S3 a page of two-object records is two ``DeleteObjects`` requests.
PAGE_RECORDS = 1000
#: Records whose catalog changes share one transaction: few enough that a writer waiting
#: on the catalog (an ingest) is not held up for long, many enough that commits are cheap.
COMMIT_RECORDS = 100
#: Journal rows read per query while the certificate is written.
CERTIFICATE_PAGE = 5000


@dataclass
class Selection:
    """What a run selected, as counts and ids (never rows): enough for ``--json`` and the
    summary line, at a few dozen bytes per record."""

    records: int = 0
    versions: int = 0
    bytes: int = 0
    by_profile: dict[str, dict[str, int]] = field(default_factory=dict)
    record_ids: list[str] = field(default_factory=list)

    def add(self, record_id: str, rows: Sequence[VersionRow]) -> None:
        """Count one record, given its catalog version rows."""
        size = sum(row.content_size or 0 for row in rows
                   if row.content_key == layout.content_key(record_id, row.version))
        self.records += 1
        self.versions += len(rows)
        self.bytes += size
        self.record_ids.append(record_id)
        for p in sorted({p for row in rows for p in json.loads(row.profiles)}):
            entry = self.by_profile.setdefault(p, {"records": 0, "bytes": 0})
            entry["records"] += 1
            entry["bytes"] += size

    def as_dict(self) -> dict[str, Any]:
        return {"records": self.records, "versions": self.versions, "bytes": self.bytes,
                "by_profile": self.by_profile, "record_ids": self.record_ids}


@dataclass(frozen=True, slots=True)
class DisposedRecord:
    """One record this purge disposed of, and which of its versions."""

    record_id: str
    versions: tuple[int, ...]


@dataclass
class PurgeReport:
    now: datetime
    dry_run: bool
    selected: Selection = field(default_factory=Selection)
    disposed: list[DisposedRecord] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    certificates: list[str] = field(default_factory=list)
    resumed_runs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refused

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "now": utc_text(self.now),
            "selected": self.selected.as_dict(),
            "disposed": [{"record_id": d.record_id, "versions": list(d.versions)}
                         for d in self.disposed],
            "refused": self.refused,
            "certificates": self.certificates,
            "resumed_runs": self.resumed_runs,
        }


def _run_lock(archive: Archive) -> contextlib.AbstractContextManager[PurgeLease]:
    """One purge at a time, archive-wide: ``.purge.lock`` (flock) beside a SQLite catalog,
    an advisory lock of a PostgreSQL one (``edoc.catalog.coordination``); a second run is
    refused with ``PURGE_RUNNING`` naming the holder."""
    from edoc.catalog.coordination import coordination_for

    return coordination_for(archive.catalog, archive.cfg.dir).purge_lock()


class _Candidates:
    """Pages of eligible record ids, in record-id order.

    Without a limit the pages are keyset-paginated over the versions primary key, so the
    whole selection costs one pass however many pages it has. With ``--limit`` the records
    whose retention ended first are taken (the limit bounds how many ids are held)."""

    def __init__(self, now: datetime, limit: int | None) -> None:
        self.now = now
        self.limit = limit
        self.last = ""
        self.limited: list[str] | None = None
        self.done = False

    def next_page(self, tx: Transaction) -> list[str]:
        """The next page (empty when there is none), read in ``tx``: inside the
        transaction that journals it, so what is journaled is what was eligible."""
        if self.done:
            return []
        if not self.limit:
            page = tx.disposable_after(self.now, self.last, PAGE_RECORDS)
            self.done = len(page) < PAGE_RECORDS
            if page:
                self.last = page[-1]
            return page
        if self.limited is None:
            self.limited = tx.disposable_soonest(self.now, self.limit)
        while self.limited:
            page, self.limited = self.limited[:PAGE_RECORDS], self.limited[PAGE_RECORDS:]
            # Checked again: a hold placed since the first query wins.
            page = tx.disposable_among(self.now, page)
            if page:
                self.done = not self.limited
                return page
        self.done = True
        return []


class Disposer:
    def __init__(self, archive: Archive) -> None:
        self.a = archive
        self.lease = PurgeLease()  # the run's, once it holds the purge lock

    def trusted_now(self) -> datetime:
        """The genTime of a fresh timestamp, checked against the newest checkpoint."""
        nonce = os.urandom(16)
        _tsr, gen_time = self.a.notary.timestamp(hashlib.sha256(b"edoc purge " + nonce)
                                                 .digest())
        latest = self.a.catalog.latest_checkpoint()
        if latest is not None:
            newest = datetime.fromisoformat(latest.gen_time)
            if gen_time < newest:
                raise EdocError(f"the time source says {utc_text(gen_time)}, before the newest "
                                f"checkpoint ({latest.gen_time}); refusing to dispose",
                                code="CLOCK_BEHIND",
                                hint="fix the TSA or system clock, then run purge again")
        return gen_time

    def select(self, now: datetime, limit: int | None) -> Selection:
        """What a run at ``now`` would dispose of (the dry run), read a page at a time."""
        selection = Selection()
        candidates = _Candidates(now, limit)
        while not candidates.done:
            with self.a.catalog.snapshot() as tx:
                for rid, rows in tx.versions_of(candidates.next_page(tx)).items():
                    selection.add(rid, rows)
        return selection

    def run(self, *, dry_run: bool, limit: int | None = None) -> PurgeReport:
        self.a.notary.ready_to_sign()
        with _run_lock(self.a) as self.lease:
            now = self.trusted_now()
            report = PurgeReport(now=now, dry_run=dry_run)
            if dry_run:
                report.selected = self.select(now, limit)
                return report
            # Versions a dead run left half-written are finished first, so selection sees
            # every version of a record (edoc.services.ingest commit protocol).
            recover_intents(self.a)
            for resumed in self._unfinished_runs():
                report.resumed_runs.append(resumed)
                self._finish_run(resumed, report)
            run_id = self._new_run(now, limit, report)
            self.a.catalog.drop_disposed_texts()  # texts a dead run left (see above)
            if run_id is not None:
                self._certify(run_id, report)
            elif work_pending(self.a.catalog):
                # An interrupted run's last leaves and checkpoint (certificate included).
                keep = edoc_clock.now() + CERTIFICATE_RETENTION
                flush_ledger_objects(self.a.catalog, self.a.store, keep)
                make_checkpoint(self.a.catalog, self.a.store, self.a.notary, min_retain=keep)
            return report

    # -- the journal -----------------------------------------------------------------------
    def _unfinished_runs(self) -> list[str]:
        return self.a.catalog.unfinished_disposal_runs()

    def _new_run(self, now: datetime, limit: int | None, report: PurgeReport) -> str | None:
        """Select, journal and dispose page by page; the run id, or None if nothing expired."""
        run_id: str | None = None
        candidates = _Candidates(now, limit)
        while not candidates.done:
            with self.a.catalog.transaction() as tx:
                page = candidates.next_page(tx)
                if not page:
                    break
                if run_id is None:
                    run_id = ids.new_record_id()
                    tx.start_disposal_run(run_id=run_id, started_at=utc_text(edoc_clock.now()),
                                          now=utc_text(now), actor=self.a.actor)
                items: list[tuple[str, int, dict[str, Any]]] = []
                for rid, rows in tx.versions_of(page).items():
                    report.selected.add(rid, rows)
                    items += [(rid, row.version, self._certificate_entry(row)) for row in rows]
                tx.journal_pending(run_id, items)
            self._dispose_page(run_id, page, report)
        return run_id

    @staticmethod
    def _certificate_entry(row: VersionRow) -> dict[str, Any]:
        return {
            "record_id": row.record_id,
            "version": row.version,
            "kind": row.kind,
            "content_sha256": row.content_sha256,
            "manifest_sha256": row.manifest_sha256,
            "profiles": json.loads(row.profiles),
            "retain_until": row.retain_until,
            "retain_until_at": row.retain_until_at,
        }

    def _finish_run(self, run_id: str, report: PurgeReport) -> None:
        last = ""
        while True:
            page = self.a.catalog.pending_disposal_records(run_id, last, PAGE_RECORDS)
            if not page:
                break
            self._dispose_page(run_id, page, report)
            last = page[-1]
        self._certify(run_id, report)

    # -- one page --------------------------------------------------------------------------
    def _dispose_page(self, run_id: str, record_ids: Sequence[str],
                      report: PurgeReport) -> None:
        """Delete the objects of the page's pending versions, then record the outcome."""
        self.lease.check()  # still the only purge (a lost lock stops the run here)
        # Holds are re-checked at the last moment: a hold placed after selection wins.
        rows, held = self.a.catalog.pending_disposal(run_id, record_ids)
        by_record: dict[str, list[VersionRow]] = {}
        for row in rows:
            by_record.setdefault(row.record_id, []).append(row)
        errors: dict[str, EdocError] = {
            rid: EdocError(f"record {rid} was put on hold during the run",
                           code="RECORD_ON_HOLD") for rid in by_record if rid in held}
        # Contents first, then manifests and seals of the records whose contents went (the
        # order of one record's deletes before batching): a content the store still
        # refuses keeps its manifest, and the record stays whole and verifiable. On S3 the
        # two phases take no more requests than one (≤ 1,000 versions each); locally the
        # second directory fsync finds the journal committed already.
        for phase in (self._content_objects, self._manifest_objects):
            targets: list[tuple[str, str]] = []
            owners: list[str] = []
            for rid, recs in by_record.items():
                if rid in errors:
                    continue
                try:
                    for key, version_id in self._pinned(phase(rid, recs)):
                        targets.append((key, version_id))
                        owners.append(rid)
                except EdocError as exc:
                    errors[rid] = exc
            # A store that cannot be asked at all raises here: the run stops, the page's
            # items stay pending, and the next purge resumes it.
            for rid, outcome in zip(owners, self.a.store.delete_many(targets), strict=True):
                if outcome.error is not None and rid not in errors:
                    errors[rid] = outcome.error
        batch = list(by_record.items())
        for start in range(0, len(batch), COMMIT_RECORDS):
            self._record_outcomes(run_id, batch[start:start + COMMIT_RECORDS], errors, report)

    @staticmethod
    def _content_objects(rid: str, rows: Iterable[Any]) -> Iterator[tuple[str, str | None]]:
        for row in rows:
            # A metadata-only correction points at an earlier version's content, which that
            # version owns and deletes.
            if row.content_key == layout.content_key(rid, row.version):
                yield row.content_key, row.content_version_id

    @staticmethod
    def _manifest_objects(rid: str, rows: Iterable[Any]) -> Iterator[tuple[str, str | None]]:
        for row in rows:
            yield row.manifest_key, row.manifest_version_id
            if row.seal_key:
                yield row.seal_key, None

    def _pinned(self, refs: Iterable[tuple[str, str | None]]) -> Iterator[tuple[str, str]]:
        """Each (key, version id), by the version the catalog pinned: no request before the
        delete. A seal (its version is not catalogued) or a row from before version ids
        were pinned is asked for by key — absent means an earlier run deleted it."""
        for key, version_id in refs:
            if version_id:
                yield key, version_id
                continue
            try:
                yield key, self.a.store.stat(key).version_id
            except ObjectMissing:
                continue

    def _record_outcomes(self, run_id: str, batch: Sequence[tuple[str, list[Any]]],
                         errors: dict[str, EdocError], report: PurgeReport) -> None:
        """One transaction: refused records' items marked refused; disposed records'
        versions, items and record marked disposed, with a ``purge`` leaf per version."""
        now = edoc_clock.now()
        at = utc_text(now)
        leaves: list[dict[str, Any]] = []
        refused: list[tuple[str, str]] = []
        disposed: list[tuple[str, int]] = []
        gone: list[str] = []
        for rid, rows in batch:
            error = errors.get(rid)
            if error is not None:
                refused.append((rid, str(error)))
                continue
            for row in rows:
                entry = event_entry("purge", now, record_id=rid, version=row.version,
                                    manifest_sha256=row.manifest_sha256,
                                    content_sha256=row.content_sha256, run_id=run_id)
                leaves.append({"event": "purge", "record_id": rid,
                               "version": row.version, "leaf_hash": leaf_hex(entry),
                               "entry": entry.decode()})
                disposed.append((rid, row.version))
            gone.append(rid)
        self.a.catalog.record_disposal(run_id, refused=refused, disposed=disposed,
                                       records_gone=gone, leaves=leaves, at=at)
        # The derived full text goes with the record (edoc.services.fulltext); a run that
        # dies before this line leaves texts the end of the next run sweeps.
        self.a.catalog.drop_texts(gone)
        for rid, rows in batch:
            error = errors.get(rid)
            if error is not None:
                report.refused.append({"record_id": rid, "code": error.code,
                                       "message": error.message})
            else:
                report.disposed.append(DisposedRecord(rid, tuple(r.version for r in rows)))

    # -- the certificate -------------------------------------------------------------------
    def _journal(self, run_id: str, *, disposed: bool) -> Iterator[Any]:
        """The run's items, disposed ones or the others, in (record, version) order, read
        ``CERTIFICATE_PAGE`` rows at a time."""
        after = ("", -1)
        while True:
            page = self.a.catalog.journal_page(run_id, disposed=disposed, after=after,
                                               limit=CERTIFICATE_PAGE)
            yield from page
            if len(page) < CERTIFICATE_PAGE:
                return
            after = (page[-1].record_id, page[-1].version)

    def certificate_body(self, run_id: str) -> tuple[bytes, int]:
        """The certificate's canonical JSON and its count of disposed versions.

        Written from the journal a page at a time into one buffer, never as one dict of
        every entry: the bytes equal ``canonical.dumps`` of the whole document (sorted keys
        — ``actor``, ``archive_id``, ``count``, ``disposed``, ``not_disposed``, ``run_id``,
        ``schema``, ``time_source_gen_time`` — so the two lists sit between the rest)."""
        run, count = self.a.catalog.disposal_run(run_id)
        out = io.BytesIO()
        head = canonical.dumps({"actor": run.actor, "archive_id": self.a.cfg.archive_id,
                                "count": count})
        out.write(head[:-1] + b',"disposed":[')
        for n, item in enumerate(self._journal(run_id, disposed=True)):
            out.write(b"," if n else b"")
            out.write(canonical.dumps(dict(json.loads(item.entry),
                                           disposed_at=item.disposed_at)))
        out.write(b'],"not_disposed":[')
        for n, item in enumerate(self._journal(run_id, disposed=False)):
            out.write(b"," if n else b"")
            out.write(canonical.dumps({"record_id": item.record_id, "version": item.version,
                                       "error": item.error}))
        tail = canonical.dumps({"run_id": run_id, "schema": CERTIFICATE_SCHEMA,
                                "time_source_gen_time": run.now})
        out.write(b"]," + tail[1:])
        return out.getvalue(), count

    def _certify(self, run_id: str, report: PurgeReport) -> None:
        self.lease.check()
        data, count = self.certificate_body(run_id)
        stamp = self.a.notary.stamp(data)
        keep = edoc_clock.now() + CERTIFICATE_RETENTION
        key = layout.disposal_key(run_id, "json")
        for ext, blob in (("json", data), ("p7s", stamp.seal), ("tsr", stamp.tsr)):
            try:
                self.a.store.put_bytes(layout.disposal_key(run_id, ext), blob,
                                       retain_until=keep)
            except ObjectExists:
                # An interrupted earlier attempt stored it. The certificate body is built
                # only from the journal, so it must be byte-identical; a seal or token
                # already stored covers those same bytes and is kept.
                if ext == "json" and self.a.store.read(key) != data:
                    raise EdocError(f"{key} exists with other contents",
                                    code="CERTIFICATE_CONFLICT",
                                    hint="run 'edoc ledger verify'") from None
        entry = event_entry("disposal-certificate", edoc_clock.now(), run_id=run_id,
                            certificate_sha256=hashlib.sha256(data).hexdigest(),
                            count=count)
        del data, stamp
        self.a.catalog.certify_run(run_id, certificate_key=key, entry=entry.decode(),
                                   leaf_hash=leaf_hex(entry),
                                   finished_at=utc_text(edoc_clock.now()))
        flush_ledger_objects(self.a.catalog, self.a.store, keep)
        make_checkpoint(self.a.catalog, self.a.store, self.a.notary, min_retain=keep)
        report.certificates.append(key)


def certificate_for(archive: Archive, record_id: str) -> str | None:
    """The disposal certificate key that lists ``record_id``, if it was disposed."""
    return archive.catalog.certificate_for(record_id)
