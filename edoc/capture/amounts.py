"""The 取引金額 of a receipt or an invoice: ``best_amount``.

The amount searched on is what was paid or billed, tax included: the number on the line
labelled ご請求金額 / 領収金額 / 合計 / 税込 (ranked in that order), never a 小計 (subtotal), a
税額 / 消費税 line, a 10%対象 breakdown, お預り (cash tendered) or お釣り (change). The number
may be written ``¥5,500``, ``￥5,500-``, ``5,500円``, ``５，５００円`` (NFKC), ``\\5,500`` (a
yen sign in a JIS font, and what OCR often reads ``¥`` as), and OCR's ``5.500`` or
``100,.008`` (yen has no decimals: a dot, or a comma and a dot, before exactly three digits
separate thousands). A label alone on its line takes the number on the next one.
Pure functions, no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from edoc.policy.values import MAX_AMOUNT

__all__ = ["AmountFound", "best_amount", "expected_total", "find_amounts", "parse_amount_text"]

#: Labels of the total, best first, with the rank each gives.
TOTAL_LABELS: Final = (
    ("ご請求金額", 5.0), ("御請求金額", 5.0), ("請求金額", 4.8), ("ご請求額", 4.8),
    ("領収金額", 4.8), ("お支払金額", 4.5), ("お支払い金額", 4.5), ("税込合計", 4.4),
    ("合計金額", 4.2), ("総合計", 4.2), ("合計", 4.0), ("税込", 3.5), ("金額", 2.0),
)
#: Lines that carry a number which is not the total.
EXCLUDED: Final = ("小計", "税額", "消費税", "内税", "外税", "対象", "お預", "預り", "釣",
                   "値引", "割引", "ポイント", "単価", "数量", "税抜")
_MONEY: Final = re.compile(
    r"(?P<yen>[¥\\])?\s*(?P<num>\d{1,3}(?:[,.]{1,2}\d{3})+|\d+)(?![\d.,]*\d)\s*(?P<suffix>円|-|ー|―)?")


@dataclass(frozen=True)
class AmountFound:
    """An amount on a labelled line: ``value`` in yen, the ``label`` and ``rank``."""

    value: int
    line: int
    label: str
    rank: float


def _normalise(text: str) -> str:
    # NFKC turns ￥ into ¥, full-width digits and commas into ASCII.
    return unicodedata.normalize("NFKC", text)


def _money(line: str) -> list[tuple[int, bool]]:
    """(yen, marked) for each number on a line; ``marked``: it has ¥ or 円."""
    out: list[tuple[int, bool]] = []
    for m in _MONEY.finditer(line):
        num = m.group("num")  # groups of three after the first: any mix of , and .
        digits = num.replace(",", "").replace(".", "")
        if len(digits) > len(str(MAX_AMOUNT)):
            continue
        value = int(digits)
        # A trailing dash (¥5,500-) marks money only after a grouped figure: 03-1234 is not.
        marked = (bool(m.group("yen")) or m.group("suffix") == "円"
                  or (m.group("suffix") in ("-", "ー", "―") and len(num) > len(digits)))
        out.append((value, marked))
    return out


def parse_amount_text(text: str) -> int | None:
    """The one amount ``text`` is (a cell, a filename part): ``5500``, ``¥5,500``, ``5500円``."""
    found = _money(_normalise(text).strip())
    whole = re.fullmatch(r"[¥\\]?\s*[\d,.]+\s*(円|-)?", _normalise(text).strip())
    return found[0][0] if len(found) == 1 and whole else None


def find_amounts(text: str) -> list[AmountFound]:
    """Every amount on a total's line (or just below its label), ranked."""
    lines = [_normalise(line).replace(" ", "").replace("　", "") for line in text.splitlines()]
    out: list[AmountFound] = []
    for n, line in enumerate(lines):
        if any(word in line for word in EXCLUDED):
            continue
        label = next(((lab, rank) for lab, rank in TOTAL_LABELS if lab in line), None)
        if label is None:
            continue
        after = line[line.index(label[0]) + len(label[0]):]
        money = _money(after)
        if not money and n + 1 < len(lines) and not any(w in lines[n + 1] for w in EXCLUDED):
            money = _money(lines[n + 1])  # the label alone, the figure below it
        if not money:
            continue
        marked = [m for m in money if m[1]]
        value, is_marked = (marked[-1] if marked else money[-1])
        rank = label[1] + (0.5 if is_marked else 0.0)
        out.append(AmountFound(value=value, line=n, label=label[0], rank=rank))
    return out


def _largest_marked(text: str) -> int | None:
    """The largest ¥/円 amount on a line that is not excluded: the total of a receipt whose
    label could not be read (a smudged 合計) is still its largest figure."""
    best: int | None = None
    for raw in text.splitlines():
        line = _normalise(raw).replace(" ", "")
        if any(word in line for word in EXCLUDED):
            continue
        for value, marked in _money(line):
            if marked and (best is None or value > best):
                best = value
    return best


def expected_total(text: str) -> int | None:
    """What the total must be from the 小計 and 消費税 lines, when both are legible: the
    subtotal plus the tax, or the subtotal alone when the tax is included in it (内税,
    内消費税, うち消費税)."""
    subtotal = tax = None
    inclusive = False
    for raw in text.splitlines():
        line = _normalise(raw).replace(" ", "")
        marked = [value for value, is_marked in _money(line) if is_marked]
        if not marked:
            continue
        if "小計" in line and subtotal is None:
            subtotal = marked[-1]
        elif ("消費税" in line or "税額" in line) and "対象" not in line and tax is None:
            tax = marked[-1]
            inclusive = any(word in line for word in ("内税", "内消費税", "うち消費税", "内税額"))
    if subtotal is None or tax is None:
        return None
    return subtotal if inclusive else subtotal + tax


def best_amount(text: str) -> tuple[int, float] | None:
    """The likeliest 取引金額 and a confidence 0..1 in the choice (low when no total label
    was read and the largest marked amount stands in).

    The 小計 and 消費税 lines check the choice: a total that is their sum (or the subtotal,
    tax included) is taken before a higher-ranked label that disagrees — an OCR slip in
    ご請求金額 is then caught by the 合計 line below it — and a total nothing agrees with
    gets a low confidence, so the person looks at it."""
    found = find_amounts(text)
    if not found:
        largest = _largest_marked(text)
        return (largest, 0.4) if largest is not None else None
    check = expected_total(text)
    if check is not None:
        agreeing = [f for f in found if f.value == check]
        if agreeing:
            return max(agreeing, key=lambda f: f.rank).value, 0.97
        best = max(found, key=lambda f: (f.rank, f.value))
        return best.value, 0.5
    best = max(found, key=lambda f: (f.rank, f.value))
    rivals = {f.value for f in found if f.rank >= best.rank - 0.5} - {best.value}
    confidence = 0.95 if best.rank >= 4.0 and not rivals else (0.75 if not rivals else 0.5)
    return best.value, confidence
