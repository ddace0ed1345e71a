"""``edoc registry import / status / lookup`` end to end: JSON shapes, exit codes, roles."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import Edoc
from tests.unit.test_registry import CANCELLED, NEW, REGISTER, row, write


@pytest.fixture
def edoc(tmp_path: Path) -> Edoc:
    e = Edoc(tmp_path / "archive")
    assert e("init", str(e.archive)).exit_code == 0
    return e


def test_status_without_a_register(edoc: Edoc) -> None:
    code, doc = edoc.json("registry", "status")
    assert (code, doc) == (0, {"ok": True, "register": None})
    res = edoc("registry", "status")
    assert "not checked" in res.stdout
    code, doc = edoc.json("registry", "lookup", NEW, "--on", "2025-01-01")
    assert code == 1
    assert doc["results"][0]["checked"] is False
    assert doc["results"][0]["code"] == "REGISTRATION_NOT_CHECKED"


def test_import_status_lookup(edoc: Edoc, tmp_path: Path) -> None:
    f = write(tmp_path / "zenken.csv", REGISTER)
    code, doc = edoc.json("registry", "import", str(f))
    assert code == 0, doc
    assert doc["register"]["as_of"] == "2024-10-01" and doc["register"]["rows"] == 7
    assert doc["replaced_as_of"] is None
    code, doc = edoc.json("registry", "status")
    assert code == 0 and doc["register"]["numbers"] == 6
    assert len(doc["register"]["files"][0]["sha256"]) == 64
    code, doc = edoc.json("registry", "lookup", NEW, "--on", "2024-01-01")
    assert code == 0, doc
    (r,) = doc["results"]
    assert (r["registered"], r["code"], r["kind"], r["registered_name"]) == (
        True, "OK", "corporation", "株式会社サンプル")
    assert r["register_as_of"] == "2024-10-01"
    code, doc = edoc.json("registry", "lookup", NEW, CANCELLED, "--on", "2024-09-01")
    assert code == 1 and doc["ok"] is False
    assert [x["code"] for x in doc["results"]] == ["OK", "REGISTRATION_EXPIRED"]
    res = edoc("registry", "lookup", CANCELLED, "--on", "2024-09-01")
    assert res.exit_code == 1 and "REGISTRATION_EXPIRED" in res.stdout


def test_import_errors_have_codes(edoc: Edoc, tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.csv", [row(1, NEW), row(2, NEW)[:3]])
    code, doc = edoc.json("registry", "import", str(bad))
    assert code == 1
    assert doc["error"]["code"] == "REGISTRY_MALFORMED"
    assert doc["error"]["problems"] == ["bad.csv:2: 3 columns, not 24"]
    assert edoc.json("registry", "status")[1]["register"] is None
    good = write(tmp_path / "good.csv", REGISTER)
    assert edoc.json("registry", "import", str(good))[0] == 0
    code, doc = edoc.json("registry", "import", str(good), "--as-of", "2024-01-01")
    assert (code, doc["error"]["code"]) == (1, "REGISTRY_OLDER")
    code, doc = edoc.json("registry", "import", str(good), "--as-of", "2024-01-01", "--force")
    assert code == 0 and doc["replaced_as_of"] == "2024-10-01"
    code, doc = edoc.json("registry", "lookup", "T12")
    assert (code, doc["error"]["code"]) == (1, "REGISTRATION_NUMBER_INVALID")
    code, doc = edoc.json("registry", "import", str(good), "--as-of", "2024-13-01")
    assert (code, doc["error"]["code"]) == (1, "BAD_DATE")


@pytest.mark.parametrize(("actor", "command", "allowed"), [
    ("hanako", ["status"], True),
    ("kansa", ["lookup", NEW], True),
    ("taro", ["status"], True),
    ("hanako", ["import", "FILE"], False),
    ("kansa", ["import", "FILE"], False),
    ("taro", ["import", "FILE"], True),
    ("stranger", ["status"], False),
])
def test_roles(edoc: Edoc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, actor: str,
               command: list[str], allowed: bool) -> None:
    cfg = edoc.archive / "edoc.toml"
    cfg.write_text(cfg.read_text() + '\n[roles]\nclerk = ["hanako"]\nauditor = ["kansa"]\n'
                   'records-manager = ["taro"]\n', encoding="utf-8")
    f = write(tmp_path / "zenken.csv", REGISTER)
    args = [str(f) if a == "FILE" else a for a in command]
    monkeypatch.setenv("EDOC_ACTOR", actor)
    code, doc = edoc.json("registry", *args)
    if allowed:
        assert doc.get("error", {}).get("code") != "ROLE_REQUIRED", doc
    else:
        assert (code, doc["error"]["code"]) == (2, "ROLE_REQUIRED")
