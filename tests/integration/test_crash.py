"""Crash consistency: kill edoc at every store operation and catalog commit, then recover.

For ingest, purge, correction and retention extension, a counting run names every operation
that changes the store or commits to the catalog; the test then kills a fresh copy of the
same archive right before and right after each of them (``tests/integration/faults.py``),
and, for ingest, inside each put of the local store (object stored, metadata not yet),
lets ``edoc doctor --repair`` or the next run of the same command clean up, and checks what
a user and an auditor would see:

- ``edoc verify --all``, ``edoc ledger verify`` and ``edoc doctor`` pass: a record is either
  fully present and verifiable or not in the catalog at all, never half-visible;
- every file the dead run reported as stored is there and ``get`` returns its bytes;
- re-running the same job finishes it: each input file is stored exactly once;
- a resumed purge certifies every disposed version exactly once across its certificates.

Other faults: a full disk (ENOSPC raised inside the store's write path), a read-only
archive (a read-only bind mount in a private mount namespace: ``unshare -m`` works here,
and as root ``chmod`` would not stop a single write) and an unreachable TSA.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import samples
from tests.helpers import Edoc, copy_archive, jst_today_minus, profiles_in_env
from tests.integration.faults import (
    REPO,
    ChildOutcome,
    ChildSpec,
    DiskFull,
    FaultPoint,
    fault_points,
    run_child,
    torn_points,
)

SHORT = 2  # seconds a test-short record is kept
#: Fault points injected by this module, by scenario (printed at the end; the lead quotes it).
INJECTED: Counter[str] = Counter()

PROFILES = {
    "test-short": 'id = "test-short"\nextends = "general"\ntitle = "expires fast (tests)"\n'
                  f'[retention]\nduration = "PT{SHORT}S"\n',
    # The per-record path: a sealed manifest and a checkpoint per record (as mhlw-medical).
    "test-sealed": 'id = "test-sealed"\nextends = "general"\ntitle = "sealed (tests)"\n'
                   '[authenticity]\ncheckpoint = "record"\nseal_manifest = true\n',
}


# -- fixtures and helpers -------------------------------------------------------------------

@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """EDOC_POLICIES with the test profiles, for the whole module (children inherit it)."""
    with profiles_in_env(tmp_path_factory.mktemp("policies"), PROFILES) as pol:
        yield pol


@pytest.fixture(scope="module")
def inbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five receipts, and a CSV manifest re-running them (four general, the last one sealed
    with a checkpoint of its own)."""
    box = tmp_path_factory.mktemp("inbox")
    files = [samples.small_jpeg(box / f"receipt-{i}.jpg", seed=i, target_bytes=30_000)
             for i in range(5)]
    with (box / "batch.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "profile", "date"])
        for spec in _file_specs(files):
            w.writerow([Path(spec["path"]).name, spec["profiles"][0], spec["date"]])
    return box


def _inputs(inbox: Path) -> list[Path]:
    return sorted(inbox.glob("receipt-*.jpg"))


def _file_specs(files: list[Path]) -> list[dict[str, Any]]:
    return [{"path": str(p), "date": jst_today_minus(1),
             "profiles": ["test-sealed"] if i == len(files) - 1 else ["general"]}
            for i, p in enumerate(files)]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _init(path: Path) -> Edoc:
    e = Edoc(path)
    res = e("init", str(path))
    assert res.exit_code == 0, res.output
    return e


def _copy(template: Path, dest: Path) -> Edoc:
    copy_archive(template, dest)
    return Edoc(dest)


def _active(e: Edoc) -> list[tuple[str, str]]:
    """(record id, content SHA-256) of every active record's latest version."""
    with e.db() as db:
        return list(db.execute(
            "SELECT r.record_id, v.content_sha256 FROM records r JOIN versions v "
            "ON v.record_id = r.record_id AND v.version = r.latest_version "
            "WHERE r.state = 'active' ORDER BY r.record_id"))


def _versions(e: Edoc, rid: str) -> list[tuple[int, str, str | None, int | None]]:
    with e.db() as db:
        return list(db.execute("SELECT version, kind, content_sha256, amount FROM versions "
                               "WHERE record_id = ? ORDER BY version", (rid,)))


def _failing(checks: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(c["name"], c["code"]) for c in checks if c["status"] != "pass"]


def _assert_consistent(e: Edoc, context: str, *, doctor: bool = True) -> None:
    """What an auditor runs: every record verifies, the ledger verifies, doctor is clean
    (``doctor=False`` right after ``doctor --repair``, whose exit status already says so)."""
    code, report = e.json("verify", "--all")
    bad = [(r["record_id"], r["version"], _failing(r["checks"]))
           for r in report.get("reports", []) if r["status"] != "pass"]
    assert code == 0, f"{context}: verify --all: {bad or report}"
    code, led = e.json("ledger", "verify")
    assert code == 0, f"{context}: ledger verify: {_failing(led['checks'])}"
    if not doctor:
        return
    code, doc = e.json("doctor")
    fails = [(c["name"], c["code"]) for c in doc["checks"] if c["status"] == "fail"]
    assert code == 0, f"{context}: doctor: {fails}"


def _loop(name: str, template: Path, tmp_path: Path, service: str, args: dict[str, Any],
          check: Callable[[Edoc, ChildOutcome, int, str], None],
          points_of: Callable[[list[str]], list[FaultPoint]] = fault_points) -> None:
    """Kill a copy of ``template`` at each fault point of ``service``; ``check`` recovers
    and asserts. The fault points come from a counting run of the same job."""
    counting = run_child(ChildSpec(str(_copy(template, tmp_path / "count").archive),
                                   service, args))
    assert counting.returncode == 0 and counting.error is None, counting
    points = points_of(counting.trace)
    assert points
    for i, point in enumerate(points):
        e = _copy(template, tmp_path / f"p{i}")
        out = run_child(ChildSpec(str(e.archive), service, args, kill=point))
        assert out.killed, f"{name} {point}: not reached ({out.returncode}, {out.error})"
        check(e, out, i, f"{name} killed {point}")
        shutil.rmtree(e.archive)
    INJECTED[name] += len(points)


# -- ingest ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def empty_archive(env: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _init(tmp_path_factory.mktemp("empty") / "archive").archive


def _rerun_batch(e: Edoc, inbox: Path, where: str, *, before: set[str]) -> dict[str, Any]:
    """The same batch again: what is stored is a duplicate, the rest is stored."""
    code, doc = e.json("ingest", "--manifest", str(inbox / "batch.csv"))
    for res in doc["results"]:
        # A file the dead run had stored but not catalogued is finished by this run before
        # it looks for duplicates: a duplicate then, too.
        if res["sha256"] in before or res["status"] == "duplicate":
            assert res["status"] == "duplicate", f"{where}: {doc}"
            assert res["error"]["code"] == "DUPLICATE_CONTENT"
        else:
            assert res["status"] == "stored", f"{where}: {doc}"
    assert code == (0 if all(r["status"] == "stored" for r in doc["results"]) else 1), doc
    assert doc["checkpoint_error"] is None, f"{where}: {doc}"
    return doc


def _ingest_check(inbox: Path) -> Callable[[Edoc, ChildOutcome, int, str], None]:
    want = sorted(_sha(p) for p in _inputs(inbox))

    def check(e: Edoc, out: ChildOutcome, i: int, where: str) -> None:
        if i % 2 == 0:  # doctor --repair finishes what the dead run left
            code, doc = e.json("doctor", "--repair")
            assert code == 0, f"{where}: doctor --repair: {doc}"
            _assert_consistent(e, where, doctor=False)
        # else: the next run alone must finish it
        for r in out.stored:  # reported stored: present, byte for byte
            got = e.archive.parent / f"{e.archive.name}-{r['record_id']}"
            assert e("get", r["record_id"], "-o", str(got)).exit_code == 0, where
            assert _sha(got) == r["sha256"], where
        _rerun_batch(e, inbox, where, before={sha for _rid, sha in _active(e)})
        assert sorted(sha for _rid, sha in _active(e)) == want, f"{where}: stored twice?"
        _assert_consistent(e, where + ", after the re-run")

    return check


def test_ingest_killed_at_every_operation(empty_archive: Path, inbox: Path,
                                          tmp_path: Path) -> None:
    _loop("ingest", empty_archive, tmp_path, "ingest", {"files": _file_specs(_inputs(inbox))},
          _ingest_check(inbox))


def test_ingest_killed_inside_every_local_put(empty_archive: Path, inbox: Path,
                                             tmp_path: Path) -> None:
    """The local store's own window: an object linked, its metadata (retention) not yet
    written. The retry or the recovery completes it; until then it is kept indefinitely."""
    _loop("ingest-torn-put", empty_archive, tmp_path, "ingest",
          {"files": _file_specs(_inputs(inbox))}, _ingest_check(inbox), points_of=torn_points)


def test_concurrent_ingest_killed_across_the_run(empty_archive: Path, inbox: Path,
                                                 tmp_path: Path) -> None:
    """Several files in flight (``Ingestor(jobs=4)``, the CLI's default on a local store):
    killed at operations spread over a run, then repaired and re-run, no record is lost,
    half-stored or stored twice. The threads interleave differently from run to run, so
    operation N of the counting run is not the same operation in a killed run, and with
    group commit a run may make fewer catalog commits than the counting run did: a kill
    point can fall beyond the end of a run. Every run is checked either way, and most of
    them must have been killed."""
    args = {"files": _file_specs(_inputs(inbox)), "jobs": 4}
    counting = run_child(ChildSpec(str(_copy(empty_archive, tmp_path / "count").archive),
                                   "ingest", args))
    assert counting.returncode == 0 and counting.error is None, counting
    points = fault_points(counting.trace)[::3]
    check = _ingest_check(inbox)
    killed = 0
    for i, point in enumerate(points):
        e = _copy(empty_archive, tmp_path / f"p{i}")
        out = run_child(ChildSpec(str(e.archive), "ingest", args, kill=point))
        assert out.killed or (out.returncode == 0 and out.error is None), \
            f"jobs=4 {point}: neither killed nor finished ({out.returncode}, {out.error})"
        killed += out.killed
        check(e, out, i, f"jobs=4 killed {point}" if out.killed else f"jobs=4 {point} (ran)")
    assert killed >= len(points) * 2 // 3, f"only {killed} of {len(points)} runs were killed"


# -- purge ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def expired_archive(env: Path, inbox: Path, tmp_path_factory: pytest.TempPathFactory
                    ) -> tuple[Path, set[tuple[str, int]], str]:
    """Three expired records (one of them corrected: two versions) and one kept record.
    Returns the archive, the versions a purge must dispose, and the kept record."""
    e = _init(tmp_path_factory.mktemp("expired") / "archive")
    files = _inputs(inbox)
    code, doc = e.json("ingest", *map(str, files[:3]), "--profile", "test-short",
                       "--date", jst_today_minus(1))
    assert code == 0, doc
    short = [r["record_id"] for r in doc["results"]]
    code, doc = e.json("ingest", str(files[3]), "--date", jst_today_minus(1))
    assert code == 0, doc
    kept = doc["results"][0]["record_id"]
    code, doc = e.json("correct", short[0], "--reason", "amount mistyped", "--amount", "1200")
    assert code == 0, doc
    time.sleep(SHORT + 1)
    expected = {(short[0], 1), (short[0], 2), (short[1], 1), (short[2], 1)}
    return e.archive, expected, kept


