"""The benchmarks, run small (``bench/run.py --quick``), so the bench code cannot rot.

Numbers are not judged here (timing assertions would be flaky on a shared machine); what is
checked is that every part ran, measured something real and produced its table rows with
their baselines, and that the run left the process as it found it (environment, fsync).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from bench import run as bench_run
from bench.common import PARTS, percentile, render_table
from tests.seaweed import find_weed

#: Rows every quick run must produce, by part: (substring of the measurement, needs S3).
EXPECTED = {
    "ingest": [("S3 (SeaweedFS, Object Lock), default profile, images", True),
               ("S3 (SeaweedFS, Object Lock), per-record seals, PDFs", True),
               ("ceiling: edoc's request pattern alone", True),
               ("CLI, one process for", True),
               ("local store, default profile, images", False),
               ("local store, per-record seals, PDFs", False),
               ("component: CAdES seal of one manifest", False),
               ("component: readability gate", False)],
    "verify": [("edoc verify --all --json (CLI", False),
               ("verify_stream, 1 worker (library)", False)],
    "search": [("date range + amount range + counterparty: p95", False),
               ("counterparty name only: p95", False),
               ("amount range + counterparty, no dates", False)],
    "purge": [("local store,", False), ("S3 (SeaweedFS),", True)],
    "startup": [("edoc --help, mean wall", False),
                ("edoc search (empty archive), mean wall", False)],
    "memory": [("local store: edoc ingest", False), ("local store: edoc verify --all", False)],
    "registry": [("rows (one transaction)", False), ("lookup p95", False)],
    "einvoice": [("JP PINT invoices, no typed fields", False)],
    "fragments": [("counterparty fragment (1-2 chars) + one month", False),
                  ("counterparty fragment of 1 char, first 100", False),
                  ("text fragment (1-2 chars), every hit", False)],
}


def test_quick_bench_produces_its_table(tmp_path: Path) -> None:
    has_s3 = find_weed() is not None
    env_before = dict(os.environ)
    fsync_before = os.fsync
    out = tmp_path / "bench.json"
    args = ["--quick", "--workdir", str(tmp_path / "work"), "--json", str(out)]
    if not has_s3:
        args.append("--no-s3")

    bench, info, failed = bench_run.run(args)

    assert failed == []
    assert {r.part for r in bench.rows} == set(PARTS)
    for part, expected in EXPECTED.items():
        names = [r.name for r in bench.rows if r.part == part]
        for fragment, needs_s3 in expected:
            if needs_s3 and not has_s3:
                continue
            assert any(fragment in n for n in names), f"{part}: no row {fragment!r} in {names}"
    for r in bench.rows:
        assert math.isfinite(r.value) and r.value > 0, r
        if r.baseline is not None:
            assert r.baseline_value is not None and r.baseline_value > 0, r
            assert r.ratio is not None and r.ratio > 0, r
        if r.target is not None:
            assert isinstance(r.met, bool), r
    # Ratios are derived from the measured pair, never typed in.
    ingest = next(r for r in bench.rows if r.name.startswith("local store, default profile"))
    assert ingest.baseline_value is not None and ingest.ratio is not None
    assert ingest.ratio == pytest.approx(ingest.value / ingest.baseline_value)

    table = render_table(bench.rows)
    assert all(r.name in table for r in bench.rows)
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert len(doc["rows"]) == len(bench.rows) and doc["quick"] is True
    assert info["python"] and info["cpu"]
    # The run cleans up after itself: scratch directory, environment, os.fsync.
    assert not (tmp_path / "work").exists()
    assert dict(os.environ) == env_before
    assert os.fsync is fsync_before


def test_unknown_part_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="unknown part"):
        bench_run.run(["--quick", "--only", "nope", "--workdir", str(tmp_path)])


def test_percentile_is_nearest_rank() -> None:
    # A reported p95 must be a latency that happened, never an interpolation.
    assert percentile([float(v) for v in range(1, 101)], 95) == 95.0
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0
    assert percentile([7.5], 95) == 7.5
    assert percentile([1.0, 10.0], 95) == 10.0
    with pytest.raises(ValueError):
        percentile([], 50)
