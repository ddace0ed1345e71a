"""One ingest batch on worker processes (``edoc ingest --processes``,
``edoc.services.ingest_workers``) keeps what a run in one process promises: results in
request order, two copies of one file stored once, business-key twins stored by two
workers still flagged, a bad file reported while the rest is stored, one closing
checkpoint, and a worker killed mid-batch loses nothing that was reported stored (the
rest is stored by a re-run with ``--skip-existing``). Real processes, real catalog (SQLite
and, with ``--catalog postgresql``, PostgreSQL), nothing mocked.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from edoc.services import ingest_workers
from edoc.services.archive import Archive
from edoc.services.ingest import Ingestor, IngestRequest, IngestResult
from tests import einvoice_samples as samples
from tests.helpers import Edoc

PROFILE = "nta-electronic-transaction"


@pytest.fixture
def edoc(tmp_path: Path) -> Iterator[Edoc]:
    e = Edoc(tmp_path / "archive")
    assert e("init", str(e.archive)).exit_code == 0
    yield e


def _invoice(path: Path, n: int, *, amount_seed: int | None = None) -> Path:
    """A distinct correct invoice; ``amount_seed`` gives the amount (equal seeds: equal
    business key, other bytes when ``n`` differs)."""
    seed = n if amount_seed is None else amount_seed
    lines = (samples.Line("コピー用紙 A4", Decimal(10), Decimal(500 + seed)),)
    path.write_bytes(samples.pint_invoice(lines=lines, number=f"P-{n:05d}"))
    return path


def _on_two_workers(tmp_path: Path) -> tuple[Path, Path]:
    """Two invoices with one business key and other bytes that two workers store (the
    route is the file's SHA-256: the pair is picked so that it splits)."""
    for n in range(1, 50):
        a = _invoice(tmp_path / f"twin-a-{n}.xml", 1000 + n, amount_seed=9000)
        b = _invoice(tmp_path / f"twin-b-{n}.xml", 2000 + n, amount_seed=9000)
        routes = {ingest_workers._route(IngestRequest(path=str(p)), 2) for p in (a, b)}
        if len(routes) == 2:
            return a, b
    raise AssertionError("no pair of invoices splits over two workers")


def test_a_batch_on_two_processes_keeps_order_duplicates_and_twins(
        edoc: Edoc, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    files = [_invoice(inbox / f"inv-{n:03d}.xml", n) for n in range(40)]
    copy = inbox / "inv-000-copy.xml"
    copy.write_bytes(files[0].read_bytes())
    empty = inbox / "empty.xml"
    empty.write_bytes(b"")
    twin_a, twin_b = _on_two_workers(inbox)
    batch = [*files[:20], copy, empty, twin_a, *files[20:], twin_b]

    code, doc = edoc.json("ingest", *map(str, batch), "--profile", PROFILE,
                          "--processes", "2")

    assert code == 1, doc  # the empty file is rejected, the rest is stored
    results = doc["results"]
    assert [Path(r["file"]).name for r in results] == [p.name for p in batch]
    by_name = {Path(r["file"]).name: r for r in results}
    assert by_name["empty.xml"]["status"] == "rejected"
    dup = by_name[copy.name]
    assert dup["status"] == "duplicate"
    assert dup["error"]["code"] == "DUPLICATE_CONTENT"
    first = by_name[files[0].name]["record_id"]
    assert first in dup["error"]["message"]
    assert "another run" not in dup["error"]["message"]
    stored = [r for r in results if r["status"] == "stored"]
    assert len(stored) == len(batch) - 2
    assert len({r["record_id"] for r in stored}) == len(stored)
    # the twins: whichever was noted second names the other
    a, b = by_name[twin_a.name], by_name[twin_b.name]
    flagged = [(r, other) for r, other in ((a, b), (b, a))
               if any(w["code"] == "DUPLICATE_SUSPECT" and w["record_id"] == other["record_id"]
                      for w in r.get("warnings") or ())]
    assert len(flagged) == 1, (a.get("warnings"), b.get("warnings"))
    # one closing checkpoint over every leaf the workers wrote
    assert doc["checkpoint"]["tree_size"] == len(stored)
    verify = edoc("verify", "--all", "--json")
    assert verify.exit_code == 0, verify.output
    found = edoc.json("search", "--invoice-number", "P-00007")[1]
    assert [h["record_id"] for h in found["records"]] == [by_name["inv-007.xml"]["record_id"]]


def test_a_killed_worker_loses_nothing_reported_stored(edoc: Edoc, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    files = [_invoice(inbox / f"inv-{n:03d}.xml", n) for n in range(120)]
    pools: list[ingest_workers.WorkerPool] = []
    real_init = ingest_workers.WorkerPool.__init__

    def remember(self: ingest_workers.WorkerPool, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        pools.append(self)

    monkeypatch.setattr(ingest_workers.WorkerPool, "__init__", remember)
    killed: list[int] = []

    def kill_one_worker(result: IngestResult) -> None:
        if killed:
            return
        worker = pools[0]._workers[1]
        assert worker is not None
        pid = next(iter(worker._processes))
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    requests = [IngestRequest(path=str(p), profiles=(PROFILE,)) for p in files]
    archive = Archive.open(str(edoc.archive))
    try:
        run = Ingestor(archive, jobs=2, processes=2).run(requests, kill_one_worker)
    finally:
        archive.close()

    assert killed
    assert [Path(r.file).name for r in run.results] == [p.name for p in files]
    died = [r for r in run.results if r.status != "stored"]
    assert died, "the kill came too late to cut into the batch"
    assert {r.error["code"] for r in died if r.error} == {"WORKER_DIED"}
    assert not run.ok
    assert run.checkpoint is not None
    # what was reported stored is whole, and the archive verifies
    verify = edoc("verify", "--all", "--json")
    assert verify.exit_code == 0, verify.output
    # a re-run stores the rest; what the dead worker did store counts as done
    code, doc = edoc.json("ingest", *map(str, files), "--profile", PROFILE,
                          "--processes", "2", "--skip-existing")
    assert code == 0, doc
    statuses = {Path(r["file"]).name: r["status"] for r in doc["results"]}
    for r in run.results:
        if r.status == "stored":
            assert statuses[Path(r.file).name] == "exists"
    assert edoc.version_count() == len(files)
    assert edoc("verify", "--all").exit_code == 0



def test_a_fifo_in_the_batch_is_rejected_not_read(edoc: Edoc, tmp_path: Path) -> None:
    """Routing reads each file to hash it: a FIFO must never be opened for that (it would
    block the whole batch); the worker's own checks reject it."""
    fifo = tmp_path / "pipe.xml"
    os.mkfifo(fifo)
    good = _invoice(tmp_path / "good.xml", 1)
    code, doc = edoc.json("ingest", str(fifo), str(good), "--profile", PROFILE,
                          "--processes", "2")
    assert code == 1, doc
    assert [r["status"] for r in doc["results"]] == ["rejected", "stored"]


def test_a_worker_that_cannot_open_the_archive_says_why(edoc: Edoc, tmp_path: Path) -> None:
    """The workers open the archive themselves: when that fails (its configuration moved
    away after this process opened it), every file says why, not that a worker died."""
    files = [_invoice(tmp_path / f"inv-{n}.xml", n) for n in range(3)]
    archive = Archive.open(str(edoc.archive))
    config, moved = edoc.archive / "edoc.toml", tmp_path / "edoc.toml"
    pool = ingest_workers.WorkerPool(Ingestor(archive), 2, jobs=1)
    try:
        config.rename(moved)  # the workers start at the first file
        results = list(pool.run([IngestRequest(path=str(p), profiles=(PROFILE,))
                                 for p in files]))
    finally:
        pool.close()
        moved.rename(config)
        archive.close()
    assert [r.status for r in results] == ["rejected"] * 3
    assert {r.error["code"] for r in results if r.error} == {"ARCHIVE_NOT_FOUND"}
    assert edoc.version_count() == 0
