"""Part 7 — e-invoices ingested with no typed fields.

Validated JP PINT invoices per second into the local store
(``timed_ingest``: the defaults of ``edoc ingest`` for a batch this size, as bench/ingest.py's local
rows), each read with the hardened parser, checked against the PINT rules and the T-number
check digit, and its search fields (date, amount, counterparty, invoice and registration
number) filled from the document. The baseline is the same number of small XML
files ingested with every field typed, so the ratio is the cost of reading the invoice.
Target: ≥ 200 invoices/s (issue "E-invoices").
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from bench.common import Bench, Row, log, rate_ratio
from bench.ingest import WORKER_PROCESSES, timed_ingest
from edoc.services.ingest import IngestRequest
from tests import einvoice_samples as samples

PART = "einvoice"
PROFILE = "nta-electronic-transaction"


def _invoices(directory: Path, count: int, *, pint: bool = True) -> list[Path]:
    """``count`` small, distinct, correct invoices (two rates), or the same bytes under a
    CustomizationID that is not JP PINT (read as plain XML, fields typed)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        lines = (samples.Line("コピー用紙 A4", Decimal(10), Decimal(500 + n % 97)),
                 samples.Line("お茶 (軽減税率)", Decimal(3), Decimal(333), "AA"))
        data = samples.pint_invoice(
            lines=lines, number=f"BENCH-{n:06d}",
            customization=None if pint else "urn:example:not-pint")
        p = directory / f"invoice-{n:06d}.xml"
        p.write_bytes(data)
        paths.append(p)
    return paths


def run(bench: Bench) -> None:
    count = 100 if bench.quick else 1000
    files = _invoices(bench.path("einvoice", "pint"), count)
    typed_files = _invoices(bench.path("einvoice", "typed"), count, pint=False)
    log(f"{PART}: {count} invoices generated")

    archive = bench.local_archive("einvoice-typed")
    try:
        # distinct amounts, as distinct invoices have (one shared business key would make
        # every file a DUPLICATE_SUSPECT of the first)
        typed = [IngestRequest(path=str(p), profiles=(PROFILE,), date="2024-04-01",
                               amount=str(5500 + n), counterparty="株式会社サンプル商事")
                 for n, p in enumerate(typed_files)]
        watch, _ = timed_ingest(bench, archive, typed, "einvoice-typed")
        typed_rate = count / watch.wall
    finally:
        archive.close()

    archive = bench.local_archive("einvoice")
    try:
        requests = [IngestRequest(path=str(p), profiles=(PROFILE,)) for p in files]
        watch, run_ = timed_ingest(bench, archive, requests, "einvoice")
    finally:
        archive.close()
    archive = bench.local_archive("einvoice-processes")
    try:
        requests = [IngestRequest(path=str(p), profiles=(PROFILE,)) for p in files]
        procs_watch, _ = timed_ingest(bench, archive, requests, "einvoice-processes",
                                      processes=WORKER_PROCESSES)
    finally:
        archive.close()
    from_document = sum(1 for r in run_.results
                        if r.fields and r.fields["amount"]["source"] == "document")
    rate = count / watch.wall
    bench.add(Row(PART, "local store, JP PINT invoices, no typed fields", rate, "invoices/s",
                  baseline="the same XML with every field typed",
                  baseline_value=typed_rate, ratio=rate_ratio(rate, typed_rate),
                  target="≥ 200 invoices/s", met=rate >= 200,
                  note=f"{count} invoices, {from_document} with fields from the document; "
                  f"CPU {100 * watch.cpu / watch.wall:.0f}% of wall"))
    procs_rate = count / procs_watch.wall
    bench.add(Row(PART, f"the same, {WORKER_PROCESSES} worker processes", procs_rate,
                  "invoices/s", baseline="one process (the row above)", baseline_value=rate,
                  ratio=rate_ratio(procs_rate, rate), target="≥ 200 invoices/s",
                  met=procs_rate >= 200,
                  note=f"{count} invoices, `--processes {WORKER_PROCESSES}`"))
