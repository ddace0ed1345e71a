"""The storage contract every backend honours: write once, read pinned, verify always.

A backend stores immutable objects under string keys (``records/<id>/v<n>/content`` …).
Each object carries a ``retain_until`` (UTC) and an optional legal hold; until the former has
passed and while the latter is set, the backend refuses to delete the object or to shorten
its retention. Writing a key that already holds an object is refused (``ObjectExists``):
corrections are new versions under new keys, never overwrites.

Backends report what *they* believe about lock state in ``ObjectInfo``; verification
compares it with the manifest and never trusts it blindly (see ``edoc doctor``).

Disposal deletes many versions at once (``delete_many``): one ``DeleteObjects`` request per
1,000 versions on S3, one directory fsync per directory on the local store. Each version gets
its own ``DeleteOutcome``; a refusal of one never stops the others.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol, runtime_checkable

from edoc.errors import EdocError


@dataclass(frozen=True)
class ObjectInfo:
    """What the backend reports about one stored object version."""

    key: str
    version_id: str
    size: int
    #: Hex SHA-256 as the backend computed or recorded it at upload (None if it cannot say).
    sha256: str | None
    retain_until: datetime | None
    #: ``COMPLIANCE``/``GOVERNANCE`` on S3; ``LOCAL`` for software-enforced retention.
    lock_mode: str | None
    legal_hold: bool
    last_modified: datetime


@dataclass(frozen=True)
class DeleteOutcome:
    """What became of one version handed to ``ObjectStore.delete_many``.

    ``error`` is ``None`` when the version is no longer in the store: deleted now, or not
    there to begin with (an earlier, interrupted run got that far, or the id names no stored
    version). Backends cannot always tell those apart — S3 answers a delete of an absent
    version as a success — so the contract does not either. ``RetentionActive`` means the
    store refused because the version is retained or on legal hold; any other ``EdocError``
    is a failure of that one version (permissions, I/O).
    """

    key: str
    version_id: str
    error: EdocError | None = None

    @property
    def gone(self) -> bool:
        return self.error is None


@runtime_checkable
class ObjectStore(Protocol):
    """Write-once object storage with retention and legal hold."""

    #: Short backend name: ``local`` or ``s3``.
    kind: str
    #: Honest one-line description of the guarantee (e.g. "WORM-style, not WORM").
    guarantee: str

    def put(
        self,
        key: str,
        stream: BinaryIO,
        *,
        size: int,
        sha256: str,
        retain_until: datetime,
        legal_hold: bool = False,
    ) -> ObjectInfo:
        """Store ``stream`` (exactly ``size`` bytes whose SHA-256 is ``sha256``) under ``key``.

        Raises ``ObjectExists`` if the key already holds an object, and ``StorageError`` if
        the bytes received do not match ``sha256`` (nothing is left behind in that case).
        """
        ...

    def put_bytes(self, key: str, data: bytes, *, retain_until: datetime) -> ObjectInfo:
        """Convenience for small objects (manifests, ledger entries, checkpoints)."""
        ...

    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        """A binary stream of the object (pinned to ``version_id`` when given)."""
        ...

    def read(self, key: str, version_id: str | None = None) -> bytes: ...

    def open_with_info(self, key: str, version_id: str | None = None
                       ) -> tuple[BinaryIO, ObjectInfo]:
        """``open`` and ``stat`` of one version from one answer: the bytes and the state
        they were read under (on S3 one ``GetObject``, whose headers carry the lock state
        ``HeadObject`` gives). Pinned like ``open``: ``ObjectMissing`` when the version is
        not there."""
        ...

    def stat(self, key: str, version_id: str | None = None) -> ObjectInfo:
        """Lock state as the backend reports it; ``ObjectMissing`` if absent."""
        ...

    def versions(self, key: str) -> list[ObjectInfo]:
        """Every version stored under ``key``, newest first (one on the local store)."""
        ...

    def version_stamps(self, key: str) -> list[tuple[str, datetime]]:
        """The version ids and last-modified times of ``versions(key)``, in its order,
        without each version's lock state: on S3 one listing, where ``versions`` also asks
        every version's state (a ``HeadObject`` each). What a check that only needs to know
        whether another version exists asks for."""
        ...

    def extend_retention(self, key: str, version_id: str, retain_until: datetime) -> None:
        """Move retain-until later; a date earlier than the current one is refused."""
        ...

    def set_legal_hold(self, key: str, version_id: str, on: bool) -> None: ...

    def delete(self, key: str, version_id: str) -> None:
        """Delete one version; ``RetentionActive`` while retention or a hold is in force."""
        ...

    def delete_many(self, items: Sequence[tuple[str, str]]) -> list[DeleteOutcome]:
        """Delete each ``(key, version_id)``; one outcome per item, in the order given.

        Never touches another version of the same key. A version that is not in the store
        counts as gone (see ``DeleteOutcome``); one that is retained or held is refused
        (``RetentionActive`` in its outcome) while the others are still deleted. Raises only
        when the store could not be asked at all (unreachable, credentials, a bad key).
        Every deletion reported gone is durable when this returns.
        """
        ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Current objects whose key starts with ``prefix``, in key order."""
        ...
