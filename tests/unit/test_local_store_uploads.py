"""A put killed between ``link(2)`` and the unlink of its upload name leaves a second name
of the object's bytes in the store's ``tmp/``: deleting the object (disposal) removes that
name too, and leaves every other upload alone."""

from __future__ import annotations

import hashlib
import io
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edoc.storage.local import LocalStore

START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def _put(store: LocalStore, key: str, data: bytes) -> None:
    store.put(key, io.BytesIO(data), size=len(data), sha256=hashlib.sha256(data).hexdigest(),
              retain_until=START + timedelta(days=1))


def test_deleting_an_object_removes_the_upload_name_a_crash_left(tmp_path: Path) -> None:
    clock = Clock()
    store = LocalStore(tmp_path / "store", clock=clock)
    objects, tmp = tmp_path / "store" / "objects", tmp_path / "store" / "tmp"
    content, manifest = "records/r1/v1/content", "records/r1/v1/manifest.json"
    _put(store, content, b"personal data")
    _put(store, manifest, b"{}")
    os.link(objects / content, tmp / "0123abcd.part")  # what the crash leaves
    in_progress = tmp / "feedface.part"
    in_progress.write_bytes(b"another writer's upload")
    clock.now = START + timedelta(days=2)

    outcomes = store.delete_many([(content, store.stat(content).version_id)])
    assert [o.error for o in outcomes] == [None]
    assert sorted(p.name for p in tmp.iterdir()) == ["feedface.part"]  # other inodes stay

    os.link(objects / manifest, tmp / "cafe.part")
    store.delete(manifest, store.stat(manifest).version_id)
    assert sorted(p.name for p in tmp.iterdir()) == ["feedface.part"]
    assert list(store.list("records/")) == []
