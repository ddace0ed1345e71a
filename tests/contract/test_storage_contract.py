"""The storage contract (``edoc/storage/base.py``), run against every backend.

``local`` is a fresh directory per test; ``s3`` is a fresh key prefix in an Object Lock bucket
on the session's real SeaweedFS server (``tests/seaweed.py``). The S3-only tests at the end
check what only a server can show: versions stacked by a direct PUT, multipart uploads, and
that the server itself — not edoc — refuses to give up a locked object.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from edoc.errors import ObjectExists, ObjectMissing, RetentionActive, StorageError
from edoc.model.verdict import Status, bottom_line
from edoc.storage.base import ObjectInfo, ObjectStore
from edoc.storage.local import LocalStore
from edoc.storage.s3 import S3Store
from edoc.storage.s3_probe import worm_self_test

MiB = 1024 * 1024


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    factory: Callable[..., S3Store] = request.getfixturevalue("s3_store_factory")
    return factory()


def now() -> datetime:
    return datetime.now(UTC)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(store: ObjectStore, key: str, data: bytes, retain_until: datetime,
        legal_hold: bool = False) -> ObjectInfo:
    return store.put(key, io.BytesIO(data), size=len(data), sha256=sha(data),
                     retain_until=retain_until, legal_hold=legal_hold)


def assert_retained_until(info: ObjectInfo, asked: datetime) -> None:
    # Never earlier than asked; S3 keeps whole seconds, so up to one second later.
    assert info.retain_until is not None
    assert info.retain_until.tzinfo is not None
    assert asked <= info.retain_until < asked + timedelta(seconds=1)


def wait_until(moment: datetime) -> None:
    delay = (moment - now()).total_seconds()
    if delay > 0:
        time.sleep(delay)


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text
    return text


# -- the contract ----------------------------------------------------------------------------
def test_put_read_stat_round_trip(store: ObjectStore) -> None:
    data = os.urandom(200_000)
    retain = now() + timedelta(hours=1, microseconds=654_321)

    info = put(store, "records/r1/v1/content", data, retain)

    assert isinstance(store, ObjectStore)
    assert info.key == "records/r1/v1/content"
    assert info.size == len(data)
    assert info.sha256 == sha(data)
    assert info.version_id
    assert not info.legal_hold
    assert_retained_until(info, retain)
    assert info.lock_mode == ("COMPLIANCE" if store.kind == "s3" else "LOCAL")

    assert store.read("records/r1/v1/content") == data
    assert store.read("records/r1/v1/content", info.version_id) == data
    with store.open("records/r1/v1/content", info.version_id) as stream:
        assert stream.read(10) == data[:10]
        assert stream.read() == data[10:]

    stat = store.stat("records/r1/v1/content", info.version_id)
    assert (stat.version_id, stat.size, stat.sha256) == (info.version_id, len(data), sha(data))
    assert_retained_until(stat, retain)
    assert stat.last_modified.tzinfo is not None
    assert abs(stat.last_modified - now()) < timedelta(minutes=5)
    assert store.stat("records/r1/v1/content") == stat

    # The bytes and the state from one answer (on S3 the GetObject's own headers): the
    # same state stat gives, for the bytes the stream holds.
    stream, got = store.open_with_info("records/r1/v1/content", info.version_id)
    with stream:
        assert stream.read() == data
    assert got == stat


def test_put_bytes_is_put(store: ObjectStore) -> None:
    retain = now() + timedelta(days=1)
    info = store.put_bytes("ledger/0001.json", b'{"leaf":1}', retain_until=retain)
    assert info.sha256 == sha(b'{"leaf":1}')
    assert store.read("ledger/0001.json") == b'{"leaf":1}'
    assert_retained_until(store.stat("ledger/0001.json"), retain)


def test_wrong_sha256_is_refused_and_leaves_nothing(store: ObjectStore) -> None:
    data = b"the scanned invoice" * 1000
    with pytest.raises(StorageError) as caught:
        store.put("records/r2/v1/content", io.BytesIO(data), size=len(data),
                  sha256=sha(data + b"!"), retain_until=now() + timedelta(hours=1))
    assert caught.value.code == "STORAGE_CHECKSUM_MISMATCH"
    one_line(caught.value)

    with pytest.raises(ObjectMissing):
        store.stat("records/r2/v1/content")
    assert store.versions("records/r2/v1/content") == []
    assert list(store.list("records/r2/")) == []
    # The key is not burnt: the right bytes can still be stored under it.
    assert put(store, "records/r2/v1/content", data, now() + timedelta(hours=1)).size == len(data)


def test_size_mismatch_is_refused(store: ObjectStore) -> None:
    data = b"0123456789"
    with pytest.raises(StorageError):
        store.put("records/r3/v1/content", io.BytesIO(data), size=len(data) + 5,
                  sha256=sha(data), retain_until=now() + timedelta(hours=1))
    assert store.versions("records/r3/v1/content") == []


def test_overwrite_is_refused(store: ObjectStore) -> None:
    first = put(store, "records/r4/v1/content", b"original", now() + timedelta(hours=1))
    with pytest.raises(ObjectExists) as caught:
        put(store, "records/r4/v1/content", b"forgery", now() + timedelta(hours=2))
    one_line(caught.value)
    assert store.read("records/r4/v1/content") == b"original"
    assert [v.version_id for v in store.versions("records/r4/v1/content")] == [first.version_id]


def test_delete_before_retain_until_is_refused_and_says_why(store: ObjectStore) -> None:
    retain = (now() + timedelta(hours=1)).replace(microsecond=0)
    info = put(store, "records/r5/v1/content", b"keep me", retain)
    with pytest.raises(RetentionActive) as caught:
        store.delete("records/r5/v1/content", info.version_id)
    message = one_line(caught.value)
    assert "until" in message
    assert retain.strftime("%Y-%m-%dT%H") in message
    assert store.read("records/r5/v1/content") == b"keep me"


def test_expiry_allows_delete_unless_held(store: ObjectStore) -> None:
    retain = now() + timedelta(seconds=1.5)
    free = put(store, "records/r6/v1/content", b"expiring", retain)
    held = put(store, "records/r7/v1/content", b"under hold", retain, legal_hold=True)
    assert store.stat("records/r7/v1/content").legal_hold
    assert not store.stat("records/r6/v1/content").legal_hold

    # Rounded up to whole seconds on S3; wait until both are past on any backend.
    wait_until(max(free.retain_until or retain, held.retain_until or retain)
               + timedelta(milliseconds=300))

    store.delete("records/r6/v1/content", free.version_id)
    with pytest.raises(ObjectMissing):
        store.stat("records/r6/v1/content")
    assert store.versions("records/r6/v1/content") == []

    with pytest.raises(RetentionActive) as caught:
        store.delete("records/r7/v1/content", held.version_id)
    assert "legal hold" in one_line(caught.value)
    assert store.read("records/r7/v1/content") == b"under hold"

    store.set_legal_hold("records/r7/v1/content", held.version_id, False)
    assert not store.stat("records/r7/v1/content").legal_hold
    store.delete("records/r7/v1/content", held.version_id)
    with pytest.raises(ObjectMissing):
        store.read("records/r7/v1/content")


def test_legal_hold_can_be_set_later_and_released(store: ObjectStore) -> None:
    info = put(store, "records/r8/v1/content", b"litigation", now() + timedelta(hours=1))
    store.set_legal_hold("records/r8/v1/content", info.version_id, True)
    assert store.stat("records/r8/v1/content", info.version_id).legal_hold
    store.set_legal_hold("records/r8/v1/content", info.version_id, False)
    assert not store.stat("records/r8/v1/content", info.version_id).legal_hold
    # Releasing the hold does not release the retention.
    with pytest.raises(RetentionActive):
        store.delete("records/r8/v1/content", info.version_id)


def test_retention_extends_but_never_shortens(store: ObjectStore) -> None:
    first = now() + timedelta(hours=1)
    info = put(store, "records/r9/v1/content", b"loss year", first)
    later = now() + timedelta(days=3650, microseconds=1)

    store.extend_retention("records/r9/v1/content", info.version_id, later)
    assert_retained_until(store.stat("records/r9/v1/content"), later)

    with pytest.raises(RetentionActive) as caught:
        store.extend_retention("records/r9/v1/content", info.version_id,
                               later - timedelta(days=1))
    assert "never shortened" in one_line(caught.value)
    assert_retained_until(store.stat("records/r9/v1/content"), later)


def test_list_by_prefix_in_key_order(store: ObjectStore) -> None:
    retain = now() + timedelta(hours=1)
    written = {}
    for key in ["p/b", "q/a", "p/a", "pa", "p/c/d"]:
        written[key] = put(store, key, key.encode(), retain)

    listed = list(store.list("p/"))
    assert [i.key for i in listed] == ["p/a", "p/b", "p/c/d"]
    for item in listed:
        assert item.version_id == written[item.key].version_id
        assert item.sha256 == sha(item.key.encode())
        assert_retained_until(item, retain)
    assert [i.key for i in store.list("q/")] == ["q/a"]
    assert [i.key for i in store.list("p")] == ["p/a", "p/b", "p/c/d", "pa"]
    assert list(store.list("nothing/")) == []


def test_versions_matches_the_exact_key_only(store: ObjectStore) -> None:
    retain = now() + timedelta(hours=1)
    info = put(store, "records/r10/v1/manifest.json", b"{}", retain)
    put(store, "records/r10/v1/manifest.json.p7s", b"seal", retain)

    versions = store.versions("records/r10/v1/manifest.json")
    assert [v.version_id for v in versions] == [info.version_id]
    assert versions[0].key == "records/r10/v1/manifest.json"
    assert versions[0].sha256 == sha(b"{}")
    assert store.versions("records/r10/v1/manifest") == []
    # the ids and times alone, as ``versions`` gives them, for the same exact key only
    stamps = store.version_stamps("records/r10/v1/manifest.json")
    assert [vid for vid, _ in stamps] == [info.version_id]
    # S3's listing gives milliseconds, its HeadObject whole seconds
    assert abs(stamps[0][1] - versions[0].last_modified) < timedelta(seconds=1)
    assert store.version_stamps("records/r10/v1/manifest") == []


def test_missing_objects_raise_object_missing(store: ObjectStore) -> None:
    put(store, "records/r11/v1/content", b"present", now() + timedelta(hours=1))
    for call in (
        lambda: store.stat("records/none/v1/content"),
        lambda: store.read("records/none/v1/content"),
        lambda: store.open("records/none/v1/content"),
        lambda: store.read("records/r11/v1/content", "no-such-version"),
        lambda: store.stat("records/r11/v1/content", "no-such-version"),
        lambda: store.open_with_info("records/r11/v1/content", "no-such-version"),
        lambda: store.open_with_info("records/none/v1/content"),
        # Operations on a version are pinned to it: a wrong id never hits another version.
        lambda: store.delete("records/r11/v1/content", "no-such-version"),
        lambda: store.extend_retention("records/r11/v1/content", "no-such-version",
                                       now() + timedelta(days=1)),
        lambda: store.set_legal_hold("records/r11/v1/content", "no-such-version", True),
        lambda: store.delete("records/none/v1/content", "no-such-version"),
        lambda: store.extend_retention("records/none/v1/content", "no-such-version",
                                       now() + timedelta(days=1)),
        lambda: store.set_legal_hold("records/none/v1/content", "no-such-version", True),
    ):
        with pytest.raises(ObjectMissing) as caught:
            call()
        assert caught.value.code == "OBJECT_MISSING"
        one_line(caught.value)
    assert store.read("records/r11/v1/content") == b"present"
    assert not store.stat("records/r11/v1/content").legal_hold


def test_delete_many_deletes_what_expired_and_refuses_what_is_locked(
        store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import edoc.storage.s3

    # S3: slices of three versions, requests side by side; the outcomes keep the order asked
    monkeypatch.setattr(edoc.storage.s3, "DELETE_MIN", 1)
    monkeypatch.setattr(edoc.storage.s3, "DELETE_PARALLEL", 3)
    expiring = now() + timedelta(seconds=1.5)
    expired = [put(store, f"records/d{i}/v1/content", b"expired %d" % i, expiring)
               for i in range(3)]
    held = put(store, "records/dh/v1/content", b"under hold", expiring, legal_hold=True)
    locked = put(store, "records/dl/v1/content", b"retained", now() + timedelta(hours=1))
    other = put(store, "records/dv/v1/content", b"another version", expiring)
    wait_until(max(i.retain_until or expiring for i in [*expired, held, other])
               + timedelta(milliseconds=300))

    asked = [
        (expired[0].key, expired[0].version_id),
        (locked.key, locked.version_id),
        (expired[1].key, expired[1].version_id),
        (held.key, held.version_id),
        ("records/never/v1/content", expired[2].version_id),  # no such key
        (other.key, expired[2].version_id),  # the key holds another version
        (expired[2].key, expired[2].version_id),
    ]
    outcomes = store.delete_many(asked)

    assert [(o.key, o.version_id) for o in outcomes] == asked
    assert [o.gone for o in outcomes] == [True, False, True, False, True, True, True]
    for refused in (outcomes[1], outcomes[3]):
        assert isinstance(refused.error, RetentionActive)
        assert refused.error.code == "RETENTION_ACTIVE"
        one_line(refused.error)
    assert "until" in str(outcomes[1].error)
    assert "legal hold" in str(outcomes[3].error)
    for info in expired:
        with pytest.raises(ObjectMissing):
            store.stat(info.key)
        assert store.versions(info.key) == []
    # Refused and unnamed versions are untouched, byte for byte and lock for lock.
    assert store.read(locked.key, locked.version_id) == b"retained"
    assert store.read(held.key, held.version_id) == b"under hold"
    assert store.stat(held.key, held.version_id).legal_hold
    assert store.read(other.key, other.version_id) == b"another version"


def test_delete_many_again_finds_everything_gone(store: ObjectStore) -> None:
    # A resumed purge asks again for versions an interrupted run already deleted.
    expiring = now() + timedelta(seconds=1.2)
    infos = [put(store, f"records/again{i}/v1/{name}", name.encode() * (i + 1), expiring)
             for i in range(2) for name in ("content", "manifest.json")]
    wait_until(max(i.retain_until or expiring for i in infos) + timedelta(milliseconds=300))
    asked = [(i.key, i.version_id) for i in infos]
    first = store.delete_many(asked[:3])
    assert [o.gone for o in first] == [True, True, True]
    second = store.delete_many(asked)
    assert [(o.key, o.version_id, o.error) for o in second] == [(k, v, None) for k, v in asked]
    assert list(store.list("records/again")) == []
    assert store.delete_many([]) == []


def test_delete_many_refuses_keys_that_could_escape(store: ObjectStore) -> None:
    with pytest.raises(StorageError) as caught:
        store.delete_many([("../escape", "v")])
    assert caught.value.code == "STORAGE_BAD_KEY"


@pytest.mark.parametrize("key", ["../escape", "/absolute", "a//b", "a/../b", ""])
def test_keys_that_could_escape_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(StorageError) as caught:
        put(store, key, b"x", now() + timedelta(hours=1))
    assert caught.value.code == "STORAGE_BAD_KEY"


# -- S3 only: what a real server shows -------------------------------------------------------

def _b64sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.fixture
def s3(s3_store_factory: Callable[..., S3Store]) -> S3Store:
    return s3_store_factory()


@pytest.mark.s3
def test_a_direct_put_stacks_a_version_that_versions_reveals(s3: S3Store) -> None:
    retain = now() + timedelta(hours=1)
    original = put(s3, "records/r20/v1/content", b"original", retain)

    # Someone with write access bypasses edoc: S3 versioning keeps both.
    forged = b"forged"
    resp = s3.client.put_object(
        Bucket=s3.bucket, Key=f"{s3.prefix}/records/r20/v1/content", Body=forged,
        ChecksumSHA256=_b64sha(forged), ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=retain)

    versions = s3.versions("records/r20/v1/content")
    assert [v.version_id for v in versions] == [resp["VersionId"], original.version_id]
    stamps = s3.version_stamps("records/r20/v1/content")  # one listing, no HeadObject
    assert [vid for vid, _ in stamps] == [resp["VersionId"], original.version_id]
    assert stamps[0][1] >= stamps[1][1]
    # The server's own SHA-256 for the forgery (edoc never saw these bytes).
    assert versions[0].sha256 == sha(forged)
    assert versions[1].sha256 == sha(b"original")
    # The pinned version still reads the original; the unpinned read gets the newest.
    assert s3.read("records/r20/v1/content", original.version_id) == b"original"
    assert s3.read("records/r20/v1/content") == forged
    with pytest.raises(ObjectExists):
        put(s3, "records/r20/v1/content", b"again", retain)


@pytest.mark.s3
def test_listings_page_through_the_server(s3_store_factory: Callable[..., S3Store]) -> None:
    store = s3_store_factory(list_page_size=2)
    retain = now() + timedelta(hours=1)
    keys = [f"ledger/{n:04d}.json" for n in range(7)]
    for key in reversed(keys):
        put(store, key, key.encode(), retain)
    full = f"{store.prefix}/ledger/0003.json"
    extra = [store.client.put_object(Bucket=store.bucket, Key=full, Body=f"v{n}".encode(),
                                     ChecksumSHA256=_b64sha(f"v{n}".encode()))["VersionId"]
             for n in range(3)]

    assert [i.key for i in store.list("ledger/")] == keys
    assert store.stat("ledger/0003.json").version_id == extra[-1]
    versions = store.versions("ledger/0003.json")
    assert [v.version_id for v in versions][:3] == extra[::-1]
    assert len(versions) == 4
    # The direct PUTs carried no lock: reported as such, not as an error or a guess.
    assert (versions[0].lock_mode, versions[0].retain_until, versions[0].legal_hold) == (
        None, None, False)
    assert versions[3].lock_mode == "COMPLIANCE"


@pytest.mark.s3
def test_a_deleted_key_is_still_taken(s3_store_factory: Callable[..., S3Store]) -> None:
    # If-None-Match cannot see a key whose current version is a delete marker; a store
    # configured without conditional writes lists versions first and refuses such a key.
    # (edoc never writes a key twice, and `verify` reports any extra version as FOREIGN.)
    s3 = s3_store_factory(conditional_writes=False)
    put(s3, "records/r21/v1/content", b"x", now() + timedelta(hours=1))
    # A delete without a version id only adds a delete marker over the locked version.
    s3.client.delete_object(Bucket=s3.bucket, Key=f"{s3.prefix}/records/r21/v1/content")
    with pytest.raises(ObjectExists):
        put(s3, "records/r21/v1/content", b"y", now() + timedelta(hours=1))


@pytest.mark.s3
def test_multipart_upload_round_trips(s3_store_factory: Callable[..., S3Store]) -> None:
    store = s3_store_factory(multipart_threshold=1 * MiB, part_size=5 * MiB)
    data = os.urandom(11 * MiB)  # three parts: 5 + 5 + 1 MiB
    retain = now() + timedelta(hours=1)

    info = put(store, "records/r22/v1/content", data, retain, legal_hold=True)

    assert info.size == len(data)
    assert info.sha256 == sha(data)
    assert info.legal_hold
    assert_retained_until(info, retain)
    head = store.client.head_object(Bucket=store.bucket, Key=f"{store.prefix}/records/r22/v1/"
                                    "content", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"].endswith("-3")  # the server's composite of 3 part digests
    assert store.read("records/r22/v1/content") == data
    assert _no_uploads_left(store, "records/r22/")


@pytest.mark.s3
def test_multipart_with_wrong_digest_is_aborted(s3_store_factory: Callable[..., S3Store]) -> None:
    store = s3_store_factory(multipart_threshold=1 * MiB, part_size=5 * MiB)
    data = os.urandom(6 * MiB)
    # The digest of the data with its last byte's low bit flipped: always other bytes, so
    # always a wrong digest (replacing the byte with 0 was the real one when it was 0 already).
    wrong = sha(data[:-1] + bytes([data[-1] ^ 0x01]))
    with pytest.raises(StorageError) as caught:
        store.put("records/r23/v1/content", io.BytesIO(data), size=len(data),
                  sha256=wrong, retain_until=now() + timedelta(hours=1))
    assert caught.value.code == "STORAGE_CHECKSUM_MISMATCH"
    assert store.versions("records/r23/v1/content") == []
    assert _no_uploads_left(store, "records/r23/")


def _corrupt_in_flight(store: S3Store, operation: str, part: int | None = None) -> list[str]:
    """Flip one byte of the request body after it was checksummed and signed."""
    hits: list[str] = []

    def corrupt(request: Any, **_: Any) -> None:
        if part is not None and f"partNumber={part}" not in request.url:
            return
        body = request.body
        raw = body.read() if hasattr(body, "read") else bytes(body)
        if hasattr(body, "seek"):
            body.seek(0)
        damaged = bytes([raw[0] ^ 0xFF]) + raw[1:]
        request.body = damaged
        hits.append(request.url)

    store.client.meta.events.register(f"before-send.s3.{operation}", corrupt)
    return hits


@pytest.mark.s3
def test_a_part_corrupted_in_flight_is_rejected(s3_store_factory: Callable[..., S3Store]) -> None:
    store = s3_store_factory(multipart_threshold=1 * MiB, part_size=5 * MiB)
    hits = _corrupt_in_flight(store, "UploadPart", part=2)
    data = os.urandom(7 * MiB)
    with pytest.raises(StorageError) as caught:
        put(store, "records/r24/v1/content", data, now() + timedelta(hours=1))
    assert hits, "the corruption hook never ran"
    assert caught.value.code == "STORAGE_CHECKSUM_MISMATCH"
    assert store.versions("records/r24/v1/content") == []
    assert _no_uploads_left(store, "records/r24/")


@pytest.mark.s3
def test_a_single_put_corrupted_in_flight_is_rejected(s3: S3Store) -> None:
    hits = _corrupt_in_flight(s3, "PutObject")
    with pytest.raises(StorageError) as caught:
        put(s3, "records/r25/v1/content", b"a clean receipt" * 100, now() + timedelta(hours=1))
    assert hits
    assert caught.value.code == "STORAGE_CHECKSUM_MISMATCH"
    assert s3.versions("records/r25/v1/content") == []


@pytest.mark.s3
def test_the_server_checks_each_part_checksum(s3: S3Store) -> None:
    # Not edoc's logic: the server itself must refuse a part whose SHA-256 does not match.
    key = f"{s3.prefix}/records/r26/v1/content"
    upload = s3.client.create_multipart_upload(Bucket=s3.bucket, Key=key,
                                               ChecksumAlgorithm="SHA256")
    try:
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            s3.client.upload_part(Bucket=s3.bucket, Key=key, UploadId=upload["UploadId"],
                                  PartNumber=1, Body=b"part bytes", ChecksumAlgorithm="SHA256",
                                  ChecksumSHA256=_b64sha(b"other bytes"))
        assert caught.value.response["Error"]["Code"] == "BadDigest"
    finally:
        s3.client.abort_multipart_upload(Bucket=s3.bucket, Key=key, UploadId=upload["UploadId"])


class _Body(io.BytesIO):
    """A response body for botocore: readable and streamable."""

    def stream(self, **_: Any) -> Any:
        yield self.read()


@pytest.mark.s3
def test_a_read_corrupted_in_flight_is_detected(s3: S3Store) -> None:
    from botocore.awsrequest import AWSResponse, HTTPHeaders
    from botocore.httpsession import URLLib3Session

    data = os.urandom(50_000)
    put(s3, "records/r28/v1/content", data, now() + timedelta(hours=1))
    wire = URLLib3Session()

    def damage_on_the_way_back(request: Any, **_: Any) -> Any:
        real = wire.send(request)
        body = real.raw.read()
        damaged = body[:100] + bytes([body[100] ^ 1]) + body[101:]
        return AWSResponse(request.url, real.status_code, HTTPHeaders.from_dict(dict(real.headers)),
                           _Body(damaged))

    s3.client.meta.events.register("before-send.s3.GetObject", damage_on_the_way_back)
    with pytest.raises(StorageError) as caught:
        s3.read("records/r28/v1/content")
    # botocore checks the server's x-amz-checksum-sha256 as the last byte arrives.
    assert caught.value.code == "STORAGE_CHECKSUM_MISMATCH"
    one_line(caught.value)


@pytest.mark.s3
@pytest.mark.slow  # SeaweedFS retries the damaged chunk for ~13 s before it gives up
def test_tampering_at_rest_is_never_returned(s3_store_factory: Any, seaweed: Any) -> None:
    # Flip one byte inside SeaweedFS's volume file, under the server's feet.
    bucket = s3_store_factory.bucket("edoc-contract")
    store = S3Store(seaweed.client("writer", max_attempts=0), bucket, f"t-{os.urandom(6).hex()}")
    marker = b"EDOC-TAMPER-" + os.urandom(8).hex().encode()
    data = marker + os.urandom(3000)
    info = put(store, "records/r29/v1/content", data, now() + timedelta(hours=1))
    found = [(path, blob.find(marker)) for path in seaweed.data.rglob("*.dat")
             if (blob := path.read_bytes()).find(marker) >= 0]
    assert len(found) == 1
    path, offset = found[0]
    with path.open("r+b") as volume:
        volume.seek(offset + 40)
        byte = volume.read(1)
        volume.seek(offset + 40)
        volume.write(bytes([byte[0] ^ 0x01]))

    with pytest.raises(StorageError) as caught:
        store.read("records/r29/v1/content", info.version_id)
    # SeaweedFS's own needle CRC refuses the read (a 500); botocore's SHA-256 check would be
    # the next line of defence. Either way the damaged bytes never reach the caller.
    assert caught.value.code in {"STORAGE_SERVER_ERROR", "STORAGE_CHECKSUM_MISMATCH"}
    one_line(caught.value)


def _no_uploads_left(store: S3Store, under: str) -> bool:
    resp = store.client.list_multipart_uploads(Bucket=store.bucket,
                                               Prefix=f"{store.prefix}/{under}")
    return not resp.get("Uploads")


@pytest.mark.s3
def test_the_server_refuses_to_give_up_a_locked_version(s3: S3Store) -> None:
    """Straight to the server, past every check edoc makes itself."""
    retain = now() + timedelta(hours=1)
    info = put(s3, "records/r27/v1/content", b"locked", retain)
    full = f"{s3.prefix}/records/r27/v1/content"
    attempts: dict[str, Callable[[], Any]] = {
        "delete": lambda: s3.client.delete_object(Bucket=s3.bucket, Key=full,
                                                  VersionId=info.version_id),
        "shorten": lambda: s3.client.put_object_retention(
            Bucket=s3.bucket, Key=full, VersionId=info.version_id,
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": retain - timedelta(minutes=30)}),
        "downgrade": lambda: s3.client.put_object_retention(
            Bucket=s3.bucket, Key=full, VersionId=info.version_id,
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": retain + timedelta(hours=1)}),
        "bypass": lambda: s3.client.delete_object(Bucket=s3.bucket, Key=full,
                                                  VersionId=info.version_id,
                                                  BypassGovernanceRetention=True),
    }
    allowed: list[str] = []
    for name, attempt in attempts.items():
        try:
            attempt()
            allowed.append(name)
        except botocore.exceptions.ClientError:
            pass
    assert allowed == []
    after = s3.stat("records/r27/v1/content", info.version_id)
    assert after.lock_mode == "COMPLIANCE"
    assert_retained_until(after, retain)


@pytest.mark.s3
def test_worm_self_test_passes_on_seaweedfs(s3: S3Store) -> None:
    checks = worm_self_test(s3, now=now())
    by_name = {c.name: c for c in checks}
    assert set(by_name) >= {"bucket", "clock", "canary", "read", "delete", "shorten",
                            "downgrade", "checksum"}
    failed = [c.as_dict() for c in checks if c.status is not Status.PASS]
    assert failed == []
    assert bottom_line(checks) is Status.PASS
    canaries = list(s3.list("doctor/"))
    assert len(canaries) == 1 and canaries[0].lock_mode == "COMPLIANCE"


@pytest.mark.s3
def test_worm_self_test_reports_clock_skew(s3: S3Store) -> None:
    # Our clock ten minutes ahead of the server's.
    checks = {c.name: c for c in worm_self_test(s3, now=now() + timedelta(minutes=10))}
    clock = checks["clock"]
    assert clock.status is Status.FAIL and clock.code == "CLOCK_SKEW"
    assert clock.found is not None
    assert -660 < int(clock.found.removesuffix(" s")) < -540
    assert checks["delete"].status is Status.PASS


@pytest.mark.s3
def test_worm_self_test_fails_on_a_bucket_without_object_lock(
        s3_store_factory: Callable[..., S3Store], seaweed: Any) -> None:
    name = f"edoc-plain-{os.urandom(4).hex()}"
    seaweed.client("admin").create_bucket(Bucket=name)
    store = S3Store(seaweed.client("writer"), name, "archive")
    checks = worm_self_test(store, now=now())
    assert [(c.name, c.status, c.code) for c in checks] == [
        ("bucket", Status.FAIL, "BUCKET_NOT_WORM")]


@pytest.mark.s3
def test_worm_self_test_cannot_pass_for_a_read_only_identity(
        s3_store_factory: Callable[..., S3Store]) -> None:
    checks = {c.name: c for c in worm_self_test(s3_store_factory(identity="reader"), now=now())}
    assert checks["canary"].status is Status.FAIL
    assert checks["canary"].code == "WORM_CANARY_FAILED"
    assert "STORAGE_ACCESS_DENIED" in checks["canary"].detail
    assert bottom_line(list(checks.values())) is Status.FAIL


class _Accepted:
    """The raw body of an empty 2xx answer, for a server that says yes to everything."""

    def stream(self, **_: Any) -> Any:
        return iter([b""])


@pytest.mark.s3
def test_worm_self_test_reports_a_server_that_gives_in(s3: S3Store) -> None:
    # A look-alike with Object Lock holes: it answers "done" to version deletes and retention
    # changes. Everything else is the real server.
    from botocore.awsrequest import AWSResponse, HTTPHeaders

    def give_in(request: Any, **_: Any) -> Any:
        if "versionId=" in request.url:
            status = 204 if request.method == "DELETE" else 200
            return AWSResponse(request.url, status, HTTPHeaders(), _Accepted())
        return None

    for operation in ("DeleteObject", "PutObjectRetention"):
        s3.client.meta.events.register(f"before-send.s3.{operation}", give_in)
    checks = {c.name: c for c in worm_self_test(s3, now=now())}
    assert (checks["delete"].status, checks["delete"].code) == (Status.FAIL,
                                                                "WORM_DELETE_ALLOWED")
    assert (checks["shorten"].status, checks["shorten"].code) == (Status.FAIL,
                                                                  "WORM_SHORTEN_ALLOWED")
    assert (checks["downgrade"].status, checks["downgrade"].code) == (Status.FAIL,
                                                                      "WORM_DOWNGRADE_ALLOWED")
    assert checks["checksum"].status is Status.PASS


# -- S3 only: batch deletes and part reads ---------------------------------------------------

def _count_requests(store: S3Store, operation: str) -> list[int]:
    """Versions named in each request of ``operation`` sent from now on."""
    sizes: list[int] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        sizes.append(len(params.get("Delete", {}).get("Objects", [])))

    store.client.meta.events.register(f"provide-client-params.s3.{operation}", count)
    return sizes


@pytest.mark.s3
def test_delete_many_sends_batches_of_at_most_delete_batch(
        s3_store_factory: Callable[..., S3Store], monkeypatch: pytest.MonkeyPatch) -> None:
    import edoc.storage.s3

    monkeypatch.setattr(edoc.storage.s3, "DELETE_BATCH", 2)
    store = s3_store_factory()
    expiring = now() + timedelta(seconds=1)
    infos = [put(store, f"records/b{i}/v1/content", b"%d" % i, expiring) for i in range(5)]
    wait_until(max(i.retain_until or expiring for i in infos) + timedelta(milliseconds=300))
    sizes = _count_requests(store, "DeleteObjects")

    outcomes = store.delete_many([(i.key, i.version_id) for i in infos])

    assert sorted(sizes, reverse=True) == [2, 2, 1]  # sent side by side, in any order
    assert [(o.key, o.gone) for o in outcomes] == [(i.key, True) for i in infos]
    assert list(store.list("records/")) == []


@pytest.mark.s3
def test_delete_many_never_calls_unanswered_versions_gone(s3: S3Store) -> None:
    # Quiet is off: the server must name every version. One it leaves out is not "gone".
    expiring = now() + timedelta(seconds=1)
    infos = [put(s3, f"records/q{i}/v1/content", b"%d" % i, expiring) for i in range(2)]
    wait_until(max(i.retain_until or expiring for i in infos) + timedelta(milliseconds=300))

    def drop_first_answer(parsed: dict[str, Any], **_: Any) -> None:
        parsed["Deleted"] = [d for d in parsed.get("Deleted", [])
                             if not d["Key"].endswith(infos[0].key)]

    s3.client.meta.events.register("after-call.s3.DeleteObjects", drop_first_answer)
    first, second = s3.delete_many([(i.key, i.version_id) for i in infos])

    assert first.error is not None and first.error.code == "STORAGE_REQUEST_FAILED"
    assert not first.gone
    one_line(first.error)
    assert second.gone


class _Trickle(io.RawIOBase):
    """A source that hands out at most ``step`` bytes per read, as a pipe or socket does."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.pos, self.step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.step, len(self.data) - self.pos)
        buffer[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


@pytest.mark.s3
def test_multipart_from_a_stream_of_short_reads(s3_store_factory: Callable[..., S3Store]
                                                ) -> None:
    store = s3_store_factory(multipart_threshold=1 * MiB, part_size=5 * MiB)
    data = os.urandom(6 * MiB + 123)
    info = store.put("records/r30/v1/content", _Trickle(data, 1_000_003), size=len(data),
                     sha256=sha(data), retain_until=now() + timedelta(hours=1))
    assert info.sha256 == sha(data)
    assert store.read("records/r30/v1/content", info.version_id) == data

    short = data[:5 * MiB + 10]
    with pytest.raises(StorageError) as caught:
        store.put("records/r31/v1/content", _Trickle(short, 999_999), size=len(data),
                  sha256=sha(data), retain_until=now() + timedelta(hours=1))
    assert caught.value.code == "STORAGE_SIZE_MISMATCH"
    assert store.versions("records/r31/v1/content") == []
    assert _no_uploads_left(store, "records/r31/")


@pytest.mark.s3
def test_part_size_grows_to_stay_within_max_parts(
        s3_store_factory: Callable[..., S3Store], monkeypatch: pytest.MonkeyPatch) -> None:
    # S3 takes at most 10,000 parts; a file that would need more goes up in larger parts.
    # (Two parts here, so the test needs 11 MiB rather than 80 GB.)
    import edoc.storage.s3

    monkeypatch.setattr(edoc.storage.s3, "MAX_PARTS", 2)
    store = s3_store_factory(multipart_threshold=1 * MiB, part_size=5 * MiB)
    data = os.urandom(11 * MiB)  # three 5 MiB parts would exceed the limit
    info = put(store, "records/r32/v1/content", data, now() + timedelta(hours=1))
    head = store.client.head_object(Bucket=store.bucket, Key=f"{store.prefix}/records/r32/v1/"
                                    "content", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"].endswith("-2")
    assert store.read("records/r32/v1/content", info.version_id) == data


class _Xml:
    """The raw body of a 2xx answer carrying ``data``."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        return iter([self.data])


@pytest.mark.s3
def test_worm_self_test_catches_a_batch_delete_that_only_says_done(s3: S3Store) -> None:
    # A look-alike that answers "Deleted" to every DeleteObjects entry without deleting:
    # purge would certify versions the server still holds. Everything else is real.
    import re

    from botocore.awsrequest import AWSResponse, HTTPHeaders

    def claim_done(request: Any, **_: Any) -> Any:
        body = request.body.read() if hasattr(request.body, "read") else bytes(request.body)
        entries = re.findall(rb"<Key>(.*?)</Key><VersionId>(.*?)</VersionId>", body)
        answer = b"".join(b"<Deleted><Key>%s</Key><VersionId>%s</VersionId></Deleted>" % e
                          for e in entries)
        xml = (b'<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.'
               b'amazonaws.com/doc/2006-03-01/">' + answer + b"</DeleteResult>")
        return AWSResponse(request.url, 200, HTTPHeaders(), _Xml(xml))

    s3.client.meta.events.register("before-send.s3.DeleteObjects", claim_done)
    checks = {c.name: c for c in worm_self_test(s3, now=now())}
    assert (checks["delete"].status, checks["delete"].code) == (Status.FAIL,
                                                                "WORM_DELETE_MISREPORTED")
    assert [c.lock_mode for c in s3.list("doctor/")] == ["COMPLIANCE"]  # still there


@pytest.mark.s3
def test_small_puts_skip_the_continue_round_trip(s3_store_factory: Callable[..., S3Store]
                                                 ) -> None:
    """A manifest or a scan goes in one request without ``Expect: 100-continue`` (botocore
    adds it to every body, costing a round trip per PUT); a body of a MiB or more keeps it,
    so a refused PUT does not send megabytes first."""
    store = s3_store_factory(multipart_threshold=64 * MiB)
    sent: list[tuple[int, bool]] = []

    def spy(request: Any, **_: Any) -> None:
        if request.method == "PUT":
            sent.append((int(request.headers["Content-Length"]), "Expect" in request.headers))

    store.client.meta.events.register("before-send.s3", spy)
    retain = now() + timedelta(hours=1)
    put(store, "records/r30/v1/manifest.json", b"{}" * 900, retain)
    put(store, "records/r30/v1/content", os.urandom(2 * MiB), retain)
    assert sent == [(1800, False), (2 * MiB, True)]
    assert store.read("records/r30/v1/manifest.json") == b"{}" * 900


# -- ledger segments (format edoc.ledger-segment/1) ---------------------------------------------

def test_ledger_segments_and_leaf_objects_read_back_on_every_store(store: ObjectStore) -> None:
    """The ledger's store objects in both layouts: segments of many leaves (written since
    edoc.ledger-segment/1) beside one-leaf objects (written before), listed under one
    prefix, read back entry for entry; a segment is never overwritten, and one cut short or
    altered is reported, not read."""
    from edoc.evidence.ledger import segment_document
    from edoc.services.ledger_objects import stored_ledger
    from edoc.storage import layout

    retain = now() + timedelta(days=1)
    old = [b'{"event":"ingest","n":%d}' % i for i in range(2)]
    new = [b'{"event":"ingest","n":%d}' % i for i in range(2, 7)]
    for i, entry in enumerate(old):
        store.put_bytes(layout.ledger_key(i), entry, retain_until=retain)
    store.put_bytes(layout.ledger_segment_key(2), segment_document(2, new[:3]),
                    retain_until=retain)
    store.put_bytes(layout.ledger_segment_key(5), segment_document(5, new[3:]),
                    retain_until=retain)
    with pytest.raises(ObjectExists):
        store.put_bytes(layout.ledger_segment_key(5), segment_document(5, new[3:4]),
                        retain_until=retain)
    got = stored_ledger(store, pinned=True)
    assert got.entries == dict(enumerate(old + new))
    assert got.keys[6] == layout.ledger_segment_key(5) and got.keys[0] == layout.ledger_key(0)
    assert not got.conflicts and not got.unreadable

    cut = segment_document(7, [b'{"n":7}', b'{"n":8}'])[:-9]
    store.put_bytes(layout.ledger_segment_key(7), cut, retain_until=retain)
    store.put_bytes(layout.ledger_segment_key(9), segment_document(9, [b'{"n":2}']),
                    retain_until=retain)  # names itself 9, stored at 9: read
    store.put_bytes(layout.ledger_segment_key(4), segment_document(4, [b'{"n":"other"}']),
                    retain_until=retain)  # a second copy of entry 4 that differs
    got = stored_ledger(store)
    assert [k for k, _why in got.unreadable] == [layout.ledger_segment_key(7)]
    assert got.conflicts == [4] and got.entries[4] == new[2]
    assert got.entries[9] == b'{"n":2}'
