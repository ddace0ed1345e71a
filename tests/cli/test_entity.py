"""``edoc init --entity``: a sole proprietor's archive keeps income-tax retention, a
corporation's corporate-tax; doctor and init say which; old archives are corporations."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import samples
from tests.helpers import Edoc

INVOICE = ["--profile", "nta-electronic-transaction", "--doc-type", "invoice",
           "--date", "2024-06-30", "--amount", "11000", "--counterparty", "山田商店"]


def _archive(tmp_path: Path, name: str, *init: str) -> Edoc:
    e = Edoc(tmp_path / name)
    code, doc = e.json("init", str(e.archive), *init)
    assert code == 0, doc
    return e


@pytest.fixture
def invoice(tmp_path: Path) -> Path:
    path = tmp_path / "invoice.pdf"
    samples.text_pdf(path, "請求書 2024-06-30 11,000円")
    return path


def _retention(e: Edoc, invoice: Path, *extra: str) -> dict[str, object]:
    code, doc = e.json("ingest", str(invoice), *INVOICE, *extra)
    assert code == 0, doc
    rid = doc["results"][0]["record_id"]
    retention: dict[str, object] = e.json("show", rid)[1]["versions"][0]["retention"]
    return retention


def test_init_reports_the_entity(tmp_path: Path) -> None:
    e = Edoc(tmp_path / "ind")
    code, doc = e.json("init", str(e.archive), "--entity", "individual")
    assert code == 0, doc
    assert (doc["entity"], doc["base_retention_rule"]) == ("individual", "income-tax")
    text = (e.archive / "edoc.toml").read_text(encoding="utf-8")
    assert 'entity = "individual"' in text
    assert 'fiscal_year_end = "12-31"' in text  # an individual's year is the calendar year
    res = Edoc(tmp_path / "corp")("init", str(tmp_path / "corp"))
    assert res.exit_code == 0
    assert "entity:  corporation — base retention rule corporate-tax" in res.output


def test_a_bad_entity_is_a_config_error(tmp_path: Path) -> None:
    e = Edoc(tmp_path / "bad")
    code, doc = e.json("init", str(e.archive), "--entity", "company")
    assert code != 0 and doc["error"]["code"] == "CONFIG_INVALID"
    assert "corporation or individual" in doc["error"]["message"]
    assert not (e.archive / "edoc.toml").exists()
    good = _archive(tmp_path, "good")
    cfg = good.archive / "edoc.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace(
        'entity = "corporation"', 'entity = "llc"'), encoding="utf-8")
    code, doc = good.json("doctor")
    assert doc["error"]["code"] == "CONFIG_INVALID" and "archive.entity" in doc["error"]["message"]


def test_an_individual_keeps_an_invoice_to_the_income_tax_date(
        tmp_path: Path, invoice: Path) -> None:
    e = _archive(tmp_path, "ind", "--entity", "individual")
    retention = _retention(e, invoice)
    # tax year 2024 -> 7 years from 2025-03-16 (所得税法施行規則 第63条第1項)
    assert retention["retain_until"] == "2032-03-15"
    assert [r["rule"] for r in retention["rules"]] == ["income-tax"]  # type: ignore[attr-defined]


def test_a_corporation_keeps_the_same_invoice_to_the_corporate_date(
        tmp_path: Path, invoice: Path) -> None:
    e = _archive(tmp_path, "corp")
    retention = _retention(e, invoice)
    # FY end 2025-03-31 (edoc.toml 03-31), filing deadline 2025-05-31
    assert retention["retain_until"] == "2032-05-31"
    assert [r["rule"] for r in retention["rules"]] == ["corporate-tax"]  # type: ignore[attr-defined]


def test_explicit_rules_still_add_and_the_latest_wins(tmp_path: Path, invoice: Path) -> None:
    e = _archive(tmp_path, "ind", "--entity", "individual")
    retention = _retention(e, invoice, "--retention", "companies-act",
                           "--closing-date", "2024-12-31", "--retention", "consumption-tax")
    by_rule = {r["rule"]: r["retain_until"] for r in retention["rules"]}  # type: ignore[attr-defined]
    assert by_rule == {"income-tax": "2032-03-15", "companies-act": "2034-12-31",
                       # calendar 2024 -> period end 2024-12-31 -> 7 years from 2025-03-01
                       "consumption-tax": "2032-02-29"}
    assert retention["retain_until"] == "2034-12-31"


def test_doctor_shows_the_entity(tmp_path: Path) -> None:
    e = _archive(tmp_path, "ind", "--entity", "individual", "--retention", "consumption-tax")
    _code, doc = e.json("doctor")
    (check,) = [c for c in doc["checks"] if c["name"] == "entity"]
    assert check["status"] == "pass"
    assert "individual: base retention rule income-tax" in check["detail"]
    assert "consumption-tax" in check["detail"]
    res = e("doctor")
    assert "individual" in res.output


def test_an_old_edoc_toml_without_the_key_is_a_corporation(
        tmp_path: Path, invoice: Path) -> None:
    e = _archive(tmp_path, "old")
    cfg = e.archive / "edoc.toml"
    text = cfg.read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines(keepends=True)
             if not ln.startswith("entity =") and "個人事業主" not in ln
             and "base retention rule" not in ln]
    cfg.write_text("".join(lines), encoding="utf-8")
    assert "entity" not in cfg.read_text(encoding="utf-8").split("[catalog]")[0]
    _code, doc = e.json("doctor")
    (check,) = [c for c in doc["checks"] if c["name"] == "entity"]
    assert check["detail"].startswith("corporation: base retention rule corporate-tax")
    assert _retention(e, invoice)["retain_until"] == "2032-05-31"


def test_profiles_show_the_rules_per_entity(tmp_path: Path) -> None:
    e = _archive(tmp_path, "corp")
    res = e("profiles", "nta-electronic-transaction")
    assert "retention for corporation: corporate-tax" in res.output
    assert "retention for individual: income-tax" in res.output
    _code, doc = e.json("profiles", "nta-electronic-transaction")
    assert doc["profiles"][0]["retention"]["by_entity"] == {
        "corporation": ["corporate-tax"], "individual": ["income-tax"]}
