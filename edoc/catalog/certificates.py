"""The catalog's view of disposal certificates (廃棄証明): which runs were certified, where
their certificate is stored, and what it covers.

A run's row (``disposal_runs``) gets its ``certificate_key`` in the transaction that marks
it ``certified``, after the certificate, its seal and its timestamp token were stored
(``edoc.services.disposal``); ``catalog rebuild`` restores the rows from the certificates
themselves. Read-only here: nothing in this module writes the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from edoc.catalog import Catalog, disposal_items, disposal_runs


@dataclass(frozen=True, slots=True)
class CertifiedRun:
    """One certified disposal run, as the catalog knows it."""

    run_id: str
    #: the certificate's object key (``disposals/<run>.json``)
    certificate_key: str
    #: the trusted "now" of the run: the genTime of its RFC 3161 timestamp
    time: str
    #: when the run was certified (the local clock)
    certified_at: str | None
    actor: str
    #: records and versions the certificate lists as disposed
    records: int
    versions: int


def _certified() -> sa.Select[Any]:
    di = disposal_items
    disposed = (sa.select(di.c.run_id,
                          sa.func.count(sa.distinct(di.c.record_id)).label("records"),
                          sa.func.count().label("versions"))
                .where(di.c.state == "disposed").group_by(di.c.run_id).subquery())
    r = disposal_runs
    return (sa.select(r.c.run_id, r.c.certificate_key, r.c.now, r.c.finished_at, r.c.actor,
                      sa.func.coalesce(disposed.c.records, 0).label("records"),
                      sa.func.coalesce(disposed.c.versions, 0).label("versions"))
            .outerjoin(disposed, disposed.c.run_id == r.c.run_id)
            .where(r.c.state == "certified", r.c.certificate_key.is_not(None)))


def _run(row: sa.Row[Any]) -> CertifiedRun:
    return CertifiedRun(run_id=str(row.run_id), certificate_key=str(row.certificate_key),
                        time=str(row.now),
                        certified_at=None if row.finished_at is None else str(row.finished_at),
                        actor=str(row.actor), records=int(row.records),
                        versions=int(row.versions))


def certified_runs(catalog: Catalog) -> list[CertifiedRun]:
    """Every certified run, oldest first (by trusted time, then run id)."""
    stmt = _certified().order_by(disposal_runs.c.now, disposal_runs.c.run_id)
    with catalog.read() as c:
        return [_run(row) for row in c.execute(stmt)]


def certified_run(catalog: Catalog, certificate_key: str) -> CertifiedRun | None:
    """The certified run whose certificate is stored under ``certificate_key``, if any."""
    stmt = _certified().where(disposal_runs.c.certificate_key == certificate_key)
    with catalog.read() as c:
        row = c.execute(stmt).first()
    return None if row is None else _run(row)
