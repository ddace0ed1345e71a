"""The counterparty (取引先) of a received document: its issuer, ``best_counterparty``.

A company name carries its legal form before (前株: ``株式会社東京ガス``) or after (後株:
``東京ガス株式会社``) the name: 株式会社, 有限会社, 合同会社, 合資会社, 合名会社, and the
abbreviations ``(株)`` / ``㈱`` / ``(有)`` / ``㈲`` (会社法 第6条 requires the form in the name).
A received document names two parties: the addressee (宛名), on a line ending in 御中, 様 or
殿, and the issuer (発行者), whose block carries the address, the telephone number and the
registration number (登録番号, 消費税法 第57条の4). The counterparty is the issuer, so names
on an addressee line are dropped and a name near the issuer block's markers ranks first.
Pure functions, no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final

__all__ = ["PartyFound", "best_counterparty", "company_names", "find_parties"]

LEGAL_FORMS: Final = ("株式会社", "有限会社", "合同会社", "合資会社", "合名会社",
                      "(株)", "(有)", "(同)")
ADDRESSEE_MARKS: Final = ("御中", "様", "殿")
#: What the issuer block carries besides the name.
ISSUER_MARKS: Final = ("登録番号", "〒", "TEL", "Tel", "電話", "FAX", "住所", "発行者",
                       "上記正に", "上記の通り")
_NAME_CHAR: Final = r"[\u3040-\u309f\u30a0-\u30ff\u4e00-\u9fffA-Za-z0-9・ー&\-]"
_FORM: Final = "|".join(re.escape(f) for f in LEGAL_FORMS)
_NAME: Final = re.compile(
    rf"(?P<front>(?:{_FORM})(?P<fname>{_NAME_CHAR}{{1,30}}))"
    rf"|(?P<back>(?P<bname>{_NAME_CHAR}{{1,30}}?)(?:{_FORM}))")
#: Where a name ends although name characters follow: a branch, an address, a label.
_TAIL: Final = re.compile(
    r"(御中|様|殿|本社|支店|営業所|事業所|登録番号|電話|TEL|FAX|〒|住所|"
    r"北海道|青森県|岩手県|宮城県|秋田県|山形県|福島県|茨城県|栃木県|群馬県|埼玉県|千葉県|"
    r"東京都|神奈川県|新潟県|富山県|石川県|福井県|山梨県|長野県|岐阜県|静岡県|愛知県|三重県|"
    r"滋賀県|京都府|大阪府|兵庫県|奈良県|和歌山県|鳥取県|島根県|岡山県|広島県|山口県|徳島県|"
    r"香川県|愛媛県|高知県|福岡県|佐賀県|長崎県|熊本県|大分県|宮崎県|鹿児島県|沖縄県)")
#: Words that precede a name on its line and are not part of it.
_LEAD: Final = re.compile(r"^(?:発行者|発行元|請求元|販売元|取引先|会社名|社名)[:：]?")


@dataclass(frozen=True)
class PartyFound:
    """A company name, the ``line`` it is on and ``rank`` (higher: likelier the issuer)."""

    name: str
    line: int
    rank: float


def _cut(name: str) -> str:
    m = _TAIL.search(name)
    return name[: m.start()] if m and m.start() > 0 else name


def company_names(line: str) -> list[str]:
    """The company names on one line (NFKC: ``㈱`` is ``(株)``, full-width letters ASCII)."""
    text = _LEAD.sub("", unicodedata.normalize("NFKC", line).replace(" ", "").replace("\u3000", ""))
    names: list[str] = []
    pos = 0
    while pos < len(text):
        m = _NAME.search(text, pos)
        if m is None:
            break
        if m.group("front"):
            form = m.group("front")[: len(m.group("front")) - len(m.group("fname"))]
            body = _cut(m.group("fname"))
            # 前株 followed directly by another legal form is two names; keep the first.
            for other in LEGAL_FORMS:
                if other in body:
                    body = body[: body.index(other)]
            name = form + body if body else ""
        else:
            bname = m.group("bname")
            tail = _TAIL.search(bname)
            body = bname[tail.end():] if tail else bname
            name = body + m.group(0)[len(bname):] if body else ""
        if name and len(name) > len("株式会社"):
            names.append(name)
        pos = m.end()
    return names


def find_parties(text: str) -> list[PartyFound]:
    """Every company name not on an addressee line, ranked."""
    lines = [unicodedata.normalize("NFKC", line).strip() for line in text.splitlines()]
    marks = [n for n, line in enumerate(lines) if any(k in line for k in ISSUER_MARKS)]
    out: list[PartyFound] = []
    for n, line in enumerate(lines):
        compact = line.replace(" ", "")
        if any(mark in compact for mark in ADDRESSEE_MARKS):
            continue
        for name in company_names(line):
            distance = min((abs(n - k) for k in marks), default=99)
            rank = 2.0 - min(distance, 10) / 5
            out.append(PartyFound(name=name, line=n, rank=rank))
    return out


def best_counterparty(text: str) -> tuple[str, float] | None:
    """The likeliest issuer and a confidence 0..1 in the choice."""
    found = find_parties(text)
    if not found:
        return None
    best = max(found, key=lambda f: (f.rank, f.line))
    rivals = {f.name for f in found} - {best.name}
    confidence = 0.9 if not rivals else (0.75 if best.rank >= 1.5 else 0.5)
    return best.name, confidence
