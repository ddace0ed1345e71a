"""Each search field's provenance at ingest, and the typed T-number of a non-XML record.

Owns deciding, for one file being ingested, the ``provenance`` block of its manifest
(``edoc.model.provenance``): which field the document itself supplied (a JP PINT e-invoice:
``document``, via ``einvoice``), which a machine suggested and a person confirmed
(``suggestion-confirmed``, from ``IngestRequest.field_provenance``), and which a person typed.
The rule that an unconfirmed machine suggestion is refused (``NOT_CONFIRMED``) is enforced
where suggestions enter: ``FieldProvenance`` cannot be built without a confirmer, and the
review-CSV reader (``edoc.services.manifest_csv``) refuses a row without ``confirmed_by``.

Also the ``confirmation`` ledger event: ids, field names and sources only — the confirmer's
name is in the sealed manifest, the event carries its SHA-256 (the ledger never holds
personal data, so a purge never has to rewrite it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from edoc.catalog import VersionRow
from edoc.errors import InputError
from edoc.evidence.ledger import event_entry
from edoc.model import canonical
from edoc.model.manifest import Manifest
from edoc.model.provenance import (
    CONFIRMED,
    DOCUMENT,
    EINVOICE,
    FIELDS,
    FieldProvenance,
    provenance_block,
)
from edoc.policy.registration import check_registration_number
from edoc.services.archive import Archive
from edoc.services.einvoice_fields import DocumentFields, FieldConflict

#: Beside an export's index.csv: {record_id: {"version", "fields": provenance block}}.
PROVENANCE_FILE = "provenance.json"

#: The ledger event of a confirmation: at ingest (a reviewed capture row) it accompanies the
#: ``ingest`` event; ``edoc confirm`` writes a version whose event is ``confirm``.
CONFIRMATION_EVENT = "confirmation"


def typed_registration(raw: str | None, doc: DocumentFields) -> dict[str, str]:
    """The ``registration_number`` search field from ``--registration-number`` (a record
    that is not an e-invoice): a wrong shape is refused (``REGISTRATION_NUMBER_INVALID``), a
    check-digit mismatch is a warning on the record (a sole trader's number need not be a
    法人番号). An e-invoice supplies its own number; a typed one that differs is
    ``FIELD_CONFLICT``."""
    if raw is None or not raw.strip():
        return {}
    check = check_registration_number(raw)
    if not check.format_ok:
        raise InputError(check.findings[0].message, code="REGISTRATION_NUMBER_INVALID",
                         hint="give 'T' and 13 digits, e.g. T1234567890123")
    own = doc.extra_metadata.get("registration_number")
    if own is not None:
        if own != check.number:
            raise FieldConflict(
                f"registration_number: the document says {own!r}, --registration-number "
                f"says {check.number!r}", code="FIELD_CONFLICT",
                hint="drop --registration-number (the e-invoice supplies it)")
        return {}
    for f in check.findings:
        doc.warnings.append({"code": f.code, "rule": f.rule, "message": f.message})
    return {"registration_number": check.number}


def field_provenance(values: Mapping[str, Any], doc: DocumentFields,
                     given: Mapping[str, FieldProvenance]) -> dict[str, FieldProvenance]:
    """Per search field that has a value in ``values`` (the manifest's metadata plus
    ``doc_type``): its provenance. The document's own fields win (an e-invoice suggestion
    the stored file really carries is the document's); a confirmed suggestion is kept as
    given; everything else was typed."""
    unknown = sorted(set(given) - set(FIELDS))
    if unknown:
        raise InputError(f"no provenance is kept for {', '.join(unknown)}",
                         code="BAD_FIELD", hint="fields: " + ", ".join(FIELDS))
    out: dict[str, FieldProvenance] = {}
    for name in FIELDS:
        if values.get(name) is None:
            continue
        if doc.sources.get(name) == DOCUMENT:
            out[name] = FieldProvenance.document(EINVOICE)
        elif name in given:
            out[name] = given[name]
        else:
            out[name] = FieldProvenance.typed()
    return out


def manifest_extra(fields: Mapping[str, FieldProvenance]) -> dict[str, Any]:
    """The manifest's ``provenance`` key (none when no field has a value)."""
    return {"provenance": provenance_block(fields)} if fields else {}


def confirmed_fields(fields: Mapping[str, FieldProvenance]) -> dict[str, FieldProvenance]:
    return {k: v for k, v in fields.items() if v.source == CONFIRMED}


def confirmation_entry(*, record_id: str, version: int, manifest_sha256: str,
                       fields: Mapping[str, FieldProvenance], at: datetime) -> bytes:
    """The ``confirmation`` ledger event for ``fields`` (all ``suggestion-confirmed``)."""
    by = sorted({f.confirmed_by or "" for f in fields.values()})
    return event_entry(
        CONFIRMATION_EVENT, at, record_id=record_id, version=version,
        manifest_sha256=manifest_sha256,
        fields={k: f.suggested_by for k, f in sorted(fields.items())},
        confirmed_by_sha256=[hashlib.sha256(b.encode()).hexdigest() for b in by])


def export_provenance(archive: Archive, rows: Sequence[VersionRow]) -> bytes:
    """Canonical JSON of each exported version's provenance block, read from its stored
    (sealed) manifest; a version sealed before the block existed has ``null``."""
    out: dict[str, Any] = {}
    for r in rows:
        m = Manifest.from_bytes(archive.store.read(r.manifest_key, r.manifest_version_id))
        out[r.record_id] = {"version": r.version, "fields": m.provenance}
    return canonical.dumps(out)
