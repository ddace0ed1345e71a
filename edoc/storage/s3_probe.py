"""The probe behind ``edoc doctor`` for S3: does the server really enforce write-once?

S3 look-alikes have shipped Object Lock holes, so we write a short-lived canary and check that
the server really refuses what it must refuse (deleting a locked version, shortening its
retention, downgrading COMPLIANCE to GOVERNANCE, a PUT whose checksum does not match), and that
its clock agrees with ours (retention is judged on *its* clock). Part of the S3 backend: it
speaks botocore directly.
"""

from __future__ import annotations

import hashlib
import io
import logging
import secrets
import time
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import botocore.exceptions as bce

from edoc.errors import (
    EdocError,
    RetentionActive,
)
from edoc.model.verdict import Check
from edoc.storage.s3 import MAX_CLOCK_SKEW, S3Store
from edoc.storage.s3_wire import (
    CHECKSUM_CODES,
    LOCK_REFUSED_CODES,
    b64,
    ceil_second,
    error_code,
    iso,
    utc,
)

log = logging.getLogger(__name__)


def worm_self_test(store: S3Store, *, now: datetime, retention_seconds: int = 60) -> list[Check]:
    """Probe whether the server really enforces write-once, and whether its clock agrees.

    Writes a small canary under ``<prefix>/doctor/`` locked in COMPLIANCE mode for
    ``retention_seconds`` (whatever the store's own mode: the strongest promise is the one
    tested) and checks that the server refuses to delete it (also with the governance-bypass
    header, and in a ``DeleteObjects`` batch as purge sends it), to shorten its retention
    and to downgrade it to GOVERNANCE; that it rejects a PUT whose bytes do not match their
    SHA-256; that reads give back the same bytes and SHA-256; and that its clock is within
    ``MAX_CLOCK_SKEW`` of ``now``.

    A refusal only proves the *lock* if the identity may do the same thing to an unlocked
    object, so each refusal is paired with a control (delete an unlocked object, extend the
    canary's retention); without it the check is INDETERMINATE, never a false PASS.
    Expired canaries of earlier runs are removed first. Never raises for a failed check.
    """
    checks: list[Check] = []
    started = time.monotonic()
    now = utc(now)
    probe = S3Store(store.client, store.bucket, store.prefix, lock_mode="COMPLIANCE")

    try:
        probe.ensure_bucket(create=False)
    except EdocError as exc:
        checks.append(Check.fail("bucket", exc.code, exc.message))
        return checks
    checks.append(Check.ok("bucket", f"s3://{store.bucket}: versioning and Object Lock enabled"))

    clock, server_now = _clock_check(probe, now, started)
    checks.append(clock)
    cleanup = _remove_old_canaries(probe, min(now, server_now or now))
    if cleanup is not None:
        checks.append(cleanup)

    stamp = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"
    canary = f"edoc doctor canary {now.isoformat()} {secrets.token_hex(8)}\n".encode()
    key = f"doctor/{stamp}"
    retain = ceil_second(now + timedelta(seconds=retention_seconds))
    try:
        info = probe.put(key, io.BytesIO(canary), size=len(canary),
                         sha256=hashlib.sha256(canary).hexdigest(), retain_until=retain)
    except EdocError as exc:
        checks.append(Check.fail("canary", "WORM_CANARY_FAILED",
                                 f"could not write the canary {probe._where(key)}: {exc}"))
        return checks
    checks.append(Check.ok("canary", f"wrote {probe._where(key, info.version_id)} locked "
                                     f"COMPLIANCE until {iso(info.retain_until)}"))
    checks.append(_read_check(probe, key, info.version_id, canary))

    may_delete = _control_delete(probe, f"doctor/{stamp}-control")
    checks.append(_delete_check(probe, key, info.version_id, may_delete))

    # Control: extending is allowed on a locked version, so success proves the identity may
    # change retention at all; the refusals that follow are then the lock's doing.
    extended = retain + timedelta(seconds=1)
    try:
        probe.extend_retention(key, info.version_id, extended)
        may_change: str | None = None
    except EdocError as exc:
        may_change = f"extending the canary's retention failed too ({exc.code})"
    checks.append(_retention_change_check(
        probe, key, info.version_id, "shorten", "WORM_SHORTEN_ALLOWED", "COMPLIANCE",
        extended - timedelta(seconds=max(1, retention_seconds // 2)), may_change))
    checks.append(_retention_change_check(
        probe, key, info.version_id, "downgrade", "WORM_DOWNGRADE_ALLOWED", "GOVERNANCE",
        extended, may_change))
    checks.append(_checksum_enforced_check(probe, f"doctor/{stamp}-baddigest", retain))
    return checks


def _clock_check(store: S3Store, now: datetime, started: float) -> tuple[Check, datetime | None]:
    try:
        resp = store.client.head_bucket(Bucket=store.bucket)
    except (bce.BotoCoreError, bce.ClientError) as exc:
        err = store._error(exc, "reading the clock of", f"s3://{store.bucket}")
        return Check.unknown("clock", "CLOCK_UNKNOWN", str(err)), None
    header = resp.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if not header:
        return Check.unknown("clock", "CLOCK_UNKNOWN", "the server sent no Date header"), None
    try:
        server = utc(parsedate_to_datetime(header))
    except (TypeError, ValueError):
        return Check.unknown("clock", "CLOCK_UNKNOWN", f"unreadable Date header {header!r}"), None
    ours = now + timedelta(seconds=time.monotonic() - started)
    # The Date header (RFC 9110 §6.6.1) has one-second resolution: whole seconds only.
    skew = round((server - ours).total_seconds())
    limit = round(MAX_CLOCK_SKEW.total_seconds())
    detail = f"server clock {server.isoformat()} vs ours {ours.isoformat(timespec='seconds')}"
    if abs(skew) > limit:
        return Check.fail("clock", "CLOCK_SKEW",
                          f"{detail}: {skew:+d} s apart; retention is judged on the server's "
                          f"clock", expected=f"|skew| <= {limit} s", found=f"{skew:+d} s"), server
    return Check.ok("clock", f"{detail} ({skew:+d} s)"), server


def _remove_old_canaries(store: S3Store, now: datetime) -> Check | None:
    failures: list[str] = []
    try:
        for info in store.list("doctor/"):
            if info.retain_until is not None and info.retain_until < now and not info.legal_hold:
                try:
                    store.delete(info.key, info.version_id)
                except RetentionActive:
                    continue  # not expired on the server's clock yet: next time
                except EdocError as exc:
                    failures.append(str(exc))
    except EdocError as exc:
        failures.append(str(exc))
    if failures:
        return Check.unknown("cleanup", "WORM_CANARY_CLEANUP_FAILED",
                             f"{len(failures)} old canaries not removed; first: {failures[0]}")
    return None


def _read_check(store: S3Store, key: str, version_id: str, canary: bytes) -> Check:
    try:
        data = store.read(key, version_id)
        info = store.stat(key, version_id)
    except EdocError as exc:
        return Check.fail("read", "WORM_READ_FAILED", str(exc))
    expected = hashlib.sha256(canary).hexdigest()
    if data != canary:
        return Check.fail("read", "WORM_READ_MISMATCH", "the canary read back differs",
                          expected=expected, found=hashlib.sha256(data).hexdigest())
    if info.sha256 is None:
        return Check.fail("read", "WORM_CHECKSUM_NOT_REPORTED",
                          "the server reports no SHA-256 for the canary (HEAD with "
                          "ChecksumMode=ENABLED)", expected=expected, found="none")
    if info.sha256 != expected:
        return Check.fail("read", "WORM_CHECKSUM_MISMATCH",
                          "the server's SHA-256 for the canary differs from its bytes",
                          expected=expected, found=info.sha256)
    return Check.ok("read", "same bytes and the same server SHA-256 read back")


def _control_delete(store: S3Store, key: str) -> str | None:
    """Write an unlocked object and delete its version: ``None`` if that works, else why not."""
    body = b"edoc doctor: unlocked control object\n"
    full = store._full(key)
    try:
        put = store.client.put_object(Bucket=store.bucket, Key=full, Body=body,
                                      ChecksumAlgorithm="SHA256",
                                      ChecksumSHA256=b64(hashlib.sha256(body).digest()),
                                      IfNoneMatch="*")
        store.client.delete_object(Bucket=store.bucket, Key=full, VersionId=put["VersionId"])
    except (bce.BotoCoreError, bce.ClientError) as exc:
        err = store._error(exc, "deleting the unlocked control object", store._where(key))
        return f"this identity cannot delete even an unlocked object ({err.code})"
    return None


def _delete_check(store: S3Store, key: str, version_id: str, control: str | None) -> Check:
    try:
        store.delete(key, version_id)
    except RetentionActive:
        pass
    except EdocError as exc:
        return Check.unknown("delete", "WORM_DELETE_UNTESTED", f"delete failed otherwise: {exc}")
    else:
        return Check.fail("delete", "WORM_DELETE_ALLOWED",
                          "the server deleted a version locked in COMPLIANCE mode",
                          expected="refused", found="deleted")
    # COMPLIANCE means nobody, not even with the governance-bypass header.
    try:
        store.client.delete_object(Bucket=store.bucket, Key=store._full(key),
                                   VersionId=version_id, BypassGovernanceRetention=True)
    except (bce.BotoCoreError, bce.ClientError):
        pass
    else:
        return Check.fail("delete", "WORM_DELETE_ALLOWED",
                          "the server deleted a COMPLIANCE-locked version when asked to bypass "
                          "governance retention", expected="refused", found="deleted")
    # Purge deletes through DeleteObjects (delete_many): a server must refuse there too, and
    # say so for that version, or a disposal certificate could list what is still stored.
    try:
        (batch,) = store.delete_many([(key, version_id)])
        still_there = batch.gone and any(v.version_id == version_id
                                         for v in store.versions(key))
    except EdocError as exc:
        return Check.unknown("delete", "WORM_DELETE_UNTESTED",
                             f"DeleteObjects failed otherwise: {exc}")
    if batch.gone and not still_there:
        return Check.fail("delete", "WORM_DELETE_ALLOWED",
                          "the server deleted a COMPLIANCE-locked version through "
                          "DeleteObjects", expected="refused", found="deleted")
    if batch.gone:
        return Check.fail("delete", "WORM_DELETE_MISREPORTED",
                          "DeleteObjects reported the locked canary version deleted, but the "
                          "server still holds it", expected="refused", found="reported deleted")
    if control is not None:
        return Check.unknown("delete", "WORM_DELETE_UNTESTED",
                             f"delete of the locked canary was refused, but {control}")
    return Check.ok("delete", "deleting the locked canary version was refused, also with the "
                              "bypass header and through DeleteObjects; an unlocked version "
                              "could be deleted")


def _retention_change_check(store: S3Store, key: str, version_id: str, name: str, code: str,
                            mode: str, until: datetime, control: str | None) -> Check:
    # Sent straight to the server: S3Store itself refuses to shorten before asking.
    untested = f"WORM_{name.upper()}_UNTESTED"
    try:
        store.client.put_object_retention(
            Bucket=store.bucket, Key=store._full(key), VersionId=version_id,
            Retention={"Mode": mode, "RetainUntilDate": until})
    except bce.ClientError as exc:
        if error_code(exc) not in LOCK_REFUSED_CODES:
            err = store._error(exc, f"probing {name} of", store._where(key, version_id))
            return Check.unknown(name, untested, str(err))
        if control is not None:
            return Check.unknown(name, untested, f"setting {mode} until {iso(until)} was "
                                                 f"refused, but {control}")
        return Check.ok(name, f"setting {mode} until {iso(until)} was refused "
                              f"({error_code(exc)})")
    except bce.BotoCoreError as exc:
        err = store._error(exc, f"probing {name} of", store._where(key, version_id))
        return Check.unknown(name, untested, str(err))
    try:
        after = store.stat(key, version_id)
        found = f"{after.lock_mode} until {iso(after.retain_until)}"
    except EdocError:
        found = "accepted"
    return Check.fail(name, code, f"the server accepted {mode} until {iso(until)} on a "
                                  f"version locked COMPLIANCE", expected="refused", found=found)


def _checksum_enforced_check(store: S3Store, key: str, retain: datetime) -> Check:
    body = b"edoc doctor: these bytes do not match the checksum sent with them\n"
    wrong = hashlib.sha256(body + b"x").digest()
    try:
        store.client.put_object(
            Bucket=store.bucket, Key=store._full(key), Body=body, ChecksumAlgorithm="SHA256",
            ChecksumSHA256=b64(wrong), ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=retain, IfNoneMatch="*")
    except bce.ClientError as exc:
        if error_code(exc) in CHECKSUM_CODES:
            return Check.ok("checksum", f"a PUT with a wrong SHA-256 was rejected "
                                        f"({error_code(exc)})")
        err = store._error(exc, "probing checksum enforcement at", store._where(key))
        return Check.unknown("checksum", "WORM_CHECKSUM_UNTESTED", str(err))
    except bce.BotoCoreError as exc:
        err = store._error(exc, "probing checksum enforcement at", store._where(key))
        return Check.unknown("checksum", "WORM_CHECKSUM_UNTESTED", str(err))
    return Check.fail("checksum", "WORM_CHECKSUM_NOT_VERIFIED",
                      "the server stored bytes that do not match the SHA-256 sent with them",
                      expected="rejected", found="stored")
