"""The page layout of a readable copy of a JP PINT e-invoice: ``PintInvoice`` → PDF bytes.

Pure: the invoice as ``edoc.inspection.einvoice`` read it, the record's facts (id, version,
content SHA-256, when it was ingested) and a font file in; PDF bytes out. No archive, no clock.

What the page shows is what 消費税法 第57条の4 第1項 asks of a 適格請求書 (the issuer and its
登録番号, the date, the goods, the amounts per tax rate with the rate, the tax per rate, the
customer), in Japanese, A4 portrait, lines flowing over as many pages as they need with the
table header repeated. Every page's footer names the record, version and content SHA-256 and
says the PDF is a derived copy: the stored XML stays the record (電子帳簿保存法 第7条).

Reproducible: the same inputs give the same bytes. reportlab's ``invariant`` mode fixes what
it would otherwise take from the clock and randomness; the creation date is then set to the
version's ``ingested_at`` and the document ID seeded with the record's identity, so two
records never share an ID and one record always has the same.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen.canvas import Canvas

from edoc.errors import ConfigError
from edoc.inspection.einvoice import Amount, DocKind, PintInvoice, PintSpec, TaxTotal

#: The sentence every page carries: the PDF is a view, the XML is the record.
DERIVED_NOTE: Final = ("この PDF は保存された電子データ (XML) から生成した表示用の写しです。"
                       "原本は XML です。")
FONT_NAME: Final = "EdocCJK"

PAGE_W, PAGE_H = A4
MARGIN: Final = 40.0
CONTENT_W: Final = PAGE_W - 2 * MARGIN
TOP: Final = PAGE_H - MARGIN
#: Content stops here; the footer lives below it.
BOTTOM: Final = 64.0
BODY: Final = 9.0
SMALL: Final = 7.0
LEADING: Final = 1.35


@dataclass(frozen=True)
class RecordFacts:
    """What the archive knows about the stored version, printed in every footer."""

    record_id: str
    version: int
    content_sha256: str
    #: ISO 8601 (the catalog's ``ingested_at``): becomes the PDF's CreationDate.
    ingested_at: str


@dataclass(frozen=True)
class RenderedPdf:
    data: bytes
    pages: int


def document_title(inv: PintInvoice) -> str:
    """The document's name as a Japanese reader expects it."""
    if inv.kind is DocKind.CREDIT_NOTE:
        return "返還請求書・クレジットノート"
    if inv.kind is DocKind.SELF_BILLING:
        return "仕入明細書"
    if inv.spec is PintSpec.STANDARD and inv.supplier_registration:
        return "適格請求書"
    return "請求書"


#: UNCL 5305 tax categories as JP PINT uses them.
_CATEGORY: Final = {"S": "標準税率", "AA": "軽減税率", "E": "非課税", "Z": "ゼロ税率",
                    "G": "免税 (輸出等)", "O": "不課税"}


def tax_label(category: str | None, percent: Decimal | None) -> str:
    """``10% (標準税率)``, ``8% (軽減税率)``, ``非課税`` …"""
    name = _CATEGORY.get(category or "", category or "区分なし")
    if percent is None or (category in ("E", "G", "O") and not percent):
        return name
    return f"{_number(percent.normalize())}% ({name})"


def render_invoice(inv: PintInvoice, facts: RecordFacts, font: Path) -> RenderedPdf:
    """The readable copy of ``inv`` as PDF bytes, with ``font`` embedded as a subset."""
    try:
        pdfmetrics.registerFont(TTFont(FONT_NAME, str(font)))
    except (TTFError, OSError) as exc:
        raise ConfigError(f"cannot embed font {font}: {exc}", code="FONT_UNUSABLE",
                          hint="use a TrueType (.ttf) font that allows embedding") from None
    rows = _rows(inv)
    pages = _paginate(rows)
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=A4, invariant=1, pageCompression=1)
    created = _pdf_date(facts.ingested_at)
    c.setDateFormatter(lambda *_: created)
    # The ID is an MD5 of a seed reportlab fixes in invariant mode; seeding it with the
    # record's identity keeps it reproducible and different per record (ISO 32000-1 14.4).
    c._doc.updateSignature(f"{facts.record_id}/{facts.version}/{facts.content_sha256}")
    title = document_title(inv)
    c.setTitle(f"{title} {inv.number or ''}".strip())
    c.setSubject(f"edoc record {facts.record_id} v{facts.version} "
                 f"sha256 {facts.content_sha256}")
    c.setCreator("edoc render")
    for n, page in enumerate(pages, start=1):
        for row, y in page:
            row.draw(c, y)
        _footer(c, facts, n, len(pages))
        c.showPage()
    c.save()
    return RenderedPdf(buf.getvalue(), len(pages))


