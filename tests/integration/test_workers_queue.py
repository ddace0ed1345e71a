"""The job queue on a real PostgreSQL server (tests/postgres.py): ``ingest --enqueue``,
``edoc worker`` processes, ``edoc jobs``, and what a worker killed mid-job leaves.

The archives here keep their catalog in SQLite and their objects in the local store; only
the queue is in PostgreSQL (``EDOC_QUEUE_URL``), so these tests exercise the queue alone.
The multi-host proof (S3 + PostgreSQL catalog) is ``test_workers_multihost.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.helpers import Edoc
from tests.postgres import PostgresServer, find_pg_bin

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def queue_db(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = postgres.create_database()
    url = postgres.url(name)
    monkeypatch.setenv("EDOC_QUEUE_URL", url)
    yield url
    postgres.drop_database(name)


@pytest.fixture
def edoc(tmp_path: Path, queue_db: str) -> Edoc:
    e = Edoc(tmp_path / "archive")
    res = e("init", str(e.archive), "--org", "Queue Test")
    assert res.exit_code == 0, res.output
    return e


def docs(directory: Path, n: int, prefix: str = "doc") -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = directory / f"{prefix}-{i:04d}.txt"
        p.write_text(f"{prefix} {i} {os.urandom(8).hex()}\n", encoding="utf-8")
        out.append(p)
    return out


def worker(archive: Path, *args: str, prelude: str = "", timeout: float = 180
           ) -> subprocess.CompletedProcess[str]:
    """``edoc worker ARGS`` in a new process (a prelude may inject a fault first)."""
    code = textwrap.dedent(prelude) + "\nimport cli\ncli.main()\n"
    return subprocess.run(
        [sys.executable, "-c", code, "--archive", str(archive), "worker", *args],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=timeout, check=False)


def stored_shas(e: Edoc) -> list[str]:
    code, doc = e.json("search")
    assert code == 0, doc
    return [h["content_sha256"] for h in doc["records"]]


def sha(p: Path) -> str:
    import hashlib

    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_enqueue_then_worker_stores_each_document_once(edoc: Edoc, tmp_path: Path) -> None:
    files = docs(tmp_path / "in", 12)
    (tmp_path / "in" / "copy.txt").write_bytes(files[0].read_bytes())
    (tmp_path / "in" / "empty.txt").write_bytes(b"")
    code, out = edoc.json("ingest", "--enqueue", str(tmp_path / "in"), "--profile", "general")
    assert code == 1  # the copy and the empty file are refused up front; the rest queued
    by_status: dict[str, list[dict[str, Any]]] = {}
    for r in out["results"]:
        by_status.setdefault(r["status"], []).append(r)
    assert len(by_status["queued"]) == 12
    assert [r["error"]["code"] for r in by_status["duplicate"]] == ["DUPLICATE_CONTENT"]
    assert [r["error"]["code"] for r in by_status["rejected"]] == ["FILE_EMPTY"]
    code, st = edoc.json("jobs")
    assert st["counts"]["queued"] == 12 and st["counts"]["done"] == 0

    done = worker(edoc.archive, "--until-idle", "--concurrency", "3")
    assert done.returncode == 0, done.stderr[-2000:]
    code, st = edoc.json("jobs")
    assert st["counts"] == {"queued": 0, "running": 0, "failed": 0, "done": 12,
                            "cancelled": 0}
    assert sorted(stored_shas(edoc)) == sorted(sha(p) for p in files)
    res = edoc("ledger", "verify")
    assert res.exit_code == 0, res.output
    res = edoc("verify", "--all")
    assert res.exit_code == 0, res.output
    # The staged bytes of stored documents are gone from the queue database.
    with psycopg.connect(os.environ["EDOC_QUEUE_URL"]) as conn:
        left = conn.execute("SELECT count(*) FROM edoc_queue_items WHERE content IS NOT NULL"
                            ).fetchone()
    assert left == (0,)
    # Enqueued again: already archived, so refused before any job exists.
    code, out = edoc.json("ingest", "--enqueue", str(files[1]), "--skip-existing")
    assert code == 0 and out["results"][0]["status"] == "exists"


def test_up_front_errors_are_one_line(edoc: Edoc, tmp_path: Path) -> None:
    (f,) = docs(tmp_path / "in", 1)
    res = edoc("ingest", "--enqueue", str(f), "--profile", "no-such-profile")
    assert res.exit_code == 2, res.output
    assert res.output.splitlines()[0] == "error: PROFILE_UNKNOWN: unknown profile " \
        "'no-such-profile'"
    assert "Traceback" not in res.output
    code, out = edoc.json("ingest", "--enqueue", str(f), "--date", "2024-13-45")
    assert code == 1 and out["results"][0]["error"]["code"] == "BAD_DATE"
    code, out = edoc.json("ingest", "--enqueue", str(f), "--retention", "forever")
    assert code == 1 and out["results"][0]["error"]["code"] == "RETENTION_UNKNOWN"
    code, st = edoc.json("jobs")
    assert st["counts"]["queued"] == 0


def test_refused_document_is_a_failed_job_with_its_reason(edoc: Edoc, tmp_path: Path) -> None:
    # A text file under a scan profile: enqueue cannot know (it does not read the
    # document); the worker refuses it as `edoc ingest` would, once, with the code.
    (f,) = docs(tmp_path / "in", 1)
    code, out = edoc.json("ingest", "--enqueue", str(f), "--profile", "nta-scan-general",
                          "--date", "2024-01-05", "--amount", "1000",
                          "--counterparty", "ACME")
    assert code == 0, out
    done = worker(edoc.archive, "--until-idle")
    assert done.returncode == 0, done.stderr[-2000:]
    code, st = edoc.json("jobs")
    assert st["counts"]["failed"] == 1 and st["counts"]["done"] == 0
    (failed,) = st["failed"]
    direct = edoc.json("ingest", str(f), "--profile", "nta-scan-general", "--date",
                       "2024-01-05", "--amount", "1000", "--counterparty", "ACME")[1]
    assert failed["code"] == direct["results"][0]["error"]["code"] != "JOB_FAILED"
    assert failed["attempts"] == 1  # a refusal is not retried
    assert stored_shas(edoc) == []
    # Retried on request: it runs again (and is refused again).
    code, out = edoc.json("jobs", "retry", str(failed["id"]))
    assert code == 0 and out["retried"] == [failed["id"]]
    assert edoc.json("jobs")[1]["counts"]["queued"] == 1
    assert worker(edoc.archive, "--until-idle").returncode == 0
    assert edoc.json("jobs")[1]["counts"]["failed"] == 1
    res = edoc("jobs", "retry", "999999")
    assert res.exit_code == 1 and "JOB_NOT_FOUND" in res.output


def test_corrupted_staged_bytes_fail_the_job_and_store_nothing(edoc: Edoc, tmp_path: Path
                                                                ) -> None:
    files = docs(tmp_path / "in", 2)
    code, out = edoc.json("ingest", "--enqueue", *map(str, files))
    assert code == 0
    bad = out["results"][0]["job_id"]
    with psycopg.connect(os.environ["EDOC_QUEUE_URL"]) as conn:
        conn.execute("UPDATE edoc_queue_items SET content = overlay(content placing 'X' "
                     "from 1 for 1) WHERE job_id = %s", (bad,))
    assert worker(edoc.archive, "--until-idle").returncode == 0
    st = edoc.json("jobs")[1]
    assert st["counts"]["failed"] == 1 and st["counts"]["done"] == 1
    assert [(f["id"], f["code"]) for f in st["failed"]] == [(bad, "STAGED_CONTENT_CORRUPT")]
    assert stored_shas(edoc) == [sha(files[1])]


# A worker SIGKILLed at a precise point of a job, as `kill -9` or the OOM killer would.
_KILL_AFTER_CATALOGUE = """
import os, signal
from edoc.queue import work
_orig = work._record
def _record(url, item_id, state, **kw):
    if state == "stored":
        os.kill(os.getpid(), signal.SIGKILL)  # the record is catalogued, the job not acked
    return _orig(url, item_id, state, **kw)
