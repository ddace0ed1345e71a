"""Part 3 — search latency on a large catalog (検索性: date range, amount range, counterparty).

Building a million real records would take hours, so the rows are inserted directly into the
catalog tables (``records`` and ``versions``) with SQLAlchemy bulk inserts, shaped as ingest
writes them (one version each, NFKC-normalised counterparty, integer yen, ISO dates over
seven years). The indexes are edoc's own (``edoc.catalog``); nothing is added or analysed.

Queries go through ``Catalog.search`` and every hit is fetched, as ``edoc search`` does.
Latencies are per query on a warm cache (after a few warm-up queries); p50/p95 are
nearest-rank. The counterparty-only search (``edoc search --counterparty 山田``) is set
against what it replaced, ``LIKE '%x%'`` over every version (a full scan), run as SQL on the
same catalog with the same hits.
"""

from __future__ import annotations

import random
import shutil
import statistics
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bench.common import (
    Bench,
    BenchError,
    Row,
    Stopwatch,
    counterparty_names,
    fixture_mode,
    log,
    percentile,
)
from edoc.catalog import SearchQuery, normalise_counterparty, records, versions
from edoc.services.archive import Archive

PART = "search"
CHUNK = 20_000
FIRST_DAY = date(2018, 4, 1)
DAYS = 7 * 365
#: Distinct 取引先 in the synthetic catalog: a mid-sized company's supplier and customer base.
COUNTERPARTIES = 3000


