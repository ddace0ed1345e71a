"""``edoc catalog migrate --to URL``: move an archive's catalog to another database
(SQLite to PostgreSQL, the step from one host to several), verified before it is used.

1. The target must be reachable and hold no catalog (``CATALOG_EXISTS`` otherwise); it is
   made at the newest schema.
2. Every table is copied inside one write transaction of the source: no writer can change
   the catalog while it is copied (SQLite's write lock; on PostgreSQL its advisory lock).
   ``counterparties`` is filled by the target's own trigger; ``lock_holders`` describes the
   source's locks, not the target's, and is not copied.
3. Verified before the switch: per table, the row count and a SHA-256 over every row in
   key order must be equal on both sides; then ``ledger verify`` and ``verify --all`` run
   against the target (``verify=False`` skips those two, not the digests).
4. Only then ``edoc.toml`` names the target (written beside and renamed over: atomic). The
   old SQLite file is left where it was, untouched: it is the way back.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from edoc import config as config_mod
from edoc.catalog import Catalog
from edoc.catalog.core import fix_sequences
from edoc.catalog.engine import display_url
from edoc.errors import CatalogError, EdocError
from edoc.model.verdict import Status
from edoc.services.archive import Archive

#: tables the target makes itself (see the module docstring, step 2)
_NOT_COPIED = frozenset({"counterparties", "lock_holders", "schema_info"})
_PAGE = 5000


@dataclass
class MigrateSummary:
    source: str
    target: str
    #: rows copied per table
    tables: dict[str, int] = field(default_factory=dict)
    ledger_ok: bool | None = None
    versions_verified: int = 0
    versions_failed: int = 0
    switched: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "tables": self.tables,
                "ledger_ok": self.ledger_ok, "versions_verified": self.versions_verified,
                "versions_failed": self.versions_failed, "switched": self.switched}


def _digest(rows: list[tuple[Any, ...]]) -> str:
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps([_plain(v) for v in row], ensure_ascii=False,
                            default=str).encode())
    return h.hexdigest()


def _plain(value: Any) -> Any:
    # SQLite gives 0/1 for a boolean column, PostgreSQL True/False: compare as integers
    return int(value) if isinstance(value, bool) else value


def migrate_catalog(archive: Archive, to_url: str, *, verify: bool = True,
                    progress: Callable[[str], None] | None = None) -> MigrateSummary:
    """Copy ``archive``'s catalog to ``to_url``, verify it, switch edoc.toml (above)."""
    from edoc.catalog import schema

    say = progress or (lambda _m: None)
    a = archive
    target = Catalog(to_url, a.cfg.dir)
    if target.url == a.catalog.url:
        raise EdocError("the archive's catalog is already there", code="USAGE_ERROR")
    summary = MigrateSummary(display_url(a.catalog.url), display_url(target.url))
    target.check_new()
    target.create()
    tables = [t for t in schema.metadata.sorted_tables if t.name not in _NOT_COPIED]
    with a.catalog.write() as src, target.write() as dst:
        for table in tables:
            order = list(table.primary_key.columns) or list(table.columns)
            offset, copied = 0, 0
            while True:
                page = [dict(r._mapping) for r in src.execute(
                    table.select().order_by(*order).limit(_PAGE).offset(offset))]
                if not page:
                    break
                dst.execute(table.insert(), page)
                copied += len(page)
                offset += _PAGE
            summary.tables[table.name] = copied
            say(f"copied {table.name}: {copied} row(s)")
        fix_sequences(dst, {t.name for t in tables if summary.tables[t.name]})
        # step 3, digests: inside the same transactions, so nothing changed in between
        digests = _digests(src, tables)
        if digests != _digests(dst, tables):
            bad = sorted(n for n, d in _digests(dst, tables).items() if digests[n] != d)
            raise CatalogError(f"table(s) {', '.join(bad)} differ after the copy; the "
                               "archive still uses its old catalog", code="MIGRATE_MISMATCH")
    say("every table's rows are identical in the target")
    moved = Archive(replace(a.cfg, catalog_url=to_url), a.store, target)
    if verify:
        from edoc.services.audit import verify_ledger
        from edoc.services.period_verification import verify_stream

        rep = verify_ledger(moved)
        summary.ledger_ok = rep.ok
        if not rep.ok:
            raise CatalogError("ledger verify fails on the target; the archive still uses "
                               "its old catalog", code="MIGRATE_MISMATCH")
        for report in verify_stream(moved, target.record_ids(), workers=1):
            summary.versions_verified += 1
            if report.status is Status.FAIL:
                summary.versions_failed += 1
        if summary.versions_failed:
            raise CatalogError(f"{summary.versions_failed} version(s) fail verify on the "
                               "target; the archive still uses its old catalog",
                               code="MIGRATE_MISMATCH")
        say(f"ledger verify and verify --all pass on the target "
            f"({summary.versions_verified} version(s))")
    # step 4: the settings name the target, atomically — under the source's write lock,
    # once it is certain no writer changed the source since the copy
    with a.catalog.write() as src:
        if _digests(src, tables) != digests:
            raise CatalogError("the catalog changed during the migration (a writer ran); "
                               "the archive still uses its old catalog",
                               code="MIGRATE_SOURCE_CHANGED",
                               hint="stop ingest workers, then run the migration again into "
                               "an empty database")
        _switch_catalog_url(a, to_url)
    summary.switched = True
    target.dispose()
    return summary


def _digests(conn: Any, tables: list[Any]) -> dict[str, str]:
    out = {}
    for table in tables:
        order = list(table.primary_key.columns) or list(table.columns)
        out[table.name] = _digest([tuple(r) for r in conn.execute(
            table.select().order_by(*order))])
    return out


def _switch_catalog_url(a: Archive, to_url: str) -> None:
    """edoc.toml's ``[catalog] url`` line replaced (nothing else of the file touched),
    written beside and renamed over it."""
    cfg_path = a.cfg.dir / config_mod.CONFIG_NAME
    lines = cfg_path.read_text(encoding="utf-8").splitlines()
    new_line = f"url = {json.dumps(to_url)}"
    section, done = "", False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
        elif section == "[catalog]" and stripped.startswith("url") and "=" in stripped:
            lines[i], done = new_line, True
            break
    if not done:
        lines += ["", "[catalog]", new_line]
    tmp = cfg_path.with_name(f".{cfg_path.name}.{secrets.token_hex(4)}")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        import tomllib

        written = tomllib.loads(tmp.read_text(encoding="utf-8"))  # still valid TOML
        if written.get("catalog", {}).get("url") != to_url:
            raise CatalogError("edoc.toml could not be rewritten; nothing switched",
                               code="CONFIG_INVALID")
        tmp.replace(cfg_path)
    finally:
        tmp.unlink(missing_ok=True)