work._record = _record
"""
_KILL_INSIDE_COMMIT = """
import os, signal
from edoc.services import commit
def _catalogue(*a, **kw):
    os.kill(os.getpid(), signal.SIGKILL)  # content and manifest stored, not catalogued
commit._catalogue = _catalogue
"""


@pytest.mark.parametrize("fault", [_KILL_AFTER_CATALOGUE, _KILL_INSIDE_COMMIT],
                         ids=["after-catalogue", "inside-commit"])
def test_worker_killed_mid_job_neither_loses_nor_duplicates(edoc: Edoc, tmp_path: Path,
                                                            fault: str) -> None:
    files = docs(tmp_path / "in", 4)
    assert edoc.json("ingest", "--enqueue", *map(str, files))[0] == 0
    killed = worker(edoc.archive, "--until-idle", "--heartbeat", "1", prelude=fault)
    assert killed.returncode == -9
    st = edoc.json("jobs")[1]
    assert st["counts"]["running"] == 1  # the killed worker's job, until found stalled
    done = worker(edoc.archive, "--until-idle", "--heartbeat", "1", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["stalled_retried"] >= 1
    st = edoc.json("jobs")[1]
    assert st["counts"]["done"] == 4 and st["counts"]["failed"] == 0
    shas = stored_shas(edoc)
    assert sorted(shas) == sorted(sha(p) for p in files)  # each exactly once
    assert edoc("ledger", "verify").exit_code == 0
    res = edoc("verify", "--all")
    assert res.exit_code == 0, res.output


# A worker SIGKILLed inside a checkpoint job while the next checkpoint already waits (every
# stored ingest asks for one): the dead one holds the checkpoint lock, and procrastinate's
# retry of it would collide with the waiting one's queueing lock.
_KILL_IN_CHECKPOINT_WITH_ONE_WAITING = """
import os, signal
from edoc.queue import app as app_mod, work
def checkpoint():
    app_mod.defer_checkpoint(app_mod.make_app(os.environ["EDOC_QUEUE_URL"]))
    os.kill(os.getpid(), signal.SIGKILL)
