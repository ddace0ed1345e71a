"""Spreadsheet-safe cells for every CSV edoc writes (search, verify, export, audit log).

A cell that starts with ``=``, ``+``, ``-``, ``@``, tab or CR is a formula to Excel and
LibreOffice (CWE-1236, "CSV injection"); a counterparty named ``=HYPERLINK(…)`` must not run
when an accountant opens the export. Such cells get a leading apostrophe.
"""

from __future__ import annotations

from typing import Any


def neutralise(value: Any) -> str:
    text = "" if value is None else str(value)
    if text and text[0] in "=+-@\t\r\n":
        return "'" + text
    return text