def _certified(e: Edoc) -> Counter[tuple[str, int]]:
    """How often each version is listed as disposed across every certificate in the store."""
    listed: Counter[tuple[str, int]] = Counter()
    for cert in sorted((e.objects / "disposals").glob("*.json")):
        for item in json.loads(cert.read_bytes())["disposed"]:
            listed[(item["record_id"], item["version"])] += 1
    return listed


def test_purge_killed_at_every_operation(
        expired_archive: tuple[Path, set[tuple[str, int]], str], tmp_path: Path) -> None:
    template, expected, kept = expired_archive

    def check(e: Edoc, out: ChildOutcome, i: int, where: str) -> None:
        code, doc = e.json("purge", "--yes")  # resumes the interrupted run first
        assert code == 0, f"{where}: purge: {doc}"
        _assert_consistent(e, where)
        listed = _certified(e)
        assert set(listed) == expected, f"{where}: certified {listed}"
        assert all(n == 1 for n in listed.values()), f"{where}: certified twice: {listed}"
        assert [rid for rid, _sha in _active(e)] == [kept], where
        for rid, _v in expected:
            left = [p for p in (e.objects / "records" / rid).rglob("*") if p.is_file()]
            assert not left, f"{where}: left in the store: {left}"

    _loop("purge", template, tmp_path, "purge", {}, check)


