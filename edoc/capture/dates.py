"""Dates as Japanese documents print them: ``find_dates`` and ``parse_date_text``.

Forms read (after NFKC, so full-width ``２０２４／６／３０`` is ``2024/6/30``):

* Western: ``2024年6月30日``, ``2024/6/30``, ``2024-06-30``, ``2024.6.30``;
* era (元号): ``令和6年6月30日``, ``令和元年5月1日`` (元年 is year 1), ``R6.6.30``, ``R06/06/30``,
  and the same for 平成 (H), 昭和 (S), 大正 (T), 明治 (M).

An era date is checked against the era's span (元号法; 元号を改める政令: 平成 ends on
2019-04-30 and 令和 begins on 2019-05-01), so ``平成31年5月1日`` and ``令和元年4月30日`` —
dates that never existed under that name — are refused rather than converted. An impossible
calendar day (2月30日) is refused too. Pure functions, no I/O.

Which date of a document is its 取引年月日: a date on a line labelled as the issue date
(発行日, 請求日, 領収日, 取引日, 日付) ranks first; one labelled as a deadline or a validity
(支払期限, 振込期限, 有効期限, お支払期日) ranks last; otherwise the first date printed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Final

__all__ = ["DateFound", "best_date", "era_to_date", "find_dates", "parse_date_text"]

#: Each era: its first day (the day the name took effect) in the Gregorian calendar.
#: The last day of an era is the day before the next one's first.
ERAS: Final[dict[str, date]] = {
    "明治": date(1868, 1, 25),  # 明治 dates before 1873 were lunisolar; not converted here
    "大正": date(1912, 7, 30),
    "昭和": date(1926, 12, 25),
    "平成": date(1989, 1, 8),
    "令和": date(2019, 5, 1),
}
_ERA_LETTERS: Final = {"M": "明治", "T": "大正", "S": "昭和", "H": "平成", "R": "令和"}
_ORDER: Final = list(ERAS)
#: Western years accepted: documents kept today, not a stray number.
MIN_YEAR: Final = 1900
MAX_YEAR: Final = 2099

_SEP = r"\s*[/\-.]\s*"
#: The day's 日 as OCR reads it (曰, 目, 晶, 白, 口), or lost: 年 and 月 already make the
#: date unambiguous, so only a digit may not follow.
_DAY_END = r"(?:\s*[日曰目晶白口])?(?!\d)"
_WESTERN_KANJI: Final = re.compile(
    rf"(?<!\d)(\d{{4}})\s*年\s*(\d{{1,2}})\s*月\s*(\d{{1,2}}){_DAY_END}")
_WESTERN_SEP: Final = re.compile(
    rf"(?<![\d/.\-])(\d{{4}}){_SEP}(\d{{1,2}}){_SEP}(\d{{1,2}})(?![\d/])")
_ERA_KANJI: Final = re.compile(
    rf"(明治|大正|昭和|平成|令和)\s*(元|\d{{1,2}})\s*年\s*(\d{{1,2}})\s*月\s*(\d{{1,2}}){_DAY_END}")
_ERA_LETTER: Final = re.compile(
    rf"(?<![A-Za-z\d])([MTSHR])\s*(\d{{1,2}}){_SEP}(\d{{1,2}}){_SEP}(\d{{1,2}})(?![\d/])")

_ISSUE_LABELS: Final = ("発行日", "請求日", "領収日", "取引日", "納品日", "日付", "発行年月日",
                        "お買上日", "御買上日", "見積日", "作成日")
_DEADLINE_LABELS: Final = ("期限", "期日", "有効", "締切", "支払日", "振込日", "予定")


@dataclass(frozen=True)
class DateFound:
    """A date in the text: ``value``, the ``line`` number it is on, its ``form``
    (``western`` / ``era``) and ``rank`` (higher is likelier the transaction date)."""

    value: date
    line: int
    form: str
    rank: float


def era_to_date(era: str, year: int, month: int, day: int) -> date | None:
    """The Gregorian date of ``era`` ``year``/``month``/``day``, or None when that day does
    not exist under that era name (before its first day or after its last)."""
    if era not in ERAS or year < 1:
        return None
    start = ERAS[era]
    try:
        value = date(start.year + year - 1, month, day)
    except ValueError:
        return None
    if value < start:
        return None
    following = _ORDER.index(era) + 1
    if following < len(_ORDER) and value >= ERAS[_ORDER[following]]:
        return None
    return value


def _western(year: int, month: int, day: int) -> date | None:
    if not MIN_YEAR <= year <= MAX_YEAR:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _in_line(line: str) -> list[tuple[int, date, str]]:
    """(position, date, form) of every date on one NFKC-normalised line."""
    found: list[tuple[int, date, str]] = []
    taken: list[tuple[int, int]] = []

    def add(m: re.Match[str], value: date | None, form: str) -> None:
        if value is None or any(a < m.end() and m.start() < b for a, b in taken):
            return
        taken.append((m.start(), m.end()))
        found.append((m.start(), value, form))

    for m in _ERA_KANJI.finditer(line):
        year = 1 if m.group(2) == "元" else int(m.group(2))
        add(m, era_to_date(m.group(1), year, int(m.group(3)), int(m.group(4))), "era")
    for m in _ERA_LETTER.finditer(line):
        add(m, era_to_date(_ERA_LETTERS[m.group(1)], int(m.group(2)), int(m.group(3)),
                           int(m.group(4))), "era")
    for m in _WESTERN_KANJI.finditer(line):
        add(m, _western(int(m.group(1)), int(m.group(2)), int(m.group(3))), "western")
    for m in _WESTERN_SEP.finditer(line):
        add(m, _western(int(m.group(1)), int(m.group(2)), int(m.group(3))), "western")
    return sorted(found, key=lambda f: f[0])


def parse_date_text(text: str) -> date | None:
    """The one date ``text`` is (e.g. a cell or a filename part), or None."""
    line = unicodedata.normalize("NFKC", text).strip()
    if re.fullmatch(r"\d{8}", line):  # 20240630, as file names write it
        return _western(int(line[:4]), int(line[4:6]), int(line[6:]))
    found = _in_line(line)
    return found[0][1] if len(found) == 1 else None


def find_dates(text: str) -> list[DateFound]:
    """Every date in ``text``, ranked (see the module docstring)."""
    out: list[DateFound] = []
    lines = unicodedata.normalize("NFKC", text).splitlines()
    for n, line in enumerate(lines):
        for pos, value, form in _in_line(line):
            # The label is before the date on its line, or alone on the line above.
            before = line[:pos].replace(" ", "")
            if not before and n > 0:
                before = lines[n - 1].replace(" ", "")
            rank = 1.0 - min(n, 40) / 100  # earlier is likelier
            if any(label in before for label in _DEADLINE_LABELS):
                rank -= 1.0
            elif any(label in before for label in _ISSUE_LABELS):
                rank += 1.0
            out.append(DateFound(value=value, line=n, form=form, rank=rank))
    return out


def best_date(text: str) -> tuple[date, float] | None:
    """The likeliest transaction date and a confidence 0..1 in the choice."""
    found = find_dates(text)
    if not found:
        return None
    best = max(found, key=lambda f: f.rank)
    others = {f.value for f in found} - {best.value}
    confidence = 0.95 if not others else (0.85 if best.rank >= 1.5 else 0.6)
    return best.value, confidence
