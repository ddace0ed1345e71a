"""Records, their versions and the intents of versions being written.

The statements of the ingest path are built once, here (see below); the commit protocol
that runs them is ``edoc.services.commit``, which reaches them through ``Catalog``'s
``reserve_intent``, ``catalogue_version`` and ``drop_intent``. Those two run in shared
transactions of many threads (``edoc.catalog.group_commit``), each durable before it
returns. Rows come back as frozen dataclasses with the columns' names.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edoc.catalog.engine import CatalogEngine
from edoc.catalog.ledger import append_ledger
from edoc.catalog.schema import (
    intents,
    ledger,
    normalise_counterparty,
    records,
    versions,
)
from edoc.clock import utc_text
from edoc.errors import EdocError
from edoc.model.manifest import Manifest, ManifestError

# -- statements of the ingest path, built once ---------------------------------------------------
# Every ingested record runs the statements below (duplicate lookups, the write intent, the
# record, its version and its ledger leaf). A statement built per call, e.g.
# ``select(...).where(versions.c.sha256 == x)``, is coerced, generated and cache-keyed anew
# each time before SQLAlchemy even finds its compiled form in the engine's cache: measured
# with ``py-spy --gil`` at 8 files in flight, that was a visible share of the GIL time
# (issue 8). Built once with ``bindparam()``s, a statement memoizes its cache key and each
# call only binds a parameter dict. They are plain SQLAlchemy Core, compiled per dialect by
# the engine: the same on SQLite and PostgreSQL. Executing one does not change it, so threads
# share them. An INSERT without ``values()`` takes its columns from the parameter dict.

#: A record that is active and holds content with digest ``:sha256`` (the duplicate check).
ACTIVE_RECORD_BY_SHA = (
    sa.select(versions.c.record_id)
    .join(records, records.c.record_id == versions.c.record_id)
    .where(versions.c.content_sha256 == sa.bindparam("sha256"), records.c.state == "active")
    .limit(1))
#: A version being written (an intent) of a new record with content digest ``:sha256``.
INTENT_BY_SHA = (sa.select(intents.c.record_id)
                 .where(intents.c.content_sha256 == sa.bindparam("sha256")).limit(1))
#: Record ``:record_id``'s latest version and state.
RECORD_HEAD = (sa.select(records.c.latest_version, records.c.state)
               .where(records.c.record_id == sa.bindparam("record_id")))
#: Who writes version ``:version`` of record ``:record_id``, if anyone.
INTENT_OWNER = sa.select(intents.c.owner).where(
    intents.c.record_id == sa.bindparam("record_id"),
    intents.c.version == sa.bindparam("version"))
INSERT_INTENT = intents.insert()
#: Drop the intent for version ``:version`` of ``:record_id`` (rowcount 0: it was gone).
DELETE_INTENT = intents.delete().where(
    intents.c.record_id == sa.bindparam("record_id"),
    intents.c.version == sa.bindparam("version"))
INSERT_RECORD = records.insert()
#: Move record ``:rid`` to version ``:latest_version`` in state ``:state``. (The WHERE's
#: parameter may not share a column's name: SQLAlchemy keeps those for the SET clause.)
MOVE_RECORD = (records.update().where(records.c.record_id == sa.bindparam("rid"))
               .values(latest_version=sa.bindparam("latest_version"),
                       state=sa.bindparam("state")))
INSERT_VERSION = versions.insert()
#: The columns ``INSERT_VERSION`` takes. An INSERT without ``values()`` silently drops a key
#: that names no column (``.values(**row)`` refused it), so callers check with ``stray_columns``.
VERSION_COLUMNS = frozenset(versions.c.keys())


def stray_columns(row: dict[str, object], columns: frozenset[str]) -> list[str]:
    """Keys of ``row`` that name no column: a search field spelt wrong would otherwise be
    lost without a word (the 検索要件 columns must be filled from the manifest)."""
    return sorted(row.keys() - columns)


def version_row(m: Manifest, *, manifest_sha256: str,
                content_ref: tuple[str | None, str | None], seal_key: str | None,
                manifest_version_id: str | None = None, ledger_index: int | None = None
                ) -> dict[str, Any]:
    """The ``versions`` row for manifest ``m``: every searchable column comes from the sealed
    manifest, the one mapping used by ingest, recovery and ``catalog rebuild`` alike."""
    from edoc.model import canonical

    c, meta = m.content, m.metadata
    retain_until, until_at = m.retain_until, m.until_at
    if retain_until is None or until_at is None:
        raise ManifestError("manifest retention has no retain_until and until_at")
    return {
        "record_id": m.record_id, "version": m.version, "kind": m.kind,
        "content_sha256": c.sha256 if c else None, "content_size": c.size if c else None,
        "media_type": c.media_type if c else None,
        "original_name": c.original_name if c else None,
        "content_key": content_ref[0], "content_version_id": content_ref[1],
        "manifest_key": f"records/{m.record_id}/v{m.version}/manifest.json",
        "manifest_version_id": manifest_version_id, "manifest_sha256": manifest_sha256,
        "seal_key": seal_key,
        "profiles": canonical.dumps(list(m.profiles)).decode(),
        "document_class": m.document_class, "doc_type": m.doc_type,
        "transaction_date": meta.transaction_date, "amount": meta.amount,
        "counterparty": meta.counterparty,
        "counterparty_norm": normalise_counterparty(meta.counterparty)
        if meta.counterparty else None,
        "ledger_ref": meta.ledger_ref,
        "retain_until": retain_until,
        "retain_until_at": utc_text(datetime.fromisoformat(until_at)),
        "ingested_at": m.ingested_at, "ledger_index": ledger_index, "disposed_at": None,
        "invoice_number": meta.invoice_number,
        "registration_number": meta.registration_number,
    }


@dataclass(frozen=True, slots=True)
class RecordRow:
    """A row of ``records``."""

    record_id: str
    created_at: str
    latest_version: int
    #: active | deleted (tombstone is latest) | disposed (purged)
    state: str


@dataclass(slots=True)
class VersionRow:
    """A row of ``versions``: the attribute names are the columns' (cli.py renders them).

    Read-only by convention, not ``frozen``: one is built for every search hit and every
    verified version, and a frozen dataclass's ``__init__`` costs ~2.7 µs for these 27
    fields against ~0.3 µs (measured; old code handed out SQLAlchemy rows at no cost)."""

    record_id: str
    version: int
    kind: str
    content_sha256: str | None
    content_size: int | None
    media_type: str | None
    original_name: str | None
    content_key: str | None
    content_version_id: str | None
    manifest_key: str
    manifest_version_id: str | None
    manifest_sha256: str
    seal_key: str | None
    profiles: str
    document_class: str | None
    doc_type: str | None
    transaction_date: str | None
    amount: int | None
    counterparty: str | None
    counterparty_norm: str | None
    ledger_ref: str | None
    retain_until: str
    retain_until_at: str
    ingested_at: str
    ledger_index: int
    disposed_at: str | None
    invoice_number: str | None = None
    registration_number: str | None = None

    @classmethod
    def of(cls, row: Any) -> VersionRow:
        # Positional: the statements select ``versions`` whole, whose column order is this
        # class's field order (tests/unit/test_catalog_statements.py pins it). Building from
        # ``row._mapping`` cost ~20 µs a row in key lookups: search hits and verify read many.
        return cls(*row)


@dataclass(slots=True)
class VersionWithEntry(VersionRow):
    """A version row with the text of its ledger leaf (None when the catalog lacks it)."""

    ledger_entry: str | None = None

    @classmethod
    def of(cls, row: Any) -> VersionWithEntry:
        return cls(*row)  # ``versions`` whole, then ``ledger_entry`` (see VersionRow.of)


@dataclass(frozen=True)
class Intent:
    """A version being written: a row of ``intents`` as the commit protocol announces it
    (manifest bytes, ledger entry, catalog row), before any object is stored."""

    record_id: str
    version: int
    event: str
    #: the record's state once the version is catalogued
    state: str
    #: a new record's content digest: the duplicate check sees versions being written
    content_sha256: str | None
    #: whether this version stores content of its own (else it reuses an earlier object)
    own_content: bool
    manifest: bytes
    seal: bool
    #: the ledger event, exactly as it will be logged
    entry: bytes
    #: the ``versions`` row, less what only the store and the ledger assign
    row: dict[str, Any]


@dataclass(frozen=True)
class PendingIntent:
    """An intent in the catalog and the writer that announced it."""

    intent: Intent
    owner: str
    created_at: str


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an intent was not reserved: the content is held by (or being given to) record
    ``duplicate_of``, or, when that is None, the record moved on or the version is taken."""

    duplicate_of: str | None = None
    in_flight: bool = False


