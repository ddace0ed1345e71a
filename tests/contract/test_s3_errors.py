"""S3 failures reach the user as one line with a stable code, never a traceback or a secret.

Also: building a store the standard AWS way (environment, profiles), bucket checks, and a
server that goes away and comes back (a separate short-lived SeaweedFS, not the session one).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from edoc.errors import ConfigError, EdocError, ObjectMissing, StorageError
from edoc.storage.s3 import RETRY_MAX_ATTEMPTS, S3Store
from tests.seaweed import REGION, SeaweedServer, StoreFactory, find_weed


def now() -> datetime:
    return datetime.now(UTC)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


def quick_client(endpoint: str, access_key: str = "AKIDEDOCTEST",
                 secret_key: str = "edoc-secret-never-shown") -> Any:
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id=access_key, aws_secret_access_key=secret_key,
        config=Config(retries={"mode": "standard", "max_attempts": 0},
                      connect_timeout=1, read_timeout=2))


def assert_user_facing(exc: EdocError, *secrets: str) -> None:
    text = str(exc)
    assert text.startswith(f"{exc.code}: ")
    assert "\n" not in text and "Traceback" not in text
    for secret in secrets:
        assert secret not in text
        assert secret not in (exc.hint or "")


def test_closed_port_is_storage_unreachable() -> None:
    store = S3Store(quick_client(f"http://127.0.0.1:{closed_port()}"), "edoc", "archive")
    calls: list[Callable[[], Any]] = [
        lambda: store.stat("records/r1/v1/content"),
        lambda: store.read("records/r1/v1/content"),
        lambda: store.put_bytes("records/r1/v1/content", b"x",
                                retain_until=now() + timedelta(days=1)),
        lambda: list(store.list("records/")),
        lambda: store.ensure_bucket(create=True),
    ]
    for call in calls:
        with pytest.raises(StorageError) as caught:
            call()
        assert caught.value.code == "STORAGE_UNREACHABLE"
        assert "127.0.0.1" in str(caught.value)
        assert_user_facing(caught.value, "edoc-secret-never-shown", "AKIDEDOCTEST")


@pytest.mark.s3
def test_wrong_secret_is_an_auth_failure_without_the_secret(seaweed: SeaweedServer) -> None:
    writer = seaweed.identities["writer"]
    client = quick_client(seaweed.endpoint_url, writer.access_key, "not-the-secret-123")
    with pytest.raises(ConfigError) as caught:
        # (A HEAD answer has no body, so a bad signature there is a bare 403: access denied.)
        list(S3Store(client, "edoc-contract", "x").list("records/"))
    assert caught.value.code == "STORAGE_AUTH_FAILED"
    assert_user_facing(caught.value, "not-the-secret-123", writer.secret_key)


@pytest.mark.s3
def test_reader_cannot_write(s3_store_factory: Callable[..., S3Store],
                             seaweed: SeaweedServer) -> None:
    reader = s3_store_factory(identity="reader")
    with pytest.raises(StorageError) as caught:
        reader.put_bytes("records/r1/v1/content", b"x", retain_until=now() + timedelta(days=1))
    assert caught.value.code == "STORAGE_ACCESS_DENIED"
    assert_user_facing(caught.value, seaweed.identities["reader"].secret_key)
    with pytest.raises(ObjectMissing):
        reader.stat("records/r1/v1/content")


@pytest.mark.s3
def test_bucket_checks(seaweed: SeaweedServer) -> None:
    admin = seaweed.client("admin")
    suffix = now().strftime("%H%M%S%f")

    missing = S3Store(admin, f"edoc-missing-{suffix}")
    with pytest.raises(ConfigError) as caught:
        missing.ensure_bucket(create=False)
    assert caught.value.code == "BUCKET_MISSING"

    missing.ensure_bucket(create=True)  # created with Object Lock, then checked
    missing.ensure_bucket(create=False)
    lock = admin.get_object_lock_configuration(Bucket=missing.bucket)
    assert lock["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"

    plain = f"edoc-plain-{suffix}"
    admin.create_bucket(Bucket=plain)
    with pytest.raises(ConfigError) as caught:
        S3Store(admin, plain).ensure_bucket(create=True)
    assert caught.value.code == "BUCKET_NOT_WORM"
    assert "versioning" in str(caught.value)

    # Versioning alone is not enough: Object Lock can only be enabled at creation.
    admin.put_bucket_versioning(Bucket=plain, VersioningConfiguration={"Status": "Enabled"})
    with pytest.raises(ConfigError) as caught:
        S3Store(admin, plain).ensure_bucket(create=False)
    assert caught.value.code == "BUCKET_NOT_WORM"
    assert "Object Lock" in str(caught.value)


# -- from_config: the standard AWS way --------------------------------------------------------
@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """An environment with no AWS settings from this machine leaking in."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION",
                 "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield monkeypatch


