"""``[einvoice] rules``: an operator-supplied Schematron (compiled to XSLT, run by Saxon) adds
its findings to an e-invoice's warnings; a broken rule file refuses with a code, stores
nothing. The rule file here is our own, written as a Schematron compiles: XSLT emitting SVRL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import einvoice_samples as samples
from tests.cii_samples import cii_invoice
from tests.helpers import Edoc

PROFILE = ("--profile", "nta-electronic-transaction")

#: Two rules in the shape of compiled PINT Schematron: one assertion ("a buyer reference is
#: given", fails on our samples) and one report ("the seller is a 株式会社").
RULES = """<?xml version="1.0" encoding="UTF-8"?>
<xsl:stylesheet version="2.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:svrl="http://purl.oclc.org/dsdl/svrl"
    xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
    xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2">
  <xsl:template match="/">
    <svrl:schematron-output>
      <xsl:if test="not(/*/cbc:BuyerReference)">
        <svrl:failed-assert id="jp-local-01" flag="warning" location="/Invoice"
                            test="cbc:BuyerReference">
          <svrl:text>A buyer reference (ibt-010) must be given.</svrl:text>
        </svrl:failed-assert>
      </xsl:if>
      <xsl:if test="contains(string(/*/cac:AccountingSupplierParty), '株式会社')">
        <svrl:successful-report id="jp-local-02" flag="information" test="true()">
          <svrl:text>The seller is a 株式会社.</svrl:text>
        </svrl:successful-report>
      </xsl:if>
    </svrl:schematron-output>
  </xsl:template>
</xsl:stylesheet>
"""


def _archive(tmp_path: Path, rules: str | None) -> Edoc:
    e = Edoc(tmp_path / "archive")
    assert e("init", str(e.archive)).exit_code == 0
    if rules is not None:
        (e.archive / "rules").mkdir()
        (e.archive / "rules" / "local.xsl").write_text(rules, encoding="utf-8")
        with (e.archive / "edoc.toml").open("a", encoding="utf-8") as f:
            f.write('\n[einvoice]\nrules = ["rules/local.xsl"]\n')
    return e


def test_the_operators_rules_add_warnings(tmp_path: Path) -> None:
    e = _archive(tmp_path, RULES)
    xml = tmp_path / "inv.xml"
    xml.write_bytes(samples.pint_invoice(number="INV-RULES"))
    code, r = e.ingest_one(xml, *PROFILE)
    assert code == 0, r
    mine = {w["rule"]: w for w in r["warnings"] if w["code"] == "EINVOICE_RULE"}
    assert set(mine) == {"jp-local-01", "jp-local-02"}
    assert mine["jp-local-01"]["message"].startswith("[warning] A buyer reference (ibt-010)")
    assert "(at /Invoice)" in mine["jp-local-01"]["message"]
    assert mine["jp-local-02"]["message"] == "[information] The seller is a 株式会社."
    sealed = e.latest_manifest(r["record_id"])["einvoice"]["warnings"]
    assert {w["rule"] for w in sealed if w["code"] == "EINVOICE_RULE"} == set(mine)


def test_a_cii_invoice_runs_through_the_same_rules(tmp_path: Path) -> None:
    e = _archive(tmp_path, RULES)
    xml = tmp_path / "fx.xml"
    xml.write_bytes(cii_invoice())
    code, r = e.ingest_one(xml, *PROFILE)
    assert code == 0, r
    # the UBL-only rule file finds no UBL buyer reference in CII: its assertion fires
    assert any(w["rule"] == "jp-local-01" for w in r["warnings"])


def test_without_rules_nothing_is_added(tmp_path: Path) -> None:
    e = _archive(tmp_path, None)
    xml = tmp_path / "inv.xml"
    xml.write_bytes(samples.pint_invoice(number="INV-NORULES"))
    code, r = e.ingest_one(xml, *PROFILE)
    assert code == 0, r
    assert not [w for w in r["warnings"] if w["code"] == "EINVOICE_RULE"]


@pytest.mark.parametrize("rules", ["<xsl:stylesheet", None])
def test_a_broken_or_missing_rule_file_refuses_and_stores_nothing(tmp_path: Path,
                                                                   rules: str | None) -> None:
    e = _archive(tmp_path, rules if rules is not None else RULES)
    if rules is None:
        (e.archive / "rules" / "local.xsl").unlink()
    xml = tmp_path / "inv.xml"
    xml.write_bytes(samples.pint_invoice(number="INV-BROKEN"))
    code, r = e.ingest_one(xml, *PROFILE)
    assert code != 0
    assert r["error"]["code"] == "EINVOICE_RULES_INVALID", r
    assert "local.xsl" in r["error"]["message"]
    assert e.version_count() == 0
