"""``edoc ingest invoice.xml`` with nothing typed: the search fields come from a JP PINT
e-invoice (issue "E-invoices", part 1, and the warnings of part 2).

A wrong invoice is kept and flagged, never refused (電子帳簿保存法 第7条: keep what was
received); a typed flag that disagrees with the document is refused (FIELD_CONFLICT); a
document that is not JP PINT, or lacks a field, falls back to typed flags; an XML with a
DOCTYPE is never expanded and, with nothing typed, refused.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests import einvoice_samples as samples
from tests.helpers import Edoc, legacy_archive, new_archive

PROFILE = ("--profile", "nta-electronic-transaction")
NTA = "T" + samples.CORPORATE_NUMBER_NTA


@pytest.fixture(scope="module")
def edoc(tmp_path_factory: pytest.TempPathFactory) -> Edoc:
    e = new_archive(tmp_path_factory.mktemp("einvoice") / "archive")
    return e


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _ingest(e: Edoc, path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    return e.ingest_one(path, *PROFILE, *extra)



def _codes(warnings: list[dict[str, str]]) -> set[str]:
    return {w["code"] for w in warnings}



def test_two_rates_fill_every_search_field_from_the_document(edoc: Edoc,
                                                             tmp_path: Path) -> None:
    data = samples.pint_invoice(lines=samples.TWO_RATES, number="INV-2RATE")
    path = _write(tmp_path, "two-rates.xml", data)
    code, r = _ingest(edoc, path)
    assert code == 0, r
    fields = r["fields"]
    # 5000 + 12345 at 10 % (1734 tax, rounded down) + 999 at 8 % (79 tax)
    assert fields["amount"] == {"value": 17345 + 1734 + 999 + 79, "source": "document"}
    assert fields["transaction_date"] == {"value": "2024-04-01", "source": "document"}
    assert fields["counterparty"]["value"] == "株式会社サンプル商事"
    assert fields["doc_type"]["value"] == "invoice"
    assert fields["invoice_number"]["value"] == "INV-2RATE"
    assert fields["registration_number"]["value"] == NTA
    assert r["warnings"] == []
    m = edoc.latest_manifest(r["record_id"])
    assert m["content"]["size"] == len(data)  # stored byte for byte
    assert m["metadata"]["invoice_number"] == "INV-2RATE"
    assert m["metadata"]["registration_number"] == NTA
    block = m["einvoice"]
    assert block["kind"] == "invoice" and block["document_currency"] == "JPY"
    assert {(t["category"], t["percent"], t["taxable"], t["tax"]) for t in
            block["tax_breakdown"]} == {("S", "10", "17345", "1734"), ("AA", "8", "999", "79")}
    assert block["registration"] == {
        "number": NTA, "format_ok": True, "check_digit_ok": True,
        # no register imported in this archive: said, not guessed
        "register": {"checked": False, "code": "REGISTRATION_NOT_CHECKED", "on": "2024-04-01",
                     "registered_name": None, "register_as_of": None,
                     "detail": "no register imported (edoc registry import)"}}
    assert set(block["field_sources"].values()) == {"document"}
    with edoc.db() as db:
        row = db.execute("SELECT invoice_number, registration_number, amount FROM versions "
                         "WHERE record_id = ?", (r["record_id"],)).fetchone()
    assert row == ("INV-2RATE", NTA, 20157)


def test_credit_note_is_its_own_doc_type(edoc: Edoc, tmp_path: Path) -> None:
    path = _write(tmp_path, "cn.xml", samples.pint_invoice(credit_note=True, number="CN-1"))
    code, r = _ingest(edoc, path)
    assert code == 0, r
    assert r["fields"]["doc_type"]["value"] == "credit-note"
    assert edoc.latest_manifest(r["record_id"])["einvoice"]["kind"] == "credit-note"


@pytest.mark.parametrize(("self_billing", "direction", "expected"), [
    (False, "received", "株式会社サンプル商事"),  # the supplier issued it to us
    (False, "sent", "株式会社テスト購買"),  # we are the supplier: the customer
    (True, "received", "株式会社テスト購買"),  # 仕入明細書 from our customer (the buyer)
    (True, "sent", "株式会社サンプル商事"),  # we (the buyer) issued it to the supplier
])
def test_counterparty_is_the_other_party(edoc: Edoc, tmp_path: Path, self_billing: bool,
                                         direction: str, expected: str) -> None:
    number = f"CP-{int(self_billing)}-{direction}"
    path = _write(tmp_path, f"{number}.xml",
                  samples.pint_invoice(self_billing=self_billing, number=number))
    code, r = _ingest(edoc, path, "--direction", direction)
    assert code == 0, r
    assert r["fields"]["counterparty"] == {"value": expected, "source": "document"}
    block = edoc.latest_manifest(r["record_id"])["einvoice"]
    assert block["direction"] == direction
    assert block["kind"] == ("self-billing" if self_billing else "invoice")


def test_wrong_check_digit_and_bad_format_are_kept_and_flagged(edoc: Edoc,
                                                               tmp_path: Path) -> None:
    wrong = "T1" + samples.CORPORATE_NUMBER_NTA[1:]
    path = _write(tmp_path, "cd.xml", samples.pint_invoice(registration=wrong, number="CD-1"))
    code, r = _ingest(edoc, path)
    assert code == 0, r
    assert "REGISTRATION_CHECK_DIGIT" in _codes(r["warnings"])
    m = edoc.latest_manifest(r["record_id"])
    assert "REGISTRATION_CHECK_DIGIT" in _codes(m["einvoice"]["warnings"])
    assert m["einvoice"]["registration"]["check_digit_ok"] is False
    shown = edoc("show", r["record_id"])
    assert "REGISTRATION_CHECK_DIGIT" in shown.output

    path = _write(tmp_path, "fmt.xml", samples.pint_invoice(registration="T123", number="F-1"))
    code, r = _ingest(edoc, path)
    assert code == 0, r
    assert "REGISTRATION_NUMBER_INVALID" in _codes(r["warnings"])


def test_total_that_does_not_add_up_is_stored_and_warned(edoc: Edoc, tmp_path: Path) -> None:
    path = _write(tmp_path, "off.xml",
                  samples.pint_invoice(total_off_by=Decimal(7), number="OFF-1"))
    code, r = _ingest(edoc, path)
    assert code == 0, r
    assert "TOTAL_MISMATCH" in _codes(r["warnings"])
    assert "TOTAL_MISMATCH" in _codes(edoc.latest_manifest(r["record_id"])["einvoice"]["warnings"])


def test_a_return_invoice_below_zero_is_stored_and_found(edoc: Edoc, tmp_path: Path) -> None:
    # The shape of JP PINT 1.1.3's "Return" example: type 380, quantity -2, every amount
    # negative. It was refused (BAD_AMOUNT) although nothing in it is wrong.
    data = samples.pint_invoice(number="RET-1", lines=(
        samples.Line("返品 コピー用紙", Decimal(-2), Decimal(50000)),))
    code, r = _ingest(edoc, _write(tmp_path, "return.xml", data))
    assert code == 0, r
    assert r["fields"]["amount"] == {"value": -110000, "source": "document"}
    assert r["warnings"] == []
    assert edoc.latest_manifest(r["record_id"])["metadata"]["amount"] == -110000
    code, found = edoc.json("search", "--min-amount", "▲200,000", "--max-amount", "-1")
    assert [h["record_id"] for h in found["records"]] == [r["record_id"]]
    res = edoc("search", "--invoice-number", "RET-1", "--csv")
    assert res.exit_code == 0, res.output
    (row,) = [line for line in res.stdout.splitlines() if r["record_id"] in line]
    # a number, not neutralised into text (an apostrophe would stop a spreadsheet's sum)
    assert ",-110000," in row and "'-110000" not in row


def test_a_non_tax_invoice_stating_no_tax_is_not_flagged(edoc: Edoc, tmp_path: Path) -> None:
    # pint-jp-ntr 1.1.3's examples: category S 10 % with a tax amount of 0, no T-number.
    data = samples.pint_invoice(non_tax=True, registration=None, number="NTR-1",
                                tax_off_by=Decimal(-500))
    code, r = _ingest(edoc, _write(tmp_path, "ntr.xml", data))
    assert code == 0, r
    assert r["fields"]["amount"]["value"] == 5000
    assert r["warnings"] == []


def test_foreign_currency_gives_no_amount_but_a_typed_one_is_accepted(edoc: Edoc,
                                                                      tmp_path: Path) -> None:
    data = samples.pint_invoice(document_currency="EUR", tax_currency="JPY", number="EUR-1",
                                lines=(samples.Line("consulting", Decimal(2),
                                                    Decimal("150.25")),))
    path = _write(tmp_path, "eur.xml", data)
    before = edoc.version_count()
    code, r = _ingest(edoc, path)
    assert code == 1
    assert r["error"]["code"] == "SEARCH_FIELD_MISSING"
    assert "EUR" in r["error"]["message"]  # says why the document gives no amount
    assert edoc.version_count() == before

    code, r = _ingest(edoc, path, "--amount", "52000")
    assert code == 0, r
    assert r["fields"]["amount"] == {"value": 52000, "source": "typed"}
    assert "SEARCH_AMOUNT_NOT_YEN" in _codes(r["warnings"])
    block = edoc.latest_manifest(r["record_id"])["einvoice"]
    assert block["amounts"]["tax_inclusive"]["currency"] == "EUR"
    assert block["tax_currency"] == "JPY"
    assert block["field_sources"]["amount"] == "typed"


def test_a_disagreeing_typed_flag_is_refused_an_agreeing_one_is_fine(edoc: Edoc,
                                                                     tmp_path: Path) -> None:
    path = _write(tmp_path, "conflict.xml", samples.pint_invoice(number="CONF-1"))
    before = edoc.version_count()
    code, r = _ingest(edoc, path, "--amount", "1")
    assert code == 1
    assert r["error"]["code"] == "FIELD_CONFLICT"
    assert "amount" in r["error"]["message"] and "5500" in r["error"]["message"]
    assert "'1'" in r["error"]["message"]
    assert edoc.version_count() == before
    code, r = _ingest(edoc, path, "--date", "2024-04-02")
    assert code == 1 and r["error"]["code"] == "FIELD_CONFLICT"

    code, r = _ingest(edoc, path, "--amount", "¥5,500", "--counterparty", "株式会社サンプル商事")
    assert code == 0, r
    assert r["fields"]["amount"] == {"value": 5500, "source": "document"}
    assert r["fields"]["counterparty"]["source"] == "document"


def test_non_pint_ubl_falls_back_to_typed_fields(edoc: Edoc, tmp_path: Path) -> None:
    data = samples.pint_invoice(customization="urn:cen.eu:en16931:2017", number="EU-1")
    path = _write(tmp_path, "en16931.xml", data)
    code, r = _ingest(edoc, path)
    assert code == 1
    assert r["error"]["code"] == "SEARCH_FIELD_MISSING"
    assert "not JP PINT" in r["error"]["message"]

    code, r = _ingest(edoc, path, "--date", "2024-04-01", "--amount", "5500",
                      "--counterparty", "Sample GmbH")
    assert code == 0, r
    assert "EINVOICE_NOT_JP_PINT" in _codes(r["warnings"])
    m = edoc.latest_manifest(r["record_id"])
    assert "einvoice" not in m and "invoice_number" not in m["metadata"]


def test_pint_document_lacking_a_field_names_it(edoc: Edoc, tmp_path: Path) -> None:
    path = _write(tmp_path, "nodate.xml", samples.pint_invoice(issue_date=None, number="ND-1"))
    code, r = _ingest(edoc, path)
    assert code == 1
    assert r["error"]["code"] == "SEARCH_FIELD_MISSING"
    assert "IssueDate" in r["error"]["message"]
    code, r = _ingest(edoc, path, "--date", "2024-04-01")
    assert code == 0, r
    assert r["fields"]["transaction_date"] == {"value": "2024-04-01", "source": "typed"}
    assert r["fields"]["amount"]["source"] == "document"


def test_xxe_is_never_expanded_and_refused_without_typed_fields(edoc: Edoc,
                                                                tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT-4711")
    path = _write(tmp_path, "xxe.xml", samples.xxe_invoice(str(secret)))
    before = edoc.version_count()
    res = edoc("ingest", str(path), *PROFILE, "--json")
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    assert doc["results"][0]["error"]["code"] == "EINVOICE_DTD_REFUSED"
    assert "TOP-SECRET" not in res.output
    assert edoc.version_count() == before

    # With typed fields it is kept as data: byte for byte, nothing read from it.
    code, r = _ingest(edoc, path, "--date", "2024-04-01", "--amount", "5500",
                      "--counterparty", "株式会社サンプル商事")
    assert code == 0, r
    assert "EINVOICE_DTD_REFUSED" in _codes(r["warnings"])
    assert "TOP-SECRET" not in json.dumps(r, ensure_ascii=False)
    m = edoc.latest_manifest(r["record_id"])
    assert "einvoice" not in m
    assert "TOP-SECRET" not in json.dumps(m, ensure_ascii=False)
    assert "TOP-SECRET" not in edoc("show", r["record_id"]).output
    with edoc.db() as db:
        dump = "\n".join(db.iterdump())
    assert "TOP-SECRET" not in dump


def test_search_by_registration_and_invoice_number_and_verify(edoc: Edoc,
                                                              tmp_path: Path) -> None:
    path = _write(tmp_path, "find.xml",
                  samples.pint_invoice(number="FIND-ME-1", registration="T" + "1" * 13))
    code, r = _ingest(edoc, path)
    assert code == 0, r
    code, found = edoc.json("search", "--invoice-number", "FIND-ME-1")
    assert [h["record_id"] for h in found["records"]] == [r["record_id"]]
    assert found["records"][0]["registration_number"] == "T" + "1" * 13
    code, found = edoc.json("search", "--registration-number", "Ｔ" + "１" * 13,
                            "--invoice-number", "FIND-ME-1", "--from", "2024-04-01")
    assert [h["record_id"] for h in found["records"]] == [r["record_id"]]
    code, found = edoc.json("search", "--registration-number", "T" + "1" * 13,
                            "--from", "2024-05-01")  # AND with the other filters
    assert found["records"] == []
    code, found = edoc.json("search", "--registration-number", NTA)
    assert len(found["records"]) >= 2 and r["record_id"] not in {
        h["record_id"] for h in found["records"]}
    shown = edoc("show", r["record_id"])
    assert "FIND-ME-1" in shown.output and "einvoice" in shown.output
    res = edoc("verify", "--all")
    assert res.exit_code == 0, res.output


def test_catalog_rebuild_keeps_the_new_columns(edoc: Edoc) -> None:
    query = ("SELECT record_id, invoice_number, registration_number FROM versions "
             "ORDER BY record_id, version")
    with edoc.db() as db:
        before = db.execute(query).fetchall()
    assert any(row[1] == "FIND-ME-1" for row in before)
    res = edoc("catalog", "rebuild")
    assert res.exit_code == 0, res.output
    with edoc.db() as db:
        assert db.execute(query).fetchall() == before


def test_a_50_mb_invoice_ingests(edoc: Edoc, tmp_path: Path) -> None:
    path = _write(tmp_path, "large.xml", samples.large_invoice(50_000_000))
    code, r = _ingest(edoc, path)
    assert code == 0, r
    assert r["fields"]["amount"]["source"] == "document"
    assert r["warnings"] == []


def test_an_old_catalog_gains_the_columns(tmp_path: Path) -> None:
    with legacy_archive(tmp_path) as e:
        path = _write(tmp_path, "new.xml", samples.pint_invoice(number="LEGACY-1"))
        code, r = _ingest(e, path)
        assert code == 0, r
        code, found = e.json("search", "--invoice-number", "LEGACY-1")
        assert [h["record_id"] for h in found["records"]] == [r["record_id"]]
        with e.db() as db:
            names = {row[1] for row in db.execute("PRAGMA index_list(versions)")}
        assert {"ix_versions_invoice_number", "ix_versions_registration_number"} <= names


def test_the_sellers_registration_is_checked_against_the_imported_register(
        tmp_path: Path) -> None:
    # 消費税法 第57条の2: only a registered issuer's invoice supports 仕入税額控除; the answer
    # comes from the register the operator imported, never from the network.
    from tests.unit.test_registry import row, write

    e = new_archive(tmp_path / "archive")
    registered, ended, absent = ("T" + samples.CORPORATE_NUMBER_NTA, "T3234567890123",
                                 "T9999999999999")

    def ingest(number: str, name: str) -> dict[str, Any]:
        data = samples.pint_invoice(registration=number, number=f"INV-{number}-{name}")
        code, result = _ingest(e, _write(tmp_path, f"{number}-{name}.xml", data))
        assert code == 0, result
        return result

    before = ingest(registered, "before")
    reg = e.latest_manifest(before["record_id"])["einvoice"]["registration"]["register"]
    assert reg["checked"] is False and reg["code"] == "REGISTRATION_NOT_CHECKED"

    register = write(tmp_path / "register.csv", [
        row(1, registered, name="株式会社サンプル商事"),
        row(2, ended, "03", upd="2024-03-31", expire="2024-03-31")])
    assert e("registry", "import", str(register)).exit_code == 0
    ok = ingest(registered, "after")
    reg = e.latest_manifest(ok["record_id"])["einvoice"]["registration"]["register"]
    assert (reg["checked"], reg["code"], reg["registered_name"]) == (
        True, "OK", "株式会社サンプル商事")
    assert not {"REGISTRATION_NOT_FOUND", "REGISTRATION_EXPIRED"} & _codes(ok["warnings"])
    # The invoice (issued 2024-04-01) is kept either way — the law says keep what was
    # received — and flagged.
    assert "REGISTRATION_EXPIRED" in _codes(ingest(ended, "x")["warnings"])
    assert "REGISTRATION_NOT_FOUND" in _codes(ingest(absent, "x")["warnings"])
