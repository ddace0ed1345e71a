"""Commit protocol: how one version becomes a sealed, logged, write-once record.

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
(``flock``: the kernel drops it when the process dies, however it dies; with a PostgreSQL
catalog an advisory lock of its own session, which a process on any host can probe:
``edoc.catalog.coordination``). An intent whose
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
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from edoc import clock as edoc_clock
from edoc.catalog import Intent, version_row
from edoc.catalog.coordination import coordination_for
from edoc.clock import utc_text
from edoc.errors import DuplicateContent, EdocError, ObjectExists
from edoc.evidence.hashing import hash_stream, sha256_hex
from edoc.evidence.ledger import event_entry, leaf_hex
from edoc.model.manifest import Manifest
from edoc.policy.profiles import Requirements
from edoc.services.archive import Archive
from edoc.services.checkpoint import make_checkpoint
from edoc.storage import layout

log = logging.getLogger(__name__)
#: One checkpoint at a time from the threads of a run (see ``commit_version``).
_CHECKPOINT_LOCK = threading.Lock()


@dataclass(frozen=True)
class NewContent:
    """Bytes to store for a new version (a metadata-only correction has none)."""

    path: Path
    size: int
    sha256: str



def commit_version(archive: Archive, *, record_id: str, version: int, body: Manifest,
                   content: NewContent | None, until_at: datetime,
                   reqs: Requirements, event: str, now: datetime,
                   reuse_content: tuple[str, str | None] | None = None,
                   state: str = "active") -> str:
    """Write one version by the commit protocol (module docstring); returns its manifest
    digest. ``body`` is the new version's manifest but for its record id, version,
    ``ingested_at`` and actor, which are set here. ``reuse_content`` points a metadata-only
    version at an earlier content object."""
    a = archive
    body = body.evolve(record_id=record_id, version=version, ingested_at=utc_text(now),
                       actor=a.actor)
    manifest = body.to_bytes()
    manifest_sha = sha256_hex(manifest)
    content_sha = body.content.sha256 if body.content is not None else None
    entry = event_entry(event, now, record_id=record_id, version=version,
                        manifest_sha256=manifest_sha, content_sha256=content_sha,
                        previous_version_sha256=body.previous_version_sha256)
    ckey, cver = ((layout.content_key(record_id, version), None) if content is not None
                  else reuse_content or (None, None))
    # The catalog row is derived from the manifest alone, exactly as `catalog rebuild`
    # derives it, so the two can never disagree.
    row = version_row(body, manifest_sha256=manifest_sha, content_ref=(ckey, cver),
                      seal_key=layout.manifest_seal_key(record_id, version)
                      if reqs.authenticity.seal_manifest else None)
    intent = _Intent(record_id=record_id, version=version, event=event, state=state,
                     content_sha256=content_sha if version == 1 else None,
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

#: A version being written, as the catalog's ``intents`` row holds it.
_Intent = Intent


def _owner(archive: Archive) -> str:
    """This process's writer token for ``archive``, registered on first use (a lock file
    under the archive directory, or an advisory lock of a PostgreSQL catalog:
    ``edoc.catalog.coordination``); the threads of one run share it."""
    return coordination_for(archive.catalog, archive.cfg.dir).writer_token()


def _dead_owner(archive: Archive, owner: str, *, release: bool = True
                ) -> contextlib.AbstractContextManager[bool]:
    """Yields whether ``owner`` is dead; while True, this process holds its lock, so no
    other process (on any host, with a PostgreSQL catalog) recovers the same writer's
    versions at the same time. ``release`` forgets a dead writer's registration."""
    return coordination_for(archive.catalog, archive.cfg.dir).probe_writer(
        owner, release=release)


def duplicate_error(path: str, existing: str, *, in_flight: bool = False) -> DuplicateContent:
    """The refusal of a file whose content record ``existing`` holds (or is being given)."""
    how = "is being stored by another run as record" if in_flight else \
        "has the same SHA-256 as record"
    dup = DuplicateContent(f"{path} {how} {existing}; not stored twice",
                           hint=f"see 'edoc show {existing}'; --skip-existing "
                           "treats this as success when re-running a batch")
    dup.record_id = existing
    return dup


def _reserve(archive: Archive, intent: Intent) -> None:
    """Record the intent to write ``intent``'s version, in one transaction with the checks
    that must hold when it is catalogued: a new record's content is not already stored or
    being stored (two runs racing on one file both pass the early check), and a new version
    builds on the record's latest one."""
    refusal = archive.catalog.reserve_intent(intent, owner=_owner(archive),
                                             created_at=edoc_clock.now())
    if refusal is None:
        return
    if refusal.duplicate_of is not None:
        raise duplicate_error(str(intent.row.get("original_name")), refusal.duplicate_of,
                              in_flight=refusal.in_flight)
    raise EdocError(f"record {intent.record_id} is being changed by another run "
                    f"(v{intent.version} is taken); nothing stored", code="RECORD_CHANGED",
                    hint="run the command again")


def _drop_intent(archive: Archive, record_id: str, version: int) -> None:
    try:
        archive.catalog.drop_intent(record_id, version)
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



def _catalogue(archive: Archive, intent: Intent, content_version: str | None,
               manifest_version: str) -> bool:
    """Step 3: one transaction inserts the version, its ledger leaf and the record (or moves
    the record to this version) and deletes the intent. False if the intent is gone (another
    process recovered it) or the record moved on meanwhile (then the intent is dropped)."""
    return archive.catalog.catalogue_version(
        intent, leaf_hash=leaf_hex(intent.entry), content_version=content_version,
        manifest_version=manifest_version)


def pending_intents(archive: Archive) -> tuple[list[str], list[str]]:
    """Versions being written, as ``<record id> v<n>``: (those whose writer died, those of
    live writers). Changes nothing."""
    dead: list[str] = []
    live: list[str] = []
    verdicts: dict[str, bool] = {}
    for rid, version, owner in archive.catalog.intent_writers():
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
    by_owner: dict[str, list[Intent]] = {}
    for pending in a.catalog.pending_intents():
        by_owner.setdefault(pending.owner, []).append(pending.intent)
    done: list[str] = []
    for owner, rows in by_owner.items():
        with _dead_owner(a, owner) as dead:
            if not dead:
                continue
            for intent in rows:
                r = intent
                what = f"{r.record_id} v{r.version}"
                until = datetime.fromisoformat(intent.row["retain_until_at"])
                cver = intent.row["content_version_id"]
                try:
                    if r.own_content:
                        ckey = intent.row["content_key"]
                        try:
                            cver = a.store.stat(ckey).version_id
                            with a.store.open(ckey, cver) as f:
                                digest = hash_stream(f)
                        except ObjectMissing:
                            _drop_intent(a, r.record_id, r.version)
                            done.append(f"dropped {what}: its writer died before storing it")
                            continue
                        if digest.sha256 != intent.row["content_sha256"]:
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

