"""Viewer accounts through the real CLI (``edoc user add/list/disable``) and the catalog
tables they live in: created on a catalog made by the 0.1.0 release when it is opened, and
``edoc user`` kept to admins when ``[roles]`` is configured."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from cli import cli
from edoc.services.archive import Archive
from edoc.web.app import create_app
from tests.helpers import Edoc, legacy_archive, new_archive
from tests.web.conftest import add_user, login

LEGACY_PDF = "01M916YE2KR4ZGV9GHHNFKPW76"


@pytest.fixture
def legacy(tmp_path: Path) -> Iterator[Edoc]:
    with legacy_archive(tmp_path) as e:
        yield e


def _tables(e: Edoc) -> set[str]:
    with sqlite3.connect(e.archive / "catalog.sqlite") as db:
        return {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_an_old_catalog_gets_the_account_tables_and_is_viewable(legacy: Edoc) -> None:
    assert "web_accounts" not in _tables(legacy)
    add_user(legacy, "audrey", "auditor", "correct horse battery")
    assert {"web_accounts", "web_sessions"} <= _tables(legacy)
    archive = Archive.open(str(legacy.archive))
    try:
        with TestClient(create_app(archive), base_url="https://testserver",
                        follow_redirects=False) as c:
            login(c, "audrey", "correct horse battery")
            page = c.get(f"/records/{LEGACY_PDF}")
            assert page.status_code == 200 and 'class="page"' in page.text
            assert c.get(f"/records/{LEGACY_PDF}/versions/1/pages/1.png").status_code == 200
    finally:
        archive.close()


def test_user_list_and_disable(tmp_path: Path) -> None:
    e = new_archive(tmp_path / "archive")
    add_user(e, "sam", "staff", "staff password 12")
    add_user(e, "ada", "admin", "admin password 34")
    code, doc = e.json("user", "list")
    assert code == 0
    assert [(a["name"], a["role"], a["disabled"]) for a in doc["accounts"]] == [
        ("ada", "admin", False), ("sam", "staff", False)]
    assert "password" not in str(doc) and "argon2" not in str(doc)
    assert e("user", "disable", "sam").exit_code == 0
    code, doc = e.json("user", "list")
    assert {a["name"]: a["disabled"] for a in doc["accounts"]} == {"ada": False, "sam": True}
    code, doc = e.json("user", "disable", "nobody")
    assert code != 0 and doc["error"]["code"] == "NOT_FOUND"


def test_user_management_needs_the_admin_role(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    e = new_archive(tmp_path / "archive")
    cfg = e.archive / "edoc.toml"
    cfg.write_text(cfg.read_text() + '\n[roles]\nadmin = ["boss"]\nauditor = ["clerk1"]\n')
    monkeypatch.setenv("EDOC_ACTOR", "clerk1")
    res = CliRunner().invoke(cli, ["--archive", str(e.archive), "user", "add", "x",
                                   "--role", "auditor", "--password-stdin"],
                             input="long enough password\n")
    assert res.exit_code != 0 and "ROLE_REQUIRED" in res.output
    monkeypatch.setenv("EDOC_ACTOR", "boss")
    add_user(e, "x", "auditor", "long enough password")


def test_password_comes_from_stdin_only(tmp_path: Path) -> None:
    e = new_archive(tmp_path / "archive")
    res = CliRunner().invoke(cli, ["--archive", str(e.archive), "user", "add", "x",
                                   "--role", "auditor"], input="long enough password\n")
    assert res.exit_code != 0  # --password-stdin is required: no password on a command line
    code, doc = e.json("user", "list")
    assert code == 0 and doc["accounts"] == []


def test_serve_help_says_how_to_run_it() -> None:
    res = CliRunner().invoke(cli, ["serve", "--help"])
    assert res.exit_code == 0
    assert "--behind-proxy" in res.output and "127.0.0.1" in res.output
