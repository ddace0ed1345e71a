"""The document type from its title: ``best_doc_type``.

The title words map to the archive's ``doc_type`` values (``policies/*.toml``
``document_types``: nta-scan-important has contract / receipt / invoice / delivery-note,
nta-scan-general quote / order / inspection-slip). A title is printed near the top, often
alone on its line; the first title word wins, one alone on its line before any other.
Words inside a sentence (``上記正に領収いたしました``, ``ご請求金額``) are not titles: only the
full word (領収書, 請求書) counts. Pure functions, no I/O.
"""

from __future__ import annotations

import unicodedata
from typing import Final

__all__ = ["FILENAME_WORDS", "TITLES", "best_doc_type", "doc_type_of"]

TITLES: Final = (
    ("適格請求書", "invoice"), ("請求書", "invoice"), ("請求明細書", "invoice"),
    ("領収書", "receipt"), ("領収証", "receipt"), ("レシート", "receipt"),
    ("見積書", "quote"), ("御見積書", "quote"), ("納品書", "delivery-note"),
    ("注文書", "order"), ("発注書", "order"), ("契約書", "contract"), ("検収書", "inspection-slip"),
)


#: The doc_type values themselves, and common English names, as file names spell them.
FILENAME_WORDS: Final = {
    "invoice": "invoice", "bill": "invoice", "receipt": "receipt", "quote": "quote",
    "quotation": "quote", "estimate": "quote", "delivery-note": "delivery-note",
    "order": "order", "contract": "contract", "inspection-slip": "inspection-slip",
}


def doc_type_of(word: str) -> str | None:
    """The doc_type a title word (or a file-name part holding one) names, or None."""
    text = unicodedata.normalize("NFKC", word)
    if text.lower() in FILENAME_WORDS:
        return FILENAME_WORDS[text.lower()]
    # Longest title first: 適格請求書 before 請求書.
    for title, doc_type in sorted(TITLES, key=lambda t: -len(t[0])):
        if title in text:
            return doc_type
    return None


def best_doc_type(text: str) -> tuple[str, float] | None:
    """The doc_type the title names and a confidence 0..1."""
    best: tuple[float, str] | None = None
    for n, raw in enumerate(text.splitlines()):
        line = unicodedata.normalize("NFKC", raw).replace(" ", "").replace("\u3000", "")
        doc_type = doc_type_of(line)
        if doc_type is None:
            continue
        alone = len(line) <= 8  # 領収書, 御請求書, 請求書(控)
        rank = (2.0 if alone else 1.0) - min(n, 50) / 100
        if best is None or rank > best[0]:
            best = (rank, doc_type)
    if best is None:
        return None
    return best[1], (0.95 if best[0] >= 1.5 else 0.7)
