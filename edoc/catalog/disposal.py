"""Disposal runs and their journal (``disposal_runs``, ``disposal_items``).

The journal is how a purge survives a crash (``edoc.services.disposal``): a page of
versions is journaled ``pending`` in the transaction that selected it, then marked
``disposed`` or ``refused`` with a ``purge`` leaf per version. Selection is per record: a
record is disposable when every version has passed its retain-until, no hold is active,
and it was not disposed before. Page sizes are the caller's (they are its tuning).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from edoc.catalog.engine import CatalogEngine, TransactionBase
from edoc.catalog.ledger import append_ledger, append_ledger_many
from edoc.catalog.records import VersionRow
from edoc.catalog.schema import disposal_items, disposal_runs, holds, records, versions
from edoc.clock import utc_text


@dataclass(frozen=True, slots=True)
class DisposalRun:
    """A row of ``disposal_runs``."""

    run_id: str
    started_at: str
    #: the TSA genTime that served as "now" for selection
    now: str
    actor: str
    #: running | certified
    state: str
    certificate_key: str | None
    finished_at: str | None


@dataclass(frozen=True, slots=True)
class JournalItem:
    """A run's item as the certificate lists it."""

    record_id: str
    version: int
    entry: str
    error: str | None
    disposed_at: str | None


def _eligible(now: datetime) -> sa.Select[Any]:
    """Record ids whose every version has expired at ``now``, not held, not disposed."""
    v, r = versions, records
    held = sa.select(holds.c.record_id).where(holds.c.released_at.is_(None))
    return (sa.select(v.c.record_id)
            .join(r, r.c.record_id == v.c.record_id)
            .where(r.c.state != "disposed", v.c.record_id.not_in(held))
            .group_by(v.c.record_id)
            .having(sa.func.max(v.c.retain_until_at) <= utc_text(now)))


class DisposalSelection(TransactionBase):
    """Selection and journaling, on the connection of one (read or write) transaction."""

    def disposable_after(self, now: datetime, after: str, limit: int) -> list[str]:
        """Up to ``limit`` disposable record ids past ``after``, in id order (keyset
        pagination over the versions primary key: one pass however many pages)."""
        stmt = (_eligible(now).where(versions.c.record_id > after)
                .order_by(versions.c.record_id).limit(limit))
        return [r[0] for r in self.conn.execute(stmt)]

    def disposable_soonest(self, now: datetime, limit: int) -> list[str]:
        """The ``limit`` disposable records whose retention ended first, in id order."""
        expiry = sa.func.max(versions.c.retain_until_at)
        stmt = _eligible(now).order_by(expiry, versions.c.record_id).limit(limit)
        return sorted(r[0] for r in self.conn.execute(stmt))

    def disposable_among(self, now: datetime, record_ids: Sequence[str]) -> list[str]:
        """Those of ``record_ids`` still disposable (a hold placed since wins), sorted."""
        return sorted(r[0] for r in self.conn.execute(
            _eligible(now).where(versions.c.record_id.in_(record_ids))))

    def versions_of(self, record_ids: Sequence[str]) -> dict[str, list[VersionRow]]:
        rows: dict[str, list[VersionRow]] = {rid: [] for rid in record_ids}
        for row in self.conn.execute(
                sa.select(versions).where(versions.c.record_id.in_(record_ids))
                .order_by(versions.c.record_id, versions.c.version)):
            rows[row.record_id].append(VersionRow.of(row))
        return rows

    def start_disposal_run(self, *, run_id: str, started_at: str, now: str, actor: str
                           ) -> None:
        self.conn.execute(disposal_runs.insert().values(
            run_id=run_id, started_at=started_at, now=now, actor=actor, state="running"))

    def journal_pending(self, run_id: str, items: Sequence[tuple[str, int, dict[str, Any]]]
                        ) -> None:
        """Journal (record id, version, certificate entry) items as ``pending``."""
        self.conn.execute(disposal_items.insert(), [
            {"run_id": run_id, "record_id": rid, "version": version, "state": "pending",
             "entry": json.dumps(entry, sort_keys=True)} for rid, version, entry in items])


