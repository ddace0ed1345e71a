"""Part — one- and two-character fragments: counterparty (東, ガス) and full text.

A trigram index cannot answer a fragment shorter than three characters, and short Japanese
names are the common case (東, 山田). The counterparty search answers a fragment from the
table of distinct names (``LIKE`` over a few thousand names, then ``ix_versions_cp``); the
text search from the unigram + bigram postings of ``text_grams``.

The catalog is part 3's (``bench.search.build_catalog``: a million versions, 3,000 distinct
names, seven years of dates), queried through ``Catalog.search_hits`` (the hit list ``edoc
search`` and the web viewer run) with every hit fetched, and once through ``Catalog.search``
(whole version rows, as export reads them):

* fragment + a one-month date range (the legal search as a clerk runs it);
* fragment alone, first page (``--limit 100``; and 201, the web viewer's page and one more):
  a bounded count of the matching versions chooses between walking the versions in date
  order up to the limit and sorting the matches' keys (``edoc.catalog.search``);
* fragment alone, every hit fetched (tens of thousands of rows for 東: reported, no target —
  fetching dominates, as in part 3's name-only row), and the same counted
  (``Catalog.count_hits``: no row fetched, but a record lookup per hit).

Then the derived text of ``text_rows`` of those records (a synthetic receipt text each, the
counterparty and items from a fixed vocabulary), inserted through ``Catalog.put_text`` as
ingest writes it, and ``search --text`` by one and two characters, every hit fetched, with
the ``LIKE '%x%'`` scan over every text as the baseline.
"""

from __future__ import annotations

import random
import shutil
from datetime import timedelta

import sqlalchemy as sa

from bench.common import Bench, Row, Stopwatch, log, percentile
from bench.search import DAYS, FIRST_DAY, _latencies, _same_hits, _versus, build_catalog
from edoc.catalog import Catalog, SearchQuery, records, versions
from edoc.catalog.fulltext import grams
from edoc.catalog.schema import normalise_text, text_grams, texts

PART = "fragments"
#: Queries per kind (part 3's count, capped: the all-hits kind fetches ~25,000 rows each).
QUERIES = 200
ITEMS = ("ガス料金", "水道料金", "電気料金", "コピー用紙", "交通費", "会議費", "書籍代",
         "消耗品", "通信費", "宅配便", "修繕費", "印刷代", "駐車場", "タクシー代")


def _fragments(names: list[str], count: int, seed: int) -> list[str]:
    """Half one character, half two adjacent characters of a name's core."""
    rnd = random.Random(seed)
    out = []
    for n in range(count):
        core = rnd.choice(names)
        for form in ("株式会社", "有限会社", "合同会社"):
            core = core.replace(form, "")
        width = 1 if n % 2 == 0 else 2
        start = rnd.randrange(max(1, len(core) - width + 1))
        out.append(core[start:start + width])
    return out


def _row(name: str, times: list[float], hits: list[int], *, target: bool, note: str) -> Row:
    p95 = percentile(times, 95)
    return Row(PART, f"{name}: p95", p95, "ms",
               target="p95 ≤ 20 ms" if target else None, met=(p95 <= 20) if target else None,
               note=f"p50 {percentile(times, 50):.1f} ms, max {max(times):.1f} ms, "
               f"{len(times)} queries, median {sorted(hits)[len(hits) // 2]} hits; {note}")


