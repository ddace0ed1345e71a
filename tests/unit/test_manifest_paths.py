"""Manifests built and read through the typed ``Manifest``: what ingest, corrections and
deletions write has the shape the old release wrote, and a stored manifest that no longer
parses is reported by every reader with a code, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from edoc.errors import CatalogError, EdocError
from edoc.model import canonical
from edoc.model.manifest import Manifest
from edoc.model.verdict import Status
from edoc.services.archive import Archive, init_archive
from edoc.services.ingest import Ingestor, IngestRequest
from edoc.services.lifecycle import Lifecycle
from edoc.services.rebuild import rebuild_catalog
from edoc.services.records import show_record
from edoc.services.verification import Verifier
from tests import samples
from tests.helpers import jst_today_minus, legacy_manifests, writable


def _legacy_by_kind() -> dict[str, Any]:
    docs = [canonical.loads(m) for m in legacy_manifests()]
    # The first of each kind among the invoices filed under the electronic-transaction
    # profile (the records this module's world files the same way).
    # (the old release deleted only a record of another profile: its tombstone stands in).
    by_kind: dict[str, Any] = {}
    for d in sorted(docs, key=lambda d: d["profiles"] != ["nta-electronic-transaction"]):
        by_kind.setdefault(d["kind"], d)
    return by_kind


def _shape(value: Any) -> Any:
    """Key sets and value types, recursively through objects (lists: their type only)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return type(value).__name__


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Archive, dict[str, str]]]:
    d = tmp_path_factory.mktemp("manifest-paths")
    a = init_archive(d / "archive", organisation="manifest paths")
    # Filed as the old release's fixture filed them: two invoices under the electronic-
    # transaction profile, and a text file under ``general`` (the one it deleted).
    invoices = [IngestRequest(
        path=str(samples.text_pdf(d / f"inv{i}.pdf", f"invoice {i}")),
        profiles=("nta-electronic-transaction",), doc_type="invoice",
        date=jst_today_minus(30), received=jst_today_minus(20), amount="54000",
        counterparty="山田商店", ledger_ref=f"JV-{i}") for i in range(2)]
    note = d / "note.txt"
    note.write_text("納品書の控え\n", encoding="utf-8")
    run = Ingestor(a).run([*invoices, IngestRequest(
        path=str(note), profiles=("general",), date=jst_today_minus(30),
        counterparty="佐藤工業")])
    rids = dict(zip(("original", "correction", "tombstone"),
                    (r.record_id or "" for r in run.results), strict=True))
    lc = Lifecycle(a)
    lc.correct(rids["correction"], reason="typo",
               changes=IngestRequest(path="", amount="55000"))
    lc.delete(rids["tombstone"], reason="duplicate scan")
    yield a, rids
    a.catalog.dispose()


def _stored(a: Archive, rid: str) -> bytes:
    row = a.catalog.version_rows(rid)[-1]
    return a.store.read(row.manifest_key, row.manifest_version_id)


@pytest.mark.parametrize("kind", ["original", "correction", "tombstone"])
def test_written_manifests_have_the_old_release_shape(world: tuple[Archive, dict[str, str]],
                                                      kind: str) -> None:
    a, rids = world
    data = _stored(a, rids[kind])
    m = Manifest.from_bytes(data)
    assert m.kind == kind and m.to_bytes() == data
    doc = canonical.loads(data)
    # Added since the old release (issue 16): each search field's provenance, one object per
    # field with at least its source; every other key keeps the old shape.
    provenance = doc.pop("provenance")
    assert provenance and all(isinstance(p["source"], str) for p in provenance.values())
    # The world's two invoices share date, amount and counterparty: the second is flagged.
    for w in doc.pop("warnings", []):
        assert w["code"] == "DUPLICATE_SUSPECT" and w["record_id"] == rids["original"]
    assert _shape(doc) == _shape(_legacy_by_kind()[kind])


def _tamper(a: Archive, rid: str, edit: bytes, to: bytes) -> None:
    row = a.catalog.version_rows(rid)[-1]
    path = writable(a.cfg.dir / "store" / "objects" / row.manifest_key)
    data = path.read_bytes()
    assert edit in data
    path.write_bytes(data.replace(edit, to))


def test_a_manifest_that_no_longer_parses_is_a_failed_check(
        world: tuple[Archive, dict[str, str]]) -> None:
    a, rids = world
    rid = rids["original"]
    _tamper(a, rid, b'"amount":54000', b'"amount":"54000"')  # valid JSON, not a manifest
    (report,) = Verifier(a).verify_record(rid)
    manifest = [(c.status, c.code) for c in report.checks if c.name == "manifest"]
    assert manifest == [(Status.FAIL, "MANIFEST_ALTERED"), (Status.FAIL, "MANIFEST_MALFORMED")]
    content = next(c for c in report.checks if c.name == "content")
    assert content.status is Status.PASS  # judged by the catalogued digest, as before
    with pytest.raises(EdocError) as shown:
        show_record(a, rid, "tester")
    assert shown.value.code == "MANIFEST_MALFORMED"
    with pytest.raises(CatalogError) as rebuilt:
        rebuild_catalog(a)
    assert rebuilt.value.code == "MANIFEST_MALFORMED"
