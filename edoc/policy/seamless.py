"""デジタルシームレス readiness of one record: edoc's reading, computed, never stored.

令和7年度税制改正 (applies from 2027-01-01): 特定電磁的記録 — invoice and purchase-statement
data in the Digital Agency's specification (JP PINT billing / self-billing), kept through a
system meeting the NTA standard (国税庁告示第2号, 令和7年3月31日, under 電子帳簿保存法施行規則
第5条第5項) — is excluded from the 10 % 重加算税 surcharge of 電子帳簿保存法 第8条第5項 (a
届出書 is needed in advance). The system conditions (財務省 summary) are: received and kept by
a system that records corrections and deletions or cannot make them; an amount corrected
before it is posted shows that fact and content, or cannot be posted; the data can be
cross-checked with the related book entries (相互関連性).

:func:`assess` reads those conditions off a record's manifests (in version order) and its
ledger references. It is a pure function: no I/O, no clock. Every reading is conservative
and is edoc's reading only; not a certification (JIIMA certifies software), and the 届出書
is the business's to file.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edoc.model.manifest import Manifest

APPLIES_FROM = "2027-01-01"
DISCLAIMER = "edoc's reading; not a certification (JIIMA certifies software)"

#: The Digital Agency's specification for 特定電磁的記録: JP PINT billing and self-billing.
#: ``nontaxinvoice`` (a document that is not a 適格請求書) is not one.
SPECIFIED_PREFIXES = ("urn:peppol:pint:billing-1@jp-1", "urn:peppol:pint:selfbilling-1@jp-1")

_BASIS_SURCHARGE = ("電子帳簿保存法 第8条第5項; 施行規則 第5条第5項; "
                    "国税庁告示第2号 (令和7年3月31日)")


@dataclass(frozen=True)
class AmountChange:
    """One change of the search amount (取引金額) between two versions."""

    version: int
    old: int | None
    new: int | None
    reason: str | None
    kind: str

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "old": self.old, "new": self.new,
                "reason": self.reason, "kind": self.kind}


@dataclass(frozen=True)
class Condition:
    """One condition as edoc reads it: ``met`` or ``unmet``, why, and on what basis."""

    id: str
    name: str
    status: str
    detail: str
    basis: str

    @property
    def met(self) -> bool:
        return self.status == "met"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "status": self.status,
                "detail": self.detail, "basis": self.basis}


@dataclass(frozen=True)
class Readiness:
    """The デジタルシームレス block of one record."""

    applies_from: str
    conditions: tuple[Condition, ...]
    amount_changes: tuple[AmountChange, ...]
    ledger_refs: tuple[str, ...]

    @property
    def ready(self) -> bool:
        return all(c.met for c in self.conditions)

    def as_dict(self) -> dict[str, Any]:
        return {"applies_from": self.applies_from, "ready": self.ready,
                "conditions": [c.as_dict() for c in self.conditions],
                "amount_changes": [a.as_dict() for a in self.amount_changes],
                "ledger_refs": list(self.ledger_refs), "note": DISCLAIMER,
                "basis": _BASIS_SURCHARGE}


def _status(ok: bool) -> str:
    return "met" if ok else "unmet"


def ledger_refs(manifests: Sequence[Manifest]) -> tuple[str, ...]:
    """Every ledger reference the record has had, first seen first (versions are never
    overwritten, so an earlier reference still finds the record's earlier version)."""
    seen: dict[str, None] = {}
    for m in manifests:
        if m.metadata.ledger_ref:
            seen.setdefault(m.metadata.ledger_ref, None)
    return tuple(seen)


def _specified(first: Manifest) -> Condition:
    block = first.einvoice or {}
    cid = block.get("customization_id")
    ok = isinstance(cid, str) and cid.startswith(SPECIFIED_PREFIXES)
    if ok:
        detail = f"JP PINT {cid}"
    elif isinstance(cid, str):
        detail = f"{cid} is not JP PINT billing or self-billing"
    else:
        detail = "not a JP PINT e-invoice (an image or other file is not 特定電磁的記録)"
    return Condition("a", "特定電磁的記録 (data in the Digital Agency's specification)",
                     _status(ok), detail,
                     "特定電磁的記録: JP PINT billing / self-billing; 電子帳簿保存法 第8条第5項")


def _unconverted(manifests: Sequence[Manifest]) -> Condition:
    first, last = manifests[0], manifests[-1]
    basis = "kept as received, unconverted (電子帳簿保存法 第7条; 国税庁告示第2号)"
    name = "kept unconverted (the stored content is the received data)"
    if first.content is None:
        return Condition("b", name, "unmet", "the first version has no content", basis)
    if last.content is None:
        return Condition("b", name, "unmet", "the record is deleted: no content is kept", basis)
    if last.content.sha256 == first.content.sha256:
        return Condition("b", name, "met", "the latest content SHA-256 is the v1 (received) "
                         "content SHA-256", basis)
    prev: str | None = first.content.sha256
    for m in manifests[1:]:
        sha = m.content.sha256 if m.content is not None else None
        if sha != prev and (m.kind != "correction" or not m.reason):
            return Condition("b", name, "unmet", f"v{m.version} changed the content without "
                             "being a recorded correction", basis)
        prev = sha
    return Condition("b", name, "met", "every content change is a recorded correction version "
                     "(the received v1 content is kept)", basis)


def _history() -> Condition:
    return Condition(
        "c", "corrections and deletions recorded", "met",
        "every change is a new version; no version is ever overwritten (write-once store), "
        "and each is a ledger event naming actor and reason",
        "訂正削除履歴 (system condition ①; 施行規則 第2条第6項第2号ロ)")


def _amount_changes(manifests: Sequence[Manifest]) -> tuple[AmountChange, ...]:
    out = []
    for prev, m in itertools.pairwise(manifests):
        if m.is_deleted:
            continue  # a tombstone keeps no amount; that is a deletion, not a correction
        if m.metadata.amount != prev.metadata.amount:
            out.append(AmountChange(m.version, prev.metadata.amount, m.metadata.amount,
                                    m.reason, m.kind))
    return tuple(out)


def _amounts(changes: Sequence[AmountChange]) -> Condition:
    bad = [c for c in changes if c.kind != "correction" or not c.reason]
    if bad:
        detail = ", ".join(f"v{c.version}" for c in bad) + \
            " changed the amount without a correction reason"
    elif changes:
        detail = f"{len(changes)} amount change(s), each a correction version with its reason"
    else:
        detail = "no amount was changed"
    return Condition("d", "an amount corrected before posting shows that fact and content",
                     _status(not bad), detail, "system condition ② (国税庁告示第2号)")


def _cross_reference(refs: Sequence[str]) -> Condition:
    ok = bool(refs)
    detail = (f"ledger reference(s): {', '.join(refs)}" if ok else
              "no ledger reference: add one with 'edoc link RECORD_ID --ledger-ref REF'")
    return Condition("e", "cross-reference to the books (相互関連性)", _status(ok), detail,
                     "system condition ③ (国税庁告示第2号)")


def assess(manifests: Sequence[Manifest], refs: Sequence[str] | None = None) -> Readiness:
    """The readiness of one record from its manifests in version order (v1 first) and its
    ledger references (default: those the manifests carry)."""
    if not manifests:
        raise ValueError("a record has at least one version")
    ordered = sorted(manifests, key=lambda m: m.version)
    links = tuple(refs) if refs is not None else ledger_refs(ordered)
    changes = _amount_changes(ordered)
    conditions = (_specified(ordered[0]), _unconverted(ordered), _history(), _amounts(changes),
                  _cross_reference(links))
    return Readiness(APPLIES_FROM, conditions, changes, links)
