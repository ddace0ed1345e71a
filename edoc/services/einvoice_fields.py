"""Search fields from the document itself: ``edoc ingest invoice.xml`` with nothing typed.

Owns deciding, for one file being ingested, which search fields (取引年月日, 取引金額, 取引先 of
電子帳簿保存法 施行規則 第4条第1項, plus the invoice number and the seller's 登録番号) come from
a JP PINT e-invoice and which from what the user typed, and what the manifest's ``einvoice``
block records about it. Reading the XML is ``edoc.inspection.einvoice``; judging it is
``edoc.policy.pint_rules`` / ``edoc.policy.registration``. Nothing here stores anything.

The rules, in the order ``document_fields`` applies them:

* only a file whose content is XML is read (``application/xml``), or the XML invoice attached
  to a PDF (``edoc.inspection.pdf_attachments``; the block then says ``"container":
  "pdf-attachment"`` and names the attachment and its SHA-256); anything else, and XML that
  is not UBL, is left to the typed fields exactly as before (its manifest is unchanged);
* a DOCTYPE is never expanded (``EINVOICE_DTD_REFUSED``): the file is kept as data only when
  the typed fields suffice; otherwise ingest refuses it with that code (``refusal``);
* a UBL document that is not JP PINT, or a PINT document lacking a field, falls back to the
  typed fields, with a message naming what is missing;
* a typed value that disagrees with the document is refused (``FIELD_CONFLICT``): the sealed
  record would otherwise say two things about one invoice. An agreeing one is fine, and the
  field's source stays ``document``;
* a wrong invoice (PINT rules, a bad T-number, totals that do not add up) is kept and flagged,
  never refused: 電子帳簿保存法 第7条 obliges keeping what was received, as it was received.

Who the counterparty (取引先) is. The archive keeps documents of its owner; the counterparty is
always *the other party*. An ordinary invoice or credit note is issued by the supplier
(AccountingSupplierParty), so a received one names the supplier as counterparty and a sent one
(``--direction sent``) the customer. A self-billed document (仕入明細書, JP PINT self-billing)
is issued by the *buyer* about what it bought, yet UBL keeps the seller as
AccountingSupplierParty — so the roles reverse: a received self-billing document came from
our customer (we are the seller; counterparty = AccountingCustomerParty), a sent one went to
our supplier (we are the buyer who issued it; counterparty = AccountingSupplierParty). The
registration number kept is always the seller's (ibt-031): the one the buyer's 仕入税額控除
depends on, whoever issued the document.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from edoc.errors import InputError
from edoc.evidence.hashing import sha256_hex
from edoc.inspection.einvoice import (
    EINVOICE_DTD_REFUSED,
    EINVOICE_NOT_JP_PINT,
    EINVOICE_UNREADABLE,
    Amount,
    DocKind,
    PintInvoice,
    read_einvoice,
    read_einvoice_and_text,
)
from edoc.inspection.einvoice_model import element_name
from edoc.inspection.pdf_attachments import XmlAttachment, find_xml_attachment
from edoc.policy.pint_rules import EINVOICE_FIELD_MISSING, check_invoice, search_amount_yen
from edoc.policy.registration import Finding, check_registration_number
from edoc.policy.values import clean_text, parse_amount, parse_date, parse_doc_type
from edoc.services.registry import RegistrationStatus

__all__ = ["DIRECTIONS", "DocumentFields", "FieldConflict", "document_fields"]

DIRECTIONS: Final = ("received", "sent")
FIELD_CONFLICT: Final = "FIELD_CONFLICT"
XML: Final = "application/xml"
PDF: Final = "application/pdf"

#: The request's typed fields and their flags (for messages).
_FLAGS: Final = {"transaction_date": "--date", "amount": "--amount",
                 "counterparty": "--counterparty", "doc_type": "--doc-type"}


class FieldConflict(InputError):
    """A typed flag says something else than the e-invoice: refused, nothing stored."""


@dataclass
class DocumentFields:
    """What the document says, for one ingest: ``values`` holds the fields it supplied (as
    the text a user would have typed, so ingest validates them the same way); ``einvoice``
    is the manifest block (None for anything that is not a JP PINT document)."""

    values: dict[str, str] = field(default_factory=dict)
    #: search fields the manifest gains (only for an e-invoice)
    extra_metadata: dict[str, str] = field(default_factory=dict)
    einvoice: dict[str, Any] | None = None
    #: messages for the ingest output: warnings on the invoice and fallback notes
    warnings: list[dict[str, str]] = field(default_factory=list)
    #: per search field: "document" or "typed" (only for an e-invoice)
    sources: dict[str, str] = field(default_factory=dict)
    #: why the document could not supply fields, e.g. "the document has no IssueDate"
    lacking: dict[str, str] = field(default_factory=dict)
    #: when the document was refused as an invoice (a DOCTYPE): the code and message a
    #: missing typed field is refused with
    refusal: tuple[str, str] | None = None
    #: an XML file's values text, from the parse its fields came from (full-text search
    #: indexes it; None: not an XML file, or refused before it was parsed)
    xml_text: str | None = None

    def finish(self, typed: dict[str, str | None]) -> None:
        """Record each search field's source once the typed values are known."""
        if self.einvoice is None:
            return
        for name in ("transaction_date", "amount", "counterparty", "doc_type",
                     "invoice_number", "registration_number"):
            if name in self.values or name in self.extra_metadata:
                self.sources[name] = "document"
            elif typed.get(name):
                self.sources[name] = "typed"
        self.einvoice["field_sources"] = dict(sorted(self.sources.items()))


