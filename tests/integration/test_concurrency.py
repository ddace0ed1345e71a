"""Concurrency: several real ``edoc`` processes on one archive at once.

Four ``edoc ingest`` processes (distinct files plus a few every one of them ingests), an
``edoc verify --all`` and an ``edoc purge --yes`` (with expired short-retention records)
start together. Afterwards: no ledger entry lost (``ledger verify``), one consistent tree
(``verify --all``, ``doctor``), no duplicate records, each shared file stored exactly once
(the other runs report DUPLICATE_CONTENT), no ``database is locked`` and no traceback in
any stderr, and every exit code as documented.

Two runs racing on one new file can both pass the early duplicate check; the catalog
settles it when the version is reserved (``edoc.services.ingest`` commit protocol). The race is also
made deterministic: a writer is frozen (SIGSTOP) right after its reservation while another
run ingests the same file, and ``doctor --repair`` must leave the live writer's version alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import samples
from tests.helpers import Edoc, copy_archive, jst_today_minus
from tests.integration.faults import REPO, Child, ChildSpec, FaultPoint, run_child

SHORT = 2  # seconds a test-short record is kept
WRITERS = 4
OWN_FILES = 7
SHARED_FILES = 3


@pytest.fixture
def edoc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Edoc]:
    pol = tmp_path / "policies"
    pol.mkdir()
    (pol / "test-short.toml").write_text(
        'id = "test-short"\nextends = "general"\ntitle = "expires fast (tests)"\n'
        f'[retention]\nduration = "PT{SHORT}S"\n', encoding="utf-8")
    monkeypatch.setenv("EDOC_POLICIES", str(pol))
    e = Edoc(tmp_path / "archive")
    assert e("init", str(e.archive)).exit_code == 0
    yield e


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _edoc(archive: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "edoc", "--archive", str(archive), *args],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ.copy())


def _assert_clean_stderr(name: str, stderr: str) -> None:
    for bad in ("database is locked", "Traceback", "CATALOG_BUSY", "INTERNAL_ERROR"):
        assert bad not in stderr, f"{name}: {stderr}"


def test_concurrent_ingests_verify_and_purge(edoc: Edoc, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    seed = iter(range(1000))
    expiring = [samples.small_jpeg(inbox / f"old-{i}.jpg", next(seed), target_bytes=20_000)
                for i in range(3)]
    code, doc = edoc.json("ingest", *map(str, expiring), "--profile", "test-short",
                          "--date", jst_today_minus(2))
    assert code == 0, doc
    expired = {r["record_id"] for r in doc["results"]}
    shared = [samples.small_jpeg(inbox / f"shared-{i}.jpg", next(seed), target_bytes=20_000)
              for i in range(SHARED_FILES)]
    own = [[samples.small_jpeg(inbox / f"w{w}-{i}.jpg", next(seed), target_bytes=20_000)
            for i in range(OWN_FILES)] for w in range(WRITERS)]
    time.sleep(SHORT + 1)  # the short records have expired

    # Shared files first in every batch: the runs reach them at the same moment.
    procs: dict[str, subprocess.Popen[str]] = {
        f"ingest-{w}": _edoc(edoc.archive, "ingest", *map(str, shared + own[w]),
                             "--date", jst_today_minus(1), "--json")
        for w in range(WRITERS)}
    procs["verify"] = _edoc(edoc.archive, "verify", "--all", "--json")
    procs["purge"] = _edoc(edoc.archive, "purge", "--yes", "--json")
    outputs: dict[str, tuple[int, dict[str, Any]]] = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        _assert_clean_stderr(name, stderr)
        outputs[name] = (proc.returncode, json.loads(stdout))  # exactly one JSON document

    # ingest: own files stored; each shared file stored by exactly one run
    stored_by: Counter[str] = Counter()
    record_ids: list[str] = []
    for w in range(WRITERS):
        code, doc = outputs[f"ingest-{w}"]
        by_sha = {r["sha256"]: r for r in doc["results"]}
        for p in own[w]:
            assert by_sha[_sha(p)]["status"] == "stored", doc
        for p in shared:
            res = by_sha[_sha(p)]
            assert res["status"] in ("stored", "duplicate"), res
            if res["status"] == "duplicate":
                assert res["error"]["code"] == "DUPLICATE_CONTENT"
        stored = [r for r in doc["results"] if r["status"] == "stored"]
        stored_by.update(r["sha256"] for r in stored)
        record_ids += [r["record_id"] for r in stored]
        assert code == (0 if len(stored) == len(doc["results"]) else 1), doc
        assert doc["checkpoint_error"] is None, doc
    assert all(stored_by[_sha(p)] == 1 for p in shared), stored_by
    assert len(record_ids) == len(set(record_ids)) == WRITERS * OWN_FILES + SHARED_FILES

    # purge: exactly the expired records, certified
    code, doc = outputs["purge"]
    assert code == 0, doc
    assert {d["record_id"] for d in doc["disposed"]} == expired
    assert len(doc["certificates"]) == 1

    # verify ran while records were added and removed: it either passed, or what it flagged
    # is what was in flight (not yet checkpointed, or being disposed at that moment)
    code, doc = outputs["verify"]
    assert code in (0, 1)
    being_disposed = {"CONTENT_MISSING", "MANIFEST_MISSING", "OBJECT_MISSING",
                      "DISPOSAL_IN_PROGRESS"}
    for rep in doc["reports"]:
        for c in rep["checks"]:
            if c["status"] != "pass":
                assert c["code"] == "NOT_YET_CHECKPOINTED" or (
                    c["code"] in being_disposed and rep["record_id"] in expired), (rep, c)
    assert code == (0 if all(r["status"] == "pass" for r in doc["reports"]) else 1)

    # afterwards: one consistent archive
    code, doc = edoc.json("verify", "--all")
    assert code == 0, [r for r in doc["reports"] if r["status"] != "pass"]
    assert doc["summary"]["versions"] == WRITERS * OWN_FILES + SHARED_FILES + len(expired)
    code, doc = edoc.json("ledger", "verify")
    assert code == 0, doc
    code, doc = edoc.json("doctor")
    assert code == 0, [c for c in doc["checks"] if c["status"] == "fail"]
    with edoc.db() as db:
        ingests = db.execute("SELECT count(*), count(DISTINCT record_id) FROM ledger "
                             "WHERE event = 'ingest'").fetchone()
        active = db.execute("SELECT v.content_sha256 FROM versions v JOIN records r "
                            "ON r.record_id = v.record_id WHERE r.state = 'active'").fetchall()
    # no lost ledger entries: one ingest leaf per record ever stored, expired ones included
    assert ingests == (len(record_ids) + len(expired),) * 2
    want = sorted(_sha(p) for p in shared + [f for batch in own for f in batch])
    assert sorted(sha for (sha,) in active) == want


def test_racing_writer_is_stopped_by_the_reservation(edoc: Edoc, tmp_path: Path) -> None:
    """Deterministic race: writer A is frozen right after reserving a new file; B ingests the
    same file meanwhile (and passes the early check, since A has catalogued nothing). B
    must be told DUPLICATE_CONTENT; doctor --repair must leave the live writer alone; A then
    finishes, and the file is stored once."""
    f = samples.small_jpeg(tmp_path / "receipt.jpg", 1, target_bytes=20_000)
    other = samples.small_jpeg(tmp_path / "other.jpg", 2, target_bytes=20_000)
    args = {"files": [{"path": str(f), "date": jst_today_minus(1)}]}
    # The first operation of an ingest is the reservation's commit.
    copy_dir = tmp_path / "count"
    copy_archive(edoc.archive, copy_dir)
    counting = run_child(ChildSpec(str(copy_dir), "ingest", args))
    assert counting.trace[0] == "commit" and counting.trace[1].endswith("/content")
    # A fresh interpreter, not a fork: this process has the archive's catalog open, and a
    # forked child would inherit SQLite's per-process lock bookkeeping for that file.
    a = Child(ChildSpec(str(edoc.archive), "ingest", args,
                        kill=FaultPoint(1, "after", action="stop")), fork=False)
    try:
        a.wait_stopped()
        seen = a.report.read_text(encoding="utf-8")  # what A did before it froze
        code, doc = edoc.json("ingest", str(f), "--date", jst_today_minus(1))
        writers = sorted(p.name for p in (edoc.archive / ".writers").glob("*"))
        assert code == 1, f"{json.dumps(doc)}\nA reported: {seen}\nwriter locks: {writers}"
        (res,) = doc["results"]
        assert res["status"] == "duplicate" and res["error"]["code"] == "DUPLICATE_CONTENT"
        assert "being stored by another run" in res["error"]["message"]
        # A live writer's version is not "interrupted": repair leaves it alone
        code, doc = edoc.json("doctor", "--repair")
        intents = [c for c in doc["checks"] if c["name"] == "intents"]
        assert intents and intents[0]["status"] == "pass", doc
        assert "1 version(s) being written" in intents[0]["detail"]
        assert not [line for line in doc["repaired"] if "completed" in line or "dropped" in line]
        # other work goes on meanwhile
        assert edoc.json("ingest", str(other), "--date", jst_today_minus(1))[0] == 0
    finally:
        a.resume()
    out = a.wait()
    assert out.returncode == 0, out
    assert [r["status"] for r in out.results] == ["stored"]
    with edoc.db() as db:
        shas = [s for (s,) in db.execute("SELECT content_sha256 FROM versions")]
    assert sorted(shas) == sorted([_sha(f), _sha(other)])
    assert edoc.json("verify", "--all")[0] == 0
    assert edoc.json("ledger", "verify")[0] == 0
    assert edoc.json("doctor")[0] == 0
