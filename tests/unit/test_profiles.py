"""Profile loading, validation, inheritance and the strictest-wins combination."""

from __future__ import annotations

from pathlib import Path

import pytest

from edoc.errors import ConfigError
from edoc.policy.profiles import ProfileSet, combine


def _load(tmp_path: Path, **files: str) -> ProfileSet:
    for name, text in files.items():
        (tmp_path / f"{name}.toml").write_text(text, encoding="utf-8")
    return ProfileSet.load([tmp_path])


def test_shipped_profiles_load_and_cite_a_basis() -> None:
    ps = ProfileSet.load()
    assert {"general", "nta-scan-important", "nta-scan-important-cycle", "nta-scan-general",
            "nta-electronic-transaction", "mhlw-medical", "meti-general"} <= set(ps.ids())
    for p in ps:
        assert p.basis.strip()
        for entity in ("corporation", "individual"):
            assert p.retention.rules_for(entity) or p.retention.duration


def test_scanner_profiles_match_the_law() -> None:
    ps = ProfileSet.load()
    imp = ps.get("nta-scan-important")
    assert (imp.capture.min_dpi, imp.capture.colour) == (200, "rgb24")
    assert imp.deadline.business_days == 7 and imp.search.ledger_ref_required
    assert imp.search.required_for("delivery-note") == (
        "transaction_date", "counterparty", "ledger_ref")
    assert "amount" in imp.search.required_for("invoice")
    gen = ps.get("nta-scan-general")
    assert gen.capture.colour == "gray8" and not gen.search.ledger_ref_required
    cyc = ps.get("nta-scan-important-cycle")
    assert cyc.extends == "nta-scan-important" and cyc.deadline.cycle_months == 2
    assert cyc.capture == imp.capture
    med = ps.get("mhlw-medical")
    assert med.authenticity.checkpoint == "record" and med.authenticity.seal_manifest
    assert med.search.author_required


def test_company_tightens_a_shipped_profile_in_five_lines(tmp_path: Path) -> None:
    ps = _load(tmp_path, strict=(
        'id = "acme-scan"\nextends = "nta-scan-important"\ntitle = "ACME: 300 dpi"\n'
        '[capture]\nmin_dpi = 300\n'))
    p = ps.get("acme-scan")
    base = ps.get("nta-scan-important")
    assert p.capture.min_dpi == 300
    assert p.capture.colour == "rgb24" and p.basis == base.basis  # inherited
    assert p.retention == base.retention


@pytest.mark.parametrize(("text", "needle"), [
    ('id = "x"\ntitle = "t"\n[retention]\nduration = "P1Y"\n', "basis is missing"),
    ('id = "x"\ntitle = "t"\nbasis = "b"\ncolor = "rgb24"\n[retention]\nduration = "P1Y"\n',
     "unknown key color"),
    ('id = "x"\ntitle = "t"\nbasis = "b"\n[capture]\nmin_dpi = "200"\n'
     '[retention]\nduration = "P1Y"\n', "capture.min_dpi"),
    ('id = "x"\ntitle = "t"\nbasis = "b"\n[capture]\ncolour = "rgb"\n'
     '[retention]\nduration = "P1Y"\n', "capture.colour"),
    ('id = "x"\ntitle = "t"\nbasis = "b"\n[retention]\nduration = "ten years"\n',
     "retention.duration"),
    ('id = "x"\ntitle = "t"\nbasis = "b"\n[retention]\nrules = ["vat"]\n', "unknown rule"),
    ('id = "x"\ntitle = "t"\nbasis = "b"\n[deadline]\ncycle_months = 3\n'
     '[retention]\nduration = "P1Y"\n', "deadline.cycle_months"),
    ('id = "x"\nextends = "nope"\ntitle = "t"\n', "unknown profile"),
    ('id = "x"\ntitle = "t"\nbasis = "b"\n', "retention needs"),
    ('id = "x"\ntitle = [', "cannot be read as TOML"),
])
def test_bad_profiles_name_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, bad=text)
    assert err.value.exit_code == 2
    assert "bad.toml" in str(err.value)
    assert needle in str(err.value)


def test_extends_cycle_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cycle"):
        _load(tmp_path, a='id = "a"\nextends = "b"\ntitle = "a"\n',
              b='id = "b"\nextends = "a"\ntitle = "b"\n')


def test_strictest_setting_of_each_kind_wins() -> None:
    ps = ProfileSet.load()
    r = combine([ps.get("meti-general"), ps.get("nta-scan-general")], "quote")
    assert r.capture.min_dpi == 200 and r.capture.colour == "gray8"
    r = combine([ps.get("nta-scan-general"), ps.get("mhlw-medical")], "quote")
    assert r.capture.min_dpi == max(ps.get("mhlw-medical").capture.min_dpi or 0, 200)
    assert r.authenticity.checkpoint == "record" and r.authenticity.seal_manifest
    assert "author" in r.required_fields
    assert set(r.retention.rules_for("corporation")) == {"corporate-tax", "medical-charts"}
    assert set(r.retention.rules_for("individual")) == {"income-tax", "medical-charts"}
    assert r.deadline.business_days == min(
        ps.get("nta-scan-general").deadline.business_days or 99,
        ps.get("mhlw-medical").deadline.business_days or 99)


def test_bilevel_minimum_combines_by_effective_value(tmp_path: Path) -> None:
    ps = _load(tmp_path,
               hi='id = "hi"\ntitle = "t"\nbasis = "b"\n[capture]\nmin_dpi = 300\n'
                  '[retention]\nduration = "P1Y"\n',
               lo='id = "lo"\ntitle = "t"\nbasis = "b"\n[capture]\nmin_dpi = 150\n'
                  'min_dpi_bilevel = 200\n[retention]\nduration = "P1Y"\n')
    r = combine([ps.get("hi"), ps.get("lo")], None)
    assert r.capture.min_dpi == 300 and r.capture.min_dpi_bilevel == 300


def test_longest_duration_wins(tmp_path: Path) -> None:
    ps = _load(tmp_path,
               a='id = "a"\ntitle = "t"\nbasis = "b"\n[retention]\nduration = "P18M"\n',
               b='id = "b"\ntitle = "t"\nbasis = "b"\n[retention]\nduration = "P1Y"\n')
    assert combine([ps.get("b"), ps.get("a")], None).retention.duration == "P18M"
