"""デジタルシームレス readiness through the CLI (issue "E-invoices", part 5): the ``seamless``
block of ``show --json`` and the export, and ``edoc link`` adding a ledger reference later.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests import einvoice_samples as samples
from tests.helpers import Edoc

PROFILE = ("--profile", "nta-electronic-transaction")


@pytest.fixture(scope="module")
def edoc(tmp_path_factory: pytest.TempPathFactory) -> Edoc:
    e = Edoc(tmp_path_factory.mktemp("seamless") / "archive")
    assert e("init", str(e.archive)).exit_code == 0
    return e


def _ingest(e: Edoc, tmp_path: Path, data: bytes, name: str, *extra: str) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    code, doc = e.json("ingest", str(path), *PROFILE, *extra)
    assert code == 0, doc
    return str(doc["results"][0]["record_id"])


def _seamless(e: Edoc, rid: str) -> dict[str, Any]:
    code, doc = e.json("show", rid)
    assert code == 0, doc
    block = doc["seamless"]
    assert block["applies_from"] == "2027-01-01"
    assert "not a certification" in block["note"]
    return dict(block)


def _status(block: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["status"] for c in block["conditions"]}


def test_link_adds_the_cross_reference_as_a_correction(edoc: Edoc, tmp_path: Path) -> None:
    rid = _ingest(edoc, tmp_path, samples.pint_invoice(number="INV-LINK"), "link.xml")
    before = _seamless(edoc, rid)
    assert _status(before) == {"a": "met", "b": "met", "c": "met", "d": "met", "e": "unmet"}
    assert before["ready"] is False and before["ledger_refs"] == []

    code, doc = edoc.json("link", rid, "--ledger-ref", "GL-2024-0042")
    assert code == 0, doc
    assert doc["kind"] == "correction" and doc["version"] == 2

    after = _seamless(edoc, rid)
    assert _status(after)["e"] == "met" and after["ready"] is True
    assert after["ledger_refs"] == ["GL-2024-0042"]
    code, shown = edoc.json("show", rid, "--history")
    assert shown["ledger_refs"] == ["GL-2024-0042"]
    v1, v2 = shown["versions"]
    assert v2["kind"] == "correction"
    assert v2["reason"] == "ledger reference added (相互関連性)"
    assert v2["metadata"]["ledger_ref"] == "GL-2024-0042"
    # the only change is the ledger reference: content and other fields carry over
    assert v2["content"] == v1["content"]
    assert {k: v for k, v in v2["metadata"].items() if k != "ledger_ref"} == \
        {k: v for k, v in v1["metadata"].items() if k != "ledger_ref"}

    code, found = edoc.json("search", "--ledger-ref", "GL-2024-0042")
    assert code == 0, found
    assert rid in {h["record_id"] for h in found["records"]}
    # the e-invoice's own search fields survive the link (carried over by the correction)
    code, found = edoc.json("search", "--invoice-number", "INV-LINK")
    assert [h["record_id"] for h in found["records"]] == [rid]

    # the same reference again changes nothing
    code, doc = edoc.json("link", rid, "--ledger-ref", "GL-2024-0042")
    assert code != 0 and doc["error"]["code"] == "NO_CHANGE", doc

    # the export carries the block per record
    out = tmp_path / "export.zip"
    code, doc = edoc.json("export", "--ledger-ref", "GL-2024-0042", "-o", str(out))
    assert code == 0, doc
    with zipfile.ZipFile(out) as zf:
        exported = json.loads(zf.read("seamless.json"))
    assert exported[rid]["ready"] is True


def test_a_nontaxinvoice_is_not_specified_data(edoc: Edoc, tmp_path: Path) -> None:
    rid = _ingest(edoc, tmp_path, samples.pint_invoice(non_tax=True, number="NT-1"), "nt.xml",
                  "--ledger-ref", "GL-NT-1")
    block = _seamless(edoc, rid)
    assert _status(block)["a"] == "unmet" and block["ready"] is False
    assert _status(block)["e"] == "met"


def test_an_amount_correction_is_listed(edoc: Edoc, tmp_path: Path) -> None:
    rid = _ingest(edoc, tmp_path, samples.pint_invoice(number="INV-AMT"), "amt.xml",
                  "--ledger-ref", "GL-AMT")
    old = _seamless(edoc, rid)
    assert old["amount_changes"] == []
    code, shown = edoc.json("show", rid)
    amount = shown["versions"][-1]["metadata"]["amount"]
    code, doc = edoc.json("correct", rid, "--amount", str(amount + 100), "--reason",
                          "値引き漏れの訂正")
    assert code == 0, doc
    block = _seamless(edoc, rid)
    assert block["amount_changes"] == [{"version": 2, "old": amount, "new": amount + 100,
                                        "reason": "値引き漏れの訂正", "kind": "correction"}]
    assert _status(block)["d"] == "met"


def test_a_deleted_record_is_not_linked(edoc: Edoc, tmp_path: Path) -> None:
    rid = _ingest(edoc, tmp_path, samples.pint_invoice(number="INV-DEL"), "del.xml")
    code, doc = edoc.json("delete", rid, "--reason", "duplicate")
    assert code == 0, doc
    code, doc = edoc.json("link", rid, "--ledger-ref", "GL-DEL")
    assert code != 0 and doc["error"]["code"] == "RECORD_DELETED", doc
    assert _status(_seamless(edoc, rid))["b"] == "unmet"


def test_show_text_and_profile(edoc: Edoc, tmp_path: Path) -> None:
    rid = _ingest(edoc, tmp_path, samples.pint_invoice(number="INV-TXT"), "txt.xml",
                  "--ledger-ref", "GL-TXT")
    out = edoc("show", rid)
    assert out.exit_code == 0, out.output
    assert "seamless  ready" in out.output and "JIIMA" in out.output
    assert "ledger refs  GL-TXT" in out.output
    prof = edoc("profiles", "nta-digital-seamless")
    assert prof.exit_code == 0, prof.output
    assert "国税庁告示第2号" in prof.output


def test_the_profile_requires_a_ledger_ref(edoc: Edoc, tmp_path: Path) -> None:
    path = tmp_path / "req.xml"
    path.write_bytes(samples.pint_invoice(number="INV-REQ"))
    code, doc = edoc.json("ingest", str(path), "--profile", "nta-digital-seamless")
    assert code != 0, doc
    code, doc = edoc.json("ingest", str(path), "--profile", "nta-digital-seamless",
                          "--ledger-ref", "GL-REQ")
    assert code == 0, doc
