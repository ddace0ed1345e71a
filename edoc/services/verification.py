"""Verification of records: every check, as data, never stopping at the first failure.

For each version of a record: ``content`` (the stored bytes hash to the manifest's digest),
``manifest`` (the stored manifest hashes to the digest in its ledger leaf), ``catalog`` (the
searchable columns agree with the sealed manifest), ``ledger`` (the leaf in the catalog is
the one the tree was built from), ``inclusion`` (the leaf is in a sealed checkpoint's tree),
``seal`` and ``timestamp`` (the checkpoint's CAdES seal and RFC 3161 token chain to the
archive's trust roots; the token's imprint is the checkpoint's digest), ``manifest_seal``
(when the profile asks for one) and ``lock`` (the store still holds the object under a
retention at least as long as the manifest's, with no foreign newer version).

Single-record verification computes and checks the RFC 9162 §2.1.3 inclusion path. Period
verification checks each checkpoint's root once, recomputed from every leaf below it: if the
root of leaves[0:n] equals the sealed root, each of those leaves is included (collision
resistance of SHA-256), so per-record paths would add cost and no assurance.

Records are read from the catalog a chunk at a time (``Verifier.verify_batch``: one query for
the versions of up to ``period_verification.CHUNK_IDS`` records with their ledger entries),
and the checkpoint tree sizes once per ``Verifier``; every check still runs on every version.

The content object is read once per version, pinned to the catalogued version id, with its
state from the same answer (``ObjectStore.open_with_info``: on S3 one ``GetObject``, whose
headers carry the lock state, where a ``HeadObject`` and a ``GetObject`` were two requests;
on the local store one metadata read). The ``content`` check judges the bytes and the
``lock`` check that state, so the two can never judge two different states of the object.
Nothing is cached across versions or calls: each version's objects and metadata are read
afresh, so a change made during a run is seen by the checks of every version verified after
it.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edoc import clock
from edoc.catalog import evidence_reads, normalise_counterparty
from edoc.errors import EdocError, ObjectMissing
from edoc.evidence import merkle
from edoc.evidence.checkpoint import verify_checkpoint
from edoc.evidence.hashing import Digest, hash_stream, sha256_hex
from edoc.model import canonical
from edoc.model.manifest import Manifest
from edoc.model.verdict import Check, RecordReport, Status
from edoc.services import checks as shared
from edoc.services.archive import Archive
from edoc.storage import layout
from edoc.storage.base import ObjectInfo

#: a failure that a purge running at the same time explains (see ``verify_version``)
_MISSING = frozenset({"CONTENT_MISSING", "MANIFEST_MISSING", "SEAL_MISSING"})


@dataclass
class _Ahead:
    """A version's objects as a reader thread read them (``Verifier._prefetch``): the
    manifest's bytes (or why they could not be read), the content's state and digest."""

    manifest: bytes | ObjectMissing
    state: ObjectInfo | EdocError | None
    content: Digest | Check | None


@dataclass
class _CheckpointVerdict:
    tree_size: int
    root_hash: str | None
    checks: list[Check]
    gen_time: datetime | None


class Verifier:
    def __init__(self, archive: Archive, *, batch: bool = False, readers: int = 0) -> None:
        self.a = archive
        self.batch = batch
        #: threads reading (and hashing) a chunk's objects ahead of the other checks, for a
        #: store whose reads wait on the network (0: each is read in turn by the caller's
        #: thread; see ``_prefetch``)
        self.readers = readers
        self._pool: ThreadPoolExecutor | None = None
        #: content reads started by ``_prefetch`` for the batch being verified, by row id
        self._reads: dict[int, Future[_Ahead]] = {}
        self._leaves: list[bytes] | None = None
        self._leaf_gaps: list[int] = []
        #: the index of the last ledger entry read into ``_leaves``
        self._last_leaf: int | None = None
        self._checkpoints: dict[int, _CheckpointVerdict] = {}
        self._root_cache: dict[int, bytes] = {}
        self._renewals: dict[int, list[tuple[int, dict[str, Any]]]] | None = None
        #: checkpoint tree sizes, ascending (None: not loaded yet)
        self._cp_sizes: list[int] | None = None
        #: whether ``_cp_sizes`` may be reloaded before the next lookup (once per batch)
        self._cp_sizes_stale = True
        #: disposal certificates verified so far (see ``_certificate``)
        self._certificates: dict[str, tuple[Check | None, frozenset[tuple[Any, ...]]]] = {}

    # -- shared, cached state --------------------------------------------------------------
    def leaves(self, at_least: int = 0) -> list[bytes]:
        """Leaf hashes recomputed from the catalog's ledger entries, in index order. Holding
        fewer than ``at_least``, the entries appended since the last read are read: the
        ledger grows while a long verification runs (a checkpoint made meanwhile covers
        them)."""
        if self._leaves is None or len(self._leaves) < at_least:
            leaves = self._leaves if self._leaves is not None else []
            for idx, entry in evidence_reads.ledger_texts(self.a.catalog,
                                                          after=self._last_leaf):
                if idx != len(leaves):
                    self._leaf_gaps.append(len(leaves))
                leaves.append(merkle.leaf_hash(entry.encode()))
                self._last_leaf = idx
            self._leaves = leaves
        return self._leaves

    def checkpoint(self, tree_size: int) -> _CheckpointVerdict:
        cached = self._checkpoints.get(tree_size)
        if cached is not None:
            return cached
        store = self.a.store
        checks: list[Check] = []
        try:
            data = store.read(layout.checkpoint_key(tree_size, "json"))
            seal = store.read(layout.checkpoint_key(tree_size, "p7s"))
            tsr = store.read(layout.checkpoint_key(tree_size, "tsr"))
        except ObjectMissing as exc:
            checks.append(Check.fail("seal", "CHECKPOINT_MISSING", str(exc)))
            verdict = _CheckpointVerdict(tree_size, None, checks, None)
            self._checkpoints[tree_size] = verdict
            return verdict
        cp = verify_checkpoint(data, seal, tsr, trust_roots=self.a.notary.trust_roots)
        checks.append(cp.seal)
        ts_check = cp.timestamp
        if ts_check.status is Status.PASS:
            ts_check = self._still_valid(tree_size, ts_check, {"json": data, "p7s": seal,
                                                              "tsr": tsr})
        checks.append(ts_check)
        if cp.malformed is not None:
            checks.append(Check.fail("seal", "CHECKPOINT_MALFORMED",
                                     f"unreadable: {cp.malformed}"))
        elif cp.tree_size != tree_size:
            checks.append(Check.fail("seal", "CHECKPOINT_MISMATCH",
                                     "checkpoint file names another tree size",
                                     expected=str(tree_size), found=str(cp.body["tree_size"])))
        verdict = _CheckpointVerdict(tree_size, cp.root_hash, checks, cp.gen_time)
        self._checkpoints[tree_size] = verdict
        return verdict

    def _still_valid(self, tree_size: int, ts_check: Check, files: dict[str, bytes]) -> Check:
        """A token whose TSA certificate has expired proves nothing on its own any more; it
        still counts when a ``renew`` leaf covering these exact files sits under a later
        checkpoint whose own timestamp is valid (see edoc.services.renewal)."""
        from edoc.services.renewal import digests, renewal_entries, token_expiry

        expiry = token_expiry(files["tsr"])
        if expiry is None or expiry > clock.now():
            return ts_check
        if self._renewals is None:
            self._renewals = renewal_entries(self.a)
        want = digests(files)
        for idx, entry in self._renewals.get(tree_size, []):
            if any(entry.get(k) != v for k, v in want.items()):
                continue
            cover = self._covering_checkpoint(idx)
            if cover is None or cover <= tree_size:
                continue
            later = self.checkpoint(cover)
            if all(c.status is Status.PASS for c in later.checks):
                return Check(name="timestamp", status=Status.PASS, code="RENEWED",
                             detail=f"TSA certificate expired {expiry.date()}; renewed by "
                             f"checkpoint {cover}")
        return Check.fail("timestamp", "EVIDENCE_EXPIRED",
                          f"the TSA certificate of checkpoint {tree_size}'s token expired "
                          f"{expiry.date()} and no renewal covers it",
                          expected="a renewal before expiry ('edoc renew')",
                          found=expiry.isoformat())

    def _covering_checkpoint(self, ledger_index: int) -> int | None:
        """The smallest checkpoint whose tree holds leaf ``ledger_index`` (a tree of size n
        holds leaves 0..n-1, RFC 9162 §2.1), from the sizes loaded once. An index beyond the
        last known checkpoint reloads them (once per batch): one may have been made since."""
        sizes = self._cp_sizes
        if sizes is None or ((not sizes or ledger_index >= sizes[-1]) and self._cp_sizes_stale):
            sizes = self._cp_sizes = self.a.catalog.checkpoint_sizes()
            self._cp_sizes_stale = False
        pos = bisect.bisect_right(sizes, ledger_index)
        return sizes[pos] if pos < len(sizes) else None

    # -- checks ----------------------------------------------------------------------------
    def _read_content(self, row: Any) -> tuple[ObjectInfo | EdocError | None,
                                               Digest | Check | None]:
        """The content object's state and the digest of its bytes, from one read pinned to
        the catalogued version (``ObjectStore.open_with_info``; on S3 one ``GetObject``,
        whose headers carry the lock state): what the lock check and the content check
        judge, so they can never judge two different states of the object. The state is
        None when the version has no content key, an ``EdocError`` when the store could not
        say or the pinned version is not there; the digest is None when there are no bytes
        to read (a tombstone), else the digest or the failed check."""
        key = row.content_key
        if key is None:
            return None, None
        version = row.content_version_id
        if row.kind == "tombstone":
            return self._state_of(key, version), None
        try:
            stream, info = self.a.store.open_with_info(key, version)
        except ObjectMissing:
            # The pinned read refused (object gone, or its metadata names another version
            # or none): the lock check still judges what the store says about the version,
            # asked once more on this failure path only.
            return self._state_of(key, version), _content_missing(key)
        except EdocError as exc:
            return exc, Check.unknown("content", exc.code, exc.message)
        try:
            with stream:
                return info, hash_stream(stream)
        except EdocError as exc:  # the read broke off (S3: connection, server checksum)
            return info, Check.unknown("content", exc.code, exc.message)

    def _state_of(self, key: str, version: str | None) -> ObjectInfo | EdocError:
        """The store's answer about one version's object: its state, or why it has none."""
        try:
            return self.a.store.stat(key, version)
        except EdocError as exc:
            return exc

    def _check_content(self, row: Any, manifest: Manifest | None,
                       read: Digest | Check | None) -> Check:
        """``read``: what ``_read_content`` found."""
        if row.kind == "tombstone":
            return Check.ok("content", "tombstone version: no content")
        if row.content_key is None and manifest is not None and manifest.is_deleted:
            # A later version of a deleted record (a retention extension): the sealed
            # manifest says there is no content, so none is stored.
            return Check.ok("content", f"{row.kind} of a deleted record: no content")
        if row.content_key is None or read is None:
            return Check.fail("content", "CONTENT_MISSING",
                              "no content object is recorded for this version")
        content = manifest.content if manifest is not None else None
        expected = content.sha256 if content is not None else row.content_sha256
        expected_size = content.size if content is not None else row.content_size
        if isinstance(read, Check):
            return read
        return shared.content_digest(read, expected, expected_size)

    def _load_manifest(self, row: Any, checks: list[Check], entry: dict[str, Any] | None,
                       ahead: _Ahead | None = None) -> tuple[bytes | None, Manifest | None]:
        try:
            if ahead is None:
                data = self.a.store.read(row.manifest_key, row.manifest_version_id)
            elif isinstance(ahead.manifest, ObjectMissing):
                raise ahead.manifest
            else:
                data = ahead.manifest
        except ObjectMissing:
            checks.append(Check.fail("manifest", "MANIFEST_MISSING",
                                     f"{row.manifest_key} is not in the store"))
            return None, None
        checks.append(shared.manifest_digest(sha256_hex(data),
                                             (entry or {}).get("manifest_sha256"),
                                             catalogued=row.manifest_sha256))
        try:
            doc = canonical.loads(data)
        except ValueError:
            checks.append(Check.fail("manifest", "MANIFEST_MALFORMED", "not valid JSON"))
            return data, None
        # The bytes are parsed once (above); the shape is checked on the parsed JSON.
        manifest, failed = shared.manifest_shape(doc)
        if failed is not None:
            checks.append(failed)
        return data, manifest

    @staticmethod
    def _check_catalog(row: Any, m: Manifest) -> Check:
        meta = m.metadata
        content = m.content
        pairs = {
            "transaction_date": (meta.transaction_date, row.transaction_date),
            "amount": (meta.amount, row.amount),
            "counterparty": (meta.counterparty, row.counterparty),
            "counterparty_norm": (normalise_counterparty(meta.counterparty)
                                  if meta.counterparty else None, row.counterparty_norm),
            "ledger_ref": (meta.ledger_ref, row.ledger_ref),
            "doc_type": (m.doc_type, row.doc_type),
            "content_sha256": (content.sha256 if content is not None else None,
                               row.content_sha256),
            "retain_until": (m.retention.get("retain_until"), row.retain_until),
            "record_id": (m.record_id, row.record_id),
            "version": (m.version, row.version),
        }
        bad = {k: v for k, v in pairs.items() if v[0] != v[1]}
        if bad:
            names = ", ".join(sorted(bad))
            return Check.fail("catalog", "CATALOG_MISMATCH",
                              f"catalog disagrees with the sealed manifest on {names}",
                              expected=json.dumps({k: v[0] for k, v in bad.items()},
                                                  ensure_ascii=False),
                              found=json.dumps({k: v[1] for k, v in bad.items()},
                                               ensure_ascii=False))
        return Check.ok("catalog", "search columns match the manifest")

    def _check_inclusion(self, row: Any, entry_text: str | None) -> tuple[list[Check], int | None]:
        if entry_text is None:
            return [Check.fail("inclusion", "LEDGER_ENTRY_MISSING",
                               f"ledger entry {row.ledger_index} for this version is missing")
                    ], None
        size = self._covering_checkpoint(row.ledger_index)
        if size is None:
            return [Check.unknown("inclusion", "NOT_YET_CHECKPOINTED",
                                  "no checkpoint covers this record yet; the next ingest "
                                  "or 'edoc doctor --repair' makes one")], None
        cp = self.checkpoint(size)
        checks = list(cp.checks)
        if cp.root_hash is None:
            return checks, size
        leaves = self.leaves(at_least=size)
        leaf = merkle.leaf_hash(entry_text.encode())
        idx = row.ledger_index
        if len(leaves) < size:
            checks.append(Check.fail("inclusion", "LEDGER_TRUNCATED",
                                     f"the catalog ledger holds {len(leaves)} leaves; "
                                     f"checkpoint {size} sealed {size}",
                                     expected=str(size), found=str(len(leaves))))
            return checks, size
        computed: bytes | None = None
        if self.batch:
            computed = self._root_cache.get(size)
            if computed is None:
                computed = merkle.root(leaves[:size])
                self._root_cache[size] = computed
        checks.append(shared.inclusion_in_tree(leaves, leaf, idx, size, cp.root_hash,
                                               computed_root=computed))
        return checks, size

    def _check_lock(self, key: str | None, version_id: str | None, until: str | None,
                    state: ObjectInfo | EdocError | None) -> Check:
        """``state``: the store's answer about ``key`` at ``version_id`` (``_content_state``),
        the same one the content check judged."""
        if key is None or state is None:
            return Check.ok("lock", "no content object")
        if isinstance(state, EdocError):
            return Check.unknown("lock", state.code, state.message)
        info = state
        try:
            # One version per key on the local store: stat has answered already. Elsewhere
            # the ids and times suffice (one listing, no HeadObject per version).
            others = (self.a.store.version_stamps(key) if self.a.store.kind != "local"
                      else [(info.version_id, info.last_modified)])
        except EdocError as exc:
            return Check.unknown("lock", exc.code, exc.message)
        # Times compared from one source: a listing's are finer than HeadObject's seconds.
        ours = dict(others).get(info.version_id, info.last_modified)
        newer = [vid for vid, modified in others if vid != info.version_id
                 and modified >= ours]
        if newer:
            return Check.fail("lock", "FOREIGN_VERSION",
                              f"{key} has a newer version the archive did not write "
                              "(an overwrite attempt)", expected=version_id,
                              found=newer[0])
        if until is not None:
            want = datetime.fromisoformat(until)
            if info.retain_until is None or info.retain_until < want:
                return Check.fail("lock", "LOCK_SHORTER",
                                  "the store's retention is shorter than the manifest's",
                                  expected=want.isoformat(),
                                  found=info.retain_until.isoformat() if info.retain_until
                                  else None)
        return Check.ok("lock", f"{info.lock_mode} until "
                        f"{info.retain_until.isoformat() if info.retain_until else '?'}")

    # -- public ----------------------------------------------------------------------------
    def _check_disposal(self, row: Any) -> Check:
        from edoc.services.disposal import certificate_for

        key = certificate_for(self.a, row.record_id)
        if key is None:
            run = self.a.catalog.disposal_uncertified(row.record_id)
            if run is not None:
                # Step 3 of edoc.services.disposal: disposed, the run's certificate not yet
                # written (it is still going, or stopped and resumes on the next purge).
                return Check.unknown("disposal", "DISPOSAL_IN_PROGRESS",
                                     f"purge run {run} disposed of this version at "
                                     f"{row.disposed_at} and has not written its "
                                     "certificate yet; 'edoc purge' finishes a stopped "
                                     "run; verify again then")
            key = certificate_for(self.a, row.record_id)  # the run may just have finished
        if key is None:
            return Check.fail("disposal", "DISPOSAL_UNCERTIFIED",
                              f"marked disposed at {row.disposed_at} but no certificate lists it")
        refused, listed = self._certificate(key)
        if refused is not None:
            return refused
        if (row.record_id, row.version, row.manifest_sha256) not in listed:
            return Check.fail("disposal", "DISPOSAL_UNCERTIFIED",
                              f"certificate {key} does not list this version")
        return Check(name="disposal", status=Status.PASS, code="DISPOSED",
                     detail=f"disposed at {row.disposed_at}; certificate {key} "
                     "(seal and timestamp verified)")

    def _certificate(self, key: str) -> tuple[Check | None, frozenset[tuple[Any, ...]]]:
        """A disposal certificate's verdict (None when its seal and timestamp pass) and the
        (record id, version, manifest digest) it lists: verified once per ``Verifier``, as
        one certificate lists every version a purge run disposed of (up to 100,000s)."""
        cached = self._certificates.get(key)
        if cached is not None:
            return cached
        verdict: Check | None = None
        listed: frozenset[tuple[Any, ...]] = frozenset()
        try:
            data = self.a.store.read(key)
            seal = self.a.store.read(key.removesuffix(".json") + ".p7s")
            tsr = self.a.store.read(key.removesuffix(".json") + ".tsr")
        except ObjectMissing as exc:
            verdict = Check.fail("disposal", "CERTIFICATE_MISSING", str(exc))
        else:
            check = shared.certificate_stamp(data, seal, tsr, self.a.notary.trust_roots)
            if check is not None:
                verdict = Check(name="disposal", status=check.status, code=check.code,
                                detail=f"certificate {key}: {check.detail}")
            else:
                listed = frozenset(
                    t for e in canonical.loads(data).get("disposed", [])
                    if isinstance(e, dict) and _hashable(
                        t := (e.get("record_id"), e.get("version"), e.get("manifest_sha256"))))
        self._certificates[key] = (verdict, listed)
        return verdict, listed

    def verify_version(self, row: Any) -> RecordReport:
        """Every check on the version ``row`` (a ``versions`` row)."""
        entry_row = self.a.catalog.ledger_entry(row.ledger_index)
        return self._verify_rechecked(row, entry_row.entry if entry_row is not None else None)

    def _verify_rechecked(self, row: Any, entry_text: str | None) -> RecordReport:
        """``_verify_version``, judged again by the catalog as it is now when the objects
        are gone; ``entry_text`` is the version's ledger entry (None: the catalog lacks it)."""
        report = self._verify_version(row, entry_text)
        if report.status is Status.FAIL and any(c.code in _MISSING for c in report.checks):
            # A purge running beside this verification may be disposing of the version: it
            # journaled it, deleted its objects and has not yet marked it disposed
            # (edoc.services.disposal, step 2). Not proof of loss: indeterminate until the
            # run ends (its certificate then proves it).
            run = self.a.catalog.disposal_in_progress(row.record_id, row.version)
            if run is not None:
                waiting = RecordReport(row.record_id, row.version)
                waiting.checks.append(Check.unknown(
                    "disposal", "DISPOSAL_IN_PROGRESS",
                    f"purge run {run} is disposing of this version; verify again when it "
                    "has finished"))
                return waiting
            # Or it has disposed of it since the row was read: judge it by the catalog as
            # it is now. Asked second, not first: the journal was written before the
            # objects went, and one transaction marks the item and the version disposed,
            # so a version no longer pending here is marked by now. Asked the other way
            # round, a purge committing between the two reads left the version unmarked in
            # the first and not pending in the second: a false fail (presumably the one the
            # multi-host test once reported on PostgreSQL).
            fresh = next((r for r in self.a.catalog.version_rows(row.record_id)
                          if r.version == row.version), None)
            if fresh is not None and fresh.disposed_at is not None:
                return self._verify_version(fresh, entry_text)
        return report

    def _verify_version(self, row: Any, entry_text: str | None) -> RecordReport:
        report = RecordReport(row.record_id, row.version)
        checks = report.checks
        if row.disposed_at is not None:
            checks.append(self._check_disposal(row))
            return report
        entry: dict[str, Any] | None = None
        if entry_text is not None:
            try:
                entry = json.loads(entry_text)
            except ValueError:
                entry = None
            ledger_check = (shared.ledger_entry(entry, row.record_id, row.version,
                                                index=row.ledger_index) if entry is not None
                            else Check.fail("ledger", "LEDGER_ENTRY_MISMATCH",
                                            f"ledger entry {row.ledger_index} is not this "
                                            "version's"))
            checks.append(ledger_check)
            if ledger_check.status is not Status.PASS:
                entry_text = None
        pending = self._reads.pop(id(row), None)
        ahead = pending.result() if pending is not None else None
        manifest_bytes, manifest = self._load_manifest(row, checks, entry, ahead)
        state, read = (ahead.state, ahead.content) if ahead is not None else \
            self._read_content(row)
        checks.append(self._check_content(row, manifest, read))
        if manifest is not None:
            checks.append(self._check_catalog(row, manifest))
        if row.seal_key and manifest_bytes is not None:
            try:
                seal = self.a.store.read(row.seal_key)
                checks.append(shared.manifest_seal(manifest_bytes, seal,
                                                   self.a.notary.trust_roots))
            except ObjectMissing:
                checks.append(Check.fail("manifest_seal", "SEAL_MISSING",
                                         f"{row.seal_key} is not in the store"))
        inc, _size = self._check_inclusion(row, entry_text)
        checks.extend(inc)
        until = (manifest.until_at if manifest is not None else None) or row.retain_until_at
        checks.append(self._check_lock(row.content_key, row.content_version_id, until, state))
        return report

    def verify_record(self, record_id: str) -> list[RecordReport]:
        """Reports for every version of one record (``edoc verify ID``)."""
        return self.verify_batch([record_id])

    def verify_batch(self, record_ids: Sequence[str]) -> list[RecordReport]:
        """Reports for every version of each record, in the order given (a record's
        versions in version order): the same reports ``verify_record`` gives one by one,
        with the chunk's catalog rows read in one query."""
        rows = self.a.catalog.versions_with_entries(record_ids)
        self._cp_sizes_stale = True
        self._prefetch(r for found in rows.values() for r in found)
        try:
            return self._verify_rows(record_ids, rows)
        finally:
            for ahead in self._reads.values():
                ahead.cancel()
            self._reads.clear()

    def _prefetch(self, rows: Iterable[Any]) -> None:
        """Start reading each row's objects on the reader threads: the manifest (pinned),
        the content's state, and the content's bytes hashed. An S3 request waits on the
        network with the GIL released, so several are in flight while this thread checks
        another version. Each read is the one ``_verify_version`` would make itself, in the
        same way — only earlier. Which stores get readers: ``period_verification``."""
        if self.readers <= 0:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.readers, thread_name_prefix="edoc-read")
        for row in rows:
            if row.disposed_at is None:
                self._reads[id(row)] = self._pool.submit(self._read_ahead, row)

    def _read_ahead(self, row: Any) -> _Ahead:
        try:
            manifest: bytes | ObjectMissing = self.a.store.read(row.manifest_key,
                                                                row.manifest_version_id)
        except ObjectMissing as exc:
            manifest = exc
        state, content = self._read_content(row)
        return _Ahead(manifest, state, content)

    def close(self) -> None:
        """Stop the reader threads (a ``Verifier`` without readers has none)."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def _verify_rows(self, record_ids: Sequence[str], rows: dict[str, list[Any]]
                     ) -> list[RecordReport]:
        out: list[RecordReport] = []
        for rid in record_ids:
            found = rows.get(rid)
            if not found:
                # A report, not an exception: a period report must stay one document.
                out.append(RecordReport(rid, 0, [Check.fail(
                    "record", "NOT_FOUND", f"no record {rid} in this archive")]))
                continue
            out.extend(self._verify_rechecked(r, r.ledger_entry) for r in found)
        return out


def _content_missing(key: str) -> Check:
    return Check.fail("content", "CONTENT_MISSING", f"{key} is not in the store")


def _hashable(value: tuple[Any, ...]) -> bool:
    try:
        hash(value)
    except TypeError:
        return False  # not a value a certificate edoc wrote holds; it lists nothing
    return True
