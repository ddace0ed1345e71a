"""Period verification a chunk at a time gives the reports one-by-one verification gives.

``Verifier.verify_batch`` reads a chunk's version rows and ledger entries in one query and
the checkpoint sizes once; ``Verifier.verify_version`` (the per-version path, one catalog
query for each entry and checkpoint) is the reference. The archive holds every kind of
record a period verification meets: plain, corrected, deleted, tampered in three ways,
purged (two in one certificate), and one whose ledger entry lies beyond the last checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from edoc.model.verdict import RecordReport, Status
from edoc.services import period_verification
from edoc.services.archive import Archive
from edoc.services.period_verification import verify_stream
from edoc.services.verification import Verifier
from tests import samples
from tests.helpers import Edoc, Records, copy_tree, jst_today_minus, short_profile, writable

SHORT = 2  # seconds a test-short record is kept


Fixture = Records


def _scan(directory: Path, name: str, seed: int) -> Path:
    path = directory / f"{name}.png"
    samples.scan_image(path, dpi=200 + seed, mode="RGB", fmt="PNG")
    return path


def _ingest(edoc: Edoc, files: dict[str, Path], profile: str) -> dict[str, str]:
    code, doc = edoc.json("ingest", *map(str, files.values()), "--profile", profile,
                          "--date", jst_today_minus(1), "--amount", "10800",
                          "--counterparty", "山田商店")
    assert code == 0, doc
    by_file = {Path(str(r["file"])).stem: str(r["record_id"]) for r in doc["results"]}
    return {name: by_file[name] for name in files}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    tmp = tmp_path_factory.mktemp("verify-batch")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDOC_POLICIES", str(short_profile(tmp / "policies", SHORT)))
        edoc = Edoc(tmp / "archive")
        assert edoc("init", str(edoc.archive)).exit_code == 0
        started = time.monotonic()
        ids = _ingest(edoc, {n: _scan(tmp, n, i) for i, n in enumerate(("purged1", "purged2"))},
                      "test-short")
        names = ("ok", "corrected", "deleted", "content", "manifest", "catalog")
        ids |= _ingest(edoc, {n: _scan(tmp, n, 10 + i) for i, n in enumerate(names)},
                       "general")
        assert edoc.json("correct", ids["corrected"], "--reason", "amount mistyped",
                         "--amount", "11000")[0] == 0
        assert edoc.json("delete", ids["deleted"], "--reason", "duplicate scan")[0] == 0
        time.sleep(max(0.0, SHORT + 1 - (time.monotonic() - started)))
        code, done = edoc.json("purge", "--yes")
        assert code == 0 and len(done["certificates"]) == 1, done
        ids |= _ingest(edoc, {"late": _scan(tmp, "late", 30)}, "general")
        # tampering, as an attacker with file-system access would
        records = edoc.objects / "records"
        content = writable(records / ids["content"] / "v1" / "content")
        data = bytearray(content.read_bytes())
        data[200] ^= 0x01
        content.write_bytes(bytes(data))
        manifest = writable(records / ids["manifest"] / "v1" / "manifest.json")
        manifest.write_bytes(manifest.read_bytes().replace(b'"amount":10800', b'"amount":108'))
        with edoc.db() as db:
            db.execute("UPDATE versions SET amount = 1 WHERE record_id = ?", (ids["catalog"],))
            # the last run's checkpoint never reached the catalog (a crash before it did):
            # the late record's ledger entry lies beyond the last checkpoint
            db.execute("DELETE FROM checkpoints WHERE tree_size = (SELECT max(tree_size) "
                       "FROM checkpoints)")
        yield Fixture(edoc, ids)


def _reference(a: Archive, record_ids: list[str], *, batch: bool) -> list[RecordReport]:
    """One record at a time, one catalog query per version and per lookup."""
    v = Verifier(a, batch=batch)
    out: list[RecordReport] = []
    for rid in record_ids:
        rows = a.catalog.version_rows(rid)
        if not rows:
            out.extend(Verifier(a).verify_record(rid))  # the NOT_FOUND report
        out.extend(v.verify_version(r) for r in rows)
    return out


def _dicts(reports: list[RecordReport]) -> list[dict[str, object]]:
    return [r.as_dict() for r in reports]


def _codes(reports: list[RecordReport]) -> dict[tuple[str, int], set[str]]:
    return {(r.record_id, r.version): {c.code for c in r.checks if c.status is not Status.PASS}
            for r in reports}


def _order(fx: Fixture) -> list[str]:
    ids = fx.ids
    # not in catalog order; a duplicate and an unknown id as a user may type them
    return [ids["late"], ids["ok"], "01NOSUCHRECORD0000000000000", ids["purged2"],
            ids["corrected"], ids["deleted"], ids["content"], ids["ok"], ids["manifest"],
            ids["catalog"], ids["purged1"]]


@pytest.mark.parametrize("batch", [True, False], ids=["period", "single"])
def test_batch_gives_the_per_version_reports(archive: Fixture, batch: bool) -> None:
    a = archive.open()
    try:
        order = _order(archive)
        want = _reference(a, order, batch=batch)
        got = Verifier(a, batch=batch).verify_batch(order)
        assert _dicts(got) == _dicts(want)
        ids = archive.ids
        codes = _codes(got)
        # what each record was made to be, independently of either code path
        assert codes[(ids["ok"], 1)] == set()
        assert codes[(ids["corrected"], 1)] == codes[(ids["corrected"], 2)] == set()
        assert codes[(ids["deleted"], 1)] == codes[(ids["deleted"], 2)] == set()
        assert codes[(ids["content"], 1)] == {"DIGEST_MISMATCH"}
        assert "MANIFEST_ALTERED" in codes[(ids["manifest"], 1)]
        assert codes[(ids["catalog"], 1)] == {"CATALOG_MISMATCH"}
        assert codes[(ids["late"], 1)] == {"NOT_YET_CHECKPOINTED"}
        assert codes[("01NOSUCHRECORD0000000000000", 0)] == {"NOT_FOUND"}
        for name in ("purged1", "purged2"):
            report = next(r for r in got if r.record_id == ids[name])
            assert [(c.code, c.status) for c in report.checks] == [("DISPOSED", Status.PASS)]
        assert [r.record_id for r in got].count(ids["ok"]) == 2
        # each included leaf names the smallest checkpoint above it, as SQL finds it
        with archive.edoc.db() as db:
            covering = dict(db.execute(
                "SELECT v.record_id || ' v' || v.version, (SELECT min(tree_size) FROM "
                "checkpoints WHERE tree_size > v.ledger_index) FROM versions v"))
        for r in got:
            for c in r.checks:
                if c.name == "inclusion" and c.status is Status.PASS:
                    assert c.detail.endswith(
                        f" is in checkpoint {covering[f'{r.record_id} v{r.version}']}")
    finally:
        a.close()


def test_verify_record_and_streams_agree(archive: Fixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    a = archive.open()
    try:
        order = _order(archive)
        want = _dicts(_reference(a, order, batch=True))
        one_by_one = Verifier(a, batch=True)
        assert _dicts([r for rid in order for r in one_by_one.verify_record(rid)]) == want
        # several chunks, in one process and on both workers
        monkeypatch.setattr(period_verification, "CHUNK_IDS", 3)
        assert _dicts(list(verify_stream(a, iter(order), workers=1))) == want
        assert _dicts(list(verify_stream(a, iter(order), workers=2))) == want
    finally:
        a.close()


def test_tampered_certificate_fails_every_record_it_lists(archive: Fixture,
                                                          tmp_path: Path) -> None:
    """The certificate is verified once per Verifier; each disposed record still gets the
    verdict (the archive is copied: the module's fixture stays untouched)."""
    copy = tmp_path / "copy"
    copy_tree(archive.edoc.archive, copy)
    cert = next((copy / "store" / "objects" / "disposals").glob("*.json"))
    writable(cert).write_bytes(cert.read_bytes().replace(b'"count":2', b'"count":3'))
    a = Archive.open(str(copy))
    try:
        ids = [archive.ids["purged1"], archive.ids["purged2"]]
        got = Verifier(a, batch=True).verify_batch(ids)
        assert _dicts(got) == _dicts(_reference(a, ids, batch=True))
        assert [[c.code for c in r.checks] for r in got] == [["SEAL_SIGNATURE_INVALID"]] * 2
    finally:
        a.close()


def test_checkpoint_made_after_the_sizes_were_loaded(tmp_path: Path) -> None:
    """A Verifier that loaded the checkpoint sizes still finds a checkpoint made later."""
    edoc = Edoc(tmp_path / "archive")
    assert edoc("init", str(edoc.archive)).exit_code == 0
    first = _ingest(edoc, {"a": _scan(tmp_path, "a", 0)}, "general")["a"]
    a = Archive.open(str(edoc.archive))
    try:
        v = Verifier(a, batch=True)
        assert v.verify_batch([first])[0].status is Status.PASS
        later = _ingest(edoc, {"b": _scan(tmp_path, "b", 1)}, "general")["b"]
        report = v.verify_batch([later])[0]
        assert report.status is Status.PASS, report.as_dict()
        inclusion = next(c for c in report.checks if c.name == "inclusion")
        assert inclusion.code == "OK"
        assert report.as_dict() == Verifier(a, batch=True).verify_version(
            a.catalog.version_rows(later)[0]).as_dict()
    finally:
        a.close()


def test_versions_with_entries_reads_any_number_of_records(tmp_path: Path) -> None:
    """More ids than one statement may bind (older SQLite: 999), with and without versions,
    each record's versions in order with its own ledger entry."""
    from edoc.catalog import Catalog, ledger, versions

    cat = Catalog("sqlite:///catalog.sqlite", tmp_path)
    cat.create()
    rows = [{"record_id": f"R{i:04d}", "version": v, "kind": "original",
             "manifest_key": "k", "manifest_sha256": "0" * 64, "profiles": "[]",
             "retain_until": "2034-03-31", "retain_until_at": "2034-03-31T15:00:00+00:00",
             "ingested_at": "2024-04-01T00:00:00+00:00", "ledger_index": 2 * i + v - 1}
            for i in range(1200) for v in (2, 1)]
    with cat.write() as c:
        c.execute(versions.insert(), rows)
        c.execute(ledger.insert(), [{"idx": r["ledger_index"], "event": "ingest",
                                     "leaf_hash": "0" * 64, "entry": f"e{r['ledger_index']}",
                                     "stored": True} for r in rows if r["record_id"] != "R0007"])
    asked = [f"R{i:04d}" for i in range(1300)]
    found = cat.versions_with_entries(asked)
    assert sorted(found) == asked[:1200]
    for i in (0, 7, 499, 500, 1199):
        got = [(r.version, r.ledger_entry) for r in found[f"R{i:04d}"]]
        want = [(1, f"e{2 * i}"), (2, f"e{2 * i + 1}")]
        assert got == ([(1, None), (2, None)] if i == 7 else want)


def test_reader_threads_give_the_same_reports(archive: Fixture) -> None:
    """Objects read and hashed ahead on reader threads (``Verifier(readers=N)``, what each
    verifying process uses on S3) change no report: the tampered content is still
    DIGEST_MISMATCH, the purged and deleted records still pass."""
    a = archive.open()
    try:
        order = _order(archive)
        want = _dicts(Verifier(a, batch=True).verify_batch(order))
        threaded = Verifier(a, batch=True, readers=2)
        try:
            got = threaded.verify_batch(order)
            again = threaded.verify_batch(order)  # the pool is reused across batches
        finally:
            threaded.close()
        assert _dicts(got) == want and _dicts(again) == want
        assert _codes(got)[(archive.ids["content"], 1)] == {"DIGEST_MISMATCH"}
    finally:
        a.close()


def test_worker_processes_give_the_same_reports(archive: Fixture) -> None:
    """Worker processes (``verify_stream(workers=2)``, what ``edoc verify`` uses for a long
    period) change no report: the tampered content is still DIGEST_MISMATCH, the purged and
    deleted records still pass, and the reports come back in the order asked."""
    a = archive.open()
    try:
        order = _order(archive)
        want = _dicts(Verifier(a, batch=True).verify_batch(order))
        streamed = list(verify_stream(a, iter(order), workers=2))
        assert _dicts(streamed) == want
        assert _codes(streamed)[(archive.ids["content"], 1)] == {"DIGEST_MISMATCH"}
    finally:
        a.close()


@pytest.mark.parametrize(("kind", "records", "cores", "want"), [
    ("local", 4999, 2, 1), ("local", 5000, 2, 2), ("local", 50_000, 16, 8),
    ("s3", 499, 2, 1), ("s3", 500, 2, 2), ("local", 10_000, 1, 1)])
def test_default_workers_by_store_and_period(kind: str, records: int, cores: int, want: int,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # Worker processes where the fork server's start pays off: from 5,000 records on the
    # local store, from 500 on S3 (a version there costs ~10 ms, not ~0.3).
    monkeypatch.setattr(period_verification.os, "cpu_count", lambda: cores)
    archive = SimpleNamespace(store=SimpleNamespace(kind=kind))
    assert period_verification.default_workers(archive, records) == want  # type: ignore[arg-type]
