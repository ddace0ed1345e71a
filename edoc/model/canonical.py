"""Canonical JSON: the exact bytes that get hashed, sealed and timestamped.

Sorted keys, UTF-8 (not ``\\u`` escapes), no insignificant whitespace — so the same manifest
always hashes the same, and an auditor can re-create the bytes with any JSON library that
sorts keys (DESIGN.md "The record"). Amounts are integer yen; the only non-integers are
measurements (dpi), written in Python's shortest round-trip form. Verification never
re-serialises: it hashes the stored bytes.
"""

from __future__ import annotations

import json
from typing import Any


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def loads(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"))
