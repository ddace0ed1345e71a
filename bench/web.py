"""Part web — the viewer's pages at a million records (issue 19: search page p95 ≤ 100 ms,
record page ≤ 200 ms).

The catalog is the search part's (``bench.search.build_catalog``: a million version rows
inserted as ingest shapes them), plus a few real records ingested through the CLI — a
scan, a two-page PDF, and a scan corrected once — so the record page reads real manifests,
real content and a real history. Requests go through the whole ASGI application in-process
(Starlette's TestClient: routing, session lookup, the service call, the access-log write,
template rendering), logged in as an auditor; the network and a browser are not in the
figure. Latencies are per request after a few warm-up requests; p50/p95 are nearest-rank.
"""

from __future__ import annotations

import re
import shutil
import statistics
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import Bench, BenchError, Row, Stopwatch, jpeg_variants, log, percentile
from bench.search import _name_queries, _queries, build_catalog

PART = "web"
PASSWORD = "bench password 123"


def _ingest(archive_dir: Path, work: Path) -> list[str]:
    import json

    from click.testing import CliRunner

    from cli import cli
    from tests.samples import text_pdf

    def edoc(*args: str) -> dict[str, Any]:
        res = CliRunner().invoke(cli, ["--archive", str(archive_dir), *args, "--json"])
        if res.exit_code != 0:
            raise BenchError(f"edoc {args[0]} failed: {res.output[-300:]}")
        return dict(json.loads(res.stdout))

    scans = jpeg_variants(work / "scans", 3)
    pdf = text_pdf(work / "contract.pdf", "bench contract", pages=2)
    ids = []
    for i, path in enumerate([scans[0], pdf, scans[1]]):
        doc = edoc("ingest", str(path), "--profile", "general", "--date", "2024-05-10",
                   "--amount", str(10_000 + i), "--counterparty", "株式会社ベンチ商事")
        ids.append(str(doc["results"][0]["record_id"]))
    edoc("correct", ids[2], str(scans[2]), "--reason", "bench correction", "--amount", "999")
    return ids


def _times(get: Callable[[str], int], urls: list[str]) -> list[float]:
    for url in urls[:5]:
        get(url)  # warm-up: page cache, SQLite's schema cache, template compilation
    out = []
    for url in urls:
        with Stopwatch() as watch:
            status = get(url)
        if status != 200:
            raise BenchError(f"{url} answered {status}")
        out.append(watch.wall * 1000)
    return out


def _row(name: str, times: list[float], limit: float | None, note: str) -> Row:
    p95 = percentile(times, 95)
    return Row(PART, f"{name}: p95", p95, "ms",
               target=f"p95 ≤ {limit:.0f} ms" if limit else None,
               met=(p95 <= limit) if limit else None,
               note=f"p50 {percentile(times, 50):.1f} ms, max {max(times):.1f} ms, "
               f"mean {statistics.fmean(times):.1f} ms, {len(times)} requests; {note}")


def run(bench: Bench) -> None:
    from urllib.parse import urlencode

    from starlette.testclient import TestClient

    from edoc.services.accounts import add_account
    from edoc.services.archive import Archive
    from edoc.web.app import create_app

    n = bench.counts.search_rows
    log(f"web: building a catalog of {n} rows")
    archive, names = build_catalog(bench, n)
    archive_dir = archive.cfg.dir
    try:
        archive.close()
        ids = _ingest(archive_dir, bench.path("web-files"))
        archive = Archive.open(str(archive_dir))
        add_account(archive, "bench", "auditor", PASSWORD, by=archive.actor)
        with TestClient(create_app(archive), base_url="https://bench",
                        follow_redirects=False) as client:
            found = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
            if found is None:
                raise BenchError("no login form")
            token = found.group(1)
            res = client.post("/login", data={"csrf_token": token, "account": "bench",
                                              "password": PASSWORD, "next": "/search"})
            if res.status_code != 302:
                raise BenchError(f"login failed: {res.status_code}")

            def get(url: str) -> int:
                return int(client.get(url).status_code)

            count = bench.counts.search_queries
            legal = [
                "/search?" + urlencode({
                    "date_from": q.date_from.isoformat() if q.date_from else "",
                    "date_to": (q.date_to or q.date_from + timedelta(days=30)).isoformat()
                    if q.date_from else "",
                    "min_amount": q.min_amount, "max_amount": q.max_amount,
                    "counterparty": q.counterparty})
                for q in _queries(count, names, seed=5)]
            bench.add(_row(f"{n:,} records: search page, date + amount + counterparty",
                           _times(get, legal), 100,
                           "GET /search through the ASGI app: session, search_records "
                           "(logged), up to 200 rows rendered"))
            by_name = ["/search?" + urlencode({"counterparty": q.counterparty})
                       for q in _name_queries(_queries(min(count, 100), names, seed=7),
                                              names, seed=8)]
            bench.add(_row(f"{n:,} records: search page, counterparty fragment only",
                           _times(get, by_name), 100,
                           "first page of 200 (of ~330 hits a name)"))
            records = [f"/records/{ids[i % len(ids)]}" for i in range(max(30, count // 5))]
            bench.add(_row(f"{n:,} records: record page", _times(get, records), 200,
                           "show_record with history, holds, the document's page count "
                           "(content read and digest-checked), rendered"))
            pngs = [f"/records/{ids[i % 2]}/versions/1/pages/1.png" for i in range(30)]
            bench.add(_row("page image (200 dpi scan / PDF page at 144 dpi, PNG)",
                           _times(get, pngs), None, "drawn on every request, no cache"))
    finally:
        archive.close()
        shutil.rmtree(archive_dir, ignore_errors=True)
