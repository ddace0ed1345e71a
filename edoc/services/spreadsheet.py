"""Spreadsheet-safe cells for every CSV edoc writes (search, verify, export, audit log).

A cell that starts with ``=``, ``+``, ``-``, ``@``, tab or CR is a formula to Excel and
LibreOffice (CWE-1236, "CSV injection"); a counterparty named ``=HYPERLINK(…)`` must not run
when an accountant opens the export. Such cells get a leading apostrophe. A number edoc holds
as an integer (an amount, a size) is written as it is, minus sign and all: digits alone are
no formula, and an apostrophe would turn a return invoice's ``-110000`` into text a
spreadsheet no longer adds up.
"""

from __future__ import annotations

from typing import Any


def neutralise(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = "" if value is None else str(value)
    if text and text[0] in "=+-@\t\r\n":
        return "'" + text
    return text