work.checkpoint = checkpoint
"""


def _checkpoint_jobs(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [str(r[0]) for r in conn.execute(
            "SELECT status::text FROM procrastinate_jobs WHERE task_name = 'edoc.checkpoint' "
            "ORDER BY id").fetchall()]


def test_a_checkpoint_killed_while_the_next_waits_does_not_block_the_queue(
        edoc: Edoc, tmp_path: Path, queue_db: str) -> None:
    files = docs(tmp_path / "in", 3)
    assert edoc.json("ingest", "--enqueue", *map(str, files))[0] == 0
    killed = worker(edoc.archive, "--until-idle", "--heartbeat", "1",
                    prelude=_KILL_IN_CHECKPOINT_WITH_ONE_WAITING)
    assert killed.returncode == -9
    assert _checkpoint_jobs(queue_db) == ["doing", "todo"]
    assert edoc("verify", "--all").exit_code == 1  # stored, not yet in a checkpoint

    done = worker(edoc.archive, "--until-idle", "--heartbeat", "1", "--json", timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    states = _checkpoint_jobs(queue_db)
    assert "doing" not in states and "todo" not in states, states
    assert "succeeded" in states
    assert sorted(stored_shas(edoc)) == sorted(sha(p) for p in files)
    res = edoc("verify", "--all")
    assert res.exit_code == 0, res.output  # the waiting checkpoint ran and covers them


# The first checkpoint fails for a reason that may pass (the TSA unreachable) while the
# next one already waits.
_CHECKPOINT_FAILS_ONCE_WITH_ONE_WAITING = """
import os
from edoc.queue import app as app_mod, work
_real, _failed = work.checkpoint, []
def checkpoint():
    if _failed:
        return _real()
    _failed.append(1)
    app_mod.defer_checkpoint(app_mod.make_app(os.environ["EDOC_QUEUE_URL"]))
    raise work.TransientFailure("the TSA did not answer")
work.checkpoint = checkpoint
"""


def test_a_checkpoint_that_fails_while_the_next_waits_is_covered_by_it(
        edoc: Edoc, tmp_path: Path, queue_db: str) -> None:
    files = docs(tmp_path / "in", 2)
    assert edoc.json("ingest", "--enqueue", *map(str, files))[0] == 0
    done = worker(edoc.archive, "--until-idle", "--heartbeat", "1",
                  prelude=_CHECKPOINT_FAILS_ONCE_WITH_ONE_WAITING, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "checkpoint failed (the TSA did not answer)" in done.stderr
    assert _checkpoint_jobs(queue_db) == ["failed", "succeeded"]
    res = edoc("verify", "--all")
    assert res.exit_code == 0, res.output


def test_a_worker_started_while_postgresql_is_down_waits_for_it(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    # systemd starts a worker during a failover, or before the database host is back: the
    # archive cannot even be opened (its catalog is on that server). It waits, then works.
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries not found")
    server = PostgresServer(bin_dir)  # its own cluster: this test stops it
    server.start()
    try:
        catalog, queue = server.create_database(), server.create_database()
        monkeypatch.setenv("EDOC_QUEUE_URL", server.url(queue))
        e = Edoc(tmp_path / "archive")
        res = e("init", str(e.archive), "--org", "Failover", "--catalog", server.url(catalog))
        assert res.exit_code == 0, res.output
        files = docs(tmp_path / "in", 3)
        assert e.json("ingest", "--enqueue", *map(str, files))[0] == 0
        server._shutdown(signal.SIGINT)  # a clean stop: the data stays for start()
        proc = subprocess.Popen(
            [sys.executable, "-c", "import cli; cli.main()", "--archive", str(e.archive),
             "worker", "--until-idle", "--heartbeat", "1"],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(3)
            assert proc.poll() is None, proc.communicate()  # still waiting, not exited
            server.start()
            _out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err[-2000:]
        assert "Traceback" not in err
        assert "catalog not reachable at start (CATALOG_UNAVAILABLE: catalog" in err  # why
        assert sorted(stored_shas(e)) == sorted(sha(p) for p in files)
    finally:
        server.stop()
