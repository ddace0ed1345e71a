"""Generated Japanese receipts and invoices with known fields, for measuring capture.

``random_truth`` draws the fields (a date printed in one of the forms Japanese documents use,
era forms included; an amount with its subtotal and 10 % consumption tax; an issuer named
前株 or 後株; an addressee; a T-number with a valid 法人番号 check digit; receipt or invoice);
``render`` lays them out as a page the way such documents look (title, addressee line ending
in 御中 / 様, the issuer block with address, telephone and 登録番号, a subtotal and tax line
that must not be taken for the total, and on invoices a payment deadline that must not be
taken for the date) with IPAex Gothic (Debian ``fonts-ipaexfont-gothic``, the font edoc's
renderer uses); ``degrade`` makes the scan variants: skewed ±3°, JPEG-compressed with
noise, grey paper. Used by bench/capture.py, tests/integration/test_capture_ocr.py and the
demo. Deterministic for a given ``random.Random`` seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Final

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

from edoc.capture.dates import ERAS
from edoc.policy.registration import corporate_check_digit
from edoc.services.rendering.fonts import find_cjk_font

VARIANTS: Final = ("clean-200", "clean-300", "skew-300", "noise-300", "gray-300")
DATE_FORMS: Final = ("kanji", "slash", "iso", "era-kanji", "era-letter")
_FRONT: Final = ("東京", "大阪", "横浜", "名古屋", "札幌", "福岡", "山田", "鈴木", "佐藤",
                 "高橋", "日本", "中央", "北斗", "青葉", "桜井", "松本", "丸山", "中村", "森田",
                 "川口", "アオバ", "サクラ", "ミドリ", "ヒカリ", "エムケイ", "ABC", "NK")
_BUSINESS: Final = ("商事", "物産", "電機", "工業", "製作所", "ガス", "建設", "印刷", "運輸",
                    "食品", "不動産", "システム", "ソリューションズ", "テクノ", "サービス",
                    "企画", "設計", "薬品", "産業", "興業")
_FORMS: Final = ("株式会社", "株式会社", "株式会社", "有限会社", "合同会社")
_ITEMS: Final = ("コピー用紙 A4", "トナーカートリッジ", "事務用品一式", "会議室利用料",
                 "保守点検費", "交通費", "打合せ飲食代", "書籍代", "配送料", "工事費")
_PLACES: Final = ("東京都港区海岸1-5-20", "大阪府大阪市北区梅田2-4-9", "神奈川県横浜市西区1-1-1",
                  "愛知県名古屋市中区栄3-2-1", "福岡県福岡市博多区4-6-8")


@dataclass(frozen=True)
class Truth:
    """The fields a generated document carries (what capture should suggest)."""

    kind: str  # receipt | invoice
    doc_type: str
    date: date
    date_text: str
    date_form: str
    amount: int
    subtotal: int
    tax: int
    counterparty: str
    registration_number: str
    addressee: str
    item: str
    address: str
    due_text: str


def t_number(rng: random.Random) -> str:
    body = "".join(rng.choice("0123456789") for _ in range(12))
    return f"T{corporate_check_digit(body)}{body}"


def company(rng: random.Random) -> str:
    name = rng.choice(_FRONT) + rng.choice(_BUSINESS)
    form = rng.choice(_FORMS)
    return form + name if rng.random() < 0.6 else name + form


def date_text(day: date, form: str) -> str:
    if form == "kanji":
        return f"{day.year}年{day.month}月{day.day}日"
    if form == "slash":
        return f"{day.year}/{day.month:02d}/{day.day:02d}"
    if form == "iso":
        return day.isoformat()
    era = "令和" if day >= ERAS["令和"] else "平成"
    year = day.year - ERAS[era].year + 1
    if form == "era-kanji":
        return f"{era}{'元' if year == 1 else year}年{day.month}月{day.day}日"
    return f"{'R' if era == '令和' else 'H'}{year}.{day.month}.{day.day}"


def random_truth(rng: random.Random, kind: str | None = None) -> Truth:
    kind = kind or rng.choice(("receipt", "invoice"))
    day = date(2018, 1, 1) + timedelta(days=rng.randrange(365 * 8))
    form = rng.choice(DATE_FORMS)
    subtotal = rng.choice((rng.randrange(100, 10_000), rng.randrange(10_000, 2_000_000)))
    tax = subtotal // 10
    issuer = company(rng)
    addressee = company(rng)
    while addressee == issuer:
        addressee = company(rng)
    return Truth(kind=kind, doc_type="receipt" if kind == "receipt" else "invoice",
                 date=day, date_text=date_text(day, form), date_form=form,
                 amount=subtotal + tax, subtotal=subtotal, tax=tax, counterparty=issuer,
                 registration_number=t_number(rng), addressee=addressee,
                 item=rng.choice(_ITEMS), address=rng.choice(_PLACES),
                 due_text=date_text(day + timedelta(days=30), form))


def _lines(t: Truth) -> list[tuple[str, float, str]]:
    """(text, size in points, align: l / r / c) from top to bottom."""
    if t.kind == "receipt":
        return [
            ("領収書", 20, "c"), ("", 8, "l"),
            (f"{t.addressee} 様", 12, "l"), (f"発行日 {t.date_text}", 10, "r"), ("", 8, "l"),
            (f"領収金額 ¥{t.amount:,}-", 14, "l"), (f"但し {t.item}代として", 10, "l"),
            ("上記正に領収いたしました", 10, "l"), ("", 6, "l"),
            (f"小計 ¥{t.subtotal:,}", 10, "l"), (f"消費税(10%) ¥{t.tax:,}", 10, "l"),
            ("", 8, "l"), (t.counterparty, 12, "r"), (f"〒105-0022 {t.address}", 9, "r"),
            ("TEL 03-1234-5678", 9, "r"), (f"登録番号 {t.registration_number}", 10, "r"),
        ]
    return [
        ("請求書", 20, "c"), ("", 8, "l"),
        (f"{t.addressee} 御中", 12, "l"), (f"請求日 {t.date_text}", 10, "r"), ("", 6, "l"),
        (t.counterparty, 12, "r"), (f"〒105-0022 {t.address}", 9, "r"),
        ("TEL 03-1234-5678", 9, "r"), (f"登録番号 {t.registration_number}", 10, "r"),
        ("", 6, "l"), ("下記の通りご請求申し上げます。", 10, "l"),
        (f"ご請求金額 ¥{t.amount:,}-", 14, "l"), ("", 6, "l"),
        (f"{t.item}  1式  ¥{t.subtotal:,}", 10, "l"), ("", 6, "l"),
        (f"小計 ¥{t.subtotal:,}", 10, "r"), (f"消費税(10%) ¥{t.tax:,}", 10, "r"),
        (f"合計 ¥{t.amount:,}", 11, "r"), ("", 6, "l"), (f"お支払期限 {t.due_text}", 10, "l"),
    ]


def render(t: Truth, dpi: int) -> Image.Image:
    """The document on an A5 page (148 × 210 mm) at ``dpi``, black on white, grey mode."""
    font_path = find_cjk_font()
    width, height = round(148 / 25.4 * dpi), round(210 / 25.4 * dpi)
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    margin = round(12 / 25.4 * dpi)
    y = margin
    fonts: dict[float, ImageFont.FreeTypeFont] = {}
    for text, points, align in _lines(t):
        size = round(points * dpi / 72)
        font = fonts.setdefault(points, ImageFont.truetype(str(font_path), size))
        if text:
            w = draw.textlength(text, font=font)
            x = {"l": margin, "r": width - margin - w, "c": (width - w) / 2}[align]
            draw.text((x, y), text, font=font, fill=0)
        y += round(size * 1.55)
    page.info["dpi"] = (dpi, dpi)
    return page


def degrade(page: Image.Image, variant: str, rng: random.Random) -> Image.Image:
    """The scan variant of a clean page (see ``VARIANTS``)."""
    dpi = page.info.get("dpi", (300, 300))
    out = page
    if variant.startswith("skew"):
        angle = rng.uniform(1.0, 3.0) * rng.choice((-1, 1))
        out = page.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    elif variant.startswith("noise"):
        # Gaussian sensor noise (σ 30 grey levels, zero mean: add(a, b) - 128), a slight
        # blur of the optics; the JPEG compression comes when it is saved (write_document).
        noise = Image.effect_noise(page.size, 30)
        out = ImageChops.add(page, noise, 1.0, -128).filter(ImageFilter.GaussianBlur(0.7))
    elif variant.startswith("gray"):
        # Recycled grey paper, toner not quite black.
        out = page.point(lambda v: 70 + v * (200 - 70) // 255)
    out.info["dpi"] = dpi
    return out


def write_document(directory: Path, n: int, t: Truth, variant: str,
                   rng: random.Random) -> Path:
    """Render and save one document of ``variant`` (noise: JPEG q=55; others: PNG)."""
    dpi = int(variant.rsplit("-", 1)[1])
    page = degrade(render(t, dpi), variant, rng)
    if variant.startswith("noise"):
        path = directory / f"{variant}-{n:04d}.jpg"
        page.save(path, format="JPEG", quality=55, dpi=(dpi, dpi))
    else:
        path = directory / f"{variant}-{n:04d}.png"
        page.save(path, format="PNG", dpi=(dpi, dpi))
    return path