class DisposalReads(CatalogEngine):
    def unfinished_disposal_runs(self) -> list[str]:
        """Runs that stopped before their certificate, oldest first."""
        with self.read() as c:
            return [r[0] for r in c.execute(sa.select(disposal_runs.c.run_id)
                                            .where(disposal_runs.c.state == "running")
                                            .order_by(disposal_runs.c.started_at))]

    def disposal_in_progress(self, record_id: str, version: int) -> str | None:
        """The run that has journaled this version for disposal and not finished it (its
        objects may already be gone, the catalog not yet marked), or None."""
        with self.read() as c:
            found = c.execute(
                sa.select(disposal_items.c.run_id)
                .where(disposal_items.c.record_id == record_id,
                       disposal_items.c.version == version,
                       disposal_items.c.state == "pending").limit(1)).scalar()
        return None if found is None else str(found)

    def disposal_uncertified(self, record_id: str) -> str | None:
        """The unfinished run that has disposed of ``record_id`` and not yet written its
        certificate (it stopped, or is still going), or None."""
        with self.read() as c:
            found = c.execute(
                sa.select(disposal_runs.c.run_id)
                .join(disposal_items, disposal_items.c.run_id == disposal_runs.c.run_id)
                .where(disposal_items.c.record_id == record_id,
                       disposal_items.c.state == "disposed",
                       disposal_runs.c.state == "running").limit(1)).scalar()
        return None if found is None else str(found)

    def pending_disposal_records(self, run_id: str, after: str, limit: int) -> list[str]:
        with self.read() as c:
            return [r[0] for r in c.execute(
                sa.select(disposal_items.c.record_id).distinct()
                .where(disposal_items.c.run_id == run_id,
                       disposal_items.c.state == "pending",
                       disposal_items.c.record_id > after)
                .order_by(disposal_items.c.record_id).limit(limit))]

    def pending_disposal(self, run_id: str, record_ids: Sequence[str]
                         ) -> tuple[list[VersionRow], set[str]]:
        """The pending versions of ``record_ids`` in run ``run_id``, and which of those
        records are on hold now (re-checked at the last moment: a hold placed after
        selection wins), read in one snapshot."""
        with self.read() as c:
            rows = [VersionRow.of(r) for r in c.execute(
                sa.select(versions)
                .join(disposal_items, sa.and_(disposal_items.c.record_id == versions.c.record_id,
                                              disposal_items.c.version == versions.c.version))
                .where(disposal_items.c.run_id == run_id,
                       disposal_items.c.state == "pending",
                       disposal_items.c.record_id.in_(record_ids))
                .order_by(versions.c.record_id, versions.c.version))]
            held = {r[0] for r in c.execute(
                sa.select(holds.c.record_id).where(holds.c.record_id.in_(record_ids),
                                                   holds.c.released_at.is_(None)))}
        return rows, held

    def record_disposal(self, run_id: str, *, refused: Sequence[tuple[str, str]],
                        disposed: Sequence[tuple[str, int]], records_gone: Sequence[str],
                        leaves: Sequence[dict[str, Any]], at: str) -> None:
        """One transaction: ``refused`` (record id, error) items marked refused; the
        ``disposed`` (record id, version) versions and items, and ``records_gone``, marked
        disposed, with ``leaves`` appended to the ledger."""
        with self.write() as c:
            for rid, error in refused:
                c.execute(disposal_items.update().where(
                    disposal_items.c.run_id == run_id,
                    disposal_items.c.record_id == rid,
                    disposal_items.c.state == "pending").values(state="refused", error=error))
            if not leaves:
                return
            append_ledger_many(c, leaves)
            c.execute(versions.update()
                      .where(versions.c.record_id == sa.bindparam("b_rid"),
                             versions.c.version == sa.bindparam("b_version"))
                      .values(disposed_at=sa.bindparam("b_at")),
                      [{"b_rid": rid, "b_version": v, "b_at": at} for rid, v in disposed])
            c.execute(disposal_items.update()
                      .where(disposal_items.c.run_id == sa.bindparam("b_run"),
                             disposal_items.c.record_id == sa.bindparam("b_rid"),
                             disposal_items.c.version == sa.bindparam("b_version"))
                      .values(state="disposed", disposed_at=sa.bindparam("b_at")),
                      [{"b_run": run_id, "b_rid": rid, "b_version": v, "b_at": at}
                       for rid, v in disposed])
            c.execute(records.update().where(records.c.record_id == sa.bindparam("b_rid"))
                      .values(state="disposed"), [{"b_rid": rid} for rid in records_gone])

    def journal_page(self, run_id: str, *, disposed: bool, after: tuple[str, int],
                     limit: int) -> list[JournalItem]:
        """The run's items, disposed ones or the others, past ``after`` in (record,
        version) order."""
        di = disposal_items
        state = di.c.state == "disposed" if disposed else di.c.state != "disposed"
        with self.read() as c:
            return [JournalItem(*r) for r in c.execute(
                sa.select(di.c.record_id, di.c.version, di.c.entry, di.c.error,
                          di.c.disposed_at)
                .where(di.c.run_id == run_id, state,
                       sa.tuple_(di.c.record_id, di.c.version) > sa.tuple_(*after))
                .order_by(di.c.record_id, di.c.version).limit(limit))]

    def disposal_run(self, run_id: str) -> tuple[DisposalRun, int]:
        """The run and its count of disposed versions."""
        with self.read() as c:
            run = c.execute(sa.select(disposal_runs)
                            .where(disposal_runs.c.run_id == run_id)).one()
            count = int(c.execute(sa.select(sa.func.count()).select_from(disposal_items)
                                  .where(disposal_items.c.run_id == run_id,
                                         disposal_items.c.state == "disposed")).scalar_one())
        return DisposalRun(**run._mapping), count

    def certify_run(self, run_id: str, *, certificate_key: str, entry: str, leaf_hash: str,
                    finished_at: str) -> None:
        """The ``certificate`` leaf and the run marked certified, in one transaction."""
        with self.write() as c:
            append_ledger(c, event_type="certificate", entry=entry, leaf_hash=leaf_hash)
            c.execute(disposal_runs.update().where(disposal_runs.c.run_id == run_id).values(
                state="certified", certificate_key=certificate_key, finished_at=finished_at))

    def certificate_for(self, record_id: str) -> str | None:
        """The disposal certificate key that lists ``record_id``, if it was disposed."""
        with self.read() as c:
            row = c.execute(sa.select(disposal_runs.c.certificate_key)
                            .join(disposal_items,
                                  disposal_items.c.run_id == disposal_runs.c.run_id)
                            .where(disposal_items.c.record_id == record_id,
                                   disposal_items.c.state == "disposed")).first()
        return str(row[0]) if row and row[0] else None
