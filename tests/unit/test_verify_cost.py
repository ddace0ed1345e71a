"""Cheaper verification per version on the local store, with every check still catching.

Verification asks the store about each version's content object once (``stat``, pinned):
that one metadata read serves both the version check of the content read and the ``lock``
check. These tests tamper with the local store the way an attacker with file-system access
would (bytes, metadata, retention, version ids) and check that each tampering is still
reported with the code it had before; that nothing is cached between versions or runs (a
change made after one verification is seen by the next, by the same ``Verifier``); and that
the metadata reads per version went from three to two. The ``LocalStore`` read path
(string paths, ``os.read``) is checked on its own below.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edoc.errors import ObjectMissing, StorageError
from edoc.model.verdict import RecordReport, Status
from edoc.services.verification import Verifier
from edoc.storage.local import LocalStore
from tests import samples
from tests.helpers import Edoc, Records, jst_today_minus, writable

NAMES = ("ok", "digest", "truncated", "content_gone", "other_version", "no_version_id",
         "shortened", "meta_corrupt", "meta_list", "meta_gone", "manifest_other_version",
         "changing")


class Fixture(Records):
    """The tampered archive, with paths to its objects and their metadata."""

    def object_path(self, name: str, leaf: str = "content") -> Path:
        return self.edoc.objects / "records" / self.ids[name] / "v1" / leaf

    def meta_path(self, name: str, leaf: str = "content") -> Path:
        return self.edoc.archive / "store" / "meta" / "records" / self.ids[name] / "v1" / \
            f"{leaf}.json"

    def manifest(self, name: str) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.object_path(name, "manifest.json").read_bytes())
        return loaded


def _edit_meta(path: Path, **changes: Any) -> dict[str, Any]:
    """Rewrite one metadata file in place (``None`` drops a field); returns the old one."""
    old: dict[str, Any] = json.loads(path.read_bytes())
    new = {k: v for k, v in (old | changes).items() if v is not None}
    path.write_text(json.dumps(new), encoding="utf-8")
    return old


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    tmp = tmp_path_factory.mktemp("verify-cost")
    edoc = Edoc(tmp / "archive")
    assert edoc("init", str(edoc.archive)).exit_code == 0
    files = {}
    for i, name in enumerate(NAMES):
        files[name] = tmp / f"{name}.png"
        samples.scan_image(files[name], dpi=200 + i, mode="RGB", fmt="PNG")
    code, doc = edoc.json("ingest", *map(str, files.values()), "--profile", "general",
                          "--date", jst_today_minus(1), "--amount", "10800",
                          "--counterparty", "山田商店")
    assert code == 0, doc
    by_file = {Path(str(r["file"])).stem: str(r["record_id"]) for r in doc["results"]}
    fx = Fixture(edoc, {name: by_file[name] for name in NAMES})

    # -- tampering, as an attacker with write access to the store's directory would ----------
    data = bytearray(fx.object_path("digest").read_bytes())
    data[len(data) // 2] ^= 0x01
    writable(fx.object_path("digest")).write_bytes(bytes(data))
    whole = fx.object_path("truncated").read_bytes()
    writable(fx.object_path("truncated")).write_bytes(whole[: len(whole) // 2])
    fx.object_path("content_gone").unlink()
    _edit_meta(fx.meta_path("other_version"), version_id="0" * 32)
    _edit_meta(fx.meta_path("no_version_id"), version_id=None)
    until = datetime.fromisoformat(fx.manifest("shortened")["retention"]["until_at"])
    _edit_meta(fx.meta_path("shortened"), retain_until=(until - timedelta(days=1)).isoformat())
    fx.meta_path("meta_corrupt").write_text("{not json", encoding="utf-8")
    fx.meta_path("meta_list").write_text("[]", encoding="utf-8")
    fx.meta_path("meta_gone").unlink()
    _edit_meta(fx.meta_path("manifest_other_version", "manifest.json"), version_id="f" * 32)
    yield fx


def _failing(report: RecordReport) -> dict[str, tuple[Status, str]]:
    return {c.name: (c.status, c.code) for c in report.checks if c.status is not Status.PASS}


def _by_name(reports: list[RecordReport], fx: Fixture) -> dict[str, RecordReport]:
    names = {rid: name for name, rid in fx.ids.items()}
    return {names[r.record_id]: r for r in reports}


# What each tampering must still produce: the check, its status and its stable code. The
# ``lock`` check judges the store's own answer about the pinned version, so where the store
# cannot answer (object gone, metadata naming another version or unreadable) it is
# indeterminate, and where the store's retention is shorter or absent it fails.
MISSING = (Status.INDETERMINATE, "OBJECT_MISSING")
CORRUPT = (Status.INDETERMINATE, "STORAGE_META_CORRUPT")
EXPECTED: dict[str, dict[str, tuple[Status, str]]] = {
    "ok": {},
    "changing": {},
    "digest": {"content": (Status.FAIL, "DIGEST_MISMATCH")},
    "truncated": {"content": (Status.FAIL, "CONTENT_TRUNCATED")},
    "content_gone": {"content": (Status.FAIL, "CONTENT_MISSING"), "lock": MISSING},
    "other_version": {"content": (Status.FAIL, "CONTENT_MISSING"), "lock": MISSING},
    # a pinned read refuses metadata without a version id; the store's lock state stands
    "no_version_id": {"content": (Status.FAIL, "CONTENT_MISSING")},
    "shortened": {"lock": (Status.FAIL, "LOCK_SHORTER")},
    "meta_corrupt": {"content": CORRUPT, "lock": CORRUPT},
    "meta_list": {"content": CORRUPT, "lock": CORRUPT},
    # bytes intact and read (the version id they give is the pinned one), but the store
    # keeps no retention for them any more
    "meta_gone": {"lock": (Status.FAIL, "LOCK_SHORTER")},
    "manifest_other_version": {"manifest": (Status.FAIL, "MANIFEST_MISSING")},
}


@pytest.mark.parametrize("batch", [True, False], ids=["period", "single"])
def test_every_tampering_is_still_reported(archive: Fixture, batch: bool) -> None:
    a = archive.open()
    try:
        verifier = Verifier(a, batch=batch)
        if batch:
            reports = verifier.verify_batch(list(archive.ids.values()))
        else:
            reports = [r for rid in archive.ids.values() for r in verifier.verify_record(rid)]
    finally:
        a.close()
    found = {name: _failing(r) for name, r in _by_name(reports, archive).items()}
    assert found == EXPECTED


def test_content_metadata_is_read_once_per_version(archive: Fixture,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Three metadata reads per version before (a pinned manifest read, a pinned content
    read and the lock check's ``stat``); two now: the content's one read serves both its
    version check and the lock check."""
    reads: Counter[str] = Counter()
    original = LocalStore._read_meta

    def counted(self: LocalStore, key: str, meta_path: str | Path) -> dict[str, object] | None:
        reads[key] += 1
        return original(self, key, meta_path)

    monkeypatch.setattr(LocalStore, "_read_meta", counted)
    a = archive.open()
    try:
        verifier = Verifier(a, batch=True)
        verifier.verify_batch([archive.ids["ok"]])  # checkpoint files read once per Verifier
        reads.clear()
        (report,) = verifier.verify_batch([archive.ids["ok"]])
    finally:
        a.close()
    assert report.status is Status.PASS
    rid = archive.ids["ok"]
    assert reads == {f"records/{rid}/v1/content": 1, f"records/{rid}/v1/manifest.json": 1}


