"""``verify --all --workers N``: worker processes give the same report as one process — the
tampered record fails, the others pass, in the same order — and the summary says how many
processes verified."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import Edoc, writable
from tests.samples import text_pdf


def test_worker_processes_report_what_one_process_reports(tmp_path: Path) -> None:
    e = Edoc(tmp_path / "archive")
    assert e("init", str(e.archive)).exit_code == 0
    files = [text_pdf(tmp_path / f"d{i}.pdf", f"Invoice {i}") for i in range(5)]
    code, doc = e.json("ingest", *map(str, files), "--profile", "general", "--date",
                       "2024-04-01", "--amount", "1000", "--counterparty", "株式会社テスト")
    assert code == 0, doc
    tampered = doc["results"][2]["record_id"]
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
    failed = {r["record_id"]: {c["code"] for c in r["checks"] if c["status"] != "pass"}
              for r in reports["2"] if r["status"] != "pass"}
    assert failed == {tampered: {"DIGEST_MISMATCH"}}
