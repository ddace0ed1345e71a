"""The issuer's registration number (登録番号, "T-number") in a document's text.

Read as ``T`` + 13 digits after NFKC (``Ｔ１２３…`` is ``T123…``), allowing what printed
numbers carry and OCR produces: spaces or hyphens between digit groups (``T1-2345-6789-0123``),
a colon after the label. Whether the number is well formed and its 法人番号 check digit holds
is ``edoc.policy.registration`` — the same check an e-invoice's number gets; a number whose
check digit fails is still proposed (a sole trader's number need not carry one) but with a
lower confidence. Pure functions, no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from edoc.policy.registration import check_registration_number

__all__ = ["best_registration_number", "find_registration_numbers"]

_CANDIDATE: Final = re.compile(r"(?<![A-Za-z0-9])T\s*[:：]?\s*(\d(?:[\s\-]?\d){12})(?!\d)")


def find_registration_numbers(text: str) -> list[tuple[str, bool]]:
    """(number, check_digit_ok) of each well-formed T-number in ``text``, in order."""
    out: list[tuple[str, bool]] = []
    for line in unicodedata.normalize("NFKC", text).splitlines():
        for m in _CANDIDATE.finditer(line.upper()):
            number = "T" + re.sub(r"[\s\-]", "", m.group(1))
            check = check_registration_number(number)
            if check.format_ok and (number, bool(check.check_digit_ok)) not in out:
                out.append((number, bool(check.check_digit_ok)))
    return out


def best_registration_number(text: str) -> tuple[str, float] | None:
    """The issuer's T-number and a confidence 0..1: a valid check digit ranks first."""
    found = find_registration_numbers(text)
    if not found:
        return None
    valid = [n for n, ok in found if ok]
    if valid:
        return valid[0], (0.97 if len(set(valid)) == 1 else 0.7)
    return found[0][0], 0.4