def run(bench: Bench) -> None:
    n = bench.counts.search_rows
    log(f"fragments: building a catalog of {n} rows")
    archive, names = build_catalog(bench, n)
    catalog = archive.catalog
    count = min(bench.counts.search_queries, QUERIES)
    try:
        frags = _fragments(names, count, seed=21)
        rnd = random.Random(22)

        def search(q: SearchQuery) -> int:  # as `edoc search` and the web viewer's list
            return len(list(catalog.search_hits(q)))

        def whole(q: SearchQuery) -> int:  # as `edoc export` reads the hits
            return len(list(catalog.search(q)))

        dated = []
        for f in frags:
            start = FIRST_DAY + timedelta(days=rnd.randrange(DAYS - 31))
            dated.append(SearchQuery(date_from=start, date_to=start + timedelta(days=30),
                                     counterparty=f))
        times, hits = _latencies(search, dated)
        bench.add(_row(f"{n:,} records: counterparty fragment (1-2 chars) + one month",
                       times, hits, target=True, note="Catalog.search_hits (what edoc search "
                       "and the web list run), every hit fetched"))
        times, hits = _latencies(whole, dated)
        bench.add(_row(f"{n:,} records: the same, whole version rows", times, hits,
                       target=False, note="Catalog.search (29 columns a hit, as export "
                       "reads them)"))
        for width in (1, 2):
            page = [SearchQuery(counterparty=f, limit=100) for f in frags if len(f) == width]
            times, hits = _latencies(search, page)
            bench.add(_row(f"{n:,} records: counterparty fragment of {width} char, first 100",
                           times, hits, target=True, note="Catalog.search_hits --limit 100"))
        page = [SearchQuery(counterparty=f, limit=201) for f in frags]
        times, hits = _latencies(search, page)
        bench.add(_row(f"{n:,} records: counterparty fragment, first 201 (web page)",
                       times, hits, target=True, note="Catalog.search_hits limit 201"))
        counted = [SearchQuery(counterparty=f) for f in frags[:60]]
        times, hits = _latencies(catalog.count_hits, counted)
        bench.add(_row(f"{n:,} records: counterparty fragment alone, counted", times, hits,
                       target=False, note="Catalog.count_hits: index entries, a record "
                       "lookup each (state, latest version)"))
        alone = [SearchQuery(counterparty=f) for f in frags[:40]]
        times, hits = _latencies(search, alone)
        bench.add(_row(f"{n:,} records: counterparty fragment alone, every hit", times, hits,
                       target=False, note="fetching tens of thousands of rows dominates"))
        with Stopwatch() as watch:
            pairs = catalog.duplicate_pairs()
        bench.add(Row(PART, f"{n:,} records: search --duplicates (every pair, one run)",
                      watch.wall * 1000, "ms",
                      note=f"{len(pairs)} pairs (synthetic keys rarely collide); a self-join "
                      "of the latest active versions on date + amount + counterparty"))
        _text_rows(bench, catalog, n)
    finally:
        archive.close()
        shutil.rmtree(archive.cfg.dir, ignore_errors=True)


def _text_rows(bench: Bench, catalog: Catalog, n: int) -> None:
    count = min(n, bench.counts.search_rows // 10 or 1)
    rnd = random.Random(23)
    with catalog.read() as c:
        rows = list(c.execute(sa.select(versions.c.record_id, versions.c.counterparty)
                              .join(records, records.c.record_id == versions.c.record_id)
                              .order_by(versions.c.record_id).limit(count)))
    with Stopwatch() as watch, catalog.write() as c:
        text_batch, gram_batch = [], []
        for rid, cp in rows:
            body = f"領収書 {cp} 様 " + " ".join(rnd.sample(ITEMS, 3)) + \
                f" 合計 ¥{rnd.randrange(100, 99999):,} 税込"
            norm = normalise_text(body)
            text_batch.append({"record_id": rid, "version": 1, "source": "pdf-text",
                               "pages": 1, "confidence": None, "text": body,
                               "text_norm": norm, "derived_at": "2026-01-01T00:00:00Z"})
            gram_batch.extend({"gram": g, "record_id": rid} for g in grams(norm))
            if len(gram_batch) > 200_000:
                c.execute(texts.insert(), text_batch)
                c.execute(text_grams.insert(), gram_batch)
                text_batch, gram_batch = [], []
        if text_batch:
            c.execute(texts.insert(), text_batch)
            c.execute(text_grams.insert(), gram_batch)
    log(f"fragments: {count} texts indexed in {watch.wall:.0f} s")
    words = [w for item in ITEMS for w in (item[:1], item[:2])] + ["東", "山田", "ガス"]
    queries = [SearchQuery(text=rnd.choice(words)) for _ in range(60)]

    def search(q: SearchQuery) -> int:
        return len(list(catalog.search(q)))

    def scan(q: SearchQuery) -> int:
        needle = normalise_text(q.text or "")
        v, r = versions, records
        stmt = (sa.select(v, r.c.state).join(r, r.c.record_id == v.c.record_id)
                .where(v.c.version == r.c.latest_version, r.c.state == "active",
                       v.c.record_id.in_(sa.select(texts.c.record_id).where(
                           texts.c.text_norm.like(f"%{needle}%"))))
                .order_by(v.c.transaction_date, v.c.record_id, v.c.version))
        with catalog.read() as c:
            return len(list(c.execute(stmt)))

    times, base_hits = _latencies(scan, queries)
    baseline = _row("scan", times, base_hits, target=False, note="")
    times, hits = _latencies(search, queries)
    _same_hits(hits, base_hits, "the LIKE scan over every text")
    bench.add(_versus(_row(f"{count:,} texts: text fragment (1-2 chars), every hit", times,
                           hits, target=False, note="unigram + bigram postings"),
                      baseline, "LIKE '%x%' on every text"))
    page = [SearchQuery(text=q.text, limit=100) for q in queries]
    times, hits = _latencies(search, page)
    bench.add(_row(f"{count:,} texts: text fragment (1-2 chars), first 100", times, hits,
                   target=False, note="the date walk or the postings, as for names"))
