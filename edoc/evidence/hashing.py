"""The one streaming SHA-256 helper: every digest edoc computes over stored or copied bytes.

A record's content is bound to its manifest by SHA-256 (DESIGN.md "The record"), so the same
loop runs when a file is ingested, stored, copied out (``get``, export, bundles), recovered
after a crash and verified. It lives here once: read in 1 MiB chunks (``hashlib`` releases
the GIL on large updates, so threads hash in parallel), count the bytes, and optionally hand
each chunk to a sink that writes the copy, so the bytes are read once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

CHUNK = 1 << 20


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class Digest:
    """What hashing a stream found: the SHA-256 (lower-case hex) and the number of bytes."""

    sha256: str
    size: int


def hash_stream(src: Readable, *, sink: Callable[[bytes], object] | None = None,
                chunk: int = CHUNK) -> Digest:
    """Read ``src`` to its end, hashing it; each chunk also goes to ``sink`` when given."""
    digest = hashlib.sha256()
    size = 0
    while data := src.read(chunk):
        digest.update(data)
        size += len(data)
        if sink is not None:
            sink(data)
    return Digest(digest.hexdigest(), size)


def hash_file(path: Path) -> Digest:
    """Hash a file on disk (``hashlib.file_digest``: the fastest path, ~1.8 GB/s per core)."""
    with path.open("rb") as f:
        sha = hashlib.file_digest(f, "sha256").hexdigest()
        return Digest(sha, f.tell())


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of bytes already in memory (manifests, ledger entries, checkpoints)."""
    return hashlib.sha256(data).hexdigest()