def _reserve(c: Connection, intent: Intent, owner: str, created_at: datetime
             ) -> Refusal | None:
    # Prebuilt statements with bind parameters (issue 8, see above).
    rid, version = intent.record_id, intent.version
    if intent.content_sha256 is not None:
        sha = {"sha256": intent.content_sha256}
        holder = c.execute(ACTIVE_RECORD_BY_SHA, sha).scalar()
        pending = None if holder else c.execute(INTENT_BY_SHA, sha).scalar()
        if holder or pending:
            return Refusal(str(holder or pending), in_flight=not holder)
    if version > 1:
        cur = c.execute(RECORD_HEAD, {"record_id": rid}).first()
        busy = c.execute(INTENT_OWNER, {"record_id": rid, "version": version}).first()
        if cur is None or cur.latest_version != version - 1 or \
                cur.state == "disposed" or busy:
            return Refusal()
    c.execute(INSERT_INTENT, {
        "record_id": rid, "version": version, "event": intent.event,
        "state": intent.state, "content_sha256": intent.content_sha256,
        "own_content": intent.own_content, "manifest": intent.manifest.decode(),
        "seal": intent.seal, "entry": intent.entry.decode(),
        "row": json.dumps(intent.row, sort_keys=True), "owner": owner,
        "created_at": utc_text(created_at)})
    return None


