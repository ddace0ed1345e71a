"""The manifest: what one version of a record *is*, as the typed value edoc seals and logs.

A manifest is canonical JSON (``edoc.model.canonical``); its SHA-256 is what the ledger logs
and what a seal covers (DESIGN.md "The record"). This module is the one place that turns a
manifest into bytes and bytes into a manifest:

- :meth:`Manifest.from_bytes` parses and checks the shape of a stored manifest (types of the
  fields every reader relies on) and raises :class:`ManifestError` (``MANIFEST_MALFORMED``)
  otherwise — never ``KeyError`` deep inside a service.
- :meth:`Manifest.to_bytes` writes the canonical bytes. ``to_bytes(from_bytes(b)) == b`` for
  every canonical ``b``: the blocks whose shape other modules own (``input``,
  ``readability``, ``retention``, ``retention_inputs``, ``evidence``) are kept as the JSON
  they were, and keys this release does not know are carried through untouched, so a
  manifest written by a newer edoc is neither rejected nor rewritten.

Verification never re-serialises: it hashes the *stored* bytes. The typed value is for
reading fields, building catalog rows and writing new versions.

Schema ``edoc.manifest/1`` is the only version so far; a reader meeting another refuses it
with ``MANIFEST_SCHEMA_UNKNOWN`` rather than guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from edoc.model import canonical

MANIFEST_SCHEMA = "edoc.manifest/1"
#: Version kinds (訂正削除履歴): the ingested original, a correction, a deletion's tombstone.
#: ``retention-extension``: retention recomputed with more facts (``edoc extend``).
#: ``confirmation``: a person confirmed (and possibly changed) machine-suggested search
#: fields after ingest (``edoc confirm``; ``edoc.model.provenance``).
KINDS = ("original", "correction", "tombstone", "retention-extension", "confirmation")

JSONObject = Mapping[str, Any]


class ManifestError(ValueError):
    """A stored manifest that is not a manifest this release can read."""

    def __init__(self, message: str, code: str = "MANIFEST_MALFORMED") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ContentRef:
    """The bytes a version keeps: bound to the manifest by their SHA-256."""

    sha256: str
    size: int
    media_type: str
    original_name: str | None

    def as_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "media_type": self.media_type,
                "original_name": self.original_name}


_SEARCH_FIELDS = ("transaction_date", "amount", "counterparty", "ledger_ref", "author")
# Sets for the parser's membership tests: it runs once per version verified.
_SEARCH_SET = frozenset(_SEARCH_FIELDS)
_SEARCH_TEXTS = ("transaction_date", "counterparty", "ledger_ref", "author")


@dataclass(frozen=True)
class SearchFields:
    """The search requirements (検索性: 取引年月日, 取引金額, 取引先) and the ledger reference
    that ties the record to the books (相互関連性). ``amount`` is integer yen."""

    transaction_date: str | None = None
    amount: int | None = None
    counterparty: str | None = None
    ledger_ref: str | None = None
    author: str | None = None
    #: Search fields a newer release added, carried through (never dropped on a rewrite).
    extra: JSONObject = field(default_factory=dict)
    #: The fields the stored manifest had (one written before a field existed stays so).
    keys: frozenset[str] = _SEARCH_SET

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update({k: getattr(self, k) for k in _SEARCH_FIELDS if k in self.keys})
        return out

    # An e-invoice's extra search fields live in ``extra`` (so a manifest of any other
    # record has no such keys, byte for byte as before); read them typed here.
    @property
    def invoice_number(self) -> str | None:
        """An e-invoice's number (JP PINT ibt-001), if the manifest has one."""
        value = self.extra.get("invoice_number")
        return value if isinstance(value, str) else None

    @property
    def registration_number(self) -> str | None:
        """The seller's 登録番号 (JP PINT ibt-031) of an e-invoice, if the manifest has one."""
        value = self.extra.get("registration_number")
        return value if isinstance(value, str) else None


#: Top-level keys with a typed field below, in no particular order (output is sorted).
_TYPED = ("schema", "record_id", "version", "archive_id", "actor", "ingested_at", "kind",
          "reason", "previous_version_sha256", "profiles", "doc_type", "document_class",
          "content", "metadata", "input", "readability", "retention", "retention_inputs",
          "evidence")
