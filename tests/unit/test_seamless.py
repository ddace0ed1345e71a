"""デジタルシームレス readiness (edoc.policy.seamless) over hand-built manifests.

Table-driven: each case builds a record's versions and names which conditions edoc reads as
unmet; (c) is met for every record in edoc (versions are never overwritten).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from edoc.model.manifest import ContentRef, Manifest, SearchFields
from edoc.policy.seamless import APPLIES_FROM, DISCLAIMER, assess, ledger_refs

BILLING = "urn:peppol:pint:billing-1@jp-1"
SELF_BILLING = "urn:peppol:pint:selfbilling-1@jp-1"
NON_TAX = "urn:peppol:pint:nontaxinvoice-1@jp-1"
A, B = "a" * 64, "b" * 64


def _v(version: int, *, kind: str | None = None, sha: str | None = A, amount: int | None = 1100,
       ledger_ref: str | None = None, reason: str | None = None,
       customization: str | None = BILLING) -> Manifest:
    extra: dict[str, Any] = {}
    if customization is not None:
        extra["einvoice"] = {"customization_id": customization, "kind": "invoice"}
    return Manifest(
        record_id="01J0000000000000000000000", version=version,
        kind=kind or ("original" if version == 1 else "correction"),
        profiles=("nta-electronic-transaction",),
        metadata=SearchFields(transaction_date="2024-04-01", amount=amount,
                              counterparty="株式会社サンプル商事", ledger_ref=ledger_ref),
        content=ContentRef(sha, 1234, "application/xml", "inv.xml") if sha else None,
        retention={"retain_until": "2031-03-31"}, reason=reason, extra=extra)


@dataclass
class Case:
    name: str
    versions: list[Manifest]
    unmet: set[str]
    refs: tuple[str, ...] = ()
    amount_changes: list[tuple[int, int | None, int | None]] = field(default_factory=list)


CASES = [
    Case("billing with a ledger ref is ready", [_v(1, ledger_ref="V-1")], set(), ("V-1",)),
    Case("self-billing is 特定電磁的記録",
         [_v(1, ledger_ref="V-1", customization=SELF_BILLING)], set(), ("V-1",)),
    Case("no ledger ref: (e) unmet", [_v(1)], {"e"}),
    Case("nontaxinvoice: (a) unmet", [_v(1, ledger_ref="V-1", customization=NON_TAX)], {"a"},
         ("V-1",)),
    Case("not an e-invoice (an image): (a) unmet",
         [_v(1, ledger_ref="V-1", customization=None)], {"a"}, ("V-1",)),
    Case("link added later: met",
         [_v(1), _v(2, ledger_ref="V-9", reason="ledger reference added (相互関連性)")],
         set(), ("V-9",)),
    Case("amount correction with a reason: listed, (d) met",
         [_v(1, ledger_ref="V-1"), _v(2, ledger_ref="V-1", amount=1210, reason="typo")],
         set(), ("V-1",), [(2, 1100, 1210)]),
    Case("amount changed without a reason: (d) unmet",
         [_v(1, ledger_ref="V-1"), _v(2, ledger_ref="V-1", amount=1210)], {"d"}, ("V-1",),
         [(2, 1100, 1210)]),
    Case("content replaced by a recorded correction: (b) met",
         [_v(1, ledger_ref="V-1"), _v(2, ledger_ref="V-1", sha=B, reason="re-sent")],
         set(), ("V-1",)),
    Case("content changed in an unrecorded version: (b) unmet",
         [_v(1, ledger_ref="V-1"), _v(2, kind="retention-extension", ledger_ref="V-1", sha=B)],
         {"b"}, ("V-1",)),
    Case("deleted: (b) unmet, the deletion is no amount change",
         [_v(1, ledger_ref="V-1"),
          _v(2, kind="tombstone", sha=None, amount=None, ledger_ref="V-1", reason="dup")],
         {"b"}, ("V-1",)),
    Case("ledger ref replaced: both kept, first seen first",
         [_v(1, ledger_ref="V-1"), _v(2, ledger_ref="V-2", reason="fix")], set(),
         ("V-1", "V-2")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_readiness(case: Case) -> None:
    reading = assess(case.versions)
    unmet = {c.id for c in reading.conditions if not c.met}
    assert unmet == case.unmet
    assert reading.ready is (not case.unmet)
    assert [c.id for c in reading.conditions] == ["a", "b", "c", "d", "e"]
    assert all(c.basis and c.detail and c.status in ("met", "unmet")
               for c in reading.conditions)
    assert reading.ledger_refs == case.refs
    assert [(a.version, a.old, a.new) for a in reading.amount_changes] == case.amount_changes
    doc = reading.as_dict()
    assert doc["applies_from"] == APPLIES_FROM == "2027-01-01"
    assert doc["note"] == DISCLAIMER and "not a certification" in DISCLAIMER
    assert doc["ready"] is reading.ready


def test_order_is_by_version_and_refs_can_be_given() -> None:
    v1, v2 = _v(1), _v(2, amount=5, reason="r")
    assert assess([v2, v1]).amount_changes == assess([v1, v2]).amount_changes
    assert assess([v1], refs=["X"]).ready
    assert ledger_refs([v1]) == ()


def test_history_condition_is_always_met_and_says_why() -> None:
    (c,) = [c for c in assess([_v(1)]).conditions if c.id == "c"]
    assert c.met and "ever overwritten" in c.detail and "ledger" in c.detail


def test_no_versions_is_an_error() -> None:
    with pytest.raises(ValueError):
        assess([])