def _catalogue(c: Connection, intent: Intent, leaf_hash: str, content_version: str | None,
               manifest_version: str) -> bool:
    rid, version = intent.record_id, intent.version
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
    idx = append_ledger(c, event_type=intent.event, entry=intent.entry.decode(),
                        leaf_hash=leaf_hash, record_id=rid, version=version)
    c.execute(INSERT_VERSION, dict(intent.row, content_version_id=content_version,
                                   manifest_version_id=manifest_version, ledger_index=idx))
    return True


class RecordReads(CatalogEngine):
    """Records, versions and intents: reads, and the commit protocol's transactions."""

    def find_by_sha(self, sha256: str) -> str | None:
        """The active record holding content with this SHA-256, if any."""
        with self.read() as c:
            found = c.execute(ACTIVE_RECORD_BY_SHA, {"sha256": sha256}).scalar()
            return None if found is None else str(found)

    def version_rows(self, record_id: str) -> list[VersionRow]:
        stmt = sa.select(versions).where(versions.c.record_id == record_id).order_by(
            versions.c.version)
        with self.read() as c:
            return [VersionRow.of(r) for r in c.execute(stmt)]

    def versions_with_entries(self, record_ids: Sequence[str]
                              ) -> dict[str, list[VersionWithEntry]]:
        """The version rows of ``record_ids`` (each record's in version order), each with the
        text of its ledger entry as ``ledger_entry`` (None when the catalog lacks it), in one
        query: period verification reads a chunk of records at a time instead of two
        queries per version. Records without versions are absent from the result."""
        out: dict[str, list[VersionWithEntry]] = {}
        ids = sorted(set(record_ids))
        stmt = (sa.select(versions, ledger.c.entry.label("ledger_entry"))
                .outerjoin(ledger, ledger.c.idx == versions.c.ledger_index)
                .where(versions.c.record_id.in_(sa.bindparam("ids", expanding=True)))
                .order_by(versions.c.record_id, versions.c.version))
        with self.read() as c:
            # ≤ 500 ids a statement: older SQLite builds allow 999 bound parameters
            for start in range(0, len(ids), 500):
                for row in c.execute(stmt, {"ids": ids[start:start + 500]}):
                    out.setdefault(row.record_id, []).append(VersionWithEntry.of(row))
        return out

    def record_row(self, record_id: str) -> RecordRow | None:
        with self.read() as c:
            row = c.execute(sa.select(records).where(records.c.record_id == record_id)
                            ).first()
        return None if row is None else RecordRow(**row._mapping)

    def manifest_keys(self) -> set[str]:
        """The manifest key of every catalogued version."""
        with self.read() as c:
            return {str(k) for (k,) in c.execute(sa.select(versions.c.manifest_key))}

    # -- the commit protocol's transactions (edoc.services.commit) -------------------------
    def reserve_intent(self, intent: Intent, *, owner: str, created_at: datetime
                       ) -> Refusal | None:
        """Record ``intent`` for writer ``owner``, in one transaction with the checks that
        must hold when it is catalogued: a new record's content is not already stored or
        being stored, and a new version builds on the record's latest one. None when
        reserved; else why not (nothing was written). Durable on return (group commit)."""
        from edoc.catalog.group_commit import committer

        return committer(self).run(lambda c: _reserve(c, intent, owner, created_at))

    def catalogue_version(self, intent: Intent, *, leaf_hash: str,
                          content_version: str | None, manifest_version: str) -> bool:
        """One transaction inserts the version, its ledger leaf (``leaf_hash``) and the
        record (or moves the record to this version) and deletes the intent. False if the
        intent is gone or the record moved on meanwhile. Durable on return (group commit)."""
        from edoc.catalog.group_commit import committer

        return committer(self).run(
            lambda c: _catalogue(c, intent, leaf_hash, content_version, manifest_version))

    def drop_intent(self, record_id: str, version: int) -> None:
        with self.write() as c:
            c.execute(DELETE_INTENT, {"record_id": record_id, "version": version})

    def pending_intents(self) -> list[PendingIntent]:
        """Every intent, oldest first."""
        with self.read() as c:
            rows = list(c.execute(sa.select(intents).order_by(intents.c.created_at)))
        return [PendingIntent(Intent(r.record_id, r.version, r.event, r.state,
                                     r.content_sha256, r.own_content, r.manifest.encode(),
                                     r.seal, r.entry.encode(), json.loads(r.row)),
                              r.owner, r.created_at) for r in rows]

    def intent_writers(self) -> list[tuple[str, int, str]]:
        """(record id, version, owner) of every intent: what is being written, by whom."""
        with self.read() as c:
            return [(str(rid), int(v), str(owner)) for rid, v, owner in c.execute(
                sa.select(intents.c.record_id, intents.c.version, intents.c.owner))]

    def adopt_first_version(self, row: dict[str, Any], *, event_type: str, entry: str,
                            leaf_hash: str) -> bool:
        """Catalogue version 1 of a record stored but never catalogued (``doctor
        --repair``): record, ledger leaf and version in one transaction. False if the
        record is catalogued already."""
        rid = row["record_id"]
        with self.write() as c:
            if c.execute(sa.select(records.c.record_id).where(records.c.record_id == rid)
                         ).first():
                return False
            c.execute(records.insert().values(record_id=rid, created_at=row["ingested_at"],
                                              latest_version=1, state="active"))
            idx = append_ledger(c, event_type=event_type, entry=entry, leaf_hash=leaf_hash,
                                record_id=rid, version=1)
            c.execute(versions.insert().values(**dict(row, ledger_index=idx)))
        return True
