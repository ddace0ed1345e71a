"""The multi-host proof: worker processes that share nothing but the servers.

One PostgreSQL server (tests/postgres.py) holds the catalog and the queue, one SeaweedFS
bucket with Object Lock (tests/seaweed.py) holds the objects. Each "host" is its own archive
directory holding only what an operator copies (edoc.toml and keys/), its own working
directory and its own temporary directory. While three workers ingest the documents a fourth
process enqueued, a ``verify --all`` and a ``purge`` run on other hosts; one worker is
SIGKILLed mid-run and started again, and the PostgreSQL server is restarted once. Afterwards
``ledger verify`` and ``verify --all`` pass, every document is in the archive exactly once,
and the checkpoints form one chain.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.helpers import Edoc, jst_today_minus, short_profile
from tests.postgres import PostgresServer
from tests.seaweed import SeaweedServer, StoreFactory, use_identity

ROOT = Path(__file__).resolve().parents[2]
N_DOCS = int(os.environ.get("EDOC_TEST_MULTIHOST_DOCS", "500"))
N_WORKERS = 3
EXPIRING = 12  # records ingested first with a few seconds' retention, for the purge


class Host:
    """An archive directory copied to a machine of its own: edoc.toml and keys/ only."""

    def __init__(self, root: Path, name: str, first: Path) -> None:
        self.dir = root / name
        self.archive = self.dir / "archive"
        self.archive.mkdir(parents=True)
        shutil.copy2(first / "edoc.toml", self.archive / "edoc.toml")
        shutil.copytree(first / "keys", self.archive / "keys")
        (self.dir / "tmp").mkdir()
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(self.dir / "tmp"),
                    "EDOC_ACTOR": f"svc-{name}"}

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "cli.py"), "--archive", str(self.archive), *args],
            cwd=self.dir, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)

    def run(self, *args: str, timeout: float = 600) -> tuple[int, dict[str, Any], str]:
        p = self.popen(*args, "--json")
        out, err = p.communicate(timeout=timeout)
        try:
            doc = json.loads(out) if out.strip() else {}
        except json.JSONDecodeError:
            doc = {"raw": out}
        return p.returncode, doc, err


def _done(queue_url: str) -> int:
    try:
        with psycopg.connect(queue_url, connect_timeout=3) as conn:
            row = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE "
                               "task_name = 'edoc.ingest_document' AND status = 'succeeded'"
                               ).fetchone()
    except psycopg.OperationalError:
        return -1  # the server is restarting
    return int(row[0]) if row else 0


def _wait_for(queue_url: str, n: int, workers: list[subprocess.Popen[str]],
              timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while _done(queue_url) < n:
        assert time.monotonic() < deadline, f"fewer than {n} jobs done in {timeout} s"
        assert any(w.poll() is None for w in workers), "every worker exited early"
        time.sleep(0.5)


def test_workers_on_three_hosts_share_nothing_but_the_servers(
        postgres: PostgresServer, seaweed: SeaweedServer, s3_store_factory: StoreFactory,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = postgres.create_database()
    url = postgres.url(db)
    bucket = s3_store_factory.bucket("edoc-workers")
    use_identity(monkeypatch, seaweed, "writer", tmp_path)
    policies = short_profile(tmp_path / "policies", 4, "test-short")
    monkeypatch.setenv("EDOC_POLICIES", str(policies))
    monkeypatch.delenv("EDOC_QUEUE_URL", raising=False)  # the queue is the catalog's database

    first = Edoc(tmp_path / "first")
    res = first("init", str(first.archive), "--org", "Multi-host", "--catalog", url,
                "--storage", f"s3://{bucket}/{tmp_path.name}", "--s3-addressing-style", "path")
    assert res.exit_code == 0, res.output
    clerk = Host(tmp_path, "clerk", first.archive)
    hosts = [Host(tmp_path, f"worker-{i}", first.archive) for i in range(N_WORKERS)]
    auditor = Host(tmp_path, "auditor", first.archive)
    for h in (clerk, *hosts, auditor):
        assert not (h.archive / "catalog.sqlite").exists()

    # Records for the purge: retention of a few seconds, expired by the time it runs.
    expiring = tmp_path / "expiring"
    expiring.mkdir()
    for i in range(EXPIRING):
        (expiring / f"old-{i}.txt").write_text(f"expiring {i} {os.urandom(4).hex()}")
    code, doc, err = clerk.run("ingest", *map(str, sorted(expiring.iterdir())),
                               "--profile", "test-short")
    assert code == 0, (doc, err)

    # The batch: N_DOCS small documents, enqueued from the clerk's host.
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    expected: dict[str, str] = {}
    for i in range(N_DOCS):
        p = inbox / f"invoice-{i:04d}.txt"
        p.write_text(f"invoice {i} {os.urandom(8).hex()}\n", encoding="utf-8")
        expected[hashlib.sha256(p.read_bytes()).hexdigest()] = p.name
    code, doc, err = clerk.run("ingest", "--enqueue", str(inbox), "--profile", "general",
                               "--date", jst_today_minus(3))
    assert code == 0, err[-2000:]
    assert doc["queued"] == N_DOCS

    def start(h: Host) -> subprocess.Popen[str]:
        return h.popen("worker", "--until-idle", "--concurrency", "2", "--heartbeat", "1",
                       "--json")

    workers = [start(h) for h in hosts]
    try:
        _wait_for(url, N_DOCS // 10, workers)
        # An auditor verifies and an operator purges while the workers ingest.
        verifying = auditor.popen("verify", "--all", "--csv")
        purging = hosts[1].popen("purge", "--yes", "--json")

        _wait_for(url, N_DOCS // 4, workers)
        workers[0].send_signal(signal.SIGKILL)  # a host lost mid-job
        assert workers[0].wait(timeout=30) == -signal.SIGKILL
        workers[0] = start(hosts[0])

        _wait_for(url, N_DOCS // 2, workers)
        postgres.restart()  # a database failover: every connection drops
        at_restart = _done(url)
        assert 0 <= at_restart < N_DOCS  # mid-run: work was left for after the restart

        out, err = verifying.communicate(timeout=600)
        assert "INTERNAL_ERROR" not in err, err[-2000:]
        if "CATALOG_UNAVAILABLE" in err:
            # The auditor's verify was still running when the database restarted and lost
            # its connection (it says so, with a code, and stops; nothing it printed is
            # wrong). The auditor runs it again, as one would, while the workers go on.
            assert "the connection to" in err and "was lost" in err, err[-2000:]
            verifying = auditor.popen("verify", "--all", "--csv")
            out, err = verifying.communicate(timeout=600)
        # Mid-ingest, records not yet in a checkpoint are indeterminate (exit 1), never
        # failed; the final verify below must pass outright.
        import csv
        import io

        rows = list(csv.DictReader(io.StringIO(out)))
        assert verifying.returncode in (0, 1), err[-2000:]
        assert len(rows) >= EXPIRING, out[-2000:]
        failed = [r for r in rows if r["status"] == "fail"]
        assert failed == [], json.dumps(failed[:5], ensure_ascii=False)
        out, err = purging.communicate(timeout=600)
        if purging.returncode != 0:
            # The purge met the restart: its catalog connection, or the session holding
            # the purge lock, was lost. It stops with a code, never an internal error, and
            # the operator's next run resumes the journaled run (what is disposed in all
            # is checked below: the search lists none of the expiring records).
            stopped = json.loads(out)["error"]
            assert stopped["code"] == "CATALOG_UNAVAILABLE", (out[-2000:], err[-2000:])
            purging = hosts[1].popen("purge", "--yes", "--json")
            out, err = purging.communicate(timeout=600)
        else:
            assert len(json.loads(out)["disposed"]) == EXPIRING, out[-2000:]
        assert purging.returncode == 0, (out[-2000:], err[-2000:])

        results, logs = [], []
        for w in workers:
            try:
                out, err = w.communicate(timeout=300)
            except subprocess.TimeoutExpired:
                w.kill()
                out, err = w.communicate()
                pytest.fail(f"a worker did not finish; jobs: {_job_states(url)}\n{err[-3000:]}")
            assert w.returncode == 0, (out[-3000:], err[-3000:])
            results.append(json.loads(out))
            logs.append(err)
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    assert sum(r["stalled_retried"] for r in results) >= 1  # the killed worker's job
    # (procrastinate's pool usually rides out the restart; "reconnects" counts the times
    # the worker loop itself had to start over, 0 or more.)

    code, jobs, _ = clerk.run("jobs")
    assert jobs["counts"]["done"] == N_DOCS and jobs["counts"]["failed"] == 0, \
        (json.dumps(jobs, ensure_ascii=False), [e[-2000:] for e in logs])
    assert jobs["counts"]["queued"] == jobs["counts"]["running"] == 0

    # Every document exactly once; the purged ones gone (the search lists active records);
    # the chain whole.
    code, found, err = auditor.run("search")
    assert code == 0, err
    shas = [r["content_sha256"] for r in found["records"]]
    assert len(shas) == len(set(shas)) == N_DOCS
    assert set(shas) == set(expected)
    code, ledger, err = auditor.run("ledger", "verify")
    assert code == 0, (ledger, err[-2000:])
    code, verified, err = hosts[2].run("verify", "--all")
    assert code == 0, (verified if len(str(verified)) < 4000 else "see stderr", err[-2000:])
    _assert_one_checkpoint_chain(url)


def _job_states(url: str) -> list[tuple[str, str, int]]:
    with psycopg.connect(url, connect_timeout=3) as conn:
        return [(str(t), str(s), int(n)) for t, s, n in conn.execute(
            "SELECT task_name, status::text, count(*) FROM procrastinate_jobs "
            "GROUP BY 1, 2 ORDER BY 1, 2").fetchall()]


def _failing_checks(out: str) -> Any:
    try:
        doc = json.loads(out)
    except json.JSONDecodeError:
        return out[-2000:]
    return [(r.get("record_id"), c) for r in doc.get("reports", []) for c in r.get("checks", [])
            if c.get("status") == "fail"][:10] or {k: v for k, v in doc.items() if k != "reports"}


def _assert_one_checkpoint_chain(url: str) -> None:
    """Checkpoint sizes strictly increase with no two at one size: one chain, no fork."""
    with psycopg.connect(url) as conn:
        sizes = [int(r[0]) for r in conn.execute(
            "SELECT tree_size FROM checkpoints ORDER BY tree_size").fetchall()]
        leaves = conn.execute("SELECT count(*), min(idx), max(idx) FROM ledger").fetchone()
    assert sizes and len(sizes) == len(set(sizes))
    assert leaves is not None
    count, lo, hi = (int(x) for x in leaves)
    assert (lo, hi) == (0, count - 1)  # gapless positions
    assert sizes[-1] == count  # the last checkpoint covers every leaf
