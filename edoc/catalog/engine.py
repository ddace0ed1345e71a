"""The catalog's connections: the engine, the write lock, read connections, ``write()``.

SQLite (WAL, one writer at a time) by default, inside the archive directory; written with
SQLAlchemy Core so that a PostgreSQL URL is the only change for multi-user deployments.

Write transactions on SQLite begin with ``BEGIN IMMEDIATE`` so concurrent writers queue on
the busy timeout instead of failing half-way through (the ledger index must be assigned and
its row inserted atomically). Readers begin deferred: in WAL mode they read a snapshot and
never block or wait for a writer. The first write transaction of each ``Catalog`` brings
an older catalog's schema up to date (``edoc.catalog.schema.upgrade``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from edoc.catalog import schema
from edoc.errors import CatalogError, ConfigError

BUSY_TIMEOUT_S = 30


def _sqlite_url(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        return prefix + str((base / url[len(prefix):]).resolve())
    return url


class CatalogEngine:
    """Owns the catalog connection(s); every write goes through ``write()``."""

    def __init__(self, url: str, base_dir: Path) -> None:
        self.url = _sqlite_url(url, base_dir)
        self.is_sqlite = self.url.startswith("sqlite")
        self._write_lock = threading.RLock()
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_S, "isolation_level": None}
        try:
            self.engine: Engine = sa.create_engine(self.url, **kwargs)
        except sa.exc.ArgumentError as exc:
            raise CatalogError(f"catalog url is invalid: {exc}", code="CONFIG_INVALID") from None
        if self.is_sqlite:
            event.listen(self.engine, "connect", self._on_connect)
            event.listen(self.engine, "begin", self._on_begin)
        #: whether this process has brought the schema up to date (``schema.upgrade``)
        self._upgraded = False
        #: whether ``counterparties`` exists and is kept complete (None: not looked yet)
        self._names_ready: bool | None = None

    @staticmethod
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        cur.close()

    @staticmethod
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front (see docstring); readers begin deferred, so
        # in WAL mode they read a snapshot and never block or wait for a writer.
        if conn.get_execution_options().get("edoc_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    def create(self) -> None:
        with self.write() as c:
            schema.create(c)
        self._names_ready = None

    def _counterparty_names_ready(self) -> bool:
        if self._names_ready is None:
            with self.read() as c:
                self._names_ready = schema.counterparty_names_kept(c)
        return self._names_ready

    def check_schema(self) -> None:
        hint = "run 'edoc catalog rebuild' to recreate it from storage"
        if self.is_sqlite:
            path = Path(self.url.removeprefix("sqlite:///"))
            if not path.is_file():  # never let sqlite create an empty catalog silently
                raise ConfigError(f"catalog {path} is missing", code="CATALOG_UNAVAILABLE",
                                  hint=hint)
        try:
            with self.engine.connect() as c:
                found = schema.stored_version(c)
                behind = found == schema.SCHEMA_VERSION and schema.columns_missing(c)
        except sa.exc.OperationalError as exc:
            raise ConfigError(f"catalog cannot be opened: {exc.orig}",
                              code="CATALOG_UNAVAILABLE", hint=hint) from None
        except sa.exc.DatabaseError as exc:
            raise ConfigError(f"catalog is not a database: {exc.orig}",
                              code="CATALOG_UNAVAILABLE", hint=hint) from None
        if found != schema.SCHEMA_VERSION:
            raise ConfigError(f"catalog schema is version {found}; this edoc needs "
                              f"{schema.SCHEMA_VERSION}", code="CATALOG_SCHEMA")
        if behind:
            # Columns added since (schema.ADDED_COLUMNS) are read by every version query, so
            # an older catalog is upgraded now, not at its first write: a read-only command
            # (verify, search) on it would otherwise fail. One ALTER TABLE per column, once.
            # Read-only or busy: the reads then fail as they would have.
            with suppress(CatalogError), self.write():
                pass

    @contextmanager
    def write(self) -> Iterator[Connection]:
        # Threads of one process queue here rather than in SQLite: its busy handler sleeps
        # in steps of up to 100 ms, so threads contending on BEGIN IMMEDIATE wait far longer
        # than the lock is held (measured: 43 % of an 8-thread S3 ingest's time). Other
        # processes still wait in SQLite's busy handler.
        with self._write_lock, self._write_transaction() as conn:
            yield conn

    @contextmanager
    def _write_transaction(self) -> Iterator[Connection]:
        try:
            with self.engine.connect().execution_options(edoc_write=True) as conn, \
                    conn.begin():
                first = not self._upgraded
                if first:
                    schema.upgrade(conn)
                yield conn
            if first:  # committed (a rollback undoes the upgrade too): look again at search
                self._upgraded, self._names_ready = True, None
        except sa.exc.OperationalError as exc:
            if "readonly" in str(exc.orig):
                raise CatalogError(f"catalog is read-only ({exc.orig}); nothing changed",
                                   code="CATALOG_READ_ONLY",
                                   hint="run edoc where the archive directory is writable"
                                   ) from None
            if "locked" in str(exc.orig) or "busy" in str(exc.orig):
                raise CatalogError(
                    f"catalog is busy: another edoc process held the write lock for more "
                    f"than {BUSY_TIMEOUT_S} s", code="CATALOG_BUSY",
                    hint="wait for the other run to finish, then retry") from None
            raise CatalogError(f"catalog write failed: {exc.orig}",
                               code="CATALOG_ERROR") from None

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


class TransactionBase:
    """One open catalog write transaction; the concern modules add its typed operations."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