_TYPED_SET = frozenset(_TYPED)
_CONTENT_KEYS = frozenset({"sha256", "size", "media_type", "original_name"})
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Manifest:
    """One version of one record, as sealed. Blocks owned by other modules stay JSON."""

    record_id: str
    version: int
    kind: str
    profiles: tuple[str, ...]
    metadata: SearchFields
    content: ContentRef | None
    retention: JSONObject
    schema: str = MANIFEST_SCHEMA
    archive_id: str | None = None
    actor: str | None = None
    ingested_at: str | None = None
    reason: str | None = None
    previous_version_sha256: str | None = None
    doc_type: str | None = None
    document_class: str | None = None
    input: JSONObject | None = None
    readability: JSONObject | None = None
    retention_inputs: JSONObject | None = None
    evidence: JSONObject | None = None
    #: Keys this release does not know, carried through byte for byte.
    extra: JSONObject = field(default_factory=dict)
    #: The top-level keys the manifest had when read (a key absent then stays absent).
    keys: frozenset[str] = _TYPED_SET

    # -- reading ---------------------------------------------------------------------------
    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            doc = canonical.loads(data)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ManifestError(f"manifest is not UTF-8 JSON ({exc})") from None
        return cls.from_json(doc)

    @classmethod
    def from_json(cls, doc: object) -> Manifest:
        if not isinstance(doc, dict):
            raise ManifestError("manifest is not a JSON object")
        schema = doc.get("schema", MANIFEST_SCHEMA)
        if schema != MANIFEST_SCHEMA:
            raise ManifestError(f"manifest schema {schema!r} is not one this release reads "
                                f"({MANIFEST_SCHEMA})", code="MANIFEST_SCHEMA_UNKNOWN")
        rid = _text(doc, "record_id", required=True)
        version = doc.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ManifestError(f"manifest version {version!r} is not a positive integer")
        kind = _text(doc, "kind", required=True)
        if kind not in KINDS:
            raise ManifestError(f"manifest kind {kind!r} is not one of {', '.join(KINDS)}")
        profiles = doc.get("profiles")
        if not isinstance(profiles, list) or not all(isinstance(p, str) for p in profiles):
            raise ManifestError("manifest profiles is not a list of profile ids")
        return _new(
            cls, schema=schema, record_id=rid or "", version=version, kind=kind or "",
            profiles=tuple(profiles), metadata=_search_fields(doc.get("metadata")),
            content=_content(doc.get("content")),
            retention=_block(doc, "retention", required=True) or {},
            archive_id=_text(doc, "archive_id"), actor=_text(doc, "actor"),
            ingested_at=_text(doc, "ingested_at"), reason=_text(doc, "reason"),
            previous_version_sha256=_text(doc, "previous_version_sha256"),
            doc_type=_text(doc, "doc_type"), document_class=_text(doc, "document_class"),
            input=_block(doc, "input"), readability=_block(doc, "readability"),
            retention_inputs=_block(doc, "retention_inputs"), evidence=_block(doc, "evidence"),
            extra=_extra(doc, _TYPED_SET),
            keys=_present(doc, _TYPED_SET),
        )

    # -- writing ---------------------------------------------------------------------------
    def as_json(self) -> dict[str, Any]:
        """The manifest as a JSON object (the keys every release wrote, plus ``extra``)."""
        out: dict[str, Any] = dict(self.extra)
        out.update(
            schema=self.schema, record_id=self.record_id, version=self.version,
            archive_id=self.archive_id, actor=self.actor, ingested_at=self.ingested_at,
            kind=self.kind, reason=self.reason,
            previous_version_sha256=self.previous_version_sha256,
            profiles=list(self.profiles), doc_type=self.doc_type,
            document_class=self.document_class,
            content=self.content.as_json() if self.content is not None else None,
            metadata=self.metadata.as_json(), retention=dict(self.retention))
        for name in ("input", "readability", "retention_inputs", "evidence"):
            value = getattr(self, name)
            out[name] = dict(value) if value is not None else None
        for name in _TYPED:
            if name not in self.keys:
                del out[name]
        return out

    def to_bytes(self) -> bytes:
        """The canonical bytes that are hashed, sealed and stored."""
        return canonical.dumps(self.as_json())

    def evolve(self, **changes: Any) -> Manifest:
        """A copy with ``changes`` (the next version of a record is built this way). A field
        given here is written even if the manifest read had no such key."""
        changes.setdefault("keys", self.keys | (changes.keys() & _TYPED_SET))
        return replace(self, **changes)

    # -- what readers ask ------------------------------------------------------------------
    @property
    def is_tombstone(self) -> bool:
        return self.kind == "tombstone"

    @property
    def is_deleted(self) -> bool:
        """The record was deleted at or before this version: its tombstone, or a later version
        built on it (a retention extension carries the tombstone's missing content). Deletion
        is final: nothing but retention changes after it."""
        return self.kind == "tombstone" or self.content is None

    @property
    def einvoice(self) -> JSONObject | None:
        """The ``einvoice`` block of a record ingested from a JP PINT e-invoice."""
        value = self.extra.get("einvoice")
        return value if isinstance(value, dict) else None

    @property
    def provenance(self) -> JSONObject | None:
        """Per search field, where its value came from (``edoc.model.provenance``); None
        for a manifest written before the block existed."""
        value = self.extra.get("provenance")
        return value if isinstance(value, dict) else None

    @property
    def warnings(self) -> list[dict[str, Any]]:
        """Warnings sealed with the version (e.g. ``DUPLICATE_SUSPECT``), outside the
        e-invoice block's own."""
        value = self.extra.get("warnings")
        return [w for w in value if isinstance(w, dict)] if isinstance(value, list) else []

    @property
    def retain_until(self) -> str | None:
        """The last day of retention (JST calendar date, ``YYYY-MM-DD``)."""
        value = self.retention.get("retain_until")
        return value if isinstance(value, str) else None

    @property
    def until_at(self) -> str | None:
        """The instant retention ends (UTC, ISO 8601): what the store's lock is set to."""
        value = self.retention.get("until_at")
        return value if isinstance(value, str) else None


