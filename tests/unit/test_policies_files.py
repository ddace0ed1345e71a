"""Shallow checks on the shipped profile files (policies/*.toml), independent of the loader.

Each file must parse, be named after its id, name its legal basis, use only schema keys and
name only known retention rules. ``edoc.policy.profiles`` adds the deeper validation.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from edoc.policy import retention

POLICIES = Path(__file__).resolve().parents[2] / "policies"
FILES = sorted(POLICIES.glob("*.toml"))

TOP_KEYS = {
    "id",
    "title",
    "basis",
    "notes",
    "extends",
    "document_class",
    "document_types",
    "media_types",
    "capture",
    "deadline",
    "authenticity",
    "search",
    "retention",
}
SECTION_KEYS = {
    "capture": {"min_dpi", "min_dpi_bilevel", "colour", "lossy_allowed", "reject_active_content"},
    "deadline": {"business_days", "cycle_months", "late"},
    "authenticity": {"checkpoint", "seal_manifest", "timestamp_within_deadline", "version_history"},
    "search": {"required", "required_by_type", "ledger_ref_required", "author_required"},
    "retention": {"rules", "duration", "corporation", "individual"},
}
CHOICES = {
    ("", "document_class"): {"important", "general", "electronic", "record", "any"},
    ("capture", "colour"): {"rgb24", "gray8", "bilevel", "any"},
    ("deadline", "late"): {"reject", "flag"},
    ("authenticity", "checkpoint"): {"batch", "record"},
}
SHIPPED = {
    "nta-scan-important",
    "nta-scan-important-cycle",
    "nta-scan-general",
    "nta-electronic-transaction",
    "mhlw-medical",
    "meti-general",
}


def load(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def by_id() -> dict[str, dict[str, Any]]:
    return {path.stem: load(path) for path in FILES}


def test_the_ordinance_profiles_are_shipped() -> None:
    assert {path.stem for path in FILES} >= SHIPPED


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_profile_file(path: Path) -> None:
    data = load(path)
    assert data.get("id") == path.stem
    assert isinstance(data.get("basis"), str) and data["basis"].strip()
    assert isinstance(data.get("title"), str) and data["title"].strip()
    assert set(data) <= TOP_KEYS, set(data) - TOP_KEYS
    for section, allowed in SECTION_KEYS.items():
        if section in data:
            assert isinstance(data[section], dict)
            assert set(data[section]) <= allowed, (section, set(data[section]) - allowed)
    for (section, key), allowed_values in CHOICES.items():
        table = data if not section else data.get(section, {})
        if key in table:
            assert table[key] in allowed_values, (section, key, table[key])
    for key in ("notes", "document_types", "media_types"):
        if key in data:
            assert isinstance(data[key], list) and all(isinstance(x, str) and x for x in data[key])
    section = data.get("retention", {})
    rules = list(section.get("rules", []))
    for entity in ("corporation", "individual"):
        if entity in section:
            assert set(section[entity]) <= {"rules"}, (entity, section[entity])
            rules += section[entity].get("rules", [])
    for rule in rules:
        assert retention.is_known_rule(rule), rule
    if "duration" in data.get("retention", {}):
        retention.parse_duration(data["retention"]["duration"])
    deadline = data.get("deadline", {})
    if "cycle_months" in deadline:
        assert 0 <= deadline["cycle_months"] <= 2
    if "business_days" in deadline:
        assert deadline["business_days"] >= 1


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_extends_resolves_to_a_profile_with_retention(path: Path) -> None:
    profiles = by_id()
    current, seen = profiles[path.stem], {path.stem}
    has_retention = bool(current.get("retention"))
    while "extends" in current:
        parent = current["extends"]
        assert parent in profiles, f"{path.stem} extends unknown {parent}"
        assert parent not in seen, f"extends cycle through {parent}"
        seen.add(parent)
        current = profiles[parent]
        has_retention = has_retention or bool(current.get("retention"))
    assert has_retention


def test_shipped_profiles_state_their_readings() -> None:
    profiles = by_id()
    for pid in SHIPPED:
        assert profiles[pid].get("notes"), pid
    important = profiles["nta-scan-important"]
    assert important["capture"]["min_dpi"] == 200
    assert important["capture"]["colour"] == "rgb24"
    assert important["deadline"] == {"business_days": 7, "cycle_months": 0, "late": "reject"}
    assert important["search"]["ledger_ref_required"] is True
    # the base tax rule depends on who keeps the records (法人 / 個人事業主)
    for pid in ("nta-scan-important", "nta-scan-general", "nta-electronic-transaction"):
        assert profiles[pid]["retention"] == {"corporation": {"rules": ["corporate-tax"]},
                                              "individual": {"rules": ["income-tax"]}}, pid
    assert profiles["nta-scan-important-cycle"]["deadline"] == {"cycle_months": 2}
    assert profiles["nta-scan-general"]["capture"]["colour"] == "gray8"
    assert profiles["nta-scan-general"]["deadline"]["late"] == "flag"
    electronic = profiles["nta-electronic-transaction"]
    assert electronic["media_types"] == ["*"] and "capture" not in electronic
    medical = profiles["mhlw-medical"]
    assert medical["authenticity"]["checkpoint"] == "record"
    assert medical["authenticity"]["seal_manifest"] is True
    assert medical["search"]["author_required"] is True
    assert medical["retention"]["rules"] == ["medical-charts"]
    meti = profiles["meti-general"]
    assert (meti["capture"]["min_dpi"], meti["capture"]["min_dpi_bilevel"]) == (150, 200)
    assert meti["retention"]["rules"] == ["companies-act"]
