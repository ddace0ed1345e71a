"""The catalog's copy of the NTA register of qualified invoice issuers (適格請求書発行事業者):
every statement that writes or reads ``registry_entries`` and ``registry_imports``.

Deciding nothing: ``edoc.services.registry`` parses the NTA's 全件データ files, decides
whether a number was registered on a date, and refuses an older import; this module stores
the rows it is given and answers lookups. A register is replaced whole, in one write
transaction (``replacing_register``): a reader sees the previous register or the new one,
never a mix, and a failed import leaves the previous one as it was.

Speed (BENCHMARKS: a 1-million-row register in well under a minute on 2 cores): rows arrive
as plain tuples in the table's column order and go to the driver's ``executemany`` in batches
through one prebuilt INSERT, bypassing SQLAlchemy's per-row parameter processing; the number
index is dropped for the load and built once at the end (a sorted build, not a million
random-order B-tree inserts), in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edoc.catalog.engine import CatalogEngine, driver_insert
from edoc.catalog.schema import registry_entries, registry_imports, schema_names

#: The column order of the tuples ``RegisterLoad.add`` takes (the table's own order).
ENTRY_COLUMNS: tuple[str, ...] = tuple(c.name for c in registry_entries.columns)

_E = registry_entries.c
#: One lookup: the number's latest=1 row if any, else its newest row by sequence; a search
#: of ``ix_registry_number`` (number, latest, seq), walked backwards, first row only.
LOOKUP_ENTRY = (sa.select(registry_entries)
                .where(_E.number == sa.bindparam("number"))
                .order_by(_E.latest.desc(), _E.seq.desc())
                .limit(1))
HELD_IMPORT = (sa.select(registry_imports)
               .order_by(registry_imports.c.id.desc()).limit(1))
_INDEX = next(ix for ix in registry_entries.indexes if ix.name == "ix_registry_number")


@dataclass(frozen=True, slots=True)
class RegisterFile:
    """One file an import read: its name as given, SHA-256, size and data rows."""

    name: str
    sha256: str
    size: int
    rows: int


@dataclass(frozen=True, slots=True)
class HeldRegister:
    """The register the catalog holds: its newest ``registry_imports`` row."""

    as_of: str
    imported_at: str
    actor: str
    rows: int
    numbers: int
    files: tuple[RegisterFile, ...]


@dataclass(frozen=True, slots=True)
class RegisterEntry:
    """A row of ``registry_entries`` (one history row of the NTA file)."""

    seq: int
    number: str
    process: str
    correct: int
    kind: int
    latest: int
    registration_date: str | None
    update_date: str | None
    disposal_date: str | None
    expire_date: str | None
    name: str | None
    trade_name: str | None
    address: str | None


def _held(conn: Connection) -> HeldRegister | None:
    try:
        row = conn.execute(HELD_IMPORT).first()
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        # A catalog of an earlier edoc not yet upgraded (its first write transaction adds
        # the table, ``schema.upgrade``): no register was imported into it.
        conn.rollback()
        if registry_imports.name not in schema_names(conn):
            return None
        raise
    if row is None:
        return None
    files = tuple(RegisterFile(str(f["name"]), str(f["sha256"]), int(f["size"]), int(f["rows"]))
                  for f in json.loads(row.files))
    return HeldRegister(as_of=str(row.as_of), imported_at=str(row.imported_at),
                        actor=str(row.actor), rows=int(row.rows), numbers=int(row.numbers),
                        files=files)


def held_register(catalog: CatalogEngine) -> HeldRegister | None:
    """The register held, or None when none was ever imported."""
    with catalog.read() as c:
        return _held(c)


def lookup_entry(catalog: CatalogEngine, number: str
                 ) -> tuple[RegisterEntry | None, HeldRegister | None]:
    """The row a lookup of ``number`` uses, and the register it comes from, read in one
    snapshot (a concurrent import cannot pair a row with another register's date)."""
    with catalog.read() as c:
        held = _held(c)
        if held is None:
            return None, None
        row = c.execute(LOOKUP_ENTRY, {"number": number}).first()
    return (None if row is None else RegisterEntry(*row)), held


class RegisterLoad:
    """An open replacement of the register (see ``replacing_register``)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._insert = driver_insert(conn, registry_entries, ENTRY_COLUMNS)
        self.rows = 0
        self.finished = False

    @property
    def held(self) -> HeldRegister | None:
        """The register being replaced (read inside this transaction)."""
        return _held(self._conn)

    def add(self, batch: Sequence[tuple[Any, ...]]) -> None:
        """Insert rows, each a tuple in ``ENTRY_COLUMNS`` order."""
        if batch:
            self._conn.exec_driver_sql(self._insert, batch)
            self.rows += len(batch)

    def finish(self, *, as_of: str, imported_at: str, actor: str,
               files: Sequence[RegisterFile]) -> HeldRegister:
        """Build the number index, count the numbers and record the import."""
        _INDEX.create(self._conn)
        self.finished = True
        numbers = int(self._conn.execute(
            sa.select(sa.func.count(sa.distinct(_E.number)))).scalar_one())
        self._conn.execute(registry_imports.insert().values(
            as_of=as_of, imported_at=imported_at, actor=actor, rows=self.rows,
            numbers=numbers, files=json.dumps(
                [{"name": f.name, "sha256": f.sha256, "size": f.size, "rows": f.rows}
                 for f in files], ensure_ascii=False)))
        return HeldRegister(as_of=as_of, imported_at=imported_at, actor=actor, rows=self.rows,
                            numbers=numbers, files=tuple(files))


@contextmanager
def replacing_register(catalog: CatalogEngine) -> Iterator[RegisterLoad]:
    """One write transaction that empties the register and loads a new one: committed when
    the block ends (after ``RegisterLoad.finish``), rolled back whole if it raises."""
    with catalog.write() as conn:
        _INDEX.drop(conn, checkfirst=True)
        conn.execute(registry_entries.delete())
        load = RegisterLoad(conn)
        yield load
        if not load.finished:  # never commit a register without its index and its import row
            raise RuntimeError("register load ended without finish(): rolled back")
