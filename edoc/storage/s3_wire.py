"""How edoc speaks S3 below the store: error codes, checksum encodings, instants, exact reads.

Part of the S3 backend (``edoc.storage.s3`` is the store, ``s3_probe`` the doctor's probe),
so it may speak botocore: which server answers mean what (codes differ between AWS and
SeaweedFS, see the sets below), how a SHA-256 travels in ``x-amz-checksum-sha256``
(base64 of the raw digest), how retention instants are written (whole seconds, UTC), and how
a body is read exactly as long as promised — one streamed object at a time.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import botocore.exceptions as bce
import botocore.utils

from edoc import clock as edoc_clock
from edoc.errors import StorageError

# Server answers that mean "the bytes you sent are not the bytes you described".
CHECKSUM_CODES = frozenset({
    "BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "XAmzContentChecksumMismatch",
    "InvalidChecksum", "InvalidPartChecksum",
})
MISSING_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "404", "NotFound"})
DENIED_CODES = frozenset({"AccessDenied", "AllAccessDisabled", "Forbidden", "403"})
AUTH_CODES = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
    "TokenRefreshRequired", "InvalidSecurity",
})
LOCK_REFUSED_CODES = DENIED_CODES | frozenset({"InvalidRequest", "ObjectLocked"})
EXISTS_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
# "This version has no retention / no legal hold": AWS says NoSuchObjectLockConfiguration,
# SeaweedFS says ObjectLockConfigurationNotFoundError (404) for a version written unlocked.
NO_LOCK_CODES = frozenset({
    "NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError",
    "NoSuchObjectLegalHold", "InvalidRequest",
})
HEX64 = re.compile(r"^[0-9a-f]{64}$")


#: A PUT body below this size goes without ``Expect: 100-continue``. botocore asks for it on
#: every body it holds as a file object (and it wraps bytes in one), so each PUT waits a
#: round trip for the server's "100 Continue" before sending the body: worth it when a
#: refusal (a failed If-None-Match, say) spares sending a large body, pure latency for a
#: manifest or a 200 KB scan (RFC 9110 §10.1.1 lets a client send the body without it).
EXPECT_CONTINUE_MIN = 1 << 20


def no_continue_for_small_bodies(params: dict[str, Any], **_: Any) -> None:
    headers = params.get("headers") or {}
    if "Expect" not in headers:
        return
    length = botocore.utils.determine_content_length(params.get("body"))
    if length is not None and length < EXPECT_CONTINUE_MIN:
        del headers["Expect"]


def utcnow() -> datetime:
    return edoc_clock.now()


def utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime: pass a timezone-aware (UTC) datetime")
    return value.astimezone(UTC)


def ceil_second(value: datetime) -> datetime:
    """Round up to a whole second.

    S3 keeps retain-until dates with one-second precision (SeaweedFS truncates fractions), so
    an unrounded date could be stored up to a second *earlier* than asked; rounding up keeps
    retention at least as long as the law-derived date.
    """
    value = utc(value)
    if value.microsecond:
        value = value.replace(microsecond=0) + timedelta(seconds=1)
    return value


def iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else "none"


def sha256_bytes(hex_digest: str) -> bytes:
    if not HEX64.match(hex_digest):
        raise StorageError(f"sha256 must be 64 lowercase hex digits, got {hex_digest[:80]!r}",
                           code="STORAGE_BAD_DIGEST")
    return bytes.fromhex(hex_digest)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def reported_sha256(head: Mapping[str, Any], recorded_key: str) -> str | None:
    """The whole object's SHA-256 (hex) from a ``HeadObject``/``GetObject`` response: the
    server's full-object checksum, or for a multipart upload (a composite checksum) the
    digest edoc recorded in the object's metadata under ``recorded_key``."""
    checksum = head.get("ChecksumSHA256")
    composite = head.get("ChecksumType") == "COMPOSITE" or (
        isinstance(checksum, str) and "-" in checksum)
    if isinstance(checksum, str) and not composite:
        return hex_from_b64(checksum)
    recorded = (head.get("Metadata") or {}).get(recorded_key)
    if composite and isinstance(recorded, str) and HEX64.match(recorded):
        # Multipart: the server verified each part's SHA-256; the whole-object digest was
        # verified by edoc before completing and recorded with the object.
        return recorded
    return None


def hex_from_b64(value: str) -> str | None:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 32 else None


def read_exactly(stream: BinaryIO, n: int, key: str, expected_total: int) -> bytes:
    """Read ``n`` bytes or fail with ``STORAGE_SIZE_MISMATCH`` (the caller's size was wrong).

    One ``read(n)`` fills a part from a file in one copy (buffered files read up to ``n``
    bytes in one go); only a short read — a pipe, a socket, a raw stream — is topped up, into
    a preallocated buffer. Appending 1 MiB chunks to a bytearray and copying it out held
    two copies of every part at the peak (BENCHMARKS.md part 6).
    """
    first = stream.read(n)
    if len(first) == n:
        return first
    buf = bytearray(n)
    view = memoryview(buf)
    got = len(first)
    view[:got] = first
    del first
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            raise StorageError(
                f"stream for {key} ended early: the declared size is {expected_total} bytes",
                code="STORAGE_SIZE_MISMATCH",
                hint="the source changed while it was read; run the command again")
        view[got:got + len(chunk)] = chunk
        got += len(chunk)
    view.release()
    return bytes(buf)


def refuse_trailing(stream: BinaryIO, key: str, size: int) -> None:
    if stream.read(1):
        raise StorageError(f"stream for {key} holds more than the declared {size} bytes",
                           code="STORAGE_SIZE_MISMATCH",
                           hint="the source changed while it was read; run the command again")


def error_code(exc: bce.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "") or "")


def http_status(exc: bce.ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def server_message(exc: bce.ClientError) -> str:
    message = str(exc.response.get("Error", {}).get("Message", "") or "")
    return " ".join(message.split())[:160]


class ObjectReader(io.RawIOBase):
    """A raw stream over a botocore ``StreamingBody`` that speaks edoc's error family.

    botocore checks the server's SHA-256 as the last byte is read (``ChecksumMode=ENABLED``
    on GET); a mismatch or a dropped connection surfaces here as a ``StorageError``.
    """

    def __init__(self, body: Any, where: str) -> None:
        super().__init__()
        self._body = body
        self._where = where

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data: bytes = self._body.read(len(view))
        except bce.FlexibleChecksumError as exc:
            raise StorageError(
                f"bytes read from {self._where} do not match the SHA-256 the server recorded",
                code="STORAGE_CHECKSUM_MISMATCH",
                hint="the stored object or the network path is damaged; run edoc verify") from exc
        except (bce.BotoCoreError, OSError) as exc:
            raise StorageError(f"reading {self._where} failed: {type(exc).__name__}",
                               code="STORAGE_READ_FAILED",
                               hint="check the connection to the object store and retry") from exc
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._body.close()
        super().close()


def safe_endpoint(client: Any) -> str:
    """The endpoint as host[:port] only: never user-info, paths or query strings."""
    try:
        parts = urlsplit(str(client.meta.endpoint_url))
    except (AttributeError, ValueError):
        return "(unknown endpoint)"
    host = parts.hostname or "(unknown endpoint)"
    return f"{host}:{parts.port}" if parts.port else host
