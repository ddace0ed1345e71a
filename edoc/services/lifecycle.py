"""After ingest: corrections, deletions, retention extensions and legal holds.

電子帳簿保存法 wants corrections and deletions recorded, never silent (訂正削除履歴,
施行規則 第2条第6項第2号ロ): every change here adds a new version on top of the latest —
a correction (new content and/or metadata), a tombstone (deletion) or a retention
extension — and never touches an earlier version's bytes or evidence. Each names its actor
and reason and is a ledger event. Holds freeze disposal however old the record is.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from edoc import clock
from edoc.catalog import VersionRow
from edoc.clock import utc_text
from edoc.errors import EdocError, InputError, NotFound
from edoc.evidence.ledger import event_entry, leaf_hex
from edoc.model import canonical
from edoc.model.manifest import ContentRef, Manifest, ManifestError, SearchFields
from edoc.model.provenance import DOCUMENT, TYPED, FieldProvenance, read_block
from edoc.model.provenance import FIELDS as PROVENANCE_FIELDS
from edoc.policy.profiles import Requirements, combine
from edoc.policy.values import clean_text
from edoc.services.archive import Archive
from edoc.services.checkpoint import flush_ledger_objects, make_checkpoint, work_pending
from edoc.services.commit import NewContent, commit_version, recover_intents
from edoc.services.einvoice_fields import DocumentFields
from edoc.services.fulltext import derive_and_store
from edoc.services.ingest import Ingestor, IngestRequest
from edoc.services.provenance import typed_registration

#: The reason a link records when none is given.
LINK_REASON = "ledger reference added (相互関連性)"


@dataclass(frozen=True)
class ChangeResult:
    record_id: str
    version: int
    kind: str
    retain_until: str

    def as_dict(self) -> dict[str, Any]:
        return {"record_id": self.record_id, "version": self.version, "kind": self.kind,
                "retain_until": self.retain_until}


def _as_stored(decision: Any) -> datetime:
    """A decision's instant as the manifest records it (compared like with like)."""
    return datetime.fromisoformat(decision.to_manifest()["until_at"])


def _required(value: str | None) -> str:
    """A manifest field every version written by edoc has (its absence is a broken manifest,
    which ``Lifecycle._latest`` would have refused by its digest)."""
    if value is None:
        raise ManifestError("manifest lacks a field every version has (retention, ingested_at)")
    return value


def _reason(reason: str | None) -> str:
    if not reason or not reason.strip():
        raise InputError("a reason is required for every change (訂正削除履歴)",
                         code="REASON_REQUIRED", hint="give --reason TEXT")
    return clean_text(reason, "--reason", max_len=500)


def _changed_fields(body: Manifest, fields: SearchFields, doc_type: str | None) -> list[str]:
    """The provenance-tracked search fields whose value ``fields`` changes."""
    was = {**body.metadata.as_json(), "doc_type": body.doc_type}
    now = {**fields.as_json(), "doc_type": doc_type}
    return [k for k in PROVENANCE_FIELDS if was.get(k) != now.get(k)]


