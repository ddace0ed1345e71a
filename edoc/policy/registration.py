"""The 適格請求書発行事業者 registration number (登録番号, "T-number"): format and check digit.

Owns reading a registration number as a person or an invoice wrote it: normalising it,
checking its shape (``T`` + 13 digits, the NTA's 登録番号 format; JP PINT ibr-jp-04), and
checking the 法人番号 check digit; plus ``Finding``, the frozen warning type the JP PINT rules
(``edoc.policy.pint_rules``) share. Pure functions, no I/O: whether a number is actually
*registered* is a question for the NTA's 公表サイト, not for this module.

The check digit. A corporation's registration number is ``T`` + its 法人番号, whose first digit
is a check digit over the other twelve (法人番号の指定等に関する省令 第2条)::

    check = 9 − (Σₙ₌₁¹² Pₙ·Qₙ mod 9)     Pₙ: the n-th of the 12 digits counted from the RIGHT,
                                          Qₙ: 1 when n is odd, 2 when n is even

so the check digit is always 1–9. A sole trader (個人事業者) or an 人格のない社団 without a
法人番号 gets a 13-digit number the NTA assigns instead; whether that number carries the same
check digit is not established (the NTA does not publish it as such), so a mismatch is a
*warning* (``REGISTRATION_CHECK_DIGIT``), never a rejection. A bad *shape* is
``REGISTRATION_NUMBER_INVALID``: that one no registration number can have.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "REGISTRATION_CHECK_DIGIT",
    "REGISTRATION_NUMBER_INVALID",
    "Finding",
    "RegistrationCheck",
    "check_registration_number",
    "corporate_check_digit",
    "normalise_registration_number",
]

REGISTRATION_NUMBER_INVALID: Final = "REGISTRATION_NUMBER_INVALID"
REGISTRATION_CHECK_DIGIT: Final = "REGISTRATION_CHECK_DIGIT"

#: The shape every registration number has: ``T`` and 13 ASCII digits. ``[0-9]``, not ``\d``:
#: ``\d`` would also match full-width and other Unicode digits.
_SHAPE: Final = re.compile(r"T[0-9]{13}")

#: The rule id a check-digit finding cites (there is no PINT rule for it).
_CHECK_DIGIT_RULE: Final = "法人番号省令第2条"
_FORMAT_RULE: Final = "ibr-jp-04"

Severity = Literal["warning", "error"]


@dataclass(frozen=True)
class Finding:
    """One thing a check noticed: a stable ``code`` scripts match on, the ``rule`` it comes from
    (a JP PINT rule id such as ``ibr-jp-04``, or the article of law), and a one-line message."""

    code: str
    rule: str
    message: str
    severity: Severity = "warning"


@dataclass(frozen=True)
class RegistrationCheck:
    """What ``check_registration_number`` found.

    ``number`` is the normalised text (NFKC, upper case, outer white space removed);
    ``normalised`` says whether that changed the input, so a caller can tell a full-width
    ``Ｔ１２３…`` typed by a clerk from the canonical form. ``check_digit_ok`` is ``None``
    when the shape is wrong (there is no digit to check)."""

    raw: str
    number: str
    normalised: bool
    format_ok: bool
    check_digit_ok: bool | None
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """Shape right and check digit right (a sole trader's number may be ``False`` here)."""
        return self.format_ok and self.check_digit_ok is True


def normalise_registration_number(value: str) -> str:
    """NFKC (full-width ``Ｔ１２…`` → ``T12…``), upper case, outer white space removed.

    Inner white space and hyphens are kept, so ``T1234-5678…`` stays invalid rather than
    being guessed at."""
    return unicodedata.normalize("NFKC", value).strip().upper()


def corporate_check_digit(twelve_digits: str) -> int:
    """The 法人番号 check digit (1–9) for the twelve digits that follow it (省令 第2条)."""
    if len(twelve_digits) != 12 or not twelve_digits.isascii() or not twelve_digits.isdigit():
        raise ValueError(f"need exactly 12 ASCII digits, got {twelve_digits!r}")
    total = 0
    # n = 1 is the right-most digit; Qₙ is 1 for odd n, 2 for even n.
    for n, char in enumerate(reversed(twelve_digits), start=1):
        total += int(char) * (1 if n % 2 else 2)
    return 9 - total % 9


def check_registration_number(value: str) -> RegistrationCheck:
    """Normalise ``value`` and check its shape and its 法人番号 check digit."""
    number = normalise_registration_number(value)
    normalised = number != value
    if _SHAPE.fullmatch(number) is None:
        return RegistrationCheck(
            raw=value,
            number=number,
            normalised=normalised,
            format_ok=False,
            check_digit_ok=None,
            findings=(
                Finding(
                    REGISTRATION_NUMBER_INVALID,
                    _FORMAT_RULE,
                    f"registration number {_shown(value)} is not 'T' followed by 13 digits",
                ),
            ),
        )
    digits = number[1:]
    expected = corporate_check_digit(digits[1:])
    check_ok = int(digits[0]) == expected
    findings: tuple[Finding, ...] = ()
    if not check_ok:
        findings = (
            Finding(
                REGISTRATION_CHECK_DIGIT,
                _CHECK_DIGIT_RULE,
                f"{number}: first digit {digits[0]} is not the 法人番号 check digit {expected}"
                " (fine if the issuer is a sole trader, whose number need not be a 法人番号)",
            ),
        )
    return RegistrationCheck(
        raw=value,
        number=number,
        normalised=normalised,
        format_ok=True,
        check_digit_ok=check_ok,
        findings=findings,
    )


def _shown(value: str, limit: int = 40) -> str:
    """The value quoted for a message, cut short so a hostile input cannot flood a log line."""
    return repr(value if len(value) <= limit else value[:limit] + "…")
