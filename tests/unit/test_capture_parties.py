"""The issuer as counterparty: 前株 / 後株 names, the addressee line dropped."""

from __future__ import annotations

import pytest

from edoc.capture.parties import best_counterparty, company_names

NAMES = [
    ("株式会社東京ガス", ["株式会社東京ガス"]),
    ("東京ガス株式会社", ["東京ガス株式会社"]),
    ("有限会社山田商店", ["有限会社山田商店"]),
    ("合同会社ABCラボ", ["合同会社ABCラボ"]),
    ("㈱サンプル", ["(株)サンプル"]),
    ("サンプル㈲", ["サンプル(有)"]),
    ("株式会社 東京 ガス", ["株式会社東京ガス"]),
    ("株式会社東京ガス東京都港区海岸1-5-20", ["株式会社東京ガス"]),
    ("株式会社東京ガス 本社", ["株式会社東京ガス"]),
    ("発行者:株式会社東京ガス", ["株式会社東京ガス"]),
    ("ＡＢＣ株式会社", ["ABC株式会社"]),
    ("東京都港区海岸1-5-20", []),
    ("株式会社", []),
]


@pytest.mark.parametrize(("line", "expected"), NAMES)
def test_company_names(line: str, expected: list[str]) -> None:
    assert company_names(line) == expected


@pytest.mark.parametrize(("text", "expected"), [
    # the addressee (御中) is dropped, the issuer kept
    ("領収書\n山田商事株式会社 御中\n合計 ¥5,500\n株式会社東京ガス\n登録番号 T6010401006754",
     "株式会社東京ガス"),
    ("請求書\n株式会社テスト購買 様\n有限会社山田商店\n〒100-0001 東京都千代田区\n",
     "有限会社山田商店"),
    # two names, neither an addressee: the one in the issuer block (next to TEL) wins
    ("株式会社ABC\n品名 株式会社XYZ製 部品\n\n\n\n\n\n\n合同会社ミドリ\nTEL 03-1234-5678",
     "合同会社ミドリ"),
])
def test_issuer_is_the_counterparty(text: str, expected: str) -> None:
    found = best_counterparty(text)
    assert found is not None and found[0] == expected


def test_only_an_addressee_is_no_counterparty() -> None:
    assert best_counterparty("株式会社テスト購買 御中\n合計 ¥5,500") is None