# -- flowing rows onto pages ----------------------------------------------------------------


Draw = Callable[[Any, float], None]


@dataclass(frozen=True)
class _Row:
    height: float
    draw: Draw  # draws the row with its top edge at y
    #: repeated at the top of a page when the table this row belongs to continues there
    header: _Row | None = None
    #: a heading: never the last thing on a page
    keep_with_next: bool = False


def _paginate(rows: Sequence[_Row]) -> list[list[tuple[_Row, float]]]:
    pages: list[list[tuple[_Row, float]]] = [[]]
    y = TOP
    for i, row in enumerate(rows):
        need = row.height
        if row.keep_with_next and i + 1 < len(rows):
            need += rows[i + 1].height
        if y - need < BOTTOM and pages[-1]:
            pages.append([])
            y = TOP
            if row.header is not None:
                pages[-1].append((row.header, y))
                y -= row.header.height
        pages[-1].append((row, y))
        y -= row.height
    return pages


# -- what the rows are ------------------------------------------------------------------------


def _rows(inv: PintInvoice) -> list[_Row]:
    rows: list[_Row] = [_title_row(document_title(inv))]
    rows += _field_rows(inv)
    rows.append(_space(10))
    rows += _line_rows(inv)
    rows.append(_space(10))
    for total in _tax_totals(inv):
        rows += _tax_rows(total)
        rows.append(_space(6))
    rows += _total_rows(inv)
    if inv.problems:
        rows.append(_space(8))
        rows.append(_heading("読み取れなかった値 (XML の記載のまま保存されています)"))
        for problem in inv.problems:
            rows += _wrapped_rows(problem, CONTENT_W, SMALL)
    return rows


def _title_row(title: str) -> _Row:
    def draw(c: Any, y: float) -> None:
        c.setFont(FONT_NAME, 18)
        c.drawCentredString(PAGE_W / 2, y - 20, title)
        c.setLineWidth(0.8)
        c.line(MARGIN, y - 30, PAGE_W - MARGIN, y - 30)
    return _Row(40, draw)


def _field_rows(inv: PintInvoice) -> list[_Row]:
    currency = inv.document_currency or "記載なし"
    if inv.tax_currency and inv.tax_currency != inv.document_currency:
        currency += f" (消費税は {inv.tax_currency})"
    fields = [
        ("番号", inv.number or "記載なし"),
        ("発行日", _date_text(inv)),
        ("売手 (発行者)", inv.supplier_name or "記載なし"),
        ("登録番号", inv.supplier_registration or "記載なし"),
        ("買手 (宛先)", inv.customer_name or "記載なし"),
        ("通貨", currency),
        ("仕様", inv.customization_id),
    ]
    label_w = 80.0
    rows: list[_Row] = []
    for label, value in fields:
        lines = _wrap(_clean(value), CONTENT_W - label_w, BODY)
        height = len(lines) * BODY * LEADING + 2

        def draw(c: Any, y: float, label: str = label, lines: list[str] = lines) -> None:
            c.setFont(FONT_NAME, BODY)
            c.setFillGray(0.35)
            c.drawString(MARGIN, y - BODY, label)
            c.setFillGray(0)
            for k, text in enumerate(lines):
                c.drawString(MARGIN + label_w, y - BODY - k * BODY * LEADING, text)
        rows.append(_Row(height, draw))
    return rows


def _date_text(inv: PintInvoice) -> str:
    d = inv.issue_date
    if d is None:
        return "記載なし"
    return f"{d.year}年{d.month}月{d.day}日 ({d.isoformat()})"


#: (heading, width, right-aligned) of the lines table; widths add up to CONTENT_W.
_LINE_COLS: Final = (("No.", 30.0, False), ("品名", 245.0, False), ("数量", 55.0, True),
                     ("単位", 35.0, False), ("税率", 60.0, False))
_AMOUNT_W: Final = CONTENT_W - sum(w for _, w, _ in _LINE_COLS)


