"""An archive made by edoc 0.1.0 before the package restructure still works, unchanged.

``tests/fixtures/legacy-archive-0.1.0.tar.gz`` was made by the release before the layout
change (commit 17dc919) with the real CLI: ``init``; a PDF ingested under
``nta-electronic-transaction``; a text file and a CSV under ``general``; the PDF's amount
corrected (v2); the text file put on hold; the CSV deleted (tombstone v2); then an evidence
bundle of two records (``archive-bundle.zip``). Its catalog is the old SQLite schema, its
store the old object layout, its keys the old development PKI. Nothing here regenerates it:
the point is that bytes written by the old code verify with the new one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import samples
from tests.helpers import Edoc, drop_catalog, legacy_archive

PDF, NOTE, CSV = ("01M916YE2KR4ZGV9GHHNFKPW76", "01M916YEXMJ7ZYH2HNKBS5AC5P",
                  "01M916YEXP353C69WNF2FPV5ZB")


@pytest.fixture
def legacy(tmp_path: Path) -> Iterator[Edoc]:
    with legacy_archive(tmp_path) as e:
        yield e


def test_every_old_version_verifies(legacy: Edoc) -> None:
    code, doc = legacy.json("verify", "--all")
    assert code == 0, doc
    versions = {(r["record_id"], r["version"]): r["status"] for r in doc["reports"]}
    assert versions == {(PDF, 1): "pass", (PDF, 2): "pass", (NOTE, 1): "pass",
                        (CSV, 1): "pass", (CSV, 2): "pass"}


def test_old_ledger_and_checkpoints_verify(legacy: Edoc) -> None:
    code, doc = legacy.json("ledger", "verify")
    assert code == 0, doc
    assert doc["tree_size"] == 6


def test_old_catalog_answers_search_show_and_holds(legacy: Edoc) -> None:
    code, doc = legacy.json("search", "--counterparty", "山田")
    assert code == 0
    assert [r["record_id"] for r in doc["records"]] == [PDF]
    assert doc["records"][0]["amount"] == 55000  # the corrected version is the current one
    code, doc = legacy.json("show", PDF, "--history")
    assert code == 0
    assert [v["version"] for v in doc["versions"]] == [1, 2]
    code, doc = legacy.json("holds")
    assert code == 0
    assert [h["record_id"] for h in doc["holds"]] == [NOTE]


def test_old_bundle_verifies_offline(legacy: Edoc, tmp_path: Path) -> None:
    bundle = tmp_path / "archive-bundle.zip"
    res = legacy("verify-bundle", str(bundle), "--trust",
                 str(legacy.archive / "keys" / "root-ca.pem"), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["ok"] is True


def test_new_records_join_the_old_archive_and_the_catalog_rebuilds(legacy: Edoc,
                                                                  tmp_path: Path) -> None:
    new = samples.text_pdf(tmp_path / "new.pdf", "Invoice INV-2026-0001 total 1,000 JPY")
    res = legacy("ingest", str(new), "--profile", "general", "--date", "2026-01-05",
                 "--counterparty", "新規商店")
    assert res.exit_code == 0, res.output
    drop_catalog(legacy.archive)
    res = legacy("catalog", "rebuild")
    assert res.exit_code == 0, res.output
    code, doc = legacy.json("verify", "--all")
    assert code == 0, doc
    assert len({r["record_id"] for r in doc["reports"]}) == 4


def test_old_leaf_objects_and_new_segments_verify_together(legacy: Edoc,
                                                           tmp_path: Path) -> None:
    """Leaves written before format edoc.ledger-segment/1 (one object each) and after (a
    segment of many) are one ledger: `ledger verify` reads both and finds them whole."""
    objects = legacy.archive / "store" / "objects" / "ledger"
    old = sorted(p.name for p in objects.glob("*.json"))
    assert len(old) == 6 and not (objects / "segments").exists()
    files = [samples.text_pdf(tmp_path / f"n{i}.pdf", f"Invoice {i} total 1,000 JPY")
             for i in range(3)]
    res = legacy("ingest", *map(str, files), "--profile", "general", "--date", "2026-01-05",
                 "--counterparty", "新規商店")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in objects.glob("*.json")) == old  # nothing rewritten
    # the run's three ingest leaves in one segment; the checkpoint's access-log leaf (the
    # reads since the last checkpoint) in the next
    segments = sorted((objects / "segments").glob("*.jsonl"))
    assert [int(p.stem) for p in segments][:1] == [6]
    assert len(segments[0].read_bytes().splitlines()) == 1 + 3
    held = sum(len(p.read_bytes().splitlines()) - 1 for p in segments)
    code, doc = legacy.json("ledger", "verify")
    assert code == 0, doc
    assert doc["tree_size"] == 6 + held >= 9
    segment = segments[0]
    segment.chmod(0o600)
    segment.write_bytes(segment.read_bytes().replace(b'"event":"ingest"', b'"event":"x"', 1))
    code, doc = legacy.json("ledger", "verify")
    assert code == 1
    assert "LEDGER_ENTRY_ALTERED" in {c["code"] for c in doc["checks"] if c["status"] == "fail"}
