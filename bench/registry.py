"""Part 7 — the NTA invoice-issuer register: import a generated 全件データ file of
``registry_rows`` rows (1 million in the full run) and time ``registry_lookups`` lookups.

Target: a 1-million-row register imports in under a minute on the 2-core bench machine. The
baseline is the floor for the same rows: ``sqlite3`` alone ``executemany``-ing the already
parsed tuples into an unindexed table (no CSV, no checks, no index): the ratio says what the
parsing, checking and index build cost on top. Lookups are ``registration_status`` calls
(one index search each), p50 / p95 of single calls.
"""

from __future__ import annotations

import csv
import random
import sqlite3
import time
from datetime import date, timedelta
from pathlib import Path

from bench.common import Bench, Row, Stopwatch, log, percentile
from edoc.services.registry import import_register, registration_status

PART = "registry"
TARGET_S = 60.0
#: the target as a rate, so a quick run (a few thousand rows) is judged by it too
TARGET_RATE = 1_000_000 / TARGET_S
#: one number in this many has an older history row (latest=0) before its latest one
HISTORY_EVERY = 5


def _number(i: int) -> str:
    twelve = f"{i:012d}"
    total = sum(int(c) * (1 if n % 2 else 2) for n, c in enumerate(reversed(twelve), start=1))
    return f"T{9 - total % 9}{twelve}"


def write_register(path: Path, rows: int, seed: int = 11) -> int:
    """A 全件データ-shaped CSV (UTF-8 BOM, no header, 24 columns) of ``rows`` rows; returns
    how many distinct numbers it holds."""
    rng = random.Random(seed)
    start = date(2023, 10, 1)
    seq = 0
    numbers = 0
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        while seq < rows:
            numbers += 1
            number = _number(100_000_000 + numbers)
            kind = "2" if numbers % 3 else "1"
            reg = (start + timedelta(days=rng.randrange(700))).isoformat()
            history = numbers % HISTORY_EVERY == 0 and seq + 1 < rows
            if history:
                seq += 1
                w.writerow([seq, number, "01", "0", kind, "1", "0", reg, reg, "", "",
                            "東京都千代田区霞が関3丁目1番1号" if kind == "2" else "", "13",
                            "101", "", "", "", "カブシキガイシャテスト", f"株式会社テスト{numbers}",
                            "", "", "", "", ""])
            seq += 1
            process = rng.choice(("01", "01", "01", "02", "03", "04")) if history else "01"
            end = ((date.fromisoformat(reg) + timedelta(days=400)).isoformat()
                   if process in ("03", "04") else "")
            w.writerow([seq, number, process, "0", kind, "1", "1", reg,
                        end or reg, end if process == "04" else "",
                        end if process == "03" else "",
                        "東京都千代田区霞が関3丁目1番1号" if kind == "2" else "", "13", "101",
                        "", "", "", "カブシキガイシャテスト", f"株式会社テスト{numbers}", "", "",
                        "", f"テスト屋{numbers}" if kind == "1" else "", ""])
    return numbers


def _baseline(path: Path, db: Path) -> float:
    """sqlite3 alone inserting the same rows, pre-parsed, unchecked, unindexed."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = [(int(r[0]), r[1], r[2], int(r[3]), int(r[4]), int(r[6]), r[7] or None,
                 r[8] or None, r[9] or None, r[10] or None, r[18] or None, r[22] or None,
                 r[11] or None) for r in csv.reader(f)]
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (seq, number, process, correct, kind, latest, reg, upd, "
                 "disp, exp, name, trade, addr)")
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    for i in range(0, len(rows), 10_000):
        conn.executemany("INSERT INTO t VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         rows[i:i + 10_000])
    conn.execute("COMMIT")
    wall = time.perf_counter() - t0
    conn.close()
    return wall


def run(bench: Bench) -> None:
    n = bench.counts.registry_rows
    src = bench.path("registry") / "zenken.csv"
    t0 = time.perf_counter()
    numbers = write_register(src, n)
    log(f"registry: wrote {n:,} rows ({numbers:,} numbers, "
        f"{src.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")
    archive = bench.local_archive("registry")
    try:
        with Stopwatch() as sw:
            summary = import_register(archive, [src])
        if summary.register.rows != n:
            raise RuntimeError(f"imported {summary.register.rows} rows, not {n}")
        base = _baseline(src, bench.path("registry") / "baseline.sqlite")
        bench.add(Row(PART, f"import {n:,} rows (one transaction)", sw.wall, "s",
                      baseline="sqlite3 executemany, parsed, no index", baseline_value=base,
                      ratio=base / sw.wall,
                      target=f"≥ {TARGET_RATE:,.0f} rows/s (1M in < {TARGET_S:.0f} s)",
                      met=n / sw.wall >= TARGET_RATE,
                      note=f"{numbers:,} numbers; {sw.cpu:.1f} s CPU; "
                           f"{n / sw.wall:,.0f} rows/s"))
        rng = random.Random(5)
        lookups = bench.counts.registry_lookups
        times = []
        on = date(2025, 6, 1)
        for _ in range(lookups):
            number = _number(100_000_000 + rng.randrange(1, numbers + 1))
            t = time.perf_counter()
            registration_status(archive.catalog, number, on)
            times.append(time.perf_counter() - t)
        for pct in (50, 95):
            bench.add(Row(PART, f"lookup p{pct} ({lookups:,} lookups)",
                          percentile(times, pct) * 1000, "ms",
                          note="registration_status: one snapshot, one index search"))
    finally:
        archive.close()