def _rows(start: int, count: int, names: list[str], rnd: random.Random
          ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    recs, vers = [], []
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    for i in range(start, start + count):
        rid = f"B{i:025d}"  # 26 characters, like a ULID; never collides with a real one
        cp = rnd.choice(names)
        day = FIRST_DAY + timedelta(days=rnd.randrange(DAYS))
        until = day + timedelta(days=3652)  # about ten years
        recs.append({"record_id": rid, "created_at": now, "latest_version": 1,
                     "state": "active"})
        vers.append({
            "record_id": rid, "version": 1, "kind": "original",
            "content_sha256": f"{i:064x}", "content_size": 200_000,
            "media_type": "image/jpeg", "original_name": f"scan-{i}.jpg",
            "content_key": f"records/{rid}/v1/content", "content_version_id": f"{i:032x}",
            "manifest_key": f"records/{rid}/v1/manifest.json",
            "manifest_version_id": f"{i:032x}", "manifest_sha256": f"{i:064x}",
            "seal_key": None, "profiles": '["nta-scan-important"]',
            "document_class": "important", "doc_type": rnd.choice(
                ("invoice", "receipt", "contract", "delivery-note")),
            "transaction_date": day.isoformat(),
            # Log-uniform amounts, ¥100 to ¥10,000,000: most documents are small.
            "amount": int(10 ** rnd.uniform(2, 7)),
            "counterparty": cp, "counterparty_norm": normalise_counterparty(cp),
            "ledger_ref": f"JV-{day.year}-{i % 100000:05d}",
            "retain_until": until.isoformat(), "retain_until_at": f"{until}T15:00:00+00:00",
            "ingested_at": now, "ledger_index": i, "disposed_at": None,
        })
    return recs, vers


def build_catalog(bench: Bench, n: int) -> tuple[Archive, list[str]]:
    archive = bench.local_archive("search")
    names = counterparty_names(COUNTERPARTIES)
    rnd = random.Random(11)
    with Stopwatch() as watch, fixture_mode(archive), archive.catalog.write() as c:
        for start in range(0, n, CHUNK):
            recs, vers = _rows(start, min(CHUNK, n - start), names, rnd)
            c.execute(records.insert(), recs)
            c.execute(versions.insert(), vers)
    log(f"search: {n} rows inserted in {watch.wall:.0f} s")
    archive.close()
    return Archive.open(str(archive.cfg.dir)), names


def _queries(count: int, names: list[str], seed: int) -> list[SearchQuery]:
    """Date range of one month, amount range of a factor of three, and part of a
    counterparty's name (its surname-like core, as a clerk would type it)."""
    rnd = random.Random(seed)
    out = []
    for _ in range(count):
        start = FIRST_DAY + timedelta(days=rnd.randrange(DAYS - 31))
        low = int(10 ** rnd.uniform(3, 6))
        name = rnd.choice(names)
        core = name.replace("株式会社", "").replace("有限会社", "").replace("合同会社", "")
        out.append(SearchQuery(date_from=start, date_to=start + timedelta(days=30),
                               min_amount=low, max_amount=low * 3, counterparty=core[:2]))
    return out


def _name_queries(queries: list[SearchQuery], names: list[str], seed: int
                  ) -> list[SearchQuery]:
    """Counterparty alone, by a name's core (``山田商事`` finds 株式会社山田商事 and
    山田商事株式会社 alike): the 取引先 search the law asks for, without other filters."""
    rnd = random.Random(seed)
    out = []
    for _ in queries:
        name = rnd.choice(names)
        for form in ("株式会社", "有限会社", "合同会社"):
            name = name.replace(form, "")
        out.append(SearchQuery(counterparty=name))
    return out


def _latencies(run_one: Callable[[SearchQuery], int], queries: list[SearchQuery]
               ) -> tuple[list[float], list[int]]:
    for q in queries[:5]:
        run_one(q)  # warm-up: page cache and SQLite's schema cache
    times, hits = [], []
    for q in queries:
        with Stopwatch() as watch:
            hits.append(run_one(q))
        times.append(watch.wall * 1000)
    return times, hits


def _row(name: str, times: list[float], hits: list[int], *, target: bool, note: str) -> Row:
    p95 = percentile(times, 95)
    return Row(PART, f"{name}: p95", p95, "ms",
               target="p95 ≤ 20 ms" if target else None, met=(p95 <= 20) if target else None,
               note=f"p50 {percentile(times, 50):.1f} ms, max {max(times):.1f} ms, "
               f"{len(times)} queries, median {statistics.median(hits):.0f} hits; {note}")


def run(bench: Bench) -> None:
    n = bench.counts.search_rows
    log(f"search: building a catalog of {n} rows")
    archive, names = build_catalog(bench, n)
    catalog = archive.catalog
    try:
        queries = _queries(bench.counts.search_queries, names, seed=5)
        by_name = _name_queries(queries[:60], names, seed=6)

        def search(q: SearchQuery) -> int:
            return len(list(catalog.search(q)))

        combined = f"{n:,} records: date range + amount range + counterparty"
        times, hits = _latencies(search, queries)
        bench.add(_row(combined, times, hits, target=True,
                       note="Catalog.search, every hit fetched (covering index "
                       "ix_versions_search)"))
        times, scan_hits = _latencies(_full_scan_search(archive), by_name)
        scan = _row("full scan", times, scan_hits, target=False, note="")
        times, hits = _latencies(search, by_name)
        _same_hits(hits, scan_hits, "the full-scan baseline")
        bench.add(_versus(_row(f"{n:,} records: counterparty name only", times, hits,
                               target=False,
                               note=f"Catalog.search: LIKE over the {COUNTERPARTIES} distinct "
                               "names, then ix_versions_cp"), scan,
                          "LIKE '%x%' on every version (before the names table)"))
        by_amount = [SearchQuery(min_amount=q.min_amount, max_amount=q.max_amount,
                                 counterparty=b.counterparty)
                     for q, b in zip(queries, by_name, strict=False)]
        times, hits = _latencies(search, by_amount)
        bench.add(_row(f"{n:,} records: amount range + counterparty, no dates", times, hits,
                       target=False, note="Catalog.search: the names inside the key subquery"))
    finally:
        archive.close()
        shutil.rmtree(archive.cfg.dir, ignore_errors=True)


def _versus(row: Row, baseline: Row, label: str) -> Row:
    row.baseline = label
    row.baseline_value = baseline.value
    row.ratio = baseline.value / row.value if row.value > 0 else None
    return row


def _same_hits(shipped: list[int], what_if: list[int], what: str) -> None:
    if shipped != what_if:
        raise BenchError(f"{what} finds other records than Catalog.search")


def _full_scan_search(archive: Archive) -> Callable[[SearchQuery], int]:
    """The counterparty-only search as it was before the names table: ``LIKE '%x%'`` on
    every version's ``counterparty_norm`` (no index serves a substring match)."""
    v, r = versions, records

    def search(q: SearchQuery) -> int:
        needle = normalise_counterparty(q.counterparty or "")
        stmt = (sa.select(v, r.c.state).join(r, r.c.record_id == v.c.record_id)
                .where(v.c.version == r.c.latest_version, r.c.state == "active",
                       v.c.counterparty_norm.like(f"%{needle}%"))
                .order_by(v.c.transaction_date, v.c.record_id, v.c.version))
        with archive.catalog.read() as c:
            return len(list(c.execute(stmt)))

    return search