def _line_rows(inv: PintInvoice) -> list[_Row]:
    cur = inv.document_currency or ""
    heads = [*(h for h, _, _ in _LINE_COLS), f"金額 ({cur})" if cur else "金額"]
    widths = [*(w for _, w, _ in _LINE_COLS), _AMOUNT_W]
    right = [*(r for _, _, r in _LINE_COLS), True]
    header = _table_row(heads, widths, right, bold=True)
    rows: list[_Row] = [_heading(f"明細 ({len(inv.lines)} 行)"), header]
    reduced = False
    for n, line in enumerate(inv.lines, start=1):
        rate = ""
        if line.tax_percent is not None:
            rate = f"{_number(line.tax_percent.normalize())}%"
        if line.tax_category == "AA":
            rate += " ※"
            reduced = True
        elif line.tax_category in _CATEGORY and line.tax_category not in ("S", "AA"):
            rate = _CATEGORY[line.tax_category]
        cells = [line.id or str(n), _clean(line.name or "(品名なし)"),
                 _number(line.quantity) if line.quantity is not None else "",
                 line.unit or "", rate, _amount_text(line.line_extension, with_currency=False)]
        rows += _table_rows(cells, widths, right, header)
    if reduced:
        rows += _wrapped_rows("※ は軽減税率 (8%) の対象です。", CONTENT_W, SMALL)
    return rows


def _tax_totals(inv: PintInvoice) -> list[TaxTotal]:
    """The document-currency breakdown first, then the tax-currency one (a EUR invoice owes
    consumption tax in yen: 消費税法 第57条の4 asks for the tax in yen)."""
    ordered = [t for t in (inv.tax_total_in(inv.document_currency),
                           inv.tax_total_in(inv.tax_currency) if inv.tax_currency else None)
               if t is not None]
    seen = {id(t) for t in ordered}
    return [*ordered, *(t for t in inv.tax_totals if id(t) not in seen)]


def _tax_rows(total: TaxTotal) -> list[_Row]:
    cur = total.tax.currency if total.tax is not None and total.tax.currency else ""
    suffix = f" ({cur})" if cur else ""
    widths = [CONTENT_W - 2 * 120.0, 120.0, 120.0]
    right = [False, True, True]
    header = _table_row(["税率", f"課税対象額{suffix}", f"消費税額{suffix}"], widths, right,
                        bold=True)
    rows: list[_Row] = [_heading(f"税率ごとの内訳{suffix}"), header]
    for sub in total.subtotals:
        rows += _table_rows([tax_label(sub.category, sub.percent),
                             _amount_text(sub.taxable, with_currency=False),
                             _amount_text(sub.tax, with_currency=False)], widths, right, header)
    rows += _table_rows(["消費税合計", "", _amount_text(total.tax, with_currency=False)],
                        widths, right, header)
    return rows


def _total_rows(inv: PintInvoice) -> list[_Row]:
    doc_tax = inv.tax_total_in(inv.document_currency)
    entries = [("明細合計", inv.line_extension), ("税抜合計", inv.tax_exclusive),
               ("消費税", doc_tax.tax if doc_tax is not None else None),
               ("税込合計", inv.tax_inclusive), ("支払額", inv.payable)]
    if inv.tax_currency and inv.tax_currency != inv.document_currency:
        in_tax_cur = inv.tax_total_in(inv.tax_currency)
        entries.insert(3, (f"消費税 ({inv.tax_currency})",
                           in_tax_cur.tax if in_tax_cur is not None else None))
    widths = [100.0, 140.0]
    right = [False, True]
    rows: list[_Row] = [_heading("合計")]
    for label, amount in entries:
        rows += _table_rows([label, _amount_text(amount, with_currency=True)], widths, right,
                            None, bold=label == "支払額", left=PAGE_W - MARGIN - sum(widths))
    return rows


# -- drawing primitives -------------------------------------------------------------------------


def _space(height: float) -> _Row:
    return _Row(height, lambda c, y: None)


def _heading(text: str) -> _Row:
    def draw(c: Any, y: float) -> None:
        c.setFont(FONT_NAME, 11)
        c.drawString(MARGIN, y - 13, text)
    return _Row(20, draw, keep_with_next=True)