#: Asks the imported NTA register whether a number was registered on a date
#: (``edoc.services.registry.registration_status`` bound to the archive's catalog).
RegisterLookup = Callable[[str, date], RegistrationStatus]
#: Runs the operator's e-invoice rules (``edoc.policy.schematron``) on the invoice's XML bytes.
RuleCheck = Callable[[bytes], list[Finding]]


def document_fields(path: Path, media_type: str, typed: dict[str, str | None], *,
                    direction: str | None,
                    register: RegisterLookup | None = None,
                    rules: RuleCheck | None = None) -> DocumentFields:
    """The fields ``path`` supplies and the checks on them. ``typed`` maps the search fields
    to what the user typed (None when not given). Raises ``FieldConflict`` when a typed
    value disagrees with the document. ``register``: where the seller's registration on
    the issue date is looked up (None: not checked). ``rules``: the operator's Schematron,
    run on the XML of an invoice that was read (None: none)."""
    out = DocumentFields()
    attachment: XmlAttachment | None = None
    if media_type == XML:
        reading, out.xml_text = read_einvoice_and_text(path)
    elif media_type == PDF:
        # A hybrid PDF (Factur-X / ZUGFeRD style): the PDF is what is stored, byte for byte;
        # the invoice XML is read from its attachment. No attachment: exactly as before.
        attachment = find_xml_attachment(path)
        if attachment is None:
            return out
        if attachment.data is None:
            code, detail = attachment.problem or (EINVOICE_UNREADABLE, "not decoded")
            out.warnings.append(_msg(code, "edoc:pdf-attachment",
                                     f"{attachment.name}: {detail}; search fields come from "
                                     "the typed flags"))
            return out
        reading = read_einvoice(attachment.data)
    else:
        return out
    if reading.code == EINVOICE_DTD_REFUSED:
        # Kept, if at all, as opaque data: no field is read from it and nothing it names
        # (an external entity, a DTD) is fetched.
        out.refusal = (reading.code, reading.detail)
        out.warnings.append(_msg(reading.code, "edoc:xml-hardening", reading.detail))
        return out
    if reading.invoice is None:
        if reading.code == EINVOICE_NOT_JP_PINT:
            missing = ", ".join(reading.missing)
            out.warnings.append(_msg(reading.code, "ibt-024",
                                     f"{reading.detail}; search fields come from the typed "
                                     f"flags (the document lacks {missing})"))
            out.lacking = {k: f"the document is not JP PINT ({reading.detail})"
                           for k in ("transaction_date", "amount", "counterparty")}
        elif attachment is not None:
            # An XML file that is not UBL was never an e-invoice (unchanged); an XML attached
            # to a PDF was meant as one, so say why no field came from it.
            where = f"the attached {attachment.name}"
            code = EINVOICE_NOT_JP_PINT if reading.cii else reading.code
            out.warnings.append(_msg(code, "ibt-024" if reading.cii else "edoc:pdf-attachment",
                                     f"{where}: {reading.detail}; search fields come from "
                                     "the typed flags"))
            out.lacking = {k: f"{where} is not a JP PINT invoice ({reading.detail})"
                           for k in ("transaction_date", "amount", "counterparty")}
        return out
    extra: list[Finding] = []
    if rules is not None:
        extra = rules(attachment.data if attachment is not None and attachment.data is not None
                      else path.read_bytes())
    _from_invoice(out, reading.invoice, direction or "received", register, extra)
    if attachment is not None and out.einvoice is not None:
        assert attachment.data is not None
        out.einvoice["container"] = "pdf-attachment"
        out.einvoice["attachment"] = {
            "name": attachment.name, "mime_type": attachment.mime_type,
            "relationship": attachment.relationship,
            "sha256": sha256_hex(attachment.data), "size": len(attachment.data)}
    _refuse_conflicts(out, typed)
    return out