@pytest.mark.s3
def test_from_config_reads_the_standard_environment(
        aws_env: pytest.MonkeyPatch, seaweed: SeaweedServer,
        s3_store_factory: StoreFactory) -> None:
    bucket = s3_store_factory.bucket("edoc-contract")
    writer = seaweed.identities["writer"]
    aws_env.setenv("AWS_ENDPOINT_URL_S3", seaweed.endpoint_url)
    aws_env.setenv("AWS_ACCESS_KEY_ID", writer.access_key)
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", writer.secret_key)
    aws_env.setenv("AWS_DEFAULT_REGION", REGION)

    store = S3Store.from_config(bucket, f"env-{now().strftime('%H%M%S%f')}",
                                addressing_style="path")
    # botocore counts ``max_attempts`` as retries after the first request.
    assert store.client.meta.config.retries == {"mode": "standard",
                                                "total_max_attempts": RETRY_MAX_ATTEMPTS + 1}
    info = store.put_bytes("records/r1/v1/content", b"from env",
                           retain_until=now() + timedelta(minutes=5))
    assert store.read("records/r1/v1/content", info.version_id) == b"from env"
    assert store.guarantee.startswith("WORM: S3 Object Lock in COMPLIANCE")


@pytest.mark.s3
def test_from_config_reads_a_named_profile(
        aws_env: pytest.MonkeyPatch, tmp_path: Path, seaweed: SeaweedServer,
        s3_store_factory: StoreFactory) -> None:
    bucket = s3_store_factory.bucket("edoc-contract")
    reader = seaweed.identities["reader"]
    (tmp_path / "aws-config").write_text(
        f"[profile edoc-audit]\nregion = {REGION}\nendpoint_url = {seaweed.endpoint_url}\n"
        "s3 =\n    addressing_style = path\n")
    (tmp_path / "aws-credentials").write_text(
        f"[edoc-audit]\naws_access_key_id = {reader.access_key}\n"
        f"aws_secret_access_key = {reader.secret_key}\n")

    store = S3Store.from_config(bucket, "audit", profile="edoc-audit", lock_mode="GOVERNANCE")
    assert store.guarantee.startswith("WORM-style")
    store.ensure_bucket(create=False)
    with pytest.raises(StorageError) as caught:  # the reader identity may not write
        store.put_bytes("records/r1/v1/content", b"x", retain_until=now() + timedelta(days=1))
    assert caught.value.code == "STORAGE_ACCESS_DENIED"

    with pytest.raises(ConfigError) as missing:
        S3Store.from_config(bucket, "audit", profile="no-such-profile")
    assert missing.value.code == "STORAGE_PROFILE_MISSING"


def test_no_credentials_is_a_config_error(aws_env: pytest.MonkeyPatch) -> None:
    aws_env.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{closed_port()}")
    store = S3Store.from_config("edoc", "archive", region=REGION)
    with pytest.raises(ConfigError) as caught:
        store.stat("records/r1/v1/content")
    assert caught.value.code == "STORAGE_NO_CREDENTIALS"
    assert_user_facing(caught.value)


def test_bad_settings_are_refused_up_front() -> None:
    client = quick_client(f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(ConfigError):
        S3Store(client, "edoc", lock_mode="LOOSE")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        S3Store(client, "edoc", part_size=1024)
    with pytest.raises(ConfigError):
        S3Store(client, "edoc", "../other-tenant")


# -- a server that goes away and comes back --------------------------------------------------
@pytest.mark.s3
def test_server_stopped_then_restarted(tmp_path: Path) -> None:
    weed = find_weed()
    if weed is None:
        pytest.skip("SeaweedFS 'weed' binary not found")
    server = SeaweedServer(tmp_path / "seaweed", weed=weed, volume_max=16)
    server.start()
    try:
        S3Store(server.client("admin"), "edoc-restart").ensure_bucket(create=True)
        store = S3Store(server.client("writer", max_attempts=1, connect_timeout=1),
                        "edoc-restart", "archive")
        info = store.put_bytes("records/r1/v1/content", b"survives",
                               retain_until=now() + timedelta(minutes=10))

        server.stop(grace=0)
        with pytest.raises(StorageError) as caught:
            store.read("records/r1/v1/content", info.version_id)
        assert caught.value.code == "STORAGE_UNREACHABLE"
        assert_user_facing(caught.value, server.identities["writer"].secret_key)

        server.start()
        assert store.read("records/r1/v1/content", info.version_id) == b"survives"
        after = store.stat("records/r1/v1/content")
        assert (after.version_id, after.retain_until) == (info.version_id, info.retain_until)
    finally:
        server.stop(grace=0)
