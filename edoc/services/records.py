"""Reading records: search, show and copy out (``edoc search``, ``show``, ``get``).

Each use case writes the access log before it returns what was read: who read what, and
when, is part of 機密性 (the access log enters the ledger at the next checkpoint,
``edoc.services.access_log``). ``copy_out`` writes a record's original bytes all or
nothing (``edoc.files.atomic_output``) and only when they still match the SHA-256 they were
sealed with, so a corrupted store never yields a file that looks like the original.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import BinaryIO

from edoc import clock
from edoc.catalog import SearchHitRow, SearchQuery, VersionRow
from edoc.catalog.fulltext import DuplicatePair
from edoc.catalog.schema import normalise_text
from edoc.errors import EdocError, InputError, NotFound
from edoc.evidence.hashing import hash_stream
from edoc.files import atomic_output
from edoc.model.manifest import Manifest, ManifestError
from edoc.policy.registration import normalise_registration_number
from edoc.policy.seamless import Readiness, assess
from edoc.policy.values import parse_amount, parse_date, parse_doc_type
from edoc.services.archive import Archive


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One version a search found: the 検索要件 fields, and which document it is."""

    record_id: str
    version: int
    state: str
    transaction_date: str | None
    amount: int | None
    counterparty: str | None
    doc_type: str | None
    ledger_ref: str | None
    profiles: tuple[str, ...]
    retain_until: str
    content_sha256: str | None
    #: the file name the document was ingested under (None for a tombstone)
    original_name: str | None
    #: an e-invoice's number and the seller's registration number (None otherwise)
    invoice_number: str | None = None
    registration_number: str | None = None


@dataclass(frozen=True, slots=True)
class RecordView:
    """A record as ``show`` presents it: its state and the manifests asked for."""

    record_id: str
    state: str
    latest_version: int
    manifests: tuple[Manifest, ...]
    #: デジタルシームレス readiness, computed from every version (never stored)
    seamless: Readiness | None = None
    #: every ledger reference the record has had (search --ledger-ref finds it by any)
    ledger_refs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CopiedContent:
    """What ``copy_out`` wrote: the version, and its size and digest as catalogued."""

    record_id: str
    version: int
    size: int | None
    sha256: str | None
    path: Path | None


def search_query(*, date_from: str | None = None, date_to: str | None = None,
                 min_amount: str | None = None, max_amount: str | None = None,
                 counterparty: str | None = None, doc_type: str | None = None,
                 ledger_ref: str | None = None, profile: str | None = None,
                 invoice_number: str | None = None, registration_number: str | None = None,
                 include_deleted: bool = False, all_versions: bool = False,
                 limit: int | None = None, text: str | None = None) -> SearchQuery:
    """A search from the texts a user typed (``--from``, ``--min-amount`` …), checked:
    a range whose ends are the wrong way round is an error, not an empty result."""
    q = SearchQuery(
        date_from=parse_date(date_from, "--from") if date_from else None,
        date_to=parse_date(date_to, "--to") if date_to else None,
        min_amount=parse_amount(min_amount, "--min-amount") if min_amount else None,
        max_amount=parse_amount(max_amount, "--max-amount") if max_amount else None,
        counterparty=counterparty,
        doc_type=parse_doc_type(doc_type) if doc_type else None,
        ledger_ref=ledger_ref, profile=profile,
        invoice_number=invoice_number or None,
        # typed as a clerk would (full-width Ｔ, lower case): matched as the catalog keeps it
        registration_number=normalise_registration_number(registration_number)
        if registration_number else None,
        include_deleted=include_deleted, all_versions=all_versions, limit=limit,
        text=_text_fragment(text))
    if q.date_from and q.date_to and q.date_from > q.date_to:
        raise InputError("--from is after --to", code="BAD_DATE")
    if q.min_amount is not None and q.max_amount is not None and q.min_amount > q.max_amount:
        raise InputError("--min-amount is above --max-amount", code="BAD_AMOUNT")
    return q


def _text_fragment(text: str | None) -> str | None:
    """``--text`` as typed: refused when nothing searchable is left (only spaces)."""
    if text is None:
        return None
    if not normalise_text(text):
        raise InputError("--text has nothing to search for", code="BAD_VALUE")
    if len(text) > 200:
        raise InputError("--text may have at most 200 characters", code="BAD_VALUE")
    return text


def duplicate_report(archive: Archive, actor: str, limit: int | None = None
                     ) -> list[DuplicatePair]:
    """``search --duplicates``: pairs of active records with one business key and other
    bytes (``edoc.services.duplicates``); logged as a search."""
    pairs = archive.catalog.duplicate_pairs(limit)
    archive.catalog.log_access(
        actor=actor, action="search",
        record_ids=sorted({r for p in pairs for r in (p.record_id, p.other_record_id)}),
        detail={"duplicates": "true"}, at=clock.now())
    return pairs


def _hit(row: SearchHitRow) -> SearchHit:
    return SearchHit(
        record_id=row.record_id, version=row.version, state=row.state,
        transaction_date=row.transaction_date, amount=row.amount,
        counterparty=row.counterparty, doc_type=row.doc_type, ledger_ref=row.ledger_ref,
        profiles=tuple(json.loads(row.profiles)), retain_until=row.retain_until,
        content_sha256=row.content_sha256, original_name=row.original_name,
        invoice_number=row.invoice_number, registration_number=row.registration_number)


