"""Group commit: transactions of many threads share one catalog commit, each keeps its own
outcome, and nothing is reported done before it is committed."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edoc.catalog import Catalog, records
from edoc.catalog.group_commit import GroupCommitter
from edoc.errors import CatalogError, DuplicateContent


@pytest.fixture()
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog("sqlite:///catalog.sqlite", tmp_path)
    cat.create()
    yield cat
    cat.dispose()


def _insert(rid: str) -> object:
    def work(c: Connection) -> str:
        c.execute(records.insert().values(record_id=rid, created_at="2026-11-25T00:00:00Z",
                                          latest_version=1, state="active"))
        return rid
    return work


def _stored(catalog: Catalog) -> set[str]:
    with catalog.read() as c:
        return set(c.execute(sa.select(records.c.record_id)).scalars())


def _wait_queued(gc: GroupCommitter, n: int) -> None:
    for _ in range(1000):
        with gc._cond:
            if len(gc._queue) >= n:
                return
        time.sleep(0.01)
    raise AssertionError(f"{n} transactions never queued")


class _GatedWrites:
    """Wraps ``catalog.write`` so the first commit waits until released, and counts the
    commits and what each one held when it committed."""

    def __init__(self, catalog: Catalog) -> None:
        self.inner = catalog.write
        self.release = threading.Event()
        self.entered = threading.Event()
        self.commits = 0
        catalog.write = self  # type: ignore[method-assign]
        self.catalog = catalog

    @contextlib.contextmanager
    def __call__(self) -> Iterator[Connection]:
        with self.inner() as conn:
            first = self.commits == 0
            self.commits += 1
            if first:
                self.entered.set()
                assert self.release.wait(10)
            yield conn


def test_queued_transactions_commit_together_and_each_gets_its_result(
        catalog: Catalog) -> None:
    gc = GroupCommitter(catalog)
    gate = _GatedWrites(catalog)
    results: dict[str, object] = {}

    def call(rid: str) -> None:
        results[rid] = gc.run(_insert(rid))  # type: ignore[arg-type]

    first = threading.Thread(target=call, args=("r0",))
    first.start()
    assert gate.entered.wait(10)  # r0's commit is under way and held
    others = [threading.Thread(target=call, args=(f"r{i}",)) for i in range(1, 6)]
    for t in others:
        t.start()
    # They queue behind the commit under way: none of them is done, none is stored.
    _wait_queued(gc, 5)
    assert results == {}
    gate.release.set()
    for t in [first, *others]:
        t.join(10)
    assert results == {f"r{i}": f"r{i}" for i in range(6)}
    assert _stored(catalog) == {f"r{i}" for i in range(6)}
    # The five queued behind the first went in one commit, not five.
    assert gate.commits == 2


def test_a_failing_transaction_is_undone_alone(catalog: Catalog) -> None:
    gc = GroupCommitter(catalog)
    gate = _GatedWrites(catalog)
    outcomes: dict[str, object] = {}

    def fails(c: Connection) -> None:
        c.execute(records.insert().values(record_id="half", created_at="x", latest_version=1,
                                          state="active"))
        raise DuplicateContent("same SHA-256 as record r1")

    def call(name: str, work: object) -> None:
        try:
            outcomes[name] = gc.run(work)  # type: ignore[arg-type]
        except Exception as exc:
            outcomes[name] = exc

    t0 = threading.Thread(target=call, args=("r0", _insert("r0")))
    t0.start()
    assert gate.entered.wait(10)
    queued = [threading.Thread(target=call, args=("r1", _insert("r1"))),
              threading.Thread(target=call, args=("bad", fails)),
              threading.Thread(target=call, args=("r2", _insert("r2")))]
    for t in queued:
        t.start()
    _wait_queued(gc, 3)
    gate.release.set()
    for t in [t0, *queued]:
        t.join(10)
    assert isinstance(outcomes["bad"], DuplicateContent)
    assert outcomes["r1"] == "r1" and outcomes["r2"] == "r2"
    assert _stored(catalog) == {"r0", "r1", "r2"}  # "half" was rolled back to its savepoint
    assert gate.commits == 2


def test_a_failed_commit_fails_every_transaction_of_the_group(catalog: Catalog) -> None:
    gc = GroupCommitter(catalog)
    inner = catalog.write

    @contextlib.contextmanager
    def failing_commit() -> Iterator[Connection]:
        with inner() as conn:
            yield conn
            raise CatalogError("catalog write failed: disk I/O error", code="CATALOG_ERROR")

    catalog.write = failing_commit  # type: ignore[method-assign]
    with pytest.raises(CatalogError, match="disk I/O error"):
        gc.run(_insert("lost"))  # type: ignore[arg-type]
    catalog.write = inner  # type: ignore[method-assign]
    assert _stored(catalog) == set()
    assert gc.run(_insert("next")) == "next"  # type: ignore[arg-type]
    assert _stored(catalog) == {"next"}
