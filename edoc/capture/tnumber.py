"""The issuer's registration number (登録番号, "T-number") in a document's text.

Read as ``T`` + 13 digits after NFKC (``Ｔ１２３…`` is ``T123…``), allowing what printed
numbers carry — spaces or hyphens between digit groups (``T1-2345-6789-0123``), a colon after
the label — and what OCR makes of them: a letter for a digit (``g`` for 9 or 8, ``O`` for 0,
``l`` for 1…) and, after the label 登録番号, the ``T`` itself read as ``1`` or lost. Whether a
number is well formed and its 法人番号 check digit holds is ``edoc.policy.registration`` —
the same check an e-invoice's number gets. The check digit is also what makes reading OCR's
letters safe: a letter is replaced only by a digit for which the check digit holds, and only
when exactly one reading does (a wrong digit passes the check one time in nine). A number
whose check digit fails as printed is still proposed (a sole trader's number need not carry
one) but with a low confidence. Pure functions, no I/O.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from edoc.policy.registration import check_registration_number

__all__ = ["NumberFound", "best_registration_number", "find_registration_numbers"]

#: What OCR reads a printed digit as, and the digits each letter may stand for.
CONFUSABLE: Final[dict[str, str]] = {
    "O": "0", "o": "0", "D": "0", "Q": "0", "U": "0", "l": "1", "I": "1", "|": "1", "i": "1",
    "!": "1", "Z": "2", "z": "2", "S": "5", "s": "5", "b": "6", "G": "6", "B": "8", "g": "98",
    "q": "9", "A": "4",
}
_DIGITISH: Final = r"[0-9" + re.escape("".join(CONFUSABLE)) + r"]"
_THIRTEEN: Final = rf"({_DIGITISH}(?:[\s\-]?{_DIGITISH}){{12}})"
_WITH_T: Final = re.compile(rf"(?<![A-Za-z0-9])T\s*[:：]?\s*{_THIRTEEN}(?![0-9])")
#: After the label: the T may be read as 1 (then 14 digits) or be missing (13).
_LABELLED: Final = re.compile(
    rf"登録番号\s*[:：]?\s*(?:T\s*)?({_DIGITISH}(?:[\s\-]?{_DIGITISH}){{12,13}})(?![0-9])")
#: At most this many letters are resolved in one number (9ⁿ readings are tried).
_MAX_LETTERS: Final = 2


@dataclass(frozen=True)
class NumberFound:
    """A T-number: ``check_digit_ok`` as read; ``repaired``: OCR letters were resolved."""

    number: str
    check_digit_ok: bool
    repaired: bool


def _resolve(chars: str) -> NumberFound | None:
    """The 13 characters as a T-number: digits as they are; letters by the check digit."""
    letters = [i for i, ch in enumerate(chars) if not ch.isdigit()]
    if not letters:
        number = "T" + chars
        ok = bool(check_registration_number(number).check_digit_ok)
        return NumberFound(number, ok, repaired=False)
    if len(letters) > _MAX_LETTERS:
        return None
    valid: list[str] = []
    for digits in itertools.product(*(CONFUSABLE[chars[i]] for i in letters)):
        candidate = list(chars)
        for i, d in zip(letters, digits, strict=True):
            candidate[i] = d
        number = "T" + "".join(candidate)
        if check_registration_number(number).check_digit_ok:
            valid.append(number)
    return NumberFound(valid[0], True, repaired=True) if len(valid) == 1 else None


def find_registration_numbers(text: str) -> list[NumberFound]:
    """Each T-number found in ``text``, in order, once."""
    out: list[NumberFound] = []
    for line in unicodedata.normalize("NFKC", text).splitlines():
        spans: list[str] = [m.group(1) for m in _WITH_T.finditer(line)]
        for m in _LABELLED.finditer(line):
            chars = re.sub(r"[\s\-]", "", m.group(1))
            if len(chars) == 14:
                if chars[0] not in "1Il|":
                    continue
                chars = chars[1:]  # the T, read as a 1
            spans.append(chars)
        for span in spans:
            found = _resolve(re.sub(r"[\s\-]", "", span))
            if found is not None and found.number not in {f.number for f in out}:
                out.append(found)
    return out


def best_registration_number(text: str) -> tuple[str, float] | None:
    """The issuer's T-number and a confidence 0..1: a valid check digit ranks first."""
    found = find_registration_numbers(text)
    if not found:
        return None
    valid = [f for f in found if f.check_digit_ok]
    if valid:
        best = valid[0]
        confidence = 0.97 if not best.repaired else 0.8
        return best.number, (confidence if len(valid) == 1 else 0.6)
    return found[0].number, 0.4