def _from_invoice(out: DocumentFields, inv: PintInvoice, direction: str,
                  register: RegisterLookup | None, extra: list[Finding]) -> None:
    findings: list[Finding] = [*check_invoice(inv), *extra]
    if inv.issue_date is not None:
        out.values["transaction_date"] = inv.issue_date.isoformat()
    else:
        date_element = element_name(inv, "issue_date", prefixed=False)
        out.lacking["transaction_date"] = f"the document has no {date_element}"
        findings.append(Finding(EINVOICE_FIELD_MISSING, "ibr-03",
                                f"the document has no {date_element}; give --date"))
    search = search_amount_yen(inv)
    if search.yen is not None:
        out.values["amount"] = str(search.yen)
    else:
        reason = search.finding.message if search.finding else "no amount"
        out.lacking["amount"] = f"the document gives no yen amount ({reason})"
        if search.finding is not None:
            findings.append(Finding(search.finding.code, search.finding.rule,
                                    f"{search.finding.message}; give --amount"))
    # See the module docstring: the counterparty is the other party; a self-billed document
    # is issued by the customer, so the roles reverse.
    issuer_is_customer = inv.kind is DocKind.SELF_BILLING
    other_is_customer = (direction == "sent") != issuer_is_customer
    role = "customer" if other_is_customer else "supplier"
    name = inv.customer_name if other_is_customer else inv.supplier_name
    if name is not None:
        out.values["counterparty"] = name
    else:
        party_element = element_name(inv, f"{role}_name", prefixed=False)
        out.lacking["counterparty"] = f"the document has no {role} {party_element}"
        findings.append(Finding(EINVOICE_FIELD_MISSING, "ibr-06" if role == "supplier"
                                else "ibt-044", f"the document has no {role} "
                                f"{party_element}; give --counterparty"))
    out.values["doc_type"] = "credit-note" if inv.kind is DocKind.CREDIT_NOTE else "invoice"
    number = _text_or_none(inv.number, "invoice number", findings)
    if number is not None:
        out.extra_metadata["invoice_number"] = number
    registration: dict[str, Any] | None = None
    if inv.supplier_registration is not None:
        check = check_registration_number(inv.supplier_registration)
        kept = check.number if check.format_ok else _text_or_none(
            inv.supplier_registration, "registration number", findings)
        if kept is not None:
            out.extra_metadata["registration_number"] = kept
        registration = {"number": kept, "format_ok": check.format_ok,
                        "check_digit_ok": check.check_digit_ok,
                        "register": _register_check(check.number if check.format_ok else None,
                                                    inv, register, findings)}
        if not any(f.code == c.code for f in findings for c in check.findings):
            # check_invoice skips the seller check before 2023-10-01 and for the non-tax
            # spec; the number is still searched on, so its shape is still reported.
            findings.extend(check.findings)
    out.einvoice = {
        "customization_id": inv.customization_id, "profile_id": inv.profile_id,
        "kind": inv.kind.value, "type_code": inv.type_code, "direction": direction,
        "counterparty_role": role,
        "document_currency": inv.document_currency, "tax_currency": inv.tax_currency,
        "tax_breakdown": [
            {"category": s.category, "percent": _dec(s.percent),
             "taxable": _dec(s.taxable.value) if s.taxable else None,
             "tax": _dec(s.tax.value) if s.tax else None,
             "currency": _currency(s.tax, s.taxable)}
            for s in inv.tax_breakdown],
        "amounts": {"tax_exclusive": _amount(inv.tax_exclusive),
                    "tax_inclusive": _amount(inv.tax_inclusive),
                    "payable": _amount(inv.payable)},
        "registration": registration,
        "warnings": [{"code": f.code, "rule": f.rule, "message": f.message}
                     for f in findings],
    }
    if inv.syntax != "ubl":
        # Factur-X / ZUGFeRD (CII): read the same way, but not JP PINT; the key is absent for
        # UBL so manifests of JP PINT invoices are unchanged.
        out.einvoice["syntax"] = inv.syntax
    out.warnings.extend(out.einvoice["warnings"])


