"""The typed manifest: one parser, one writer, byte-identical round trips."""

from __future__ import annotations

import hashlib

import pytest

from edoc.model import canonical
from edoc.model.manifest import MANIFEST_SCHEMA, Manifest, ManifestError
from tests.helpers import legacy_manifests


def test_every_manifest_of_the_old_release_round_trips_byte_for_byte() -> None:
    stored = legacy_manifests()
    assert len(stored) == 5
    kinds = set()
    for data in stored:
        m = Manifest.from_bytes(data)
        kinds.add(m.kind)
        assert m.to_bytes() == data
        assert hashlib.sha256(m.to_bytes()).digest() == hashlib.sha256(data).digest()
    assert kinds == {"original", "correction", "tombstone"}


def test_fields_are_typed() -> None:
    by_kind = {Manifest.from_bytes(d).kind: Manifest.from_bytes(d) for d in legacy_manifests()}
    tomb, corr = by_kind["tombstone"], by_kind["correction"]
    assert tomb.is_tombstone and tomb.content is None
    assert corr.content is not None and corr.content.original_name == "invoice.pdf"
    assert corr.metadata.amount == 55000 and corr.metadata.counterparty == "山田商店"
    assert corr.previous_version_sha256 is not None and corr.version == 2
    assert corr.retain_until == "2033-05-31" and corr.until_at == "2033-05-31T15:00:00Z"


def test_unknown_keys_and_fields_are_carried_through() -> None:
    base = canonical.loads(legacy_manifests()[0])
    base["future_block"] = {"x": [1, 2]}
    base["metadata"]["invoice_number"] = "INV-1"
    data = canonical.dumps(base)
    m = Manifest.from_bytes(data)
    assert m.extra == {"future_block": {"x": [1, 2]}}
    assert m.metadata.extra == {"invoice_number": "INV-1"}
    assert m.to_bytes() == data


def test_absent_keys_stay_absent() -> None:
    base = canonical.loads(legacy_manifests()[0])
    del base["archive_id"], base["metadata"]["author"]
    data = canonical.dumps(base)
    assert Manifest.from_bytes(data).to_bytes() == data


def test_evolve_builds_the_next_version() -> None:
    m = Manifest.from_bytes(legacy_manifests()[0])
    nxt = m.evolve(version=m.version + 1, kind="correction", reason="typo")
    doc = canonical.loads(nxt.to_bytes())
    assert (doc["version"], doc["kind"], doc["reason"]) == (m.version + 1, "correction", "typo")
    assert doc["schema"] == MANIFEST_SCHEMA


@pytest.mark.parametrize(("mutate", "code"), [
    (lambda d: d.update(schema="edoc.manifest/9"), "MANIFEST_SCHEMA_UNKNOWN"),
    (lambda d: d.update(version=0), "MANIFEST_MALFORMED"),
    (lambda d: d.update(version=True), "MANIFEST_MALFORMED"),
    (lambda d: d.update(kind="draft"), "MANIFEST_MALFORMED"),
    (lambda d: d.pop("record_id"), "MANIFEST_MALFORMED"),
    (lambda d: d.update(profiles="general"), "MANIFEST_MALFORMED"),
    (lambda d: d["metadata"].update(amount="10800"), "MANIFEST_MALFORMED"),
    (lambda d: d["content"].update(sha256="ABC"), "MANIFEST_MALFORMED"),
    (lambda d: d["content"].update(size=-1), "MANIFEST_MALFORMED"),
    (lambda d: d.update(retention=[]), "MANIFEST_MALFORMED"),
])
def test_malformed_manifests_are_refused_with_a_code(mutate: object, code: str) -> None:
    doc = canonical.loads(legacy_manifests()[0])
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(ManifestError) as err:
        Manifest.from_bytes(canonical.dumps(doc))
    assert err.value.code == code


@pytest.mark.parametrize("data", [b"\xff\xfe", b"[]", b"not json", b'"text"'])
def test_non_manifests_are_refused(data: bytes) -> None:
    with pytest.raises(ManifestError):
        Manifest.from_bytes(data)
