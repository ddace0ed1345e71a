"""Record identifiers: ULIDs (RFC-less but widely used): 48-bit millisecond time + 80 random
bits in Crockford base32, 26 characters. They sort by creation time, carry no content or
personal data, and are safe as path components."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_record_id() -> str:
    value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    out = []
    for _ in range(26):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))