def _wrapped_rows(text: str, width: float, size: float) -> list[_Row]:
    rows: list[_Row] = []
    for line in _wrap(_clean(text), width, size):
        def draw(c: Any, y: float, line: str = line) -> None:
            c.setFont(FONT_NAME, size)
            c.drawString(MARGIN, y - size - 2, line)
        rows.append(_Row(size * LEADING + 2, draw))
    return rows


def _table_row(cells: Sequence[str], widths: Sequence[float], right: Sequence[bool], *,
               bold: bool = False) -> _Row:
    return _table_rows(cells, widths, right, None, bold=bold)[0]


#: A wrapped cell longer than this many lines continues in the next row (so no row is ever
#: taller than a page, however long a hostile item name is).
_MAX_CELL_LINES: Final = 12


def _table_rows(cells: Sequence[str], widths: Sequence[float], right: Sequence[bool],
                header: _Row | None, *, bold: bool = False, left: float = MARGIN
                ) -> list[_Row]:
    """One table row, or several when a wrapped cell is very long; each ruled below."""
    wrapped = [_wrap(text, w - 6, BODY) for text, w in zip(cells, widths, strict=True)]
    depth = max(len(w) for w in wrapped)
    table_w = sum(widths)
    rows: list[_Row] = []
    for start in range(0, depth, _MAX_CELL_LINES):
        chunk = [w[start:start + _MAX_CELL_LINES] for w in wrapped]
        n = max(1, max(len(w) for w in chunk))
        height = n * BODY * LEADING + 4

        def draw(c: Any, y: float, chunk: list[list[str]] = chunk, height: float = height
                 ) -> None:
            if bold:
                c.setFillGray(0.92)
                c.rect(left, y - height, table_w, height, stroke=0, fill=1)
                c.setFillGray(0)
            c.setFont(FONT_NAME, BODY)
            x = left
            for lines, w, r in zip(chunk, widths, right, strict=True):
                for k, text in enumerate(lines):
                    ty = y - 2 - BODY - k * BODY * LEADING
                    if r:
                        c.drawRightString(x + w - 3, ty, text)
                    else:
                        c.drawString(x + 3, ty, text)
                x += w
            c.setLineWidth(0.3)
            c.setStrokeGray(0.6)
            c.line(left, y - height, left + table_w, y - height)
            c.setStrokeGray(0)
        rows.append(_Row(height, draw, header=header))
    return rows


def _footer(c: Any, facts: RecordFacts, page: int, pages: int) -> None:
    c.setLineWidth(0.5)
    c.line(MARGIN, BOTTOM - 8, PAGE_W - MARGIN, BOTTOM - 8)
    c.setFont(FONT_NAME, SMALL)
    c.drawString(MARGIN, BOTTOM - 20, DERIVED_NOTE)
    c.drawRightString(PAGE_W - MARGIN, BOTTOM - 20, f"{page} / {pages} ページ")
    c.drawString(MARGIN, BOTTOM - 31,
                 f"記録 {facts.record_id}  版 {facts.version}  "
                 f"SHA-256 {facts.content_sha256}")


# -- text ---------------------------------------------------------------------------------------


def _clean(text: str) -> str:
    """Control characters (tabs, newlines, anything category C) shown as spaces: they have no
    glyph, and a line break inside a field would otherwise vanish or draw a box."""
    return "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)


def _wrap(text: str, width: float, size: float) -> list[str]:
    """Greedy wrap by measured width, character by character: Japanese has no spaces to
    break at, and an over-long token in any script must still fit the column."""
    lines: list[str] = []
    current = ""
    for ch in text:
        if current and pdfmetrics.stringWidth(current + ch, FONT_NAME, size) > width:
            lines.append(current)
            current = ch.lstrip()
        else:
            current += ch
    if current or not lines:
        lines.append(current)
    return lines


def _number(value: Decimal) -> str:
    """Digits grouped by thousands, the scale as written (``1,234.50``), never exponent form."""
    return f"{value:,f}"


def _amount_text(amount: Amount | None, *, with_currency: bool) -> str:
    if amount is None:
        return "記載なし"
    text = _number(amount.value)
    return f"{text} {amount.currency}" if with_currency and amount.currency else text


def _pdf_date(iso: str) -> str:
    """ISO 8601 → a PDF date string (ISO 32000-1 7.9.4) in UTC."""
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        when = datetime(2000, 1, 1, tzinfo=UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("D:%Y%m%d%H%M%S+00'00'")
