"""The S3 backend: write-once storage enforced by the server through S3 Object Lock.

This module, ``s3_wire`` (codes, encodings, exact reads) and ``s3_probe`` are the only ones
in edoc that import boto3/botocore. It owns:

* ``S3Store`` — the ``ObjectStore`` contract (``edoc/storage/base.py``) over one bucket and
  key prefix. Every object version is written with an Object Lock retention (COMPLIANCE by
  default, GOVERNANCE if configured) and, when asked, a legal hold; the *server* refuses to
  delete it or to shorten its retention, so the guarantee does not depend on edoc behaving.
  (The probe behind ``edoc doctor`` is ``edoc.storage.s3_probe.worm_self_test``.)

Integrity on the wire: every PUT carries ``x-amz-checksum-sha256`` set to the *caller's*
digest (not one computed by botocore from the bytes it happens to send), so a server that
receives different bytes rejects the upload (``STORAGE_CHECKSUM_MISMATCH``) and nothing is
stored. Large objects go up as a multipart upload with a SHA-256 per part; S3 then keeps only
a composite checksum (a hash of the part hashes), so we hash the whole stream as it goes, compare
it with the caller's digest *before* completing (aborting on mismatch) and record it in the
object's metadata (``x-amz-meta-edoc-sha256``), which ``stat`` reports for such objects.

Disposal deletes by version id in batches (``delete_many``: one ``DeleteObjects`` per
``DELETE_BATCH`` versions, no HEAD first); the server's lock decides, per version, exactly as
for a single ``delete``.

S3 versioning would silently stack a new version on an existing key; the contract says a key is
written once, so ``put`` refuses a key that has any version, and sends ``If-None-Match: *`` to
close the race with a concurrent writer.

Errors are ``EdocError`` one-liners with stable codes (``STORAGE_UNREACHABLE``,
``STORAGE_ACCESS_DENIED``, ``OBJECT_MISSING``, ``RETENTION_ACTIVE`` …); credentials never
appear in messages or logs.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, BinaryIO, Literal

import boto3
import botocore.exceptions as bce
from botocore.config import Config

from edoc.errors import (
    ConfigError,
    EdocError,
    ObjectExists,
    ObjectMissing,
    RetentionActive,
    StorageError,
)
from edoc.storage.base import DeleteOutcome, ObjectInfo
from edoc.storage.s3_wire import (
    AUTH_CODES,
    CHECKSUM_CODES,
    DENIED_CODES,
    EXISTS_CODES,
    LOCK_REFUSED_CODES,
    MISSING_CODES,
    NO_LOCK_CODES,
    ObjectReader,
    b64,
    ceil_second,
    error_code,
    http_status,
    iso,
    no_continue_for_small_bodies,
    read_exactly,
    refuse_trailing,
    reported_sha256,
    safe_endpoint,
    server_message,
    sha256_bytes,
    utc,
    utcnow,
)

__all__ = [
    "DEFAULT_MULTIPART_THRESHOLD",
    "DEFAULT_PART_SIZE",
    "DELETE_BATCH",
    "LockMode",
    "S3Store",
]

log = logging.getLogger(__name__)

#: boto3 clients are dynamically generated; the ``mypy_boto3_s3`` stubs are optional, so the
#: client is typed loosely here and every call site is exercised against a real server.
S3Client = Any
LockMode = Literal["COMPLIANCE", "GOVERNANCE"]

MiB = 1024 * 1024
#: Objects larger than this go up as multipart uploads (single PUTs stay in memory).
DEFAULT_MULTIPART_THRESHOLD = 64 * MiB
#: Each part is held in memory once while it is hashed and sent: 8 MiB keeps a 2 GiB upload's
#: peak RSS under 150 MB; ``_put_multipart`` raises it for objects that would need more than
#: ``MAX_PARTS`` parts (8 MiB × 10,000 ≈ 84 GB).
DEFAULT_PART_SIZE = 8 * MiB
#: S3 rejects parts smaller than 5 MiB (except the last) and uploads of more than 10 000 parts.
MIN_PART_SIZE = 5 * MiB
MAX_PARTS = 10_000
#: ``DeleteObjects`` takes at most 1,000 keys (here: versions) per request.
DELETE_BATCH = 1000
#: ``DeleteObjects`` requests in flight in ``delete_many``; the fewest versions per request
DELETE_PARALLEL, DELETE_MIN = 4, 100
#: Retries per request, with exponential backoff on throttling, 5xx and dropped connections
#: (botocore "standard" mode; its ``max_attempts`` counts retries after the first request).
RETRY_MAX_ATTEMPTS = 5
#: Metadata key (sent as ``x-amz-meta-edoc-sha256``) holding the full-object digest of a
#: multipart object, verified by edoc while streaming, before the upload was completed.
SHA256_METADATA = "edoc-sha256"
#: More skew than this between our clock and the server's makes retention dates unreliable.
MAX_CLOCK_SKEW = timedelta(seconds=60)

# Same key rule as the local store: keys are made by edoc, and one that could be read as a
# path escape or has odd characters is refused on every backend alike.
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
_PREFIX = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*)?$")
_READ_CHUNK = 1 * MiB

# -- the store -------------------------------------------------------------------------------
class S3Store:
    """``ObjectStore`` over an S3 bucket with Object Lock (see the module docstring)."""

    kind = "s3"

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str = "",
        *,
        lock_mode: LockMode = "COMPLIANCE",
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        part_size: int = DEFAULT_PART_SIZE,
        list_page_size: int = 1000,
        clock: Callable[[], datetime] = utcnow,
        conditional_writes: bool = True,
    ) -> None:
        """``client`` is a boto3 S3 client (see ``from_config``); ``prefix`` scopes every key.

        Objects above ``multipart_threshold`` bytes are uploaded in parts of ``part_size``
        (one part in memory at a time); listings ask for ``list_page_size`` keys per request
        (S3 answers at most 1000). ``clock`` is only used to word refusals, never to decide.
        """
        if not 1 <= list_page_size <= 1000:
            raise ConfigError(f"list page size {list_page_size} is not within 1..1000",
                              code="STORAGE_PAGE_SIZE_INVALID")
        if lock_mode not in ("COMPLIANCE", "GOVERNANCE"):
            raise ConfigError(f"lock mode {lock_mode!r} is not COMPLIANCE or GOVERNANCE",
                              code="STORAGE_LOCK_MODE_INVALID")
        if part_size < MIN_PART_SIZE:
            raise ConfigError(f"multipart part size {part_size} bytes is below the S3 minimum "
                              f"of {MIN_PART_SIZE}", code="STORAGE_PART_SIZE_INVALID")
        if multipart_threshold < 0:
            raise ConfigError("multipart threshold must not be negative",
                              code="STORAGE_PART_SIZE_INVALID")
        prefix = prefix.strip("/")
        if not _PREFIX.match(prefix) or ".." in prefix.split("/"):
            raise ConfigError(f"invalid key prefix {prefix!r}", code="STORAGE_BAD_PREFIX")
        self.client = client
        # After botocore's own handler on the same event, which adds the header.
        client.meta.events.register_last("before-call.s3", no_continue_for_small_bodies)
        #: ``If-None-Match: *`` refuses a PUT over an existing key (S3, MinIO, SeaweedFS);
        #: without it (``False``) every PUT is preceded by a version listing. edoc never reuses
        #: a key (ULID record ids, ledger indices, tree sizes), so the case conditional writes
        #: cannot see — a key whose current version is a delete marker — never comes from edoc.
        self.conditional_writes = conditional_writes
        self._lock_verified = False
        self.bucket = bucket
        self.prefix = prefix
        self.lock_mode: LockMode = lock_mode
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.list_page_size = list_page_size
        self._clock = clock
        self._root = f"{prefix}/" if prefix else ""
        if lock_mode == "COMPLIANCE":
            self.guarantee = ("WORM: S3 Object Lock in COMPLIANCE mode; the server refuses "
                              "deletion and shortening until retain-until, for every user")
        else:
            self.guarantee = ("WORM-style: S3 Object Lock in GOVERNANCE mode; principals "
                              "allowed s3:BypassGovernanceRetention can delete early")

    @classmethod
    def from_config(
        cls,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        lock_mode: LockMode = "COMPLIANCE",
        addressing_style: Literal["auto", "path", "virtual"] | None = None,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> S3Store:
        """Build a client the standard AWS way and wrap it.

        Credentials, region and endpoint come from where every AWS tool looks for them
        (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``,
        ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``, ``~/.aws/config`` and
        ``~/.aws/credentials``, instance roles) unless given here. Nothing secret is logged.
        """
        config = Config(
            retries={"mode": "standard", "max_attempts": RETRY_MAX_ATTEMPTS},
            s3={"addressing_style": addressing_style} if addressing_style else None,
        )
        try:
            session = boto3.session.Session(profile_name=profile, region_name=region)
            client = session.client("s3", endpoint_url=endpoint_url, config=config)
        except bce.ProfileNotFound as exc:
            raise ConfigError(f"AWS profile {profile!r} is not configured",
                              code="STORAGE_PROFILE_MISSING",
                              hint="check ~/.aws/config or AWS_PROFILE") from exc
        except bce.BotoCoreError as exc:
            raise ConfigError(f"cannot configure the S3 client: {type(exc).__name__}",
                              code="STORAGE_CONFIG_INVALID") from exc
        log.debug("s3 store: bucket=%s prefix=%s endpoint=%s region=%s profile=%s",
                  bucket, prefix, safe_endpoint(client), client.meta.region_name,
                  profile or "(default)")
        return cls(client, bucket, prefix, lock_mode=lock_mode,
                   multipart_threshold=multipart_threshold, part_size=part_size)

    # -- keys ----------------------------------------------------------------------------
    def _full(self, key: str) -> str:
        if not _KEY.match(key) or ".." in key.split("/"):
            raise StorageError(f"invalid object key {key!r}", code="STORAGE_BAD_KEY")
        return self._root + key

    def _rel(self, full_key: str) -> str:
        return full_key[len(self._root):]

    def _where(self, key: str, version_id: str | None = None) -> str:
        where = f"s3://{self.bucket}/{self._root}{key}"
        return f"{where} (version {version_id})" if version_id else where

    # -- errors --------------------------------------------------------------------------
    def _error(self, exc: Exception, action: str, where: str) -> EdocError:
        """Translate a botocore failure into one edoc line; never includes credentials."""
        if isinstance(exc, EdocError):
            return exc
        endpoint = safe_endpoint(self.client)
        if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
            return ConfigError(f"no usable S3 credentials while {action} {where}",
                               code="STORAGE_NO_CREDENTIALS",
                               hint="set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
        if isinstance(exc, bce.ConnectionError | bce.HTTPClientError):
            return StorageError(
                f"cannot reach the S3 endpoint {endpoint} while {action} {where} "
                f"({type(exc).__name__})",
                code="STORAGE_UNREACHABLE",
                hint="check that the object store is running and the endpoint URL is right")
        if isinstance(exc, bce.FlexibleChecksumError):
            return StorageError(f"checksum check failed while {action} {where}",
                                code="STORAGE_CHECKSUM_MISMATCH")
        if isinstance(exc, bce.ClientError):
            code = error_code(exc)
            status = http_status(exc)
            said = f"server said {code or status}"
            if code in CHECKSUM_CODES:
                return StorageError(
                    f"the server rejected the bytes while {action} {where}: they do not match "
                    f"the SHA-256 sent with them ({code}); nothing was stored",
                    code="STORAGE_CHECKSUM_MISMATCH",
                    hint="the source changed while it was read or was damaged in transit")
            if code in MISSING_CODES or (status == 404 and code != "NoSuchBucket"):
                return ObjectMissing(f"{where} is not in the store ({said})")
            if code == "NoSuchBucket":
                return ConfigError(f"bucket {self.bucket} does not exist at {endpoint}",
                                   code="BUCKET_MISSING",
                                   hint="create it with Object Lock enabled (edoc init)")
            if code in AUTH_CODES:
                return ConfigError(f"the S3 endpoint {endpoint} did not accept our credentials "
                                   f"while {action} {where} ({said})",
                                   code="STORAGE_AUTH_FAILED",
                                   hint="check the access key, secret and clock of this machine")
            if code in DENIED_CODES or status == 403:
                return StorageError(f"access denied while {action} {where} ({said})",
                                    code="STORAGE_ACCESS_DENIED",
                                    hint="check the S3 identity's credentials and its permissions "
                                         "for this bucket")
            if code in EXISTS_CODES:
                return ObjectExists(f"{where} already exists; objects are written once ({said})",
                                    hint="a correction is stored as a new version, never over "
                                         "the old")
            if status >= 500 or code in {"SlowDown", "ServiceUnavailable", "InternalError"}:
                return StorageError(f"the S3 server failed while {action} {where} ({said})",
                                    code="STORAGE_SERVER_ERROR",
                                    hint="retry later; check the object store's health (a "
                                         "damaged object also fails this way)")
            detail = server_message(exc)
            return StorageError(
                f"{action} {where} failed ({said}{': ' + detail if detail else ''})",
                code="STORAGE_REQUEST_FAILED")
        if isinstance(exc, bce.BotoCoreError):
            return StorageError(f"{action} {where} failed ({type(exc).__name__})",
                                code="STORAGE_ERROR")
        return StorageError(f"{action} {where} failed ({type(exc).__name__})",
                            code="STORAGE_ERROR")

    def _call(self, action: str, where: str, method: str, **params: Any) -> Any:
        try:
            return getattr(self.client, method)(**params)
        except (bce.BotoCoreError, bce.ClientError) as exc:
            raise self._error(exc, action, where) from exc

    # -- bucket --------------------------------------------------------------------------
    def ensure_bucket(self, create: bool = False) -> None:
        """Check (or create) the bucket; refuse one without versioning and Object Lock.

        Object Lock can only be switched on when a bucket is created, and it needs
        versioning; a bucket without both cannot keep anything write-once.
        """
        where = f"s3://{self.bucket}"
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except bce.ClientError as exc:
            if error_code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                raise self._error(exc, "checking bucket", where) from exc
            if not create:
                raise ConfigError(f"bucket {self.bucket} does not exist at "
                                  f"{safe_endpoint(self.client)}", code="BUCKET_MISSING",
                                  hint="create it with Object Lock enabled, or let edoc init "
                                       "create it") from exc
            self._create_bucket()
        except bce.BotoCoreError as exc:
            raise self._error(exc, "checking bucket", where) from exc

        versioning = self._call("checking versioning of", where, "get_bucket_versioning",
                                Bucket=self.bucket).get("Status")
        if versioning != "Enabled":
            raise ConfigError(f"bucket {self.bucket} has versioning {versioning or 'off'}; "
                              f"Object Lock needs it Enabled", code="BUCKET_NOT_WORM",
                              hint="use a bucket created with Object Lock enabled")
        try:
            lock = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except bce.ClientError as exc:
            if error_code(exc) == "ObjectLockConfigurationNotFoundError":
                raise ConfigError(f"bucket {self.bucket} has no Object Lock configuration; "
                                  f"objects in it could be deleted at any time",
                                  code="BUCKET_NOT_WORM",
                                  hint="Object Lock can only be enabled when a bucket is "
                                       "created: use a new bucket") from exc
            raise self._error(exc, "checking Object Lock of", where) from exc
        except bce.BotoCoreError as exc:
            raise self._error(exc, "checking Object Lock of", where) from exc
        enabled = lock.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
        if enabled != "Enabled":
            raise ConfigError(f"bucket {self.bucket} has Object Lock {enabled or 'off'}; "
                              f"Enabled is required", code="BUCKET_NOT_WORM",
                              hint="use a bucket created with Object Lock enabled")

    def _create_bucket(self) -> None:
        params: dict[str, Any] = {"Bucket": self.bucket, "ObjectLockEnabledForBucket": True}
        region = self.client.meta.region_name
        if region and region != "us-east-1":
            # us-east-1 is the one region that refuses an explicit LocationConstraint.
            params["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**params)
        except bce.ClientError as exc:
            if error_code(exc) != "BucketAlreadyOwnedByYou":
                raise self._error(exc, "creating bucket", f"s3://{self.bucket}") from exc
        except bce.BotoCoreError as exc:
            raise self._error(exc, "creating bucket", f"s3://{self.bucket}") from exc
        log.info("created bucket %s with Object Lock enabled", self.bucket)

    # -- write ---------------------------------------------------------------------------
    def put(
        self,
        key: str,
        stream: BinaryIO,
        *,
        size: int,
        sha256: str,
        retain_until: datetime,
        legal_hold: bool = False,
    ) -> ObjectInfo:
        full = self._full(key)
        digest = sha256_bytes(sha256)
        retain = ceil_second(retain_until)
        if size < 0:
            raise StorageError(f"negative size {size} for {key}", code="STORAGE_SIZE_MISMATCH")
        if not self.conditional_writes:
            self._refuse_existing(key, full)
        lock: dict[str, Any] = {
            "ObjectLockMode": self.lock_mode,
            "ObjectLockRetainUntilDate": retain,
        }
        if legal_hold:
            lock["ObjectLockLegalHoldStatus"] = "ON"
        if size > self.multipart_threshold:
            version_id = self._put_multipart(key, full, stream, size, digest, lock)
        else:
            version_id = self._put_single(key, full, stream, size, digest, lock)
        if self._lock_verified:
            # The server checked our SHA-256 on the PUT (ChecksumSHA256) and applied the lock
            # it applied to the first object of this run; `verify` (lock check) and
            # `edoc doctor` keep checking what the server reports. One HEAD per PUT saved.
            info = ObjectInfo(key=key, version_id=version_id, size=size, sha256=sha256,
                              retain_until=retain, lock_mode=self.lock_mode,
                              legal_hold=legal_hold, last_modified=self._clock())
        else:
            info = self.stat(key, version_id)
            self._check_stored(info, sha256, size, retain, legal_hold)
            self._lock_verified = True
        log.debug("stored %s version %s (%d bytes, %s until %s)", self._where(key), version_id,
                  size, self.lock_mode, iso(retain))
        return info

    def _refuse_existing(self, key: str, full: str) -> None:
        # Any version at all (a noncurrent one, or a delete marker) means the key was used.
        # Listing is in key order and ``full`` sorts before every longer key it prefixes, so
        # if the key has any entry, the first page starts with it.
        page = self._call("checking", self._where(key), "list_object_versions",
                          Bucket=self.bucket, Prefix=full, MaxKeys=10)
        taken = [v for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                 if v.get("Key") == full]
        if taken:
            raise ObjectExists(f"{self._where(key)} already exists "
                               f"({len(taken)} version(s)); objects are written once",
                               hint="a correction is stored as a new version, never over the old")

    def _put_single(self, key: str, full: str, stream: BinaryIO, size: int, digest: bytes,
                    lock: dict[str, Any]) -> str:
        data = read_exactly(stream, size, key, size)
        refuse_trailing(stream, key, size)
        resp = self._call(
            "writing", self._where(key), "put_object",
            Bucket=self.bucket, Key=full, Body=data, ContentLength=size,
            ChecksumAlgorithm="SHA256", ChecksumSHA256=b64(digest),
            # Closes the race with a concurrent writer that the listing above cannot see.
            IfNoneMatch="*",
            **lock,
        )
        return self._version_of(resp, key)

    def _put_multipart(self, key: str, full: str, stream: BinaryIO, size: int,
                       digest: bytes, lock: dict[str, Any]) -> str:
        where = self._where(key)
        part_size = max(self.part_size, -(-size // MAX_PARTS))
        created = self._call(
            "starting upload of", where, "create_multipart_upload",
            Bucket=self.bucket, Key=full, ChecksumAlgorithm="SHA256",
            Metadata={SHA256_METADATA: digest.hex()}, **lock)
        upload_id = created["UploadId"]
        try:
            whole = hashlib.sha256()
            part_digests: list[bytes] = []
            parts: list[dict[str, Any]] = []
            remaining = size
            number = 1
            while remaining > 0:
                # One part in memory at a time: memory stays bounded by part_size.
                chunk = read_exactly(stream, min(part_size, remaining), key, size)
                whole.update(chunk)
                part_digest = hashlib.sha256(chunk).digest()
                resp = self._call(
                    f"uploading part {number} of", where, "upload_part",
                    Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number,
                    Body=chunk, ContentLength=len(chunk),
                    ChecksumAlgorithm="SHA256", ChecksumSHA256=b64(part_digest))
                parts.append({"PartNumber": number, "ETag": resp["ETag"],
                              "ChecksumSHA256": b64(part_digest)})
                part_digests.append(part_digest)
                remaining -= len(chunk)
                number += 1
                del chunk  # not alive while the next part is read: one part at the peak
            refuse_trailing(stream, key, size)
            if whole.digest() != digest:
                raise StorageError(
                    f"bytes streamed for {key} do not match: sha256 {whole.hexdigest()[:16]}…, "
                    f"expected {digest.hex()[:16]}…; upload aborted, nothing stored",
                    code="STORAGE_CHECKSUM_MISMATCH",
                    hint="the source changed while it was read; run the command again")
            done = self._call(
                "completing upload of", where, "complete_multipart_upload",
                Bucket=self.bucket, Key=full, UploadId=upload_id,
                MultipartUpload={"Parts": parts}, IfNoneMatch="*")
        except BaseException:
            self._abort(full, upload_id, where)
            raise
        # S3's composite checksum is SHA-256 over the concatenated part digests, "-N".
        composite = f"{b64(hashlib.sha256(b''.join(part_digests)).digest())}-{len(parts)}"
        reported = done.get("ChecksumSHA256")
        version_id = self._version_of(done, key)
        if reported is not None and reported != composite:
            raise StorageError(
                f"{where} version {version_id} was stored with composite checksum {reported}, "
                f"expected {composite} from the parts sent", code="STORAGE_CHECKSUM_MISMATCH",
                hint="run edoc verify on this record; the store may be damaged")
        return version_id

    def _abort(self, full: str, upload_id: str, where: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
        except (bce.BotoCoreError, bce.ClientError) as exc:
            # The original failure is what the user must see; the dangling upload holds no
            # visible object and a bucket lifecycle rule can expire it.
            log.warning("could not abort multipart upload of %s: %s", where,
                        self._error(exc, "aborting upload of", where))

    def _version_of(self, resp: Mapping[str, Any], key: str) -> str:
        version_id = resp.get("VersionId")
        if not version_id or version_id == "null":
            raise ConfigError(f"the server stored {self._where(key)} without a version id; "
                              f"the bucket is not versioned", code="BUCKET_NOT_WORM",
                              hint="use a bucket created with Object Lock enabled")
        return str(version_id)

    def _check_stored(self, info: ObjectInfo, sha256: str, size: int, retain: datetime,
                      legal_hold: bool) -> None:
        """Trust, but verify: the server must report the lock we asked for."""
        where = self._where(info.key, info.version_id)
        if info.size != size or (info.sha256 is not None and info.sha256 != sha256):
            raise StorageError(f"{where} reports {info.size} bytes sha256 {info.sha256}, "
                               f"expected {size} bytes sha256 {sha256}",
                               code="STORAGE_CHECKSUM_MISMATCH",
                               hint="run edoc doctor; the store may not honour checksums")
        if (info.lock_mode != self.lock_mode or info.retain_until is None
                or info.retain_until < retain or (legal_hold and not info.legal_hold)):
            raise StorageError(
                f"{where} reports lock {info.lock_mode or 'none'} until "
                f"{iso(info.retain_until)}{' with legal hold' if info.legal_hold else ''}, "
                f"expected {self.lock_mode} until {iso(retain)}"
                f"{' with legal hold' if legal_hold else ''}",
                code="STORAGE_LOCK_NOT_APPLIED",
                hint="run edoc doctor; the store may not support Object Lock")

    def put_bytes(self, key: str, data: bytes, *, retain_until: datetime) -> ObjectInfo:
        return self.put(key, io.BytesIO(data), size=len(data),
                        sha256=hashlib.sha256(data).hexdigest(), retain_until=retain_until)

    # -- read ----------------------------------------------------------------------------
    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        return self._get(key, version_id)[0]

    def read(self, key: str, version_id: str | None = None) -> bytes:
        with self.open(key, version_id) as stream:
            return stream.read()

    def _get(self, key: str, version_id: str | None) -> tuple[BinaryIO, Mapping[str, Any]]:
        """``GetObject``: the body as a stream, and the response's headers."""
        where = self._where(key, version_id)
        resp = self._call("reading", where, "get_object", **self._read_params(key, version_id))
        return (io.BufferedReader(ObjectReader(resp["Body"], where), buffer_size=_READ_CHUNK),
                resp)

    def open_with_info(self, key: str, version_id: str | None = None
                       ) -> tuple[BinaryIO, ObjectInfo]:
        stream, resp = self._get(key, version_id)
        try:
            return stream, self._info_of(key, version_id, resp)  # GetObject's headers
        except BaseException:
            stream.close()
            raise

    def stat(self, key: str, version_id: str | None = None) -> ObjectInfo:
        head = self._call("reading the state of", self._where(key, version_id), "head_object",
                          **self._read_params(key, version_id))
        return self._info_of(key, version_id, head)

    def _read_params(self, key: str, version_id: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._full(key),
                                  "ChecksumMode": "ENABLED"}
        if version_id:
            params["VersionId"] = version_id
        return params

    def _info_of(self, key: str, version_id: str | None, head: Mapping[str, Any]
                 ) -> ObjectInfo:
        """An object's state from the headers of a ``HeadObject`` or ``GetObject``."""
        full = self._full(key)
        vid = str(head.get("VersionId") or version_id or "null")
        mode = head.get("ObjectLockMode")
        retain = head.get("ObjectLockRetainUntilDate")
        if mode is None and retain is None:
            # AWS includes lock headers only for callers allowed s3:GetObjectRetention; ask
            # explicitly before concluding "no retention".
            mode, retain = self._retention_of(full, vid)
        hold_status = head.get("ObjectLockLegalHoldStatus")
        if hold_status is None:
            hold_status = self._legal_hold_of(full, vid)

        return ObjectInfo(
            key=key,
            version_id=vid,
            size=int(head["ContentLength"]),
            sha256=reported_sha256(head, SHA256_METADATA),
            retain_until=utc(retain) if retain else None,
            lock_mode=str(mode) if mode else None,
            legal_hold=hold_status == "ON",
            last_modified=utc(head["LastModified"]),
        )

    def _retention_of(self, full: str, version_id: str) -> tuple[str | None, datetime | None]:
        try:
            resp = self.client.get_object_retention(Bucket=self.bucket, Key=full,
                                                    VersionId=version_id)
        except bce.ClientError as exc:
            if error_code(exc) in DENIED_CODES | NO_LOCK_CODES:
                return None, None
            raise self._error(exc, "reading the retention of", full) from exc
        except bce.BotoCoreError as exc:
            raise self._error(exc, "reading the retention of", full) from exc
        retention = resp.get("Retention") or {}
        return retention.get("Mode"), retention.get("RetainUntilDate")

    def _legal_hold_of(self, full: str, version_id: str) -> str | None:
        try:
            resp = self.client.get_object_legal_hold(Bucket=self.bucket, Key=full,
                                                     VersionId=version_id)
        except bce.ClientError as exc:
            if error_code(exc) in DENIED_CODES | NO_LOCK_CODES:
                return None
            raise self._error(exc, "reading the legal hold of", full) from exc
        except bce.BotoCoreError as exc:
            raise self._error(exc, "reading the legal hold of", full) from exc
        status = (resp.get("LegalHold") or {}).get("Status")
        return str(status) if status else None

    def _iter_versions(self, prefix: str) -> Iterator[dict[str, Any]]:
        """Every object version (not delete markers) under ``prefix``, in server order:
        keys ascending, and within a key newest first."""
        paginator = self.client.get_paginator("list_object_versions")
        where = f"s3://{self.bucket}/{prefix}"
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix,
                                           PaginationConfig={"PageSize": self.list_page_size}):
                yield from page.get("Versions", [])
        except (bce.BotoCoreError, bce.ClientError) as exc:
            raise self._error(exc, "listing", where) from exc

    def versions(self, key: str) -> list[ObjectInfo]:
        """Every version under ``key`` (exact match), newest first; delete markers are not
        objects and are left out. No ObjectMissing is swallowed: a version that vanishes
        between listing and HEAD is worth an error, a silently shorter answer is not."""
        return [self.stat(key, vid) for vid, _ in self.version_stamps(key)]

    def version_stamps(self, key: str) -> list[tuple[str, datetime]]:
        full = self._full(key)
        return [(str(e["VersionId"]), utc(e["LastModified"]))
                for e in self._iter_versions(full) if e.get("Key") == full]

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Current versions under ``prefix`` in key order, each pinned to its version id."""
        for entry in self._iter_versions(self._root + prefix):
            if not entry.get("IsLatest"):
                continue
            key = self._rel(str(entry["Key"]))
            if not _KEY.match(key):
                # Not a key edoc writes (a folder marker, a foreign upload): say so, skip it.
                log.warning("skipping %s: not an edoc object key", self._where(key))
                continue
            yield self.stat(key, str(entry["VersionId"]))

    # -- retention -----------------------------------------------------------------------
    def extend_retention(self, key: str, version_id: str, retain_until: datetime) -> None:
        wanted = ceil_second(retain_until)
        current = self.stat(key, version_id)
        where = self._where(key, version_id)
        # Refused here, before the server is asked: shortening is never what edoc means, and
        # a server that allowed it would be a WORM hole (edoc doctor probes for that).
        if current.retain_until is not None and wanted < current.retain_until:
            raise RetentionActive(
                f"{where} is retained until {iso(current.retain_until)}; retention can be "
                f"extended, never shortened (asked {iso(wanted)})",
                code="RETENTION_SHORTENING_REFUSED")
        if current.retain_until == wanted:
            return
        # Keep the object's own mode: a COMPLIANCE lock is never turned into GOVERNANCE.
        mode = current.lock_mode if current.lock_mode in ("COMPLIANCE", "GOVERNANCE") \
            else self.lock_mode
        self._call("extending the retention of", where, "put_object_retention",
                   Bucket=self.bucket, Key=self._full(key), VersionId=version_id,
                   Retention={"Mode": mode, "RetainUntilDate": wanted})

    def set_legal_hold(self, key: str, version_id: str, on: bool) -> None:
        self._call("setting the legal hold of" if on else "releasing the legal hold of",
                   self._where(key, version_id), "put_object_legal_hold",
                   Bucket=self.bucket, Key=self._full(key), VersionId=version_id,
                   LegalHold={"Status": "ON" if on else "OFF"})

    def delete(self, key: str, version_id: str) -> None:
        """Delete one version; the *server* decides whether its lock still holds.

        We do not pre-judge with our own clock: retention is measured on the server's, and
        a refusal is explained from the lock state the server reports. edoc never sends
        ``x-amz-bypass-governance-retention``.
        """
        if not version_id:
            raise StorageError(f"deleting {self._where(key)} needs a version id",
                               code="STORAGE_VERSION_REQUIRED")
        where = self._where(key, version_id)
        state = self.stat(key, version_id)  # ObjectMissing for a version that is not there
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._full(key),
                                      VersionId=version_id)
        except bce.ClientError as exc:
            if error_code(exc) in LOCK_REFUSED_CODES:
                if state.legal_hold:
                    raise RetentionActive(f"{where} is under legal hold; the server refused "
                                          f"the delete", hint="release the hold first") from exc
                # Allow for a server clock somewhat behind ours before calling it permissions.
                if (state.retain_until is not None
                        and state.retain_until > self._clock() - MAX_CLOCK_SKEW):
                    raise RetentionActive(
                        f"{where} is retained ({state.lock_mode}) until "
                        f"{iso(state.retain_until)}; the server refused the delete") from exc
            raise self._error(exc, "deleting", where) from exc
        except bce.BotoCoreError as exc:
            raise self._error(exc, "deleting", where) from exc
        log.info("deleted %s", where)

    def delete_many(self, items: Sequence[tuple[str, str]]) -> builtins.list[DeleteOutcome]:
        """``DeleteObjects``, up to ``DELETE_BATCH`` versions per request, without a HEAD first.

        ``Quiet`` is off, so the server names every version it deleted and every one it
        would not: a version it says nothing about is reported as failed, never as gone.
        Like ``delete``, the server's clock decides; a refusal (``AccessDenied`` or
        ``ObjectLocked`` for that key) is worded from the lock state the server then reports.
        """
        # Requests in parallel, outcomes in the order of ``items``; a failed request raises.
        size = min(DELETE_BATCH, max(DELETE_MIN, -(-len(items) // DELETE_PARALLEL)))
        slices = [items[start:start + size] for start in range(0, len(items), size)]
        if len(slices) <= 1:
            return self._delete_batch(items)
        with ThreadPoolExecutor(min(len(slices), DELETE_PARALLEL)) as pool:
            return [outcome for part in pool.map(self._delete_batch, slices) for outcome in part]

    def _delete_batch(self, batch: Sequence[tuple[str, str]]) -> builtins.list[DeleteOutcome]:
        objects = []
        for key, version_id in batch:
            if not version_id:
                raise StorageError(f"deleting {self._where(key)} needs a version id",
                                   code="STORAGE_VERSION_REQUIRED")
            objects.append({"Key": self._full(key), "VersionId": version_id})
        if not objects:
            return []
        where = f"s3://{self.bucket}/{self._root}"
        resp = self._call(f"deleting {len(objects)} object versions under", where,
                          "delete_objects", Bucket=self.bucket,
                          Delete={"Objects": objects, "Quiet": False})
        deleted = {(str(d.get("Key")), str(d.get("VersionId") or ""))
                   for d in resp.get("Deleted", [])}
        errors = {(str(e.get("Key")), str(e.get("VersionId") or "")): e
                  for e in resp.get("Errors", [])}
        outcomes = []
        for (key, version_id), obj in zip(batch, objects, strict=True):
            answer = (obj["Key"], version_id)
            error = errors.get(answer)
            if error is None and answer in deleted:
                outcomes.append(DeleteOutcome(key, version_id))
                continue
            problem = (self._delete_refusal(key, version_id, error) if error is not None
                       else StorageError(f"deleting {self._where(key, version_id)}: the server "
                                         f"did not say whether it deleted it",
                                         code="STORAGE_REQUEST_FAILED",
                                         hint="run purge again; it resumes where it stopped"))
            outcomes.append(DeleteOutcome(key, version_id, problem))
        log.info("deleted %d of %d object versions under %s",
                 sum(o.gone for o in outcomes), len(outcomes), where)
        return outcomes

    def _delete_refusal(self, key: str, version_id: str,
                        error: Mapping[str, Any]) -> EdocError | None:
        """One ``Errors`` entry of a ``DeleteObjects`` answer as an edoc error (``None``:
        the version is not there, which the contract counts as gone)."""
        where = self._where(key, version_id)
        code = str(error.get("Code") or "")
        exc = bce.ClientError({"Error": {"Code": code, "Message": str(error.get("Message")
                                                                       or "")}},
                              "DeleteObjects")
        if code in MISSING_CODES:
            return None
        if code in LOCK_REFUSED_CODES:
            try:
                state = self.stat(key, version_id)
            except ObjectMissing:
                return None
            except EdocError as stat_error:
                return stat_error
            if state.legal_hold:
                return RetentionActive(f"{where} is under legal hold; the server refused the "
                                       f"delete", hint="release the hold first")
            # Allow for a server clock somewhat behind ours before calling it permissions.
            if (state.retain_until is not None
                    and state.retain_until > self._clock() - MAX_CLOCK_SKEW):
                return RetentionActive(f"{where} is retained ({state.lock_mode}) until "
                                       f"{iso(state.retain_until)}; the server refused the "
                                       f"delete")
        return self._error(exc, "deleting", where)
