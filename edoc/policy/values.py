"""Parsing what users type: dates, yen amounts, counterparties, document types.

Amounts are integer yen (REQUIREMENTS.md search requirements): ``10800``, ``10,800``,
``¥10,800``, ``１０８００`` and ``10800円`` are accepted, and so is a negative amount —
``-110000``, ``¥-110,000``, ``▲110,000`` (the 三角 accountants write for a minus): a return
or a correction invoice (JP PINT's own "Return" example) states its total below zero, and
the law asks to keep and find it as it was received. Fractions, amounts beyond
``MAX_AMOUNT`` either way and anything else are refused with a one-line error naming the
field.

Everything here raises ``InputError`` and nothing else, whatever the input: these functions
are the first to see what users type (and what CSV manifests carry).
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from datetime import date
from pathlib import Path

from edoc.errors import InputError

# re.ASCII: after NFKC, full-width digits are ASCII; other scripts' digits (٣, ३) are refused
# rather than silently read as numbers.
_AMOUNT = re.compile(r"\d{1,3}(?:,\d{3})+|\d+", re.ASCII)
#: A leading minus: ASCII (full-width ``－`` is ASCII after NFKC), U+2212 MINUS SIGN, and the
#: triangles (▲ △) Japanese accounts print before a negative amount.
_MINUS = frozenset("-\u2212\u25b2\u25b3")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_DOC_TYPE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}", re.ASCII)

#: The largest amount accepted: 999兆円 (15 digits). The catalog keeps amounts in a 64-bit
#: integer column (SQLite INTEGER, PostgreSQL BIGINT, at most 9.2e18), and no single
#: transaction document comes near; a longer number is a typing or parsing error.
MAX_AMOUNT = 999_999_999_999_999

#: Characters refused in free text (counterparty, ledger reference, author), beyond control
#: characters: line and paragraph separators (U+2028/U+2029 end a line in many viewers, so
#: they break one-line log and CSV output) and the bidirectional embedding/override/isolate
#: controls, which make text display in another order than it is stored ("Trojan Source",
#: CVE-2021-42574) — a counterparty could then look like another.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def parse_date(value: str, field: str) -> date:
    text = unicodedata.normalize("NFKC", value).strip()
    try:
        if not _DATE.fullmatch(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{field} must be a date YYYY-MM-DD (got {_shown(value)})",
                         code="BAD_DATE") from None


def parse_amount(value: str | int, field: str = "amount") -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return _at_most_max(value, field)
    text = unicodedata.normalize("NFKC", str(value)).strip()
    negative = False
    # The sign may stand before or after the yen mark: -¥500, ¥-500, ▲500円.
    for _ in range(2):
        text = text.removeprefix("¥").removeprefix("\\").strip()
        if not negative and text[:1] in _MINUS:
            negative, text = True, text[1:].strip()
    text = text.removesuffix("円").strip()
    if not _AMOUNT.fullmatch(text):
        raise InputError(
            f"{field} must be whole yen, e.g. 10800, ¥10,800 or -5,000 (got "
            f"{_shown(str(value))})", code="BAD_AMOUNT", hint="fractions are not accepted")
    digits = text.replace(",", "")
    if len(digits.lstrip("0")) > len(str(MAX_AMOUNT)):
        # Checked on the text: int() of a 5000-digit string raises ValueError (CPython's
        # integer string conversion limit), and the catalog could not hold it anyway.
        raise _too_large(field)
    amount = int(digits)
    return _at_most_max(-amount if negative else amount, field)


def _at_most_max(amount: int, field: str) -> int:
    if abs(amount) > MAX_AMOUNT:
        raise _too_large(field)
    return amount


def _too_large(field: str) -> InputError:
    return InputError(f"{field} is beyond the largest amount accepted, "
                      f"¥{MAX_AMOUNT:,} either way", code="BAD_AMOUNT")


def clean_text(value: str, field: str, *, max_len: int = 200) -> str:
    """Trim, NFC-normalise and refuse control characters (they break CSV/log lines)."""
    if any(unicodedata.category(ch) == "Cs" for ch in value):
        # Lone surrogates: bytes that were not UTF-8 (os.fsdecode's surrogateescape of a
        # command-line argument); they cannot be stored, printed or put in JSON as UTF-8.
        raise InputError(f"{field} is not valid text (bytes that are not UTF-8)",
                         code="BAD_VALUE", hint="give the value in UTF-8")
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        raise InputError(f"{field} is empty", code="BAD_VALUE")
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in text):
        raise InputError(f"{field} contains control characters or line breaks",
                         code="BAD_VALUE")
    if any(ch in _BIDI_CONTROLS for ch in text):
        raise InputError(f"{field} contains bidirectional override characters (they make "
                         "text display in another order than it is stored)", code="BAD_VALUE")
    if len(text) > max_len:
        raise InputError(f"{field} is longer than {max_len} characters", code="BAD_VALUE")
    return text


def parse_doc_type(value: str) -> str:
    text = unicodedata.normalize("NFKC", value).strip().lower().replace("_", "-")
    if not _DOC_TYPE.fullmatch(text):
        raise InputError(f"doc type must be a short lower-case word such as invoice, receipt, "
                         f"delivery-note (got {_shown(value)})", code="BAD_DOC_TYPE")
    return text


def _shown(value: str, limit: int = 40) -> str:
    """``value`` quoted for a message: escaped (no control characters reach the terminal)
    and cut short, so a megabyte of input makes a one-line error, not a megabyte one."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def stored_name(name: str) -> str:
    """A file name as the manifest keeps it: exactly as given, except that bytes which are not
    UTF-8 (file-system names arrive with surrogate escapes) become ``\\xNN`` — canonical
    JSON is UTF-8 and must not lose or reject the record over its label."""
    import os

    return os.fsencode(name).decode("utf-8", "backslashreplace")


def printable_name(name: str) -> str:
    """A user's file name made safe for JSON, logs and terminals: bytes that are not UTF-8
    become ``\\xNN`` (names come from the file system with surrogate escapes), and control,
    format and line-separator characters (Unicode Cc, Cf, Zl, Zp, Cs) are escaped, so a name
    can neither forge an output line nor send escape sequences; 請求書 stays as it is."""
    import os

    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    return "".join(ch if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp", "Cs")
                   else ch.encode("unicode_escape").decode("ascii") for ch in text)


def stat_regular_file(path: Path, label: str, *, dir_hint: str | None = None) -> os.stat_result:
    """``stat`` of a file a user named, refusing what is not a regular file (a directory, a
    FIFO that would block, a device that never ends) with one-line errors; ``label`` is how
    the message names it (already made printable)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"{label}: no such file", code="FILE_NOT_FOUND") from None
    except OSError as exc:
        raise InputError(f"{label}: cannot be read ({exc.strerror})",
                         code="FILE_UNREADABLE") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{label} is a directory", code="NOT_A_FILE", hint=dir_hint)
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{label} is not a regular file", code="NOT_A_FILE")
    return st
