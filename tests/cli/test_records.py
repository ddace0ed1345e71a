"""Reading records: which document a search hit is, and ``get -o`` all or nothing.

A search hit names the file it was ingested under and the SHA-256 it was sealed with, in the
table, ``--json`` (new keys, the old ones unchanged) and ``--csv`` (new columns at the end,
formulas neutralised like every cell). ``get -o`` writes a file only when the copied bytes
match their digest, never leaves a partial or temporary file, and replaces only with --force.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import pytest

from tests import samples
from tests.helpers import Edoc, writable

OLD_SEARCH_KEYS = ["record_id", "version", "state", "transaction_date", "amount",
                   "counterparty", "doc_type", "ledger_ref", "profiles", "retain_until",
                   "content_sha256"]


@pytest.fixture
def edoc(tmp_path: Path) -> Edoc:
    e = Edoc(tmp_path / "archive")
    assert e("init", str(e.archive)).exit_code == 0
    return e


def _ingest(e: Edoc, path: Path, *extra: str) -> str:
    code, doc = e.json("ingest", str(path), "--profile", "general", *extra)
    assert code == 0, doc
    return str(doc["results"][0]["record_id"])


def _scan(tmp_path: Path, name: str, dpi: int) -> Path:
    p = tmp_path / name
    samples.scan_image(p, dpi=dpi, mode="RGB", fmt="PNG")
    return p


def test_search_hits_name_their_file_and_digest(edoc: Edoc, tmp_path: Path) -> None:
    plain = _scan(tmp_path, "請求書-2025-04.png", 200)
    formula = _scan(tmp_path, "=HYPERLINK(x).png", 210)
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (plain, formula)}
    rids = {_ingest(edoc, plain, "--amount", "100"): plain.name,
            _ingest(edoc, formula, "--amount", "200"): formula.name}

    code, found = edoc.json("search")
    assert code == 0, found
    for hit in found["records"]:
        assert list(hit)[:len(OLD_SEARCH_KEYS)] == OLD_SEARCH_KEYS  # added, not renamed
        assert hit["original_name"] == rids[hit["record_id"]]  # JSON is data: as given
        assert hit["content_sha256"] == digests[hit["original_name"]]

    res = edoc("search", "--csv")
    assert res.exit_code == 0, res.output
    reader = csv.reader(io.StringIO(res.stdout))
    header = next(reader)
    assert header[:len(OLD_SEARCH_KEYS)] == OLD_SEARCH_KEYS
    assert header[len(OLD_SEARCH_KEYS):] == ["original_name"]
    rows = {r[0]: dict(zip(header, r, strict=True)) for r in reader}
    assert rows.keys() == rids.keys()
    for rid, name in rids.items():
        shown = "'" + name if name.startswith("=") else name  # a formula is shown as text
        assert rows[rid]["original_name"] == shown
        assert rows[rid]["content_sha256"] == digests[name]

    res = edoc("search")
    assert res.exit_code == 0, res.output
    for rid, name in rids.items():
        lines = res.stdout.splitlines()
        at = next(n for n, line in enumerate(lines) if line.startswith(rid))
        assert lines[at + 1].split() == [name, "sha256", digests[name]]


def test_get_writes_the_original_and_replaces_only_with_force(
        edoc: Edoc, tmp_path: Path) -> None:
    src = _scan(tmp_path, "a.png", 200)
    rid = _ingest(edoc, src)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "copy.png"
    res = edoc("get", rid, "-o", str(out))
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == src.read_bytes()
    out.write_bytes(b"mine")
    res = edoc("get", rid, "-o", str(out))
    assert res.exit_code == 1 and "OUTPUT_EXISTS" in res.output
    assert out.read_bytes() == b"mine"
    assert edoc("get", rid, "-o", str(out), "--force").exit_code == 0
    assert out.read_bytes() == src.read_bytes()
    assert [p.name for p in out_dir.iterdir()] == ["copy.png"]  # no temporary file left
    res = edoc("get", rid, "-o", str(tmp_path / "missing" / "copy.png"))
    assert res.exit_code == 1 and "OUTPUT_DIR_MISSING" in res.output
    res = edoc("get", rid, "-o", "-")
    assert res.exit_code == 0 and res.stdout_bytes == src.read_bytes()


def test_get_of_corrupted_content_writes_nothing(edoc: Edoc, tmp_path: Path) -> None:
    src = _scan(tmp_path, "a.png", 200)
    rid = _ingest(edoc, src)
    stored = writable(edoc.objects / "records" / rid / "v1" / "content")
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01  # a flipped bit: always other bytes
    stored.write_bytes(bytes(data))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    res = edoc("get", rid, "-o", str(out_dir / "copy.png"))
    assert res.exit_code == 1 and "DIGEST_MISMATCH" in res.output
    assert list(out_dir.iterdir()) == []  # neither the file nor a partial copy


def test_get_and_show_of_an_unknown_record_are_not_found(edoc: Edoc, tmp_path: Path) -> None:
    res = edoc("get", "0" * 26, "-o", str(tmp_path / "x"))
    assert res.exit_code == 1 and "NOT_FOUND" in res.output
    code, doc = edoc.json("show", "0" * 26)
    assert code == 1 and doc["error"]["code"] == "NOT_FOUND"
