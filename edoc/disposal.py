"""Disposal (`edoc purge`): destroy what has expired, and certify what was destroyed.

Selection is per record: a record is disposable when every one of its versions has passed
its retain-until (history lives as long as the record), no legal hold is active, and it was
not disposed before. "Now" is the genTime of a fresh RFC 3161 timestamp, never the local
clock alone and never a date the caller picks (DESIGN.md "Time"); a run refuses to start if
that time is behind the newest checkpoint.

Crash safety — the run is a journal in the catalog:
1. the run and every selected version are recorded as ``pending`` (one transaction);
2. per record: content, manifest and seal objects are deleted (a missing object counts as
   deleted: an earlier run got that far), then one transaction marks the versions
   disposed, the record disposed, and appends a ``purge`` ledger leaf per version
   (hashes only, so the ledger never has to be rewritten);
3. the certificate (廃棄証明) lists every disposed version, is sealed and timestamped and
   stored write-once; the run is marked ``certified``.
A run that stopped anywhere is finished by the next ``purge`` before it selects anything new.
A store refusing a delete (lock still active) is recorded per version as ``refused``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from edoc import canonical, ids, layout
from edoc.archive import Archive
from edoc.catalog import (
    Catalog,
    disposal_items,
    disposal_runs,
    holds,
    records,
    utc_text,
    versions,
)
from edoc.errors import EdocError, ObjectExists, ObjectMissing
from edoc.ingest import recover_intents
from edoc.ledger import (
    event_entry,
    flush_ledger_objects,
    leaf_hex,
    make_checkpoint,
    work_pending,
)

CERTIFICATE_SCHEMA = "edoc.disposal-certificate/1"
#: Certificates prove destruction; they hold no personal data and are kept ten years.
CERTIFICATE_RETENTION = timedelta(days=3653)


@dataclass
class Candidate:
    record_id: str
    versions: list[Any]
    bytes: int
    profiles: list[str]


@dataclass
class PurgeReport:
    now: datetime
    dry_run: bool
    selected: list[Candidate] = field(default_factory=list)
    disposed: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    certificates: list[str] = field(default_factory=list)
    resumed_runs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refused

    def as_dict(self) -> dict[str, Any]:
        by_profile: dict[str, dict[str, int]] = {}
        for c in self.selected:
            for p in c.profiles:
                entry = by_profile.setdefault(p, {"records": 0, "bytes": 0})
                entry["records"] += 1
                entry["bytes"] += c.bytes
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "now": utc_text(self.now),
            "selected": {"records": len(self.selected),
                         "versions": sum(len(c.versions) for c in self.selected),
                         "bytes": sum(c.bytes for c in self.selected),
                         "by_profile": by_profile,
                         "record_ids": [c.record_id for c in self.selected]},
            "disposed": self.disposed,
            "refused": self.refused,
            "certificates": self.certificates,
            "resumed_runs": self.resumed_runs,
        }


@contextlib.contextmanager
def _run_lock(archive: Archive) -> Iterator[None]:
    path = archive.cfg.dir / ".purge.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EdocError("another purge is running on this archive", code="PURGE_RUNNING",
                            hint="wait for it to finish; runs are safe to repeat") from None
        yield
    finally:
        os.close(fd)


class Disposer:
    def __init__(self, archive: Archive) -> None:
        self.a = archive

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

    def select(self, now: datetime, limit: int | None) -> list[Candidate]:
        v, r = versions, records
        held = sa.select(holds.c.record_id).where(holds.c.released_at.is_(None))
        expiry = sa.func.max(v.c.retain_until_at)
        stmt = (sa.select(v.c.record_id, expiry)
                .join(r, r.c.record_id == v.c.record_id)
                .where(r.c.state != "disposed", v.c.record_id.not_in(held))
                .group_by(v.c.record_id)
                .having(expiry <= utc_text(now))
                .order_by(expiry, v.c.record_id))
        if limit:
            stmt = stmt.limit(limit)
        out = []
        with self.a.catalog.read() as c:
            rids = [row[0] for row in c.execute(stmt)]
        for rid in rids:
            rows = self.a.catalog.version_rows(rid)
            profiles = sorted({p for row in rows for p in json.loads(row.profiles)})
            size = sum(row.content_size or 0 for row in rows
                       if row.content_key == layout.content_key(rid, row.version))
            out.append(Candidate(rid, rows, size, profiles))
        return out

    def run(self, *, dry_run: bool, limit: int | None = None) -> PurgeReport:
        self.a.notary.ready_to_sign()
        with _run_lock(self.a):
            now = self.trusted_now()
            report = PurgeReport(now=now, dry_run=dry_run)
            if dry_run:
                report.selected = self.select(now, limit)
                return report
            # Versions a dead run left half-written are finished first, so selection sees
            # every version of a record (edoc.ingest commit protocol).
            recover_intents(self.a)
            for run_id in self._unfinished_runs():
                report.resumed_runs.append(run_id)
                self._finish_run(run_id, report)
            report.selected = self.select(now, limit)
            if report.selected:
                run_id = ids.new_record_id()
                self._journal(run_id, now, report.selected)
                self._finish_run(run_id, report)
            elif work_pending(self.a.catalog):
                # An interrupted run's last leaves and checkpoint (certificate included).
                keep = datetime.now(UTC) + CERTIFICATE_RETENTION
                flush_ledger_objects(self.a.catalog, self.a.store, keep)
                make_checkpoint(self.a.catalog, self.a.store, self.a.notary, min_retain=keep)
            return report

    # -- the journal -----------------------------------------------------------------------
    def _unfinished_runs(self) -> list[str]:
        with self.a.catalog.read() as c:
            return [r[0] for r in c.execute(sa.select(disposal_runs.c.run_id)
                                            .where(disposal_runs.c.state == "running")
                                            .order_by(disposal_runs.c.started_at))]

    def _journal(self, run_id: str, now: datetime, selected: list[Candidate]) -> None:
        with self.a.catalog.write() as c:
            c.execute(disposal_runs.insert().values(
                run_id=run_id, started_at=utc_text(datetime.now(UTC)), now=utc_text(now),
                actor=self.a.actor, state="running"))
            for cand in selected:
                for row in cand.versions:
                    manifest = self._certificate_entry(row)
                    c.execute(disposal_items.insert().values(
                        run_id=run_id, record_id=row.record_id, version=row.version,
                        state="pending", entry=json.dumps(manifest, sort_keys=True)))

    @staticmethod
    def _certificate_entry(row: Any) -> dict[str, Any]:
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
        with self.a.catalog.read() as c:
            pending = list(c.execute(sa.select(disposal_items)
                                     .where(disposal_items.c.run_id == run_id,
                                            disposal_items.c.state == "pending")
                                     .order_by(disposal_items.c.record_id,
                                               disposal_items.c.version)))
        by_record: dict[str, list[Any]] = {}
        for item in pending:
            by_record.setdefault(item.record_id, []).append(item)
        for rid, items in by_record.items():
            self._dispose_record(run_id, rid, items, report)
        self._certify(run_id, report)

    def _dispose_record(self, run_id: str, rid: str, items: list[Any],
                        report: PurgeReport) -> None:
        rows = {r.version: r for r in self.a.catalog.version_rows(rid)}
        # Re-check the hold at the last moment: a hold placed after selection wins.
        with self.a.catalog.read() as c:
            on_hold = c.execute(sa.select(holds.c.id).where(
                holds.c.record_id == rid, holds.c.released_at.is_(None))).first()
        error: EdocError | None = None
        if on_hold is not None:
            error = EdocError(f"record {rid} was put on hold during the run",
                              code="RECORD_ON_HOLD")
        else:
            for item in items:
                row = rows[item.version]
                keys = [row.manifest_key] + ([row.seal_key] if row.seal_key else [])
                if row.content_key == layout.content_key(rid, row.version):
                    keys.insert(0, row.content_key)
                for key in keys:
                    try:
                        info = self.a.store.stat(key)
                        self.a.store.delete(key, info.version_id)
                    except ObjectMissing:
                        continue  # deleted by an earlier, interrupted run
                    except EdocError as exc:
                        error = exc
                        break
                if error:
                    break
        now = datetime.now(UTC)
        with self.a.catalog.write() as c:
            if error is not None:
                for item in items:
                    c.execute(disposal_items.update().where(
                        disposal_items.c.run_id == run_id,
                        disposal_items.c.record_id == rid,
                        disposal_items.c.version == item.version).values(
                        state="refused", error=str(error)))
                report.refused.append({"record_id": rid, "code": error.code,
                                       "message": error.message})
                return
            for item in items:
                row = rows[item.version]
                entry = event_entry("purge", now, record_id=rid, version=row.version,
                                    manifest_sha256=row.manifest_sha256,
                                    content_sha256=row.content_sha256, run_id=run_id)
                Catalog.append_ledger(c, event_type="purge", entry=entry.decode(),
                                      leaf_hash=leaf_hex(entry), record_id=rid,
                                      version=row.version)
                c.execute(versions.update().where(versions.c.record_id == rid,
                                                  versions.c.version == row.version)
                          .values(disposed_at=utc_text(now)))
                c.execute(disposal_items.update().where(
                    disposal_items.c.run_id == run_id, disposal_items.c.record_id == rid,
                    disposal_items.c.version == item.version).values(
                    state="disposed", disposed_at=utc_text(now)))
            c.execute(records.update().where(records.c.record_id == rid)
                      .values(state="disposed"))
        report.disposed.append({"record_id": rid, "versions": [i.version for i in items]})

    def _certify(self, run_id: str, report: PurgeReport) -> None:
        with self.a.catalog.read() as c:
            run = c.execute(sa.select(disposal_runs)
                            .where(disposal_runs.c.run_id == run_id)).one()
            items = list(c.execute(sa.select(disposal_items)
                                   .where(disposal_items.c.run_id == run_id)
                                   .order_by(disposal_items.c.record_id,
                                             disposal_items.c.version)))
        disposed = [dict(json.loads(i.entry), disposed_at=i.disposed_at)
                    for i in items if i.state == "disposed"]
        refused = [{"record_id": i.record_id, "version": i.version, "error": i.error}
                   for i in items if i.state != "disposed"]
        body = {
            "schema": CERTIFICATE_SCHEMA,
            "archive_id": self.a.cfg.archive_id,
            "run_id": run_id,
            "time_source_gen_time": run.now,
            "actor": run.actor,
            "disposed": disposed,
            "not_disposed": refused,
            "count": len(disposed),
        }
        data = canonical.dumps(body)
        stamp = self.a.notary.stamp(data)
        keep = datetime.now(UTC) + CERTIFICATE_RETENTION
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
        entry = event_entry("disposal-certificate", datetime.now(UTC), run_id=run_id,
                            certificate_sha256=hashlib.sha256(data).hexdigest(),
                            count=len(disposed))
        with self.a.catalog.write() as c:
            Catalog.append_ledger(c, event_type="certificate", entry=entry.decode(),
                                  leaf_hash=leaf_hex(entry))
            c.execute(disposal_runs.update().where(disposal_runs.c.run_id == run_id).values(
                state="certified", certificate_key=key,
                finished_at=utc_text(datetime.now(UTC))))
        flush_ledger_objects(self.a.catalog, self.a.store, keep)
        make_checkpoint(self.a.catalog, self.a.store, self.a.notary, min_retain=keep)
        report.certificates.append(key)


def certificate_for(archive: Archive, record_id: str) -> str | None:
    """The disposal certificate key that lists ``record_id``, if it was disposed."""
    with archive.catalog.read() as c:
        row = c.execute(sa.select(disposal_runs.c.certificate_key)
                        .join(disposal_items, disposal_items.c.run_id == disposal_runs.c.run_id)
                        .where(disposal_items.c.record_id == record_id,
                               disposal_items.c.state == "disposed")).first()
    return str(row[0]) if row and row[0] else None