def _refuse_conflicts(out: DocumentFields, typed: dict[str, str | None]) -> None:
    """An agreeing typed value is fine; a disagreeing one is ``FIELD_CONFLICT``."""
    for name, doc_value in out.values.items():
        raw = typed.get(name)
        if raw in (None, ""):
            continue
        assert raw is not None
        flag = _FLAGS[name]
        if name == "transaction_date":
            same = parse_date(raw, flag).isoformat() == doc_value
        elif name == "amount":
            same = parse_amount(raw, flag) == int(doc_value)
        elif name == "doc_type":
            same = parse_doc_type(raw) == doc_value
        else:
            same = _name_key(clean_text(raw, flag)) == _name_key(doc_value)
        if not same:
            raise FieldConflict(
                f"{name}: the document says {doc_value!r}, {flag} says {raw[:80]!r}",
                code=FIELD_CONFLICT,
                hint=f"drop {flag} (the e-invoice supplies it) or ingest the right file")


def _name_key(name: str) -> str:
    """Counterparty names compare as the catalog searches them (NFKC, case, spaces)."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def _text_or_none(value: str | None, what: str, findings: list[Finding]) -> str | None:
    if value is None:
        return None
    try:
        return clean_text(value, what, max_len=100)
    except InputError as exc:
        findings.append(Finding("EINVOICE_VALUE_UNREADABLE", "edoc:search-field",
                                f"{exc.message}; not indexed"))
        return None


def _dec(value: Decimal | None) -> str | None:
    """Decimals as text: canonical JSON has no floats, and ``1.10`` must stay ``1.10``."""
    return None if value is None else str(value)


def _amount(amount: Amount | None) -> dict[str, str | None] | None:
    return None if amount is None else {"value": str(amount.value),
                                        "currency": amount.currency}


def _currency(*amounts: Amount | None) -> str | None:
    return next((a.currency for a in amounts if a is not None), None)


def _msg(code: str, rule: str, message: str) -> dict[str, str]:
    return {"code": code, "rule": rule, "message": message}


def _register_check(number: str | None, inv: PintInvoice, register: RegisterLookup | None,
                    findings: list[Finding]) -> dict[str, Any]:
    """Was the seller registered on the issue date (消費税法 第57条の2: only a registered
    issuer's invoice supports 仕入税額控除)? Answered from the register the operator imported
    (``edoc registry import``), never from the network; without one it says "not checked"."""
    if register is None or number is None or inv.issue_date is None:
        why = ("no register consulted" if register is None else
               "the number is not well formed" if number is None else "no issue date")
        return {"checked": False, "code": "REGISTRATION_NOT_CHECKED", "detail": why}
    status = register(number, inv.issue_date)
    out: dict[str, Any] = {
        "checked": status.checked, "code": status.code, "on": inv.issue_date.isoformat(),
        "registered_name": status.registered_name,
        "register_as_of": status.register_as_of.isoformat() if status.register_as_of else None}
    if not status.checked:
        out["detail"] = "no register imported (edoc registry import)"
    elif status.code == "REGISTRATION_NOT_FOUND":
        findings.append(Finding(status.code, "edoc:register",
                                f"{number} is not in the register (as of "
                                f"{status.register_as_of}) as registered on "
                                f"{inv.issue_date}"))
    elif status.code == "REGISTRATION_EXPIRED":
        findings.append(Finding(status.code, "edoc:register",
                                f"{number}'s registration ended {status.ended}, on or before "
                                f"the issue date {inv.issue_date}"))
    elif status.registered_name and inv.supplier_name \
            and _name_key(status.registered_name) != _name_key(inv.supplier_name):
        # Shown, not judged: trade names and 屋号 legitimately differ from the register.
        out["name_differs"] = True
    return out