def search_records(archive: Archive, query: SearchQuery, actor: str) -> list[SearchHit]:
    """The versions matching ``query``; the search and the records it found are logged."""
    hits = [_hit(row) for row in archive.catalog.search_hits(query)]
    archive.catalog.log_access(
        actor=actor, action="search", record_ids=sorted({h.record_id for h in hits}),
        detail={k: str(v) for k, v in vars(query).items() if v not in (None, False)},
        at=clock.now())
    return hits


def show_record(archive: Archive, record_id: str, actor: str, *,
                history: bool = False) -> RecordView:
    """A record's state and its latest manifest (every version's with ``history``), as
    stored and sealed — read from the store by the version ids the catalog pinned."""
    rec = archive.catalog.record_row(record_id)
    if rec is None:
        raise NotFound(f"no record {record_id} in this archive")
    rows = archive.catalog.version_rows(record_id)
    shown = _manifests(archive, record_id, rows if history else rows[-1:])
    archive.catalog.log_access(actor=actor, action="show", record_ids=[record_id],
                               at=clock.now())
    # The readiness needs every version; an earlier manifest this release cannot read
    # leaves it out (None) rather than hide the record's latest state ('edoc verify' says
    # what is wrong).
    try:
        every = shown if history else _manifests(archive, record_id, rows)
    except (EdocError, OSError):
        return RecordView(record_id, rec.state, rec.latest_version, shown)
    reading = assess(every)
    return RecordView(record_id, rec.state, rec.latest_version, shown, reading,
                      reading.ledger_refs)


def _manifests(archive: Archive, record_id: str, rows: list[VersionRow]
               ) -> tuple[Manifest, ...]:
    try:
        return tuple(Manifest.from_bytes(archive.store.read(r.manifest_key,
                                                            r.manifest_version_id))
                     for r in rows)
    except ManifestError as exc:
        raise EdocError(f"record {record_id}: a stored manifest is not one this release "
                        f"reads ({exc})", code=exc.code,
                        hint=f"run 'edoc verify {record_id}'") from None


def seamless_reading(archive: Archive, record_id: str) -> Readiness:
    """A record's デジタルシームレス readiness (``edoc.policy.seamless``), from every
    version's stored manifest in version order."""
    return assess(_manifests(archive, record_id, archive.catalog.version_rows(record_id)))


def content_version(archive: Archive, record_id: str, version: int | None) -> VersionRow:
    """The version whose content ``get`` / ``render`` read: ``version``, or the latest one
    that has content (a tombstone has none). ``NOT_FOUND`` when there is none."""
    rows = [r for r in archive.catalog.version_rows(record_id) if r.content_key]
    if version is not None:
        rows = [r for r in rows if r.version == version]
    if not rows:
        raise NotFound(f"no stored content for record {record_id}"
                       + (f" version {version}" if version else ""))
    return rows[-1]


def check_output(out: Path, *, force: bool) -> None:
    """Refuse an output path before any work: it exists (without ``force``), or its
    directory does not."""
    if out.exists() and not force:
        raise InputError(f"{out} exists", code="OUTPUT_EXISTS", hint="use --force to replace it")
    if not out.parent.is_dir():
        raise InputError(f"directory {out.parent} does not exist", code="OUTPUT_DIR_MISSING")


def copy_out(archive: Archive, record_id: str, version: int | None, out: Path | BinaryIO,
             *, force: bool = False, actor: str | None = None) -> CopiedContent:
    """Copy a version's original bytes (the latest with content by default) to ``out``.

    To a path: written beside it and published only once complete and matching the
    catalogued SHA-256 (else ``DIGEST_MISMATCH`` and nothing written); an existing file is
    replaced only with ``force``. To an open stream (stdout): copied as it is read."""
    row = content_version(archive, record_id, version)
    key = row.content_key
    assert key is not None  # content_version picks a version with content
    archive.catalog.log_access(actor=actor or archive.actor, action="get",
                               record_ids=[record_id], detail={"version": row.version},
                               at=clock.now())
    copied = CopiedContent(record_id, row.version, row.content_size, row.content_sha256,
                           out if isinstance(out, Path) else None)
    if not isinstance(out, Path):
        with archive.store.open(key, row.content_version_id) as f:
            hash_stream(f, sink=out.write)
        return copied
    check_output(out, force=force)
    try:
        with archive.store.open(key, row.content_version_id) as f, \
                atomic_output(out, replace=force) as o:
            digest = hash_stream(f, sink=o.write)
            if digest.sha256 != row.content_sha256:
                # Raised inside atomic_output: the partial copy is removed, ``out`` untouched.
                raise EdocError(f"stored content of {record_id} v{row.version} does not "
                                "match its digest; not written", code="DIGEST_MISMATCH",
                                hint=f"run 'edoc verify {record_id}'")
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror}", code="OUTPUT_UNWRITABLE"
                         ) from None
    return copied


def period_record_ids(archive: Archive, date_from: date | None, date_to: date | None
                      ) -> tuple[int, Iterator[str]]:
    """How many records have a version dated in the period, and their ids, streamed in
    record-id order (``verify --all`` / ``--from``/``--to``: 一括検証)."""
    total = archive.catalog.count_records(date_from, date_to)
    return total, archive.catalog.record_ids(date_from, date_to)