class Lifecycle:
    def __init__(self, archive: Archive) -> None:
        self.a = archive
        self.ingestor = Ingestor(archive)

    # -- reading the current state ---------------------------------------------------------
    def _latest(self, record_id: str) -> tuple[VersionRow, Manifest]:
        # A change a dead run left half-written is finished (or dropped) first: the new
        # version must build on what the record really is (edoc.services.ingest commit protocol);
        # it, and whatever else an interrupted run left, is checkpointed now, whether or
        # not this change goes ahead.
        if recover_intents(self.a) or work_pending(self.a.catalog):
            self._checkpoint(clock.now())
        rec = self.a.catalog.record_row(record_id)
        if rec is None:
            raise NotFound(f"no record {record_id} in this archive")
        if rec.state == "disposed":
            raise InputError(f"record {record_id} was disposed", code="RECORD_DISPOSED")
        rows = self.a.catalog.version_rows(record_id)
        row = rows[-1]
        try:
            body: Manifest | None = Manifest.from_bytes(
                self.a.store.read(row.manifest_key, row.manifest_version_id))
        except ManifestError:
            body = None
        # The digest of the manifest as this release writes it: canonical bytes re-read are
        # the stored bytes (Manifest's round trip), so this is the stored manifest's digest.
        if body is None or hashlib.sha256(body.to_bytes()).hexdigest() != row.manifest_sha256:
            # Building on a manifest that fails its digest would launder a tampered record.
            raise EdocError(f"record {record_id} v{row.version} fails its manifest digest; "
                            "refusing to build a new version on it", code="MANIFEST_ALTERED",
                            hint=f"run 'edoc verify {record_id}'")
        return row, body

    def _requirements(self, body: Manifest) -> Requirements:
        profiles = [self.a.profiles.get(p) for p in body.profiles]
        return combine(profiles, body.doc_type)

    def _commit(self, row: Any, body: Manifest, new: dict[str, Any], *, event: str,
                kind: str, content: NewContent | None, reqs: Requirements,
                decision: Any | None = None, state: str = "active") -> ChangeResult:
        """New version = previous manifest updated with ``new`` (fields of ``Manifest``);
        record id, version, ingested_at and actor are ``commit_version``'s. Retention is the later
        of the previous and any new decision (never shortened), and every earlier object's
        lock is extended to match so history lives as long as the record."""
        now = clock.now()
        prev_until = datetime.fromisoformat(_required(body.until_at))
        retention_block = body.retention
        until_at, retain_until = prev_until, date.fromisoformat(_required(body.retain_until))
        if decision is not None and _as_stored(decision) > prev_until:
            retention_block = decision.to_manifest()
            until_at, retain_until = _as_stored(decision), decision.retain_until
        out = body.evolve(**new, kind=kind, retention=retention_block,
                          previous_version_sha256=row.manifest_sha256)
        version = row.version + 1
        reuse = (row.content_key, row.content_version_id) if content is None and \
            kind != "tombstone" and not body.is_deleted else None
        if until_at > prev_until:
            # Before the new version exists: once it is catalogued its history must already
            # be locked as long as it. Extending is idempotent, and harmless if the version
            # never gets catalogued (retention is only ever lengthened).
            self._extend_objects(row.record_id, until_at)
        commit_version(self.a, record_id=row.record_id, version=version, body=out,
                       content=content, until_at=until_at,
                       reqs=reqs, event=event, now=now, reuse_content=reuse, state=state)
        self._checkpoint(until_at)
        return ChangeResult(row.record_id, version, kind, retain_until.isoformat())

    def _objects(self, record_id: str) -> list[tuple[str, str | None]]:
        keys: dict[str, str | None] = {}
        for v in self.a.catalog.version_rows(record_id):
            if v.content_key:
                keys[v.content_key] = v.content_version_id
            keys[v.manifest_key] = v.manifest_version_id
            if v.seal_key:
                keys[v.seal_key] = None
        return list(keys.items())

    def _extend_objects(self, record_id: str, until: datetime) -> None:
        for key, vid in self._objects(record_id):
            info = self.a.store.stat(key, vid)
            if info.retain_until is None or info.retain_until < until:
                self.a.store.extend_retention(key, info.version_id, until)

    def _checkpoint(self, min_retain: datetime) -> None:
        flush_ledger_objects(self.a.catalog, self.a.store, min_retain)
        make_checkpoint(self.a.catalog, self.a.store, self.a.notary, min_retain=min_retain)

    # -- corrections and deletions ---------------------------------------------------------
    def correct(self, record_id: str, *, reason: str | None, file: str | None = None,
                changes: IngestRequest | None = None) -> ChangeResult:
        """A new version on top of the latest: new content (re-checked by the readability
        gate) and/or corrected metadata. Unchanged fields carry over."""
        self.a.notary.ready_to_sign()
        why = _reason(reason)
        row, body = self._latest(record_id)
        if body.is_deleted:
            raise InputError(f"record {record_id} is deleted; a deleted record is not "
                             "corrected", code="RECORD_DELETED")
        ch = changes or IngestRequest(path=file or "")
        old = body.metadata
        merged = IngestRequest(
            path=file or "", profiles=body.profiles,
            doc_type=ch.doc_type or body.doc_type,
            date=ch.date or old.transaction_date,
            amount=ch.amount if ch.amount not in (None, "") else (
                str(old.amount) if old.amount is not None else None),
            counterparty=ch.counterparty or old.counterparty,
            ledger_ref=ch.ledger_ref or old.ledger_ref,
            author=ch.author or old.author,
            paper_size=ch.paper_size)
        reqs, doc_type = self.ingestor.requirements(merged)
        meta = self.ingestor.metadata(merged, reqs, doc_type)
        # Search fields beyond the typed ones (an e-invoice's number and the seller's 登録番号,
        # or a newer release's) come from the document, not from the correction: carry them
        # over, or a correction would silently drop them from the record and from search.
        fields = SearchFields(**meta, extra=old.extra)
        new: dict[str, Any] = {"metadata": fields, "doc_type": doc_type, "reason": why}
        unchanged = fields.as_json() == old.as_json() and doc_type == body.doc_type
        # A corrected field was typed by the person correcting it: its provenance says so
        # (a record sealed before provenance existed has no block, and gains none here).
        changed = _changed_fields(body, fields, doc_type)
        if changed and body.provenance is not None:
            block = dict(body.provenance)
            block.update({k: FieldProvenance(TYPED, confirmed_by=self.a.actor).as_json()
                          for k in changed})
            new["extra"] = {**body.extra, "provenance": dict(sorted(block.items()))}
        content = None
        if file:
            path, size, sha, media, measured = self.ingestor.inspect_file(file, reqs,
                                                                          ch.paper_size)
            if body.content is not None and sha == body.content.sha256 and unchanged:
                raise InputError("the correction changes nothing (same content and metadata)",
                                 code="NO_CHANGE")
            content = NewContent(path, size, sha)
            new.update(content=ContentRef(sha256=sha, size=size, media_type=media,
                                          original_name=path.name), readability=measured)
        elif unchanged:
            raise InputError("nothing to correct: give a FILE or metadata options",
                             code="NO_CHANGE")
        inputs = dict(body.retention_inputs or {})
        decision = self.ingestor.decide_retention(
            reqs, inputs, meta["transaction_date"],
            datetime.fromisoformat(body.ingested_at) if body.ingested_at else clock.now())
        result = self._commit(row, body, new, event="correct", kind="correction",
                              content=content, reqs=reqs, decision=decision)
        if content is not None:  # new content: its text replaces the old one's
            derive_and_store(self.a.catalog, record_id=result.record_id,
                             version=result.version, path=content.path,
                             media_type=new["content"].media_type, ocr=False)
        return result

    def confirm(self, record_id: str, *, by: str | None, changes: IngestRequest,
                reason: str | None = None) -> ChangeResult:
        """A person confirms search fields after ingest (``edoc confirm``): a new version of
        kind ``confirmation`` (ledger event ``confirm``), the earlier ones kept, like a
        correction. Each named field's provenance records the confirmer: a machine
        suggestion confirmed unchanged stays ``suggestion-confirmed`` (its suggester and
        confidence kept); a changed value, or one that was typed, is ``typed`` with
        ``confirmed_by``. A field the e-invoice itself supplies is not confirmed over
        (``FIELD_FROM_DOCUMENT``): the document is the record."""
        self.a.notary.ready_to_sign()
        if not by or not by.strip():
            raise InputError("a confirmation names the person who confirms",
                             code="NOT_CONFIRMED", hint="give --by NAME")
        who = clean_text(by, "--by", max_len=100)
        named = {k: v for k, v in (("transaction_date", changes.date),
                                   ("amount", changes.amount),
                                   ("counterparty", changes.counterparty),
                                   ("doc_type", changes.doc_type),
                                   ("registration_number", changes.registration_number))
                 if v not in (None, "")}
        if not named:
            raise InputError("nothing to confirm: give --date, --amount, --counterparty, "
                             "--doc-type or --registration-number", code="NO_CHANGE")
        row, body = self._latest(record_id)
        if body.is_deleted:
            raise InputError(f"record {record_id} is deleted; a deleted record is not "
                             "confirmed", code="RECORD_DELETED")
        before = read_block(body.provenance)
        from_document = sorted(k for k in named if before.get(k, FieldProvenance()).source
                               == DOCUMENT)
        if from_document:
            raise InputError(f"{', '.join(from_document)} come(s) from the e-invoice itself; "
                             "the document is the record", code="FIELD_FROM_DOCUMENT",
                             hint="drop those options (use 'edoc correct' with a reason "
                                  "for a wrong document)")
        old = body.metadata
        merged = IngestRequest(
            path="", profiles=body.profiles, doc_type=changes.doc_type or body.doc_type,
            date=changes.date or old.transaction_date,
            amount=changes.amount if changes.amount not in (None, "") else (
                str(old.amount) if old.amount is not None else None),
            counterparty=changes.counterparty or old.counterparty,
            ledger_ref=old.ledger_ref, author=old.author)
        reqs, doc_type = self.ingestor.requirements(merged)
        meta = self.ingestor.metadata(merged, reqs, doc_type)
        extra_meta = dict(old.extra)
        if changes.registration_number:
            extra_meta.update(typed_registration(changes.registration_number,
                                                 DocumentFields()))
        fields = SearchFields(**meta, extra=extra_meta, keys=old.keys)
        changed = set(_changed_fields(body, fields, doc_type))
        block = {k: v.as_json() for k, v in before.items()}
        for name in named:
            prev = before.get(name)
            if prev is not None and prev.is_machine and name not in changed:
                prov = FieldProvenance.confirmed(prev.suggested_by or "", prev.confidence, who)
            else:
                prov = FieldProvenance(TYPED, confirmed_by=who)
            block[name] = prov.as_json()
        why = _reason(reason or f"search fields confirmed by {who}: "
                      + ", ".join(sorted(named)))
        new: dict[str, Any] = {"metadata": fields, "doc_type": doc_type, "reason": why,
                               "extra": {**body.extra, "provenance": dict(sorted(
                                   block.items()))}}
        decision = self.ingestor.decide_retention(
            reqs, dict(body.retention_inputs or {}), meta["transaction_date"],
            datetime.fromisoformat(_required(body.ingested_at)))
        return self._commit(row, body, new, event="confirm", kind="confirmation",
                            content=None, reqs=reqs, decision=decision)

    def link(self, record_id: str, *, ledger_ref: str,
             reason: str | None = None) -> ChangeResult:
        """A cross-reference to the books added later (相互関連性; デジタルシームレス
        condition ③): a correction whose only change is ``metadata.ledger_ref``, so it is
        a recorded version and ledger event like any other, and ``search --ledger-ref``
        finds it. ``NO_CHANGE`` when the record already has that reference."""
        if not ledger_ref or not ledger_ref.strip():
            raise InputError("a ledger reference is required", code="LEDGER_REF_REQUIRED",
                             hint="give --ledger-ref REF")
        return self.correct(record_id, reason=reason or LINK_REASON,
                            changes=IngestRequest(path="", ledger_ref=ledger_ref))

    def delete(self, record_id: str, *, reason: str | None) -> ChangeResult:
        """A tombstone version: gone from default search, kept (and verifiable) with its
        whole history until retention ends."""
        self.a.notary.ready_to_sign()
        why = _reason(reason)
        row, body = self._latest(record_id)
        if body.is_deleted:
            raise InputError(f"record {record_id} is already deleted", code="RECORD_DELETED")
        reqs = self._requirements(body)
        return self._commit(row, body, {"content": None, "reason": why, "readability": None},
                            event="delete", kind="tombstone", content=None, reqs=reqs,
                            state="deleted")

    def extend_retention(self, record_id: str, *, reason: str | None,
                         changes: IngestRequest) -> ChangeResult:
        """Recompute retention with more facts (e.g. a loss year known after filing);
        refused unless it ends later (retention is never shortened)."""
        self.a.notary.ready_to_sign()
        why = _reason(reason or "retention extended")
        row, body = self._latest(record_id)
        reqs = self._requirements(body)
        old_inputs = dict(body.retention_inputs or {})
        given = self.ingestor.retention_inputs(changes)
        inputs = dict(old_inputs)
        for k, v in given.items():
            if k == "rules":
                inputs["rules"] = list(dict.fromkeys([*old_inputs.get("rules", []), *v]))
            elif v not in (None, False, 0, []):
                inputs[k] = v
        decision = self.ingestor.decide_retention(
            reqs, inputs, body.metadata.transaction_date,
            datetime.fromisoformat(_required(body.ingested_at)))
        prev = datetime.fromisoformat(_required(body.until_at))
        if _as_stored(decision) <= prev:
            raise InputError(
                f"retention would end {decision.retain_until}, not after the current "
                f"{body.retain_until}; retention is never shortened",
                code="RETENTION_NOT_EXTENDED")
        return self._commit(row, body, {"retention_inputs": inputs, "reason": why},
                            event="extend", kind="retention-extension", content=None,
                            reqs=reqs, decision=decision,
                            state="deleted" if body.is_deleted else "active")

    # -- legal holds -----------------------------------------------------------------------
    def hold(self, record_ids: Sequence[str], *, reason: str | None, case: str | None
             ) -> list[dict[str, Any]]:
        self.a.notary.ready_to_sign()
        why = _reason(reason)
        out = []
        for rid in record_ids:
            if self.a.catalog.record_row(rid) is None:
                raise NotFound(f"no record {rid} in this archive")
        for rid in record_ids:
            for key, vid in self._objects(rid):
                info = self.a.store.stat(key, vid)
                self.a.store.set_legal_hold(key, info.version_id, True)
            now = clock.now()
            entry = event_entry("hold", now, record_id=rid,
                                reason_sha256=hashlib.sha256(why.encode()).hexdigest())
            hid = self.a.catalog.place_hold(
                rid, reason=why, case_ref=case, actor=self.a.actor, placed_at=utc_text(now),
                entry=entry.decode(), leaf_hash=leaf_hex(entry))
            self._put_doc(rid, f"hold-{hid}", {"type": "hold", "hold_id": hid,
                                                "record_id": rid, "reason": why, "case": case,
                                                "actor": self.a.actor, "at": utc_text(now)})
            out.append({"record_id": rid, "hold_id": hid, "case": case})
        self._checkpoint(clock.now())
        return out

    def release(self, record_ids: Sequence[str], *, reason: str | None) -> list[dict[str, Any]]:
        self.a.notary.ready_to_sign()
        why = _reason(reason)
        out = []
        for rid in record_ids:
            if not self.a.catalog.active_hold_ids(rid):
                raise InputError(f"record {rid} has no active hold", code="NOT_ON_HOLD")
        for rid in record_ids:
            now = clock.now()
            entry = event_entry("release", now, record_id=rid,
                                reason_sha256=hashlib.sha256(why.encode()).hexdigest())
            hold_ids = self.a.catalog.release_holds(
                rid, released_at=utc_text(now), reason=why, actor=self.a.actor,
                entry=entry.decode(), leaf_hash=leaf_hex(entry))
            self._put_doc(rid, f"release-{'-'.join(map(str, hold_ids))}",
                          {"type": "release", "hold_ids": hold_ids, "record_id": rid,
                           "reason": why, "actor": self.a.actor, "at": utc_text(now)})
            for key, vid in self._objects(rid):
                info = self.a.store.stat(key, vid)
                self.a.store.set_legal_hold(key, info.version_id, False)
            out.append({"record_id": rid, "released": True})
        self._checkpoint(clock.now())
        return out

    def _put_doc(self, record_id: str, name: str, doc: dict[str, Any]) -> None:
        """Hold and release documents live in the store too, so that `catalog rebuild`
        restores holds (reasons included) from storage alone."""
        rows = self.a.catalog.version_rows(record_id)
        until = max(datetime.fromisoformat(r.retain_until_at) for r in rows)
        self.a.store.put_bytes(f"holds/{record_id}/{name}.json", canonical.dumps(doc),
                               retain_until=until)

    def restore_hold_documents(self) -> int:
        """Write hold/release documents a run that died after its catalog commit never
        stored (holds survive a catalog rebuild only through them). Returns how many."""
        written = 0
        for h in self.a.catalog.hold_rows():
            prefix = f"holds/{h.record_id}/"
            docs = [canonical.loads(self.a.store.read(i.key)) for i in self.a.store.list(prefix)]
            if not any(d.get("type") == "hold" and d.get("hold_id") == h.id for d in docs):
                self._put_doc(h.record_id, f"hold-{h.id}", {
                    "type": "hold", "hold_id": h.id, "record_id": h.record_id,
                    "reason": h.reason, "case": h.case_ref, "actor": h.actor,
                    "at": h.placed_at})
                written += 1
            if h.released_at and not any(d.get("type") == "release" and
                                         h.id in d.get("hold_ids", []) for d in docs):
                self._put_doc(h.record_id, f"release-{h.id}", {
                    "type": "release", "hold_ids": [h.id], "record_id": h.record_id,
                    "reason": h.release_reason, "actor": h.released_by, "at": h.released_at})
                written += 1
        return written

    def list_holds(self, *, include_released: bool = False) -> list[dict[str, Any]]:
        return [dataclasses.asdict(h) for h in self.a.catalog.hold_rows(
            include_released=include_released, by_placement=True)]

