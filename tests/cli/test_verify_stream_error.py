"""``verify --all --json`` streams its report; an error after the stream began (the store
going away mid-run) still ends one JSON document that says so, never two glued together."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edoc.errors import StorageError
from tests.helpers import Edoc
from tests.samples import text_pdf


def test_an_error_mid_stream_closes_the_json_document(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    e = Edoc(tmp_path / "archive")
    assert e("init", str(e.archive)).exit_code == 0
    files = [text_pdf(tmp_path / f"d{i}.pdf", f"Invoice {i}") for i in range(2)]
    res = e("ingest", *map(str, files), "--profile", "general", "--date", "2024-04-01",
            "--amount", "1000", "--counterparty", "株式会社テスト")
    assert res.exit_code == 0, res.output

    import edoc.services.period_verification as period_verification

    real = period_verification.verify_chunks

    def failing(*args: Any, **kwargs: Any) -> Iterator[Any]:
        stream = real(*args, **kwargs)
        yield next(stream)
        raise StorageError("the store went away", code="STORAGE_UNAVAILABLE")

    monkeypatch.setattr(period_verification, "CHUNK_IDS", 1)  # the first chunk: 1 report
    monkeypatch.setattr(period_verification, "verify_chunks", failing)
    res = e("verify", "--all", "--json")
    assert res.exit_code == 1
    doc = json.loads(res.stdout)  # exactly one document
    assert doc["ok"] is False and doc["versions"] == 1 and len(doc["reports"]) == 1
    assert doc["error"]["code"] == "STORAGE_UNAVAILABLE"
