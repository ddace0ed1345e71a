"""Parsing what users type: dates, yen amounts, counterparties, document types.

Amounts are integer yen (REQUIREMENTS.md search requirements): ``10800``, ``10,800``,
``¥10,800``, ``１０８００`` and ``10800円`` are accepted; negatives, fractions and anything
else are refused with a one-line error naming the field.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from edoc.errors import InputError

_AMOUNT = re.compile(r"^\d{1,3}(,\d{3})+$|^\d+$")
_DOC_TYPE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def parse_date(value: str, field: str) -> date:
    text = unicodedata.normalize("NFKC", value).strip()
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{field} must be a date YYYY-MM-DD (got {value!r})",
                         code="BAD_DATE") from None


def parse_amount(value: str | int, field: str = "amount") -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise InputError(f"{field} must not be negative (got {value})", code="BAD_AMOUNT")
        return value
    text = unicodedata.normalize("NFKC", str(value)).strip()
    text = text.removeprefix("¥").removeprefix("\\").removesuffix("円").strip()
    if not _AMOUNT.match(text):
        raise InputError(
            f"{field} must be whole yen, e.g. 10800 or ¥10,800 (got {value!r})",
            code="BAD_AMOUNT", hint="negative amounts and fractions are not accepted")
    return int(text.replace(",", ""))


def clean_text(value: str, field: str, *, max_len: int = 200) -> str:
    """Trim, NFC-normalise and refuse control characters (they break CSV/log lines)."""
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        raise InputError(f"{field} is empty", code="BAD_VALUE")
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise InputError(f"{field} contains control characters", code="BAD_VALUE")
    if len(text) > max_len:
        raise InputError(f"{field} is longer than {max_len} characters", code="BAD_VALUE")
    return text


def parse_doc_type(value: str) -> str:
    text = unicodedata.normalize("NFKC", value).strip().lower().replace("_", "-")
    if not _DOC_TYPE.match(text):
        raise InputError(f"doc type must be a short lower-case word such as invoice, receipt, "
                         f"delivery-note (got {value!r})", code="BAD_DOC_TYPE")
    return text