# -- corrections and retention extensions ----------------------------------------------------

@pytest.fixture(scope="module")
def one_record(env: Path, inbox: Path, tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[Path, str, Path]:
    """A record with corporate-tax retention (a loss year extends it) that was read once
    since its checkpoint, and a rescan of it."""
    e = _init(tmp_path_factory.mktemp("one") / "archive")
    original = _inputs(inbox)[0]
    code, doc = e.json("ingest", str(original), "--date", jst_today_minus(1), "--amount",
                       "1000", "--retention", "corporate-tax")
    assert code == 0, doc
    rid = doc["results"][0]["record_id"]
    # A read: the next checkpoint first logs it (an access-log document and leaf), so the
    # change's run is also killed around that.
    assert e.json("show", rid)[0] == 0
    rescan = samples.small_jpeg(inbox / "rescan.jpg", seed=99, target_bytes=30_000)
    return e.archive, rid, rescan


def test_correction_killed_at_every_operation(one_record: tuple[Path, str, Path],
                                              tmp_path: Path) -> None:
    template, rid, rescan = one_record
    original_sha = _versions(Edoc(template), rid)[0][2]
    args = {"record_id": rid, "reason": "rescanned", "file": str(rescan), "amount": "1100"}

    def check(e: Edoc, out: ChildOutcome, i: int, where: str) -> None:
        if i % 2 == 0:
            code, doc = e.json("doctor", "--repair")
            assert code == 0, f"{where}: doctor --repair: {doc}"
            _assert_consistent(e, where, doctor=False)
            assert [v[0] for v in _versions(e, rid)] in ([1], [1, 2]), where
        code, doc = e.json("correct", rid, str(rescan), "--amount", "1100", "--reason",
                           "rescanned")
        # Either this run makes v2, or the dead run's v2 was finished first: no change left.
        assert code == 0 or doc["error"]["code"] == "NO_CHANGE", f"{where}: {doc}"
        assert _versions(e, rid) == [(1, "original", original_sha, 1000),
                                     (2, "correction", _sha(rescan), 1100)], where
        got = e.archive.parent / f"{e.archive.name}.v1"
        assert e("get", rid, "--version", "1", "-o", str(got)).exit_code == 0
        assert _sha(got) == original_sha, where
        _assert_consistent(e, where)

    _loop("correct", template, tmp_path, "correct", args, check)


def test_retention_extension_killed_at_every_operation(one_record: tuple[Path, str, Path],
                                                       tmp_path: Path) -> None:
    template, rid, _rescan = one_record
    args = {"record_id": rid, "reason": "欠損金"}

    def check(e: Edoc, out: ChildOutcome, i: int, where: str) -> None:
        if i % 2 == 0:
            code, doc = e.json("doctor", "--repair")
            assert code == 0, f"{where}: doctor --repair: {doc}"
            _assert_consistent(e, where, doctor=False)
        code, doc = e.json("retention", "extend", rid, "--loss-year", "--reason", "欠損金")
        assert code == 0 or doc["error"]["code"] == "RETENTION_NOT_EXTENDED", f"{where}: {doc}"
        assert [v[:2] for v in _versions(e, rid)] == [(1, "original"),
                                                      (2, "retention-extension")], where
        # verify's lock check: every object is locked at least as long as the new manifest
        _assert_consistent(e, where)

    _loop("extend", template, tmp_path, "extend", args, check)


# -- other faults ---------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["content", "manifest", "checkpoint"])
def test_disk_full_is_reported_and_a_rerun_finishes(where: str, empty_archive: Path,
                                                    inbox: Path, tmp_path: Path) -> None:
    """The disk fills while the third file's content (or manifest) is written, or at the
    batch's last checkpoint; it stays full for the rest of the run."""
    files = _inputs(inbox)
    args = {"files": _file_specs(files)}
    counting = run_child(ChildSpec(str(_copy(empty_archive, tmp_path / "count").archive),
                                   "ingest", args))
    pattern = {"content": r"^put records/.*/content$",
               "manifest": r"^put_bytes records/.*/manifest\.json$",
               "checkpoint": r"^put_bytes checkpoints/"}[where]
    hits = [n for n, label in enumerate(counting.trace, 1) if re.match(pattern, label)]
    # the third file; or the batch's last checkpoint (the fifth, sealed file's own: the
    # closing one then fails too)
    op = hits[2] if where != "checkpoint" else hits[-3]
    e = _copy(empty_archive, tmp_path / "full")
    out = run_child(ChildSpec(str(e.archive), "ingest", args, disk_full=DiskFull(op)))
    assert out.returncode == 1, out
    codes = [r["error"]["code"] if r["error"] else r["status"] for r in out.results]
    if where == "checkpoint":
        assert codes == ["stored"] * 5
        assert out.done and out.done["checkpoint_error"]["code"] == "STORAGE_FULL", out.done
    else:
        assert codes == ["stored", "stored"] + ["STORAGE_FULL"] * 3, codes
    # Nothing half-written: what is catalogued is whole; what failed is not there at all.
    stored = {r["sha256"] for r in out.stored}
    assert {sha for _rid, sha in _active(e)} == stored
    with e.db() as db:
        assert db.execute("SELECT count(*) FROM intents").fetchone() == (0,)
    manifests = {p.parent.parent.name for p in (e.objects / "records").rglob("manifest.json")}
    assert manifests == {r["record_id"] for r in out.stored}
    _code, report = e.json("verify", "--all")
    for r in report["reports"]:  # whole, only not timestamped yet
        assert set(_failing(r["checks"])) <= {("inclusion", "NOT_YET_CHECKPOINTED")}, r
    assert e.json("ledger", "verify")[0] == 0
    # Space freed: the same batch again finishes the job.
    _rerun_batch(e, inbox, f"disk full at {where}", before=stored)
    assert sorted(sha for _rid, sha in _active(e)) == sorted(map(_sha, files))
    _assert_consistent(e, f"disk full at {where}, after the re-run")
    INJECTED["disk-full"] += 1


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_read_only_archive_is_refused_cleanly(empty_archive: Path, inbox: Path,
                                              tmp_path: Path) -> None:
    """The archive directory on a read-only mount (a bind mount in a private mount namespace;
    as root, chmod would not stop a single write). Ingest fails with one clear line and
    writes nothing; once the archive is writable again, the same ingest works."""
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare -m is not permitted here")
    e = _copy(empty_archive, tmp_path / "ro")
    files = _inputs(inbox)
    assert e.json("ingest", str(files[0]), "--date", jst_today_minus(1))[0] == 0
    before = _tree(e.archive)

    def read_only(*args: str) -> subprocess.CompletedProcess[str]:
        script = 'A="$1"; shift; mount --bind "$A" "$A" && mount -o remount,bind,ro "$A" ' \
                 '&& exec "$@"'
        return subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
             str(e.archive), sys.executable, "-m", "edoc", "--archive", str(e.archive),
             *args], cwd=REPO, capture_output=True, text=True, timeout=60)

    proc = read_only("ingest", str(files[1]), "--date", jst_today_minus(1), "--json")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False
    err = doc["error"] if "error" in doc else doc["results"][0]["error"]
    # SQLite: the writer's lock file or the catalog; PostgreSQL: the local store's write
    assert err["code"] in {"ARCHIVE_READ_ONLY", "CATALOG_READ_ONLY", "STORAGE_ACCESS_DENIED"}, doc
    assert _tree(e.archive) == before  # not a byte written
    assert e.json("ingest", str(files[1]), "--date", jst_today_minus(1))[0] == 0
    _assert_consistent(e, "after the read-only attempt")


