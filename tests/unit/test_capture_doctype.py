"""The doc type from the title, mapped to the archive's doc_type values."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from edoc.capture.doctype import TITLES, best_doc_type, doc_type_of

POLICIES = Path(__file__).resolve().parents[2] / "policies"

CASES = [
    ("請求書\n株式会社A 御中", "invoice"),
    ("御請求書", "invoice"),
    ("適格請求書", "invoice"),
    ("領収書\n上記正に領収いたしました", "receipt"),
    ("領収証", "receipt"),
    ("見積書", "quote"),
    ("納品書", "delivery-note"),
    ("注文書", "order"),
    # ご請求金額 and 領収いたしました are not titles; the title line is
    ("ご請求金額 ¥5,500\n上記正に領収いたしました\n領収書", "receipt"),
    ("納品書\n請求書在中の封筒にて送付", "delivery-note"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_title_gives_doc_type(text: str, expected: str) -> None:
    found = best_doc_type(text)
    assert found is not None and found[0] == expected


def test_no_title_no_doc_type() -> None:
    assert best_doc_type("合計 ¥5,500\nご請求金額") is None
    assert doc_type_of("scan_0001") is None


def test_every_suggested_doc_type_is_one_a_profile_names() -> None:
    named: set[str] = set()
    for toml in POLICIES.glob("*.toml"):
        named.update(_document_types(tomllib.loads(toml.read_text(encoding="utf-8"))))
    assert {doc_type for _, doc_type in TITLES} <= named


def _document_types(table: object) -> set[str]:
    """Every ``document_types`` list anywhere in a profile file."""
    found: set[str] = set()
    if isinstance(table, dict):
        for key, value in table.items():
            if key == "document_types" and isinstance(value, list):
                found.update(str(v) for v in value)
            else:
                found |= _document_types(value)
    return found
