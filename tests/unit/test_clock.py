"""One injectable clock: fixing it once fixes every instant a whole run records."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edoc import clock
from edoc.clock import FixedClock, SystemClock, use_clock
from edoc.model.manifest import Manifest
from edoc.model.verdict import Status
from edoc.services.archive import Archive, init_archive
from edoc.services.ingest import Ingestor, IngestRequest
from edoc.services.verification import Verifier

AT = datetime(2031, 4, 1, 1, 0, tzinfo=UTC)  # 10:00 JST, 1 April 2031


def test_the_system_clock_is_the_default_and_is_aware() -> None:
    assert isinstance(clock.current(), SystemClock)
    assert clock.now().tzinfo is UTC


def test_use_clock_restores_the_previous_clock() -> None:
    before = clock.current()
    with use_clock(FixedClock(AT)) as fixed:
        assert clock.now() == AT
        fixed.advance(timedelta(seconds=5))
        assert clock.now() == AT + timedelta(seconds=5)
    assert clock.current() is before


def test_a_naive_fixed_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        FixedClock(datetime(2031, 4, 1))


def test_a_whole_ingest_runs_on_the_fixed_clock(tmp_path: Path) -> None:
    doc = tmp_path / "memo.txt"
    doc.write_text("打合せメモ 2031-03-30\n", encoding="utf-8")
    with use_clock(FixedClock(AT)):
        init_archive(tmp_path / "archive", organisation="時計テスト株式会社")
        archive = Archive.open(str(tmp_path / "archive"))
        run = Ingestor(archive).run([IngestRequest(path=str(doc), profiles=("general",),
                                                   date="2031-03-30")])
        assert run.ok, run
        rid = run.results[0].record_id
        assert rid is not None
        row = archive.catalog.version_rows(rid)[0]
        manifest = Manifest.from_bytes(archive.store.read(row.manifest_key,
                                                          row.manifest_version_id))
        # Ingest time, and retention counted from it (general: 10 years from the JST date
        # of ingest, minus a day), both come from the fixed clock, not the machine's.
        assert manifest.ingested_at == "2031-04-01T01:00:00.000000+00:00"
        assert manifest.retain_until == "2041-03-31"
        checkpoint = json.loads(sorted(
            (tmp_path / "archive" / "store" / "objects" / "checkpoints").glob("*.json"))[-1]
            .read_bytes())
        assert checkpoint["created_at"].startswith("2031-04-01T01:00")
        report = Verifier(archive).verify_record(rid)
        assert [r.status for r in report] == [Status.PASS], report