def test_tsa_unreachable_then_back(empty_archive: Path, inbox: Path, tmp_path: Path) -> None:
    """The records are stored and catalogued (step 3 is the commit point) but the run exits
    1 with TSA_UNREACHABLE; they verify as whole but not yet timestamped, and the next run
    with the TSA back checkpoints them although it stores nothing new."""
    e = _copy(empty_archive, tmp_path / "tsa")
    toml = e.archive / "edoc.toml"
    original = toml.read_text(encoding="utf-8")
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        toml.write_text(original.replace(
            'kind = "embedded"\nurl = ""', f'kind = "http"\nurl = "http://127.0.0.1:{port}/"'),
            encoding="utf-8")
        code, doc = e.json("ingest", "--manifest", str(inbox / "batch.csv"))
    assert code == 1
    assert doc["checkpoint_error"]["code"] == "TSA_UNREACHABLE", doc
    assert [r["status"] for r in doc["results"]] == ["stored"] * 5
    code, report = e.json("verify", "--all")
    assert code == 1
    for r in report["reports"]:
        assert _failing(r["checks"]) == [("inclusion", "NOT_YET_CHECKPOINTED")], r
    assert e.json("ledger", "verify")[0] == 0
    code, doc = e.json("doctor")
    assert ("ledger", "TREE_HEAD_NOT_CHECKPOINTED") in _failing(doc["checks"])
    toml.write_text(original, encoding="utf-8")  # the TSA is back
    doc = _rerun_batch(e, inbox, "TSA back", before={sha for _rid, sha in _active(e)})
    assert doc["checkpoint"] is not None
    _assert_consistent(e, "TSA back")


def test_zz_report_fault_points(capsys: pytest.CaptureFixture[str]) -> None:
    """Runs last in this module: how many fault points were injected (the lead quotes it)."""
    total = sum(INJECTED.values())
    if not total:
        pytest.skip("no fault-injection test ran")
    with capsys.disabled():
        print(f"\nfault points injected: {total} ({dict(sorted(INJECTED.items()))})")
