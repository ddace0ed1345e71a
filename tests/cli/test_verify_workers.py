"""``verify --all --workers N``: worker processes give the same report as one process — the
tampered record fails, the others pass, in the same order — and the summary says how many
processes verified. A worker that cannot open the archive says why; a worker that dies
ends the run with an error, never with a pass for what it did not verify."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from multiprocessing import forkserver
from pathlib import Path

import pytest

from edoc.errors import EdocError
from edoc.services import period_verification
from edoc.services.archive import Archive
from edoc.services.period_verification import verify_stream
from tests.helpers import Edoc, writable
from tests.samples import text_pdf


def _archive(tmp_path: Path, n: int = 3) -> tuple[Edoc, list[str]]:
    e = Edoc(tmp_path / "archive")
    assert e("init", str(e.archive)).exit_code == 0
    files = [text_pdf(tmp_path / f"w{i}.pdf", f"Invoice {i}") for i in range(n)]
    code, doc = e.json("ingest", *map(str, files), "--profile", "general", "--date",
                       "2024-04-01", "--amount", "1000", "--counterparty", "株式会社テスト")
    assert code == 0, doc
    return e, [r["record_id"] for r in doc["results"]]


def test_worker_processes_report_what_one_process_reports(tmp_path: Path) -> None:
    e, ids = _archive(tmp_path, 5)
    tampered = ids[2]
    content = writable(e.objects / "records" / tampered / "v1" / "content")
    data = bytearray(content.read_bytes())
    data[10] ^= 0x01
    content.write_bytes(bytes(data))

    reports = {}
    for workers in ("1", "2"):
        res = e("verify", "--all", "--json", "--workers", workers)
        assert res.exit_code == 1, res.output
        out = json.loads(res.stdout)
        assert out["summary"]["workers"] == int(workers)
        reports[workers] = out["reports"]
    assert reports["1"] == reports["2"]
    # rendered where it was verified (the JSON above, these rows): the same either way
    rows = {w: e("verify", "--all", "--csv", "--workers", w).stdout for w in ("1", "2")}
    assert rows["1"] == rows["2"] and tampered in rows["2"]
    assert f"{tampered},1,fail,OK,OK,DIGEST_MISMATCH," in rows["2"]
    failed = {r["record_id"]: {c["code"] for c in r["checks"] if c["status"] != "pass"}
              for r in reports["2"] if r["status"] != "pass"}
    assert failed == {tampered: {"DIGEST_MISMATCH"}}


def test_a_worker_that_cannot_open_the_archive_says_why(tmp_path: Path) -> None:
    e, ids = _archive(tmp_path)
    archive = Archive.open(str(e.archive))
    config = e.archive / "edoc.toml"
    config.rename(tmp_path / "moved.toml")  # after this process opened it, before workers
    try:
        with pytest.raises(EdocError) as caught:
            list(verify_stream(archive, iter(ids), workers=2))
        assert caught.value.code == "ARCHIVE_NOT_FOUND"  # the worker's own reason
    finally:
        (tmp_path / "moved.toml").rename(config)
        archive.close()


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(stat.parent.name))
    return out


def test_a_killed_worker_is_an_error_never_a_pass(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    e, ids = _archive(tmp_path)
    monkeypatch.setattr(period_verification, "CHUNK_IDS", 1)
    archive = Archive.open(str(e.archive))
    try:
        stream = verify_stream(archive, iter(ids * 300), workers=2)  # 900 chunks
        assert next(stream).status.value == "pass"
        server = forkserver._forkserver._forkserver_pid
        assert server is not None
        workers = _children(server)
        assert workers, "no worker process found under the fork server"
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(EdocError) as caught:
            for _ in stream:
                pass
        assert caught.value.code == "VERIFY_WORKER_DIED"
    finally:
        archive.close()


def test_the_workers_stderr_holds_no_library_warning(tmp_path: Path) -> None:
    """The fork server is a fresh interpreter: the CLI's filter for pyHanko's DSA warning
    (``edoc.warnings_policy``) must reach it, or every period verification on worker
    processes printed the warning into a cron job's mail."""
    e, _ids = _archive(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "edoc", "--archive", str(e.archive), "verify", "--all",
         "--workers", "2"], capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr
    assert "3 version(s): 3 pass" in proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr
