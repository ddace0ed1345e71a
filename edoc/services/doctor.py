"""`edoc doctor`: is this archive healthy, and can it prove what it claims?

Findings are ``Check`` values with stable codes, so a monitoring job can alert on them:

- ``store``: a WORM self-test against the configured store. S3 look-alikes have shipped
  Object Lock holes, so the archive does not trust headers: it writes a short-lived canary
  and checks that deleting it, shortening its retention (and, on S3, downgrading its mode)
  are all refused, and compares the server clock with ours.
- ``clock``: our clock is not behind the newest checkpoint's timestamp.
- ``ledger``: no leaf waits to be written to the store, and the tree head is checkpointed.
- ``intents``: no version was left half-written by a run that died (``edoc.services.ingest``).
- ``orphans``: no stored record version lacks a catalog row (an interrupted ingest).
- ``disposal``: no purge run stopped before its certificate (``edoc purge`` finishes it).
- ``evidence``: no record's retention outlives the TSA certificate that vouches for its
  checkpoints (renew evidence before it expires), and whether the TSA is accredited.
- ``permissions``: private keys and the archive directory are not readable by others.
- ``entity``: who keeps the records (corporation / individual) and the base retention rule
  that implies (informational, never fails).

``--repair`` finishes what interrupted runs left: finishes or drops the versions dead runs
were writing (``edoc.services.ingest.recover_intents``), writes pending ledger leaves, adopts
complete orphan versions (content and manifest stored, digest intact) into the catalog and
the ledger, and checkpoints the tree head.
"""

from __future__ import annotations

import hashlib
import stat
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from edoc import clock as edoc_clock
from edoc.errors import EdocError, ObjectExists, RetentionActive
from edoc.evidence.hashing import hash_stream
from edoc.model.manifest import Manifest, ManifestError
from edoc.model.verdict import Check, Status
from edoc.services.archive import Archive
from edoc.storage import layout

CANARY_SECONDS = 60


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status is not Status.FAIL for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.as_dict() for c in self.checks],
                "repaired": self.repaired}


def local_worm_self_test(archive: Archive, now: datetime) -> list[Check]:
    """The local store's software enforcement, exercised exactly as on S3."""
    store = archive.store
    checks: list[Check] = []
    # Old canaries whose retention has ended are cleaned up first (that delete must work).
    for info in list(store.list("doctor/")):
        if info.retain_until and info.retain_until < now and not info.legal_hold:
            try:
                store.delete(info.key, info.version_id)
            except EdocError as exc:
                checks.append(Check.fail("store", "WORM_EXPIRED_DELETE_REFUSED",
                                         f"an expired canary could not be deleted: {exc}"))
    key = f"doctor/canary-{now.strftime('%Y%m%dT%H%M%S%f')}"
    payload = b"edoc doctor canary " + now.isoformat().encode()
    until = now + timedelta(seconds=CANARY_SECONDS)
    try:
        info = store.put_bytes(key, payload, retain_until=until)
    except EdocError as exc:
        return [Check.fail("store", "WORM_WRITE_FAILED", f"cannot write a canary: {exc}")]
    try:
        store.put_bytes(key, b"overwrite", retain_until=until)
        checks.append(Check.fail("store", "WORM_OVERWRITE_ALLOWED",
                                 "the store let a canary be overwritten"))
    except ObjectExists:
        checks.append(Check.ok("store", "overwrite refused"))
    try:
        store.delete(key, info.version_id)
        checks.append(Check.fail("store", "WORM_DELETE_ALLOWED",
                                 "the store deleted a canary before its retain-until"))
    except RetentionActive:
        checks.append(Check.ok("store", "early delete refused"))
    try:
        store.extend_retention(key, info.version_id, now)
        checks.append(Check.fail("store", "WORM_SHORTEN_ALLOWED",
                                 "the store shortened a canary's retention"))
    except RetentionActive:
        checks.append(Check.ok("store", "shortening retention refused"))
    if store.read(key, info.version_id) != payload:
        checks.append(Check.fail("store", "WORM_READBACK_MISMATCH",
                                 "the canary read back differently"))
    return checks


