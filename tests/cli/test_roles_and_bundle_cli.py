"""Roles from edoc.toml, and the evidence / verify-bundle commands end to end."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from tests import samples
from tests.helpers import Edoc, jst_today_minus


@pytest.fixture
def edoc(tmp_path: Path) -> Edoc:
    e = Edoc(tmp_path / "archive")
    assert e("init", str(e.archive)).exit_code == 0
    p = tmp_path / "r.png"
    samples.scan_image(p, dpi=300, mode="RGB", fmt="PNG")
    assert e.json("ingest", str(p), "--date", jst_today_minus(1))[0] == 0
    return e


def _set_roles(e: Edoc, text: str) -> None:
    cfg = e.archive / "edoc.toml"
    cfg.write_text(cfg.read_text() + "\n[roles]\n" + text, encoding="utf-8")


@pytest.mark.parametrize(("actor", "command", "allowed"), [
    ("hanako", ["search"], True),
    ("hanako", ["purge", "--dry-run"], False),
    ("hanako", ["verify", "--all"], False),
    ("kansa", ["verify", "--all"], True),
    ("kansa", ["ledger", "verify"], True),
    ("kansa", ["delete", "X", "--reason", "r"], False),
    ("taro", ["purge", "--dry-run"], True),
    ("taro", ["doctor"], False),
    ("root", ["doctor"], True),
    ("stranger", ["search"], False),
    ("kansa", ["certificate", "list"], True),
    ("taro", ["certificate", "list"], True),
    ("hanako", ["certificate", "list"], False),
])
def test_roles_are_enforced(edoc: Edoc, monkeypatch: pytest.MonkeyPatch, actor: str,
                            command: list[str], allowed: bool) -> None:
    _set_roles(edoc, 'clerk = ["hanako"]\nauditor = ["kansa"]\n'
                     'records-manager = ["taro"]\nadmin = ["root"]\n')
    monkeypatch.setenv("EDOC_ACTOR", actor)
    code, doc = edoc.json(*command)
    if allowed:
        assert code in (0, 1) and doc.get("error", {}).get("code") != "ROLE_REQUIRED"
    else:
        assert code == 2
        assert doc["error"]["code"] == "ROLE_REQUIRED"
        assert command[0] in doc["error"]["message"] and actor in doc["error"]["message"]


def test_bad_roles_table_is_a_config_error(edoc: Edoc) -> None:
    _set_roles(edoc, 'janitor = ["x"]\n')
    code, doc = edoc.json("search")
    assert code == 2 and doc["error"]["code"] == "CONFIG_INVALID"
    assert "janitor" in doc["error"]["message"]


def test_evidence_bundle_round_trip_through_the_cli(edoc: Edoc, tmp_path: Path) -> None:
    bundle = tmp_path / "evidence.zip"
    code, doc = edoc.json("evidence", "--from", jst_today_minus(3), "-o", str(bundle))
    assert code == 0, doc
    assert doc["records"] == 1
    elsewhere = tmp_path / "auditor"
    elsewhere.mkdir()
    copy = elsewhere / "evidence.zip"
    shutil.copy(bundle, copy)
    shutil.rmtree(edoc.archive)
    code, report = Edoc(tmp_path / "nowhere").json("verify-bundle", str(copy))
    assert code == 0, report
    assert report["ok"] is True
    # the auditor's own root (another PKI) makes the same bundle fail
    from edoc.evidence import pki

    other = pki.generate_dev_pki(tmp_path / "other", organisation="Auditor")
    code, report = Edoc(tmp_path / "nowhere").json("verify-bundle", str(copy), "--trust",
                                                   str(other.root_cert))
    assert code == 1
    codes = {c["code"] for r in report["reports"] for c in r["checks"]
             if c["status"] == "fail"}
    assert {"SEAL_CHAIN_UNTRUSTED", "TSA_CHAIN_UNTRUSTED"} <= codes
    # a flipped content byte inside the zip
    tampered = elsewhere / "tampered.zip"
    with zipfile.ZipFile(copy) as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("/content"):
                data = bytes([data[0] ^ 1]) + data[1:]
            dst.writestr(item, data)
    code, report = Edoc(tmp_path / "nowhere").json("verify-bundle", str(tampered))
    assert code == 1
    assert "DIGEST_MISMATCH" in {c["code"] for r in report["reports"] for c in r["checks"]}