_D = TypeVar("_D")


def _new(cls: type[_D], **fields: Any) -> _D:
    """An instance of the frozen dataclass ``cls`` from every one of its fields, already
    checked: one ``__dict__`` update instead of a frozen ``__init__``'s per-field
    ``object.__setattr__`` (a third of the parse; verification parses once per version)."""
    obj = object.__new__(cls)
    obj.__dict__.update(fields)
    return obj


def _extra(doc: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    """The keys of ``doc`` this release does not know (usually none)."""
    if doc.keys() <= known:
        return {}
    return {k: v for k, v in doc.items() if k not in known}


def _present(doc: Mapping[str, Any], known: frozenset[str]) -> frozenset[str]:
    """The known keys ``doc`` has (usually all of them: then the shared set itself)."""
    if known <= doc.keys():
        return known
    return known & doc.keys()


def _text(doc: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = doc.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise ManifestError(f"manifest {key} is {'missing' if value is None else 'not text'}")
    return value


def _block(doc: Mapping[str, Any], key: str, *, required: bool = False) -> JSONObject | None:
    value = doc.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, dict):
        raise ManifestError(f"manifest {key} is not a JSON object")
    return value


def _search_fields(value: object) -> SearchFields:
    if not isinstance(value, dict):
        raise ManifestError("manifest metadata is not a JSON object")
    amount = value.get("amount")
    if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool)):
        raise ManifestError(f"manifest amount {amount!r} is not integer yen")
    texts = {}
    for key in _SEARCH_TEXTS:
        v = value.get(key)
        if v is not None and not isinstance(v, str):
            raise ManifestError(f"manifest metadata {key} is not text")
        texts[key] = v
    return _new(SearchFields, amount=amount, extra=_extra(value, _SEARCH_SET),
                        keys=_present(value, _SEARCH_SET), **texts)


def _content(value: object) -> ContentRef | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ManifestError("manifest content is not a JSON object")
    sha, size, media = value.get("sha256"), value.get("size"), value.get("media_type")
    name = value.get("original_name")
    if not (isinstance(sha, str) and _HEX64.fullmatch(sha)):
        raise ManifestError("manifest content sha256 is not 64 lower-case hex digits")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError("manifest content size is not a byte count")
    if not isinstance(media, str) or (name is not None and not isinstance(name, str)):
        raise ManifestError("manifest content media_type/original_name is not text")
    if not value.keys() <= _CONTENT_KEYS:
        raise ManifestError("manifest content has unknown fields")
    return _new(ContentRef, sha256=sha, size=size, media_type=media, original_name=name)