class Doctor:
    def __init__(self, archive: Archive) -> None:
        self.a = archive

    def run(self, *, repair: bool) -> DoctorReport:
        report = DoctorReport()
        now = edoc_clock.now()
        report.checks.extend(self._store(now))
        report.checks.append(self._clock(now))
        report.checks.extend(self._permissions())
        report.checks.append(self._entity())
        if repair:
            report.repaired.extend(self._repair())
        report.checks.extend(self._ledger())
        report.checks.append(self._intents())
        report.checks.append(self._orphans())
        report.checks.append(self._disposals())
        report.checks.extend(self._evidence())
        return report

    # -- checks ----------------------------------------------------------------------------
    def _store(self, now: datetime) -> list[Check]:
        if self.a.store.kind == "s3":
            from edoc.storage.s3 import S3Store
            from edoc.storage.s3_probe import worm_self_test

            assert isinstance(self.a.store, S3Store)
            return worm_self_test(self.a.store, now=now)
        return [*local_worm_self_test(self.a, now),
                Check.unknown("store", "WORM_SOFTWARE_ONLY",
                              f"{self.a.store.kind} store: {self.a.store.guarantee}")]

    def _clock(self, now: datetime) -> Check:
        latest = self.a.catalog.latest_checkpoint()
        if latest is None:
            return Check.ok("clock", "no checkpoint yet")
        newest = datetime.fromisoformat(latest.gen_time)
        if now + timedelta(seconds=5) < newest:
            return Check.fail("clock", "CLOCK_BEHIND",
                              "this machine's clock is behind the newest checkpoint's timestamp",
                              expected=f">= {latest.gen_time}", found=now.isoformat())
        return Check.ok("clock", f"newest checkpoint {latest.gen_time}")

    def _permissions(self) -> list[Check]:
        out = []
        paths = [self.a.cfg.dir, self.a.cfg.keys_path,
                 *sorted(self.a.cfg.keys_path.glob("*.key"))]
        loose = [str(p) for p in paths if p.exists()
                 and p.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO)]
        if loose:
            out.append(Check.fail("permissions", "PERMISSIONS_TOO_OPEN",
                                  f"readable by group/others: {', '.join(loose)}",
                                  expected="0700 directories, 0600 keys"))
        else:
            out.append(Check.ok("permissions", "archive and keys private to their owner"))
        encrypted = all(b"ENCRYPTED" in p.read_bytes()
                        for p in self.a.cfg.keys_path.glob("*.key"))
        if not encrypted:
            out.append(Check.unknown("permissions", "KEYS_NOT_ENCRYPTED",
                                     "private keys are not passphrase-encrypted (create "
                                     "archives with 'edoc init --encrypt-keys', or keep the "
                                     "seal key in a PKCS#11 token)"))
        return out

    def _entity(self) -> Check:
        """Who keeps the records, and the base retention rule that follows (informational)."""
        from edoc.policy.retention import BASE_RULE

        cfg = self.a.cfg
        detail = f"{cfg.entity}: base retention rule {BASE_RULE[cfg.entity]}"
        try:
            profile = self.a.profiles.get(cfg.default_profile)
        except EdocError:
            return Check.ok("entity", detail)  # a bad profile is reported where it is used
        rules = tuple(dict.fromkeys((*profile.retention.rules_for(cfg.entity),
                                     *cfg.default_retention)))
        kept = ", ".join(rules) or profile.retention.duration or "-"
        return Check.ok("entity", f"{detail}; default profile {profile.id} applies {kept}")

    def _ledger(self) -> list[Check]:
        state = self.a.catalog.ledger_state()
        pending, size, top = state.unstored, state.leaves, state.checkpointed
        out = []
        if pending:
            out.append(Check.fail("ledger", "LEDGER_LEAVES_PENDING",
                                  f"{pending} ledger leaves are not in the store yet",
                                  expected="0", found=str(pending)))
        else:
            out.append(Check.ok("ledger", "every leaf is in the store"))
        if top < size:
            out.append(Check.fail("ledger", "TREE_HEAD_NOT_CHECKPOINTED",
                                  f"{size - top} newest leaves are not covered by a checkpoint",
                                  expected=str(size), found=str(top)))
        else:
            out.append(Check.ok("ledger", f"tree head {size} checkpointed"))
        return out

    def _intents(self) -> Check:
        from edoc.services.commit import pending_intents

        dead, live = pending_intents(self.a)
        if dead:
            return Check.fail("intents", "INTERRUPTED_WRITES",
                              f"{len(dead)} version(s) were being written by a run that died; "
                              "'edoc doctor --repair' or the next ingest finishes or drops "
                              "them", found=", ".join(dead[:5]))
        return Check.ok("intents", f"{len(live)} version(s) being written by running "
                        "processes" if live else "no interrupted writes")

    def _disposals(self) -> Check:
        running = self.a.catalog.unfinished_disposal_runs()
        if running:
            # Not repaired here: finishing a disposal destroys records, which only `purge`
            # does (under its run lock, with a fresh trusted time).
            return Check.fail("disposal", "DISPOSAL_UNFINISHED",
                              f"{len(running)} purge run(s) stopped before their certificate; "
                              "'edoc purge --yes' finishes them first",
                              found=", ".join(running[:5]))
        return Check.ok("disposal", "every purge run is certified")

    def _orphan_manifests(self) -> list[tuple[str, Any]]:
        known = self.a.catalog.manifest_keys()
        # A version being written has its manifest stored just before it is catalogued.
        known |= {f"records/{rid}/v{v}/manifest.json"
                  for rid, v, _owner in self.a.catalog.intent_writers()}
        return [(info.key, info) for info in self.a.store.list("records/")
                if info.key.endswith("/manifest.json") and info.key not in known]

    def _orphans(self) -> Check:
        orphans = self._orphan_manifests()
        if orphans:
            return Check.fail("orphans", "ORPHAN_VERSIONS",
                              f"{len(orphans)} stored version(s) have no catalog row "
                              "(an interrupted run); 'edoc doctor --repair' adopts them",
                              found=", ".join(k for k, _ in orphans[:5]))
        return Check.ok("orphans", "every stored version is catalogued")

    def _evidence(self) -> list[Check]:
        from edoc.evidence import pki

        out = []
        if self.a.cfg.tsa.kind == "embedded":
            out.append(Check.unknown("evidence", "TSA_NOT_ACCREDITED",
                                     "timestamps come from the embedded development TSA; "
                                     "電子帳簿保存法 needs an accredited (総務大臣認定) TSA"))
        longest = self.a.catalog.longest_retention(undisposed=True)
        latest = longest.isoformat() if longest else None
        tsa_cert = pki.load_certificate(self.a.notary.paths.tsa_cert)
        expires = tsa_cert.not_valid_after_utc
        if latest and datetime.fromisoformat(latest) > expires:
            # Expected for long retention (a TSA certificate lives ~10 years): a note now,
            # a failure once renewal is due within a year (RFC 3161 tokens are verifiable
            # only while the TSA certificate is; JIS X 5093 archive timestamps renew them).
            due = expires - edoc_clock.now() < timedelta(days=365)
            out.append(Check(
                "evidence", Status.FAIL if due else Status.INDETERMINATE,
                "EVIDENCE_EXPIRES_BEFORE_RETENTION",
                f"the TSA certificate expires {expires.date()} but records are kept until "
                f"{latest[:10]}; renew evidence before it expires ('edoc renew')",
                expected=f">= {latest[:10]}", found=expires.date().isoformat()))
        else:
            out.append(Check.ok("evidence", f"TSA certificate valid until {expires.date()}"))
        return out

    # -- repair ----------------------------------------------------------------------------
    def _repair(self) -> list[str]:
        from edoc.services.checkpoint import flush_ledger_objects, make_checkpoint
        from edoc.services.commit import recover_intents

        done = recover_intents(self.a)
        far = edoc_clock.now() + timedelta(days=1)
        for key, _info in self._orphan_manifests():
            adopted = self._adopt(key)
            if adopted:
                done.append(adopted)
        n = flush_ledger_objects(self.a.catalog, self.a.store, far)
        if n:
            done.append(f"wrote {n} pending ledger leaves")
        from edoc.services.lifecycle import Lifecycle

        n = Lifecycle(self.a).restore_hold_documents()
        if n:
            done.append(f"wrote {n} missing hold/release documents")
        cp = make_checkpoint(self.a.catalog, self.a.store, self.a.notary, min_retain=far)
        if cp is not None:
            done.append(f"checkpointed tree head {cp.tree_size}")
        return done

    def _adopt(self, manifest_key: str) -> str | None:
        """Complete a version an interrupted run stored but never catalogued."""
        from edoc.catalog import version_row
        from edoc.evidence.ledger import event_entry, leaf_hex

        store = self.a.store
        data = store.read(manifest_key)
        try:
            m = Manifest.from_bytes(data)
        except ManifestError:
            return None  # not a manifest this release reads: left for 'edoc verify' to show
        rid, ver = m.record_id, m.version
        content = m.content
        ckey = layout.content_key(rid, ver) if content is not None else None
        cver = None
        if content is not None and ckey:
            try:
                with store.open(ckey) as f:
                    digest = hash_stream(f)
                if digest.sha256 != content.sha256:
                    return None
                cver = store.stat(ckey).version_id
            except EdocError:
                return None  # content never arrived: nothing to adopt, the user re-ingests
        if ver != 1:
            return None  # corrections are re-run by the user; only first versions adopted
        sha = hashlib.sha256(data).hexdigest()
        now = edoc_clock.now()
        entry = event_entry("ingest", now, record_id=rid, version=1, manifest_sha256=sha,
                            content_sha256=content.sha256 if content else None,
                            previous_version_sha256=None)
        seal = layout.manifest_seal_key(rid, 1)
        row = version_row(m, manifest_sha256=sha, content_ref=(ckey, cver),
                          seal_key=seal if store.versions(seal) else None,
                          manifest_version_id=store.stat(manifest_key).version_id)
        if not self.a.catalog.adopt_first_version(row, event_type="ingest",
                                                   entry=entry.decode(),
                                                   leaf_hash=leaf_hex(entry)):
            return None
        return f"adopted {rid} v1 (stored by an interrupted ingest)"