def test_nothing_is_cached_between_runs_of_one_verifier(archive: Fixture) -> None:
    """A change made after a version was verified is seen when the same ``Verifier`` checks
    it again: no per-key state survives from one version's checks to the next."""
    rid = archive.ids["changing"]
    meta = archive.meta_path("changing")
    content = archive.object_path("changing")
    a = archive.open()
    try:
        verifier = Verifier(a, batch=True)
        assert _failing(verifier.verify_batch([rid])[0]) == {}

        until = datetime.fromisoformat(archive.manifest("changing")["retention"]["until_at"])
        old = _edit_meta(meta, retain_until=(until - timedelta(seconds=1)).isoformat())
        assert _failing(verifier.verify_batch([rid])[0]) == {
            "lock": (Status.FAIL, "LOCK_SHORTER")}

        _edit_meta(meta, retain_until=old["retain_until"], version_id="1" * 32)
        assert _failing(verifier.verify_batch([rid])[0]) == {
            "content": (Status.FAIL, "CONTENT_MISSING"), "lock": MISSING}

        _edit_meta(meta, version_id=old["version_id"])
        original = content.read_bytes()
        writable(content).write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
        assert _failing(verifier.verify_batch([rid])[0]) == {
            "content": (Status.FAIL, "DIGEST_MISMATCH")}

        content.write_bytes(original)
        assert _failing(verifier.verify_batch([rid])[0]) == {}
    finally:
        a.close()


