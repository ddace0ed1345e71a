"""Ordinance profiles: loading ``policies/*.toml`` and combining them.

A profile is data (see ``policies/``): the legal basis it implements, which documents it
accepts, capture rules (見読性), the input deadline, how authenticity is achieved, required
search fields (検索性) and retention rules. This module owns the schema, its validation
(an unknown key, a bad value or a missing ``basis`` is a ``ConfigError`` naming the file and
the key), ``extends`` inheritance, and ``combine``: when several profiles apply to one record
the strictest setting of each kind wins and retention is the latest of all rules
(REQUIREMENTS.md: "Where several laws apply to one document, the strictest requirement
governs").

Retention rules may depend on who keeps the records (``[archive] entity``): plain
``[retention] rules`` apply to every entity type, ``[retention.corporation] rules`` and
``[retention.individual] rules`` only to that one (a sole proprietor keeps income-tax, not
corporate-tax, records). With ``extends``, a child's plain ``rules`` replace the parent's whole
rule set (as before per-entity rules existed, so an old user profile means what it says); a
child's per-entity table replaces only that entity's list.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edoc.errors import ConfigError
from edoc.policy.capture import CaptureRules

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "policies"

DOCUMENT_CLASSES = ("important", "general", "electronic", "record", "any")
COLOURS = ("any", "bilevel", "gray8", "rgb24")  # weakest → strictest
SEARCH_FIELDS = ("transaction_date", "amount", "counterparty", "ledger_ref", "doc_type", "author")

_TOP_KEYS = {"id", "title", "basis", "notes", "extends", "document_class", "document_types",
             "media_types", "capture", "deadline", "authenticity", "search", "retention"}
_SECTION_KEYS: dict[str, set[str]] = {
    "capture": {"min_dpi", "min_dpi_bilevel", "colour", "lossy_allowed", "reject_active_content"},
    "deadline": {"business_days", "cycle_months", "late"},
    "authenticity": {"checkpoint", "seal_manifest", "timestamp_within_deadline",
                     "version_history"},
    "search": {"required", "required_by_type", "ledger_ref_required", "author_required"},
    "retention": {"rules", "duration", "corporation", "individual"},
}
#: Who keeps the records (edoc.policy.retention.ENTITY_TYPES, repeated to keep imports lazy).
ENTITY_TYPES = ("corporation", "individual")


@dataclass(frozen=True)
class Deadline:
    """Input deadline (電帳法施行規則 第2条第6項第1号): business days after receipt."""

    business_days: int | None = None
    cycle_months: int = 0
    #: ``reject`` refuses late input; ``flag`` accepts it marked ``LATE_INPUT``.
    late: str = "flag"


@dataclass(frozen=True)
class Authenticity:
    #: ``batch``: one checkpoint per ingest run; ``record``: a checkpoint per record.
    checkpoint: str = "batch"
    seal_manifest: bool = False
    timestamp_within_deadline: bool = False
    version_history: bool = True


@dataclass(frozen=True)
class SearchRules:
    required: tuple[str, ...] = ()
    required_by_type: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ledger_ref_required: bool = False
    author_required: bool = False

    def required_for(self, doc_type: str | None) -> tuple[str, ...]:
        fields = self.required_by_type.get(doc_type or "", self.required)
        extra = (("ledger_ref",) if self.ledger_ref_required else ()) + (
            ("author",) if self.author_required else ())
        return tuple(dict.fromkeys(fields + extra))


@dataclass(frozen=True)
class RetentionSpec:
    #: Rules for every entity type.
    rules: tuple[str, ...] = ()
    duration: str | None = None
    #: Rules for one entity type only (``[retention.corporation]`` / ``[retention.individual]``).
    by_entity: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def rules_for(self, entity: str) -> tuple[str, ...]:
        """The rules that apply to records kept by ``entity``: plain ones, then its own."""
        return tuple(dict.fromkeys((*self.rules, *self.by_entity.get(entity, ()))))


@dataclass(frozen=True)
class Profile:
    id: str
    title: str
    basis: str
    source: str
    notes: tuple[str, ...] = ()
    extends: str | None = None
    document_class: str = "any"
    document_types: tuple[str, ...] = ("*",)
    media_types: tuple[str, ...] = ("*",)
    capture: CaptureRules = field(default_factory=CaptureRules)
    deadline: Deadline = field(default_factory=Deadline)
    authenticity: Authenticity = field(default_factory=Authenticity)
    search: SearchRules = field(default_factory=SearchRules)
    retention: RetentionSpec = field(default_factory=RetentionSpec)

    def accepts_type(self, doc_type: str | None) -> bool:
        return "*" in self.document_types or (doc_type in self.document_types)

    def accepts_media(self, media_type: str) -> bool:
        return "*" in self.media_types or media_type in self.media_types

    def as_dict(self) -> dict[str, Any]:
        c = self.capture
        return {
            "id": self.id, "title": self.title, "basis": self.basis, "notes": list(self.notes),
            "extends": self.extends, "source": self.source,
            "document_class": self.document_class,
            "document_types": list(self.document_types), "media_types": list(self.media_types),
            "capture": {"min_dpi": c.min_dpi, "min_dpi_bilevel": c.min_dpi_bilevel,
                        "colour": c.colour, "lossy_allowed": c.lossy_allowed,
                        "reject_active_content": c.reject_active_content},
            "deadline": {"business_days": self.deadline.business_days,
                         "cycle_months": self.deadline.cycle_months, "late": self.deadline.late},
            "authenticity": {"checkpoint": self.authenticity.checkpoint,
                             "seal_manifest": self.authenticity.seal_manifest,
                             "timestamp_within_deadline":
                                 self.authenticity.timestamp_within_deadline,
                             "version_history": self.authenticity.version_history},
            "search": {"required": list(self.search.required),
                       "required_by_type": {k: list(v) for k, v in
                                            self.search.required_by_type.items()},
                       "ledger_ref_required": self.search.ledger_ref_required,
                       "author_required": self.search.author_required},
            "retention": {"rules": list(self.retention.rules),
                          "duration": self.retention.duration,
                          "by_entity": {e: list(self.retention.rules_for(e))
                                        for e in ENTITY_TYPES}},
        }


# -- loading -----------------------------------------------------------------------------------

class _Reader:
    """Typed access to one TOML table that names the file and key in every error."""

    def __init__(self, source: str, table: Mapping[str, Any], section: str | None) -> None:
        self.source, self.table, self.section = source, table, section

    def _where(self, key: str) -> str:
        return f"{self.source}: {self.section + '.' if self.section else ''}{key}"

    def bad(self, key: str, why: str) -> ConfigError:
        return ConfigError(f"{self._where(key)} {why}", code="PROFILE_INVALID")

    def has(self, key: str) -> bool:
        return key in self.table

    def str_(self, key: str, choices: Sequence[str] | None = None) -> str:
        v = self.table[key]
        if not isinstance(v, str) or not v.strip():
            raise self.bad(key, "must be a non-empty string")
        if choices is not None and v not in choices:
            raise self.bad(key, f"is {v!r}; expected one of {', '.join(choices)}")
        return v

    def int_(self, key: str, lo: int, hi: int) -> int:
        v = self.table[key]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self.bad(key, f"must be a whole number from {lo} to {hi} (got {v!r})")
        return v

    def bool_(self, key: str) -> bool:
        v = self.table[key]
        if not isinstance(v, bool):
            raise self.bad(key, f"must be true or false (got {v!r})")
        return v

    def strs(self, key: str, choices: Sequence[str] | None = None) -> tuple[str, ...]:
        v = self.table[key]
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            raise self.bad(key, "must be a list of strings")
        if choices is not None:
            for x in v:
                if x not in choices:
                    raise self.bad(key, f"has {x!r}; expected any of {', '.join(choices)}")
        return tuple(v)


def _check_keys(source: str, table: Mapping[str, Any], allowed: set[str], section: str | None
                ) -> None:
    for key in table:
        if key not in allowed:
            where = f"{section}.{key}" if section else key
            raise ConfigError(f"{source}: unknown key {where}", code="PROFILE_INVALID",
                              hint=f"allowed here: {', '.join(sorted(allowed))}")


def _parse_sections(source: str, raw: Mapping[str, Any], base: Profile | None) -> dict[str, Any]:
    """Turn one TOML document into Profile constructor arguments over ``base``."""
    from edoc.policy import retention  # local: retention pulls in date machinery only when needed

    _check_keys(source, raw, _TOP_KEYS, None)
    top = _Reader(source, raw, None)
    out: dict[str, Any] = {}
    if top.has("title"):
        out["title"] = top.str_("title")
    if top.has("basis"):
        out["basis"] = top.str_("basis")
    if top.has("notes"):
        out["notes"] = top.strs("notes")
    if top.has("document_class"):
        out["document_class"] = top.str_("document_class", DOCUMENT_CLASSES)
    if top.has("document_types"):
        out["document_types"] = top.strs("document_types")
    if top.has("media_types"):
        out["media_types"] = top.strs("media_types")

    sections: dict[str, _Reader] = {}
    for name, allowed in _SECTION_KEYS.items():
        if name in raw:
            if not isinstance(raw[name], dict):
                raise top.bad(name, "must be a table")
            _check_keys(source, raw[name], allowed, name)
            sections[name] = _Reader(source, raw[name], name)

    def merged(name: str, current: Any, parse: dict[str, Any]) -> Any:
        from dataclasses import replace

        return replace(current, **parse) if parse else current

    b = base or Profile(id="", title="", basis="", source=source)
    if (r := sections.get("capture")) is not None:
        p: dict[str, Any] = {}
        for k in ("min_dpi", "min_dpi_bilevel"):
            if r.has(k):
                p[k] = r.int_(k, 1, 4800)
        if r.has("colour"):
            p["colour"] = r.str_("colour", COLOURS)
        for k in ("lossy_allowed", "reject_active_content"):
            if r.has(k):
                p[k] = r.bool_(k)
        out["capture"] = merged("capture", b.capture, p)
    if (r := sections.get("deadline")) is not None:
        p = {}
        if r.has("business_days"):
            p["business_days"] = r.int_("business_days", 1, 366)
        if r.has("cycle_months"):
            # 施行規則 第2条第6項第1号ロ: the business cycle is at most two months.
            p["cycle_months"] = r.int_("cycle_months", 0, 2)
        if r.has("late"):
            p["late"] = r.str_("late", ("reject", "flag"))
        out["deadline"] = merged("deadline", b.deadline, p)
    if (r := sections.get("authenticity")) is not None:
        p = {}
        if r.has("checkpoint"):
            p["checkpoint"] = r.str_("checkpoint", ("batch", "record"))
        for k in ("seal_manifest", "timestamp_within_deadline", "version_history"):
            if r.has(k):
                p[k] = r.bool_(k)
        out["authenticity"] = merged("authenticity", b.authenticity, p)
    if (r := sections.get("search")) is not None:
        p = {}
        if r.has("required"):
            p["required"] = r.strs("required", SEARCH_FIELDS)
        if r.has("required_by_type"):
            table = r.table["required_by_type"]
            if not isinstance(table, dict):
                raise r.bad("required_by_type", "must be a table of document type = [fields]")
            sub = _Reader(source, table, "search.required_by_type")
            p["required_by_type"] = {k: sub.strs(k, SEARCH_FIELDS) for k in table}
        for k in ("ledger_ref_required", "author_required"):
            if r.has(k):
                p[k] = r.bool_(k)
        out["search"] = merged("search", b.search, p)
    if (r := sections.get("retention")) is not None:
        p = {}

        def known_rules(reader: _Reader) -> tuple[str, ...]:
            rules = reader.strs("rules")
            for rule in rules:
                if not retention.is_known_rule(rule):
                    raise reader.bad("rules", f"names unknown rule {rule!r}; known: "
                                     f"{', '.join(sorted(retention.RULES))}")
            return rules

        by_entity = dict(b.retention.by_entity)
        if r.has("rules"):
            p["rules"] = known_rules(r)
            by_entity = {}  # plain rules restate the whole set (see the module docstring)
        for entity in ENTITY_TYPES:
            if r.has(entity):
                table = r.table[entity]
                if not isinstance(table, dict):
                    raise r.bad(entity, "must be a table: [retention." + entity + "] rules = [...]")
                _check_keys(source, table, {"rules"}, f"retention.{entity}")
                sub = _Reader(source, table, f"retention.{entity}")
                by_entity[entity] = known_rules(sub) if sub.has("rules") else ()
        if by_entity != dict(b.retention.by_entity):
            p["by_entity"] = by_entity
        if r.has("duration"):
            d = r.str_("duration")
            try:
                retention.parse_duration(d)
            except ConfigError as exc:
                raise r.bad("duration", f"is not an ISO 8601 duration ({d!r}): {exc.message}"
                            ) from None
            p["duration"] = d
        out["retention"] = merged("retention", b.retention, p)
    return out


class ProfileSet:
    """All profiles visible to an archive: shipped ones, then the user's directories."""

    def __init__(self, profiles: Mapping[str, Profile]) -> None:
        self._profiles = dict(profiles)

    def __contains__(self, pid: object) -> bool:
        return pid in self._profiles

    def __iter__(self) -> Iterator[Profile]:
        return iter(sorted(self._profiles.values(), key=lambda p: p.id))

    def ids(self) -> list[str]:
        return sorted(self._profiles)

    def get(self, pid: str) -> Profile:
        try:
            return self._profiles[pid]
        except KeyError:
            raise ConfigError(f"unknown profile {pid!r}", code="PROFILE_UNKNOWN",
                              hint=f"known profiles: {', '.join(self.ids())} "
                              "(see edoc profiles)") from None

    @classmethod
    def load(cls, extra_dirs: Sequence[Path] = ()) -> ProfileSet:
        raw: dict[str, tuple[str, dict[str, Any]]] = {}
        for directory in (SHIPPED_DIR, *extra_dirs):
            if not directory.is_dir():
                raise ConfigError(f"policies directory {directory} does not exist",
                                  code="POLICIES_DIR_MISSING")
            for path in sorted(directory.glob("*.toml")):
                source = str(path)
                try:
                    data = tomllib.loads(path.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                    raise ConfigError(f"{source}: cannot be read as TOML: {exc}",
                                      code="PROFILE_INVALID") from None
                reader = _Reader(source, data, None)
                if "id" not in data:
                    raise reader.bad("id", "is missing")
                pid = reader.str_("id")
                # A user's profile may replace a shipped one of the same id on purpose.
                raw[pid] = (source, data)
        return cls(_resolve(raw))


def _resolve(raw: Mapping[str, tuple[str, dict[str, Any]]]) -> dict[str, Profile]:
    done: dict[str, Profile] = {}

    def build(pid: str, chain: tuple[str, ...]) -> Profile:
        if pid in done:
            return done[pid]
        source, data = raw[pid]
        base: Profile | None = None
        parent = data.get("extends")
        if parent is not None:
            if not isinstance(parent, str) or parent not in raw:
                raise ConfigError(f"{source}: extends names unknown profile {parent!r}",
                                  code="PROFILE_INVALID")
            if parent in chain:
                raise ConfigError(f"{source}: extends forms a cycle "
                                  f"({' -> '.join((*chain, parent))})", code="PROFILE_INVALID")
            base = build(parent, (*chain, parent))
        fields = _parse_sections(source, data, base)
        if base is None:
            for required in ("title", "basis"):
                if required not in fields:
                    raise ConfigError(f"{source}: {required} is missing", code="PROFILE_INVALID",
                                      hint="every profile names the legal basis it implements")
            profile = Profile(id=pid, source=source, **fields)
        else:
            from dataclasses import replace

            profile = replace(base, id=pid, source=source, extends=parent,
                              notes=tuple(fields.pop("notes", base.notes)), **fields)
        if not profile.retention.duration:
            for entity in ENTITY_TYPES:
                if not profile.retention.rules_for(entity):
                    raise ConfigError(f"{source}: retention needs rules or a duration "
                                      f"(none apply to entity type {entity})",
                                      code="PROFILE_INVALID",
                                      hint=f"add [retention] rules, or [retention.{entity}] "
                                      "rules for that entity type")
        done[pid] = profile
        return profile

    for pid in raw:
        build(pid, (pid,))
    return done


def policies_dirs(configured: str | None, archive_dir: Path) -> list[Path]:
    """User profile directories: ``policies_dir`` from edoc.toml, then ``EDOC_POLICIES``."""
    dirs: list[Path] = []
    if configured:
        dirs.append((archive_dir / configured).resolve())
    env = os.environ.get("EDOC_POLICIES")
    if env:
        dirs.extend(Path(p).resolve() for p in env.split(os.pathsep) if p)
    return dirs


# -- combining ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Requirements:
    """The effective rules for one record: the strictest of every applicable profile."""

    profiles: tuple[str, ...]
    document_class: str
    capture: CaptureRules
    deadline: Deadline
    authenticity: Authenticity
    required_fields: tuple[str, ...]
    retention: RetentionSpec


def _strictest_colour(a: str, b: str) -> str:
    return a if COLOURS.index(a) >= COLOURS.index(b) else b


def _max_opt(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def combine(profiles: Sequence[Profile], doc_type: str | None) -> Requirements:
    """Strictest of each setting wins; retention keeps every rule (the latest date wins)."""
    if not profiles:
        raise ConfigError("no profile given", code="PROFILE_REQUIRED", hint="use --profile ID")
    capture = profiles[0].capture
    deadline = profiles[0].deadline
    auth = profiles[0].authenticity
    fields: dict[str, None] = {}
    rules: dict[str, None] = {}
    by_entity: dict[str, dict[str, None]] = {e: {} for e in ENTITY_TYPES}
    durations: list[str] = []
    for p in profiles:
        c = p.capture
        capture = CaptureRules(
            min_dpi=_max_opt(capture.min_dpi, c.min_dpi),
            # an unset bilevel minimum means "same as min_dpi": compare effective values
            min_dpi_bilevel=_max_opt(capture.min_dpi_bilevel or capture.min_dpi,
                                     c.min_dpi_bilevel or c.min_dpi),
            colour=_strictest_colour(capture.colour, c.colour),
            lossy_allowed=capture.lossy_allowed and c.lossy_allowed,
            reject_active_content=capture.reject_active_content or c.reject_active_content,
        )
        d = p.deadline
        days = [x for x in (deadline.business_days, d.business_days) if x is not None]
        deadline = Deadline(
            business_days=min(days) if days else None,
            cycle_months=min(deadline.cycle_months, d.cycle_months),
            late="reject" if "reject" in (deadline.late, d.late) else "flag",
        )
        a = p.authenticity
        auth = Authenticity(
            checkpoint="record" if "record" in (auth.checkpoint, a.checkpoint) else "batch",
            seal_manifest=auth.seal_manifest or a.seal_manifest,
            timestamp_within_deadline=auth.timestamp_within_deadline
            or a.timestamp_within_deadline,
            version_history=auth.version_history or a.version_history,
        )
        fields.update(dict.fromkeys(p.search.required_for(doc_type)))
        rules.update(dict.fromkeys(p.retention.rules))
        for entity, own in p.retention.by_entity.items():
            by_entity.setdefault(entity, {}).update(dict.fromkeys(own))
        if p.retention.duration:
            durations.append(p.retention.duration)
    classes = [p.document_class for p in profiles if p.document_class != "any"]
    doc_class = "important" if "important" in classes else (classes[0] if classes else "any")
    return Requirements(
        profiles=tuple(p.id for p in profiles),
        document_class=doc_class,
        capture=capture,
        deadline=deadline,
        authenticity=auth,
        required_fields=tuple(fields),
        retention=RetentionSpec(tuple(rules), _longest_duration(durations),
                                {e: tuple(r) for e, r in by_entity.items() if r}),
    )


def _longest_duration(durations: Sequence[str]) -> str | None:
    """Several plain durations: keep the one reaching furthest (from a common start)."""
    if not durations:
        return None
    from datetime import UTC, datetime

    from edoc.policy import retention

    start = datetime(2000, 1, 1, tzinfo=UTC)
    return max(durations, key=lambda d: retention.parse_duration(d).add_to(start))
