"""The auditor's search (電帳法 検索要件): the legal fields, combined with AND, 200 hits a
page, and the result as CSV (the tax office's download, formulas neutralised as every CSV
edoc writes: ``edoc.services.spreadsheet``).

The search is ``edoc.services.records.search_records``, the one ``edoc search`` runs; it
logs the search and the records it found under the account's name.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from edoc.catalog import SearchQuery
from edoc.errors import InputError
from edoc.services.records import SearchHit, search_query, search_records
from edoc.services.spreadsheet import neutralise
from edoc.web.app import error_page, render
from edoc.web.auth import current_session, guard, viewer

PAGE_SIZE = 200
#: the form's fields, each a keyword of ``search_query``
FIELDS = ("date_from", "date_to", "min_amount", "max_amount", "counterparty",
          "registration_number", "doc_type", "ledger_ref", "invoice_number")
#: the CSV's columns, in the order ``edoc search --csv`` writes them, then the e-invoice ones
CSV_HEADER = ("record_id", "version", "state", "transaction_date", "amount", "counterparty",
              "doc_type", "ledger_ref", "profiles", "retain_until", "content_sha256",
              "original_name", "invoice_number", "registration_number")


def _form(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "").strip()[:200] for k in FIELDS}


def _query(form: dict[str, str], request: Request, limit: int | None) -> SearchQuery:
    given: dict[str, Any] = {k: (v or None) for k, v in form.items()}
    return search_query(**given, include_deleted=request.query_params.get("include_deleted") == "1",
                        limit=limit)


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= 100_000 else 1


def _search_page(request: Request) -> Response:
    form = _form(request)
    asked = any(form.values()) or "go" in request.query_params
    page = _page_number(request)
    hits: list[SearchHit] = []
    more = False
    error: InputError | None = None
    if asked:
        sess = current_session(request)
        assert sess is not None
        try:
            # One row past the page says whether there is a next one.
            found = search_records(viewer(request).archive,
                                   _query(form, request, page * PAGE_SIZE + 1),
                                   sess.account.actor)
        except InputError as exc:  # what was typed (a date, an amount, a T-number)
            error = exc
            found = []
        hits = found[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]
        more = len(found) > page * PAGE_SIZE
    return render(request, "search.html", {
        "form": form, "include_deleted": request.query_params.get("include_deleted") == "1",
        "asked": asked, "hits": hits, "page": page, "more": more, "error": error,
        "query": _query_string(request, {})}, status=400 if error else 200)


def _query_string(request: Request, change: dict[str, Any]) -> str:
    from urllib.parse import urlencode

    params = {k: v for k, v in request.query_params.items() if k not in ("page", "lang")}
    params.update({k: str(v) for k, v in change.items()})
    return urlencode(params)


def _search_csv(request: Request) -> Response:
    sess = current_session(request)
    assert sess is not None
    form = _form(request)
    try:
        hits = search_records(viewer(request).archive, _query(form, request, None),
                              sess.account.actor)
    except InputError as exc:
        return error_page(request, exc, status=400)
    buf = io.StringIO()
    buf.write("\ufeff")  # Excel reads UTF-8 only with a BOM (as `edoc export` writes it)
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_HEADER)
    for h in hits:
        w.writerow([neutralise(",".join(h.profiles) if c == "profiles" else getattr(h, c))
                    for c in CSV_HEADER])
    return Response(buf.getvalue().encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="edoc-search.csv"'})


search_page = guard("search", page=True)(_search_page)
search_csv = guard("search", page=False)(_search_csv)