# -- the LocalStore read path on its own -----------------------------------------------------

LATER = datetime(2099, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def test_read_returns_every_byte_of_an_object_larger_than_one_read(store: LocalStore) -> None:
    data = bytes(range(256)) * (9 * 1024 + 7)  # ~2.3 MiB: more than one read(2) of 1 MiB
    info = store.put_bytes("records/r/v1/content", data, retain_until=LATER)
    assert store.read("records/r/v1/content", info.version_id) == data
    assert store.read("records/r/v1/content") == data
    with store.open("records/r/v1/content", info.version_id) as f:
        assert f.read() == data


def test_pinned_reads_refuse_another_version(store: LocalStore) -> None:
    info = store.put_bytes("records/r/v1/manifest.json", b"{}", retain_until=LATER)
    other = "0" * 32
    assert info.version_id != other
    with pytest.raises(ObjectMissing):
        store.read("records/r/v1/manifest.json", other)
    with pytest.raises(ObjectMissing):
        store.open("records/r/v1/manifest.json", other)
    with pytest.raises(ObjectMissing):
        store.stat("records/r/v1/manifest.json", other)
    assert store.stat("records/r/v1/manifest.json", info.version_id) == info


def test_missing_object_is_object_missing_for_every_read(store: LocalStore) -> None:
    for call in (store.read, store.open, store.stat):
        with pytest.raises(ObjectMissing):
            call("records/none/v1/content")


def test_metadata_is_read_afresh_and_a_long_file_is_read_whole(store: LocalStore) -> None:
    key = "records/r/v1/content"
    info = store.put_bytes(key, b"bytes", retain_until=LATER)
    meta = store.root / "meta" / f"{key}.json"
    body = json.loads(meta.read_bytes())
    later = LATER + timedelta(days=400)
    body["retain_until"] = later.isoformat()
    # metadata padded past one 64 KiB read: still parsed whole
    meta.write_text(json.dumps(body) + " " * (200 * 1024), encoding="utf-8")
    assert store.stat(key, info.version_id).retain_until == later


@pytest.mark.parametrize("text", ["{not json", "[]", "\"a string\""])
def test_unreadable_metadata_is_a_storage_error(store: LocalStore, text: str) -> None:
    key = "records/r/v1/content"
    info = store.put_bytes(key, b"bytes", retain_until=LATER)
    (store.root / "meta" / f"{key}.json").write_text(text, encoding="utf-8")
    for call in (store.stat, store.read):
        with pytest.raises(StorageError) as err:
            call(key, info.version_id)
        assert err.value.code == "STORAGE_META_CORRUPT"


def test_object_without_metadata_reports_the_version_its_bytes_give(store: LocalStore) -> None:
    key = "records/r/v1/content"
    info = store.put_bytes(key, b"bytes", retain_until=LATER)
    (store.root / "meta" / f"{key}.json").unlink()
    bare = store.stat(key, info.version_id)
    assert (bare.version_id, bare.retain_until, bare.sha256) == \
        (info.version_id, None, info.sha256)
    assert store.read(key, info.version_id) == b"bytes"


@pytest.mark.parametrize("key", ["records/r/v1/content\n", "records/../v1/content",
                                 "/records/r", "records//r", "records/.hidden"])
def test_keys_that_could_escape_or_confuse_are_refused(store: LocalStore, key: str) -> None:
    for call in (store.read, store.open, store.stat):
        with pytest.raises(StorageError) as err:
            call(key)
        assert err.value.code == "STORAGE_BAD_KEY"
