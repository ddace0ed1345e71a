"""The catalog's connections: the engine, the write lock, read connections, ``write()``.

SQLite (WAL, one writer at a time) by default, inside the archive directory; PostgreSQL
(driver psycopg 3) for a catalog shared by several hosts: a ``postgresql://`` URL is the
only change (``normalise_url``). Both are written with SQLAlchemy Core.

Write transactions on SQLite begin with ``BEGIN IMMEDIATE`` so concurrent writers queue on
the busy timeout instead of failing half-way through (the ledger index must be assigned and
its row inserted atomically). Readers begin deferred: in WAL mode they read a snapshot and
never block or wait for a writer.

On PostgreSQL the same one-writer-at-a-time rule holds archive-wide, across hosts: a write
transaction first takes a transaction-level advisory lock (``pg_advisory_xact_lock``,
released by its commit or rollback), so everything the commit protocol relies on under
SQLite's write lock — the ledger index assigned atomically with its row (no gap, no two
leaves at one index), one checkpoint chain, the duplicate check seeing every earlier write
— holds when writers run on several hosts. Writes run at READ COMMITTED, so each statement
after the lock sees every transaction committed before it; ``snapshot`` reads at
REPEATABLE READ (one state, as a WAL snapshot). The first write transaction of each
``Catalog`` brings an older catalog's schema up to date (``edoc.catalog.migrations``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from edoc.catalog import schema
from edoc.errors import CatalogError, ConfigError, EdocError

BUSY_TIMEOUT_S = 30
#: The server's answers that mean the catalog URL is wrong (no such database or role, a
#: password or pg_hba.conf refusal), as opposed to a server that is down or starting.
_URL_REFUSED = re.compile(r"FATAL:\s+(database \S+ does not exist|role \S+ does not exist|"
                          r"password authentication failed|no pg_hba\.conf entry|"
                          r"permission denied for database)")
#: The advisory lock key of "the catalog's write lock" (any constant; advisory locks are
#: per database, so two archives' catalogs in one server never contend).
WRITE_LOCK_KEY = 0x6564_6F63_0001  # "edoc", 1


def normalise_url(url: str) -> str:
    """The SQLAlchemy URL for a catalog URL a user wrote: ``postgresql://`` and
    ``postgres://`` mean psycopg 3 (``postgresql+psycopg://``); others are kept."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def display_url(url: str) -> str:
    """``url`` fit to print: any password masked."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(an invalid URL)"


def _sqlite_url(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        return prefix + str((base / url[len(prefix):]).resolve())
    return url


class CatalogEngine:
    """Owns the catalog connection(s); every write goes through ``write()``."""

    def __init__(self, url: str, base_dir: Path) -> None:
        self.url = _sqlite_url(normalise_url(url), base_dir)
        self.is_sqlite = self.url.startswith("sqlite")
        self.is_postgresql = self.url.startswith("postgresql")
        self._write_lock = threading.RLock()
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_S, "isolation_level": None}
        if self.is_postgresql:
            # a server restart drops pooled connections: test each before use
            kwargs["pool_pre_ping"] = True
            kwargs["connect_args"] = {"connect_timeout": 10, "application_name": "edoc"}
        try:
            self.engine: Engine = sa.create_engine(self.url, **kwargs)
        except sa.exc.ArgumentError:
            raise CatalogError(f"catalog url {display_url(url)} is invalid",
                               code="CONFIG_INVALID") from None
        except ModuleNotFoundError as exc:
            raise CatalogError(f"catalog url {display_url(url)} needs the {exc.name} driver",
                               code="CONFIG_INVALID",
                               hint="pip install 'edoc[postgresql]' (psycopg 3)") from None
        if self.is_sqlite:
            event.listen(self.engine, "connect", self._on_connect)
            event.listen(self.engine, "begin", self._on_begin)
        self._releases: list[Callable[[], None]] = []
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

    def check_new(self) -> None:
        """Before ``edoc init`` writes anything: the catalog database can be reached and
        holds no catalog yet (a second ``init`` must never share or stamp over one)."""
        if self.is_sqlite:
            return  # a file in the new directory: init_archive refuses an existing archive
        try:
            with self.engine.connect() as c:
                present = schema.schema_names(c)
        except sa.exc.DBAPIError as exc:
            raise ConfigError(f"catalog {display_url(self.url)} cannot be opened: "
                              f"{_first_line(exc.orig)}", code="CATALOG_UNAVAILABLE",
                              hint="create the database first (createdb) and check the "
                              "URL, PGPASSWORD or ~/.pgpass") from None
        if "versions" in present or "schema_info" in present:
            raise ConfigError(f"catalog {display_url(self.url)} already holds an edoc "
                              "catalog; refusing to share it with a new archive",
                              code="CATALOG_EXISTS",
                              hint="use an empty database, or copy the archive directory "
                              "of the archive that owns it to this host")

    def create(self) -> None:
        with self.write() as c:
            if "schema_info" in schema.schema_names(c):
                raise ConfigError("the catalog database already holds a catalog",
                                  code="CATALOG_EXISTS")
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
        except sa.exc.ProgrammingError as exc:
            if self.is_postgresql:  # the database is there, the tables are not
                raise ConfigError(f"catalog {display_url(self.url)} holds no edoc catalog "
                                  f"({_first_line(exc.orig)})", code="CATALOG_UNAVAILABLE",
                                  hint=hint) from None
            raise ConfigError(f"catalog is not a database: {exc.orig}",
                              code="CATALOG_UNAVAILABLE", hint=hint) from None
        except sa.exc.OperationalError as exc:
            if self.is_postgresql:
                raise self._unreachable(exc) from None
            raise ConfigError(f"catalog cannot be opened: {_first_line(exc.orig)}",
                              code="CATALOG_UNAVAILABLE", hint=hint) from None
        except sa.exc.DatabaseError as exc:
            raise ConfigError(f"catalog is not a database: {exc.orig}",
                              code="CATALOG_UNAVAILABLE", hint=hint) from None
        if not isinstance(found, int) or found < 1 or found > schema.SCHEMA_VERSION:
            raise ConfigError(f"catalog schema is version {found}; this edoc knows 1 to "
                              f"{schema.SCHEMA_VERSION}", code="CATALOG_SCHEMA",
                              hint="a newer edoc made it: upgrade edoc"
                              if isinstance(found, int) and found > 1 else None)
        if found < schema.SCHEMA_VERSION:
            # Columns added since (schema.ADDED_COLUMNS) are read by every version query, so
            # an older catalog is migrated now, not at its first write: a read-only command
            # (verify, search) on it would otherwise fail (edoc.catalog.migrations).
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
                if self.is_postgresql:
                    # the archive-wide write lock (module docstring), waited for as SQLite's
                    # busy timeout waits
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{BUSY_TIMEOUT_S}s'")
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")
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
            if ("locked" in str(exc.orig) or "busy" in str(exc.orig)
                    or "lock timeout" in str(exc.orig)):
                raise CatalogError(
                    f"catalog is busy: another edoc process held the write lock for more "
                    f"than {BUSY_TIMEOUT_S} s", code="CATALOG_BUSY",
                    hint="wait for the other run to finish, then retry") from None
            if self.is_postgresql:
                raise self.unavailable(exc, "write") from None
            raise CatalogError(f"catalog write failed: {exc.orig}",
                               code="CATALOG_ERROR") from None

    @contextmanager
    def read(self, *, consistent: bool = False) -> Iterator[Connection]:
        """A read connection; ``consistent``: every statement sees one state (a WAL
        snapshot on SQLite; REPEATABLE READ on PostgreSQL)."""
        try:
            with self.engine.connect() as conn:
                if consistent and self.is_postgresql:
                    conn = conn.execution_options(isolation_level="REPEATABLE READ")
                yield conn
        except sa.exc.OperationalError as exc:
            # The server went away under a running read (a PostgreSQL restart or failover:
            # ``pool_pre_ping`` only tests a connection when it is taken from the pool), or
            # the SQLite file became unreadable. Nothing was written by a read; the command
            # stops with a code an operator's script can act on, not an internal error.
            raise self.unavailable(exc, "read") from None

    def _unreachable(self, exc: sa.exc.OperationalError) -> EdocError:
        """A PostgreSQL catalog that cannot be opened: the URL's fault (no such database,
        authentication refused: SQLSTATE classes 3D and 28) is a configuration error; any
        other (refused, timed out, the server starting up or shutting down, a connection
        ended by a restart) may pass, and is retried by a worker starting up."""
        state = str(getattr(exc.orig, "sqlstate", None) or "")
        where = display_url(self.url)
        # libpq reports a refusal at connection time without its SQLSTATE (psycopg's
        # ``sqlstate`` is None), so the server's FATAL message is matched as well.
        if state[:2] in ("3D", "28") or _URL_REFUSED.search(str(exc.orig)):
            return ConfigError(f"catalog {where} cannot be opened: {_first_line(exc.orig)}",
                               code="CATALOG_UNAVAILABLE",
                               hint="check the database name, user and password in the "
                               "catalog URL (edoc.toml or EDOC_CATALOG_URL)")
        return CatalogError(f"catalog {where} cannot be opened: {_first_line(exc.orig)}",
                            code="CATALOG_UNAVAILABLE",
                            hint="is the PostgreSQL server up? then run the same command "
                            "again")

    def unavailable(self, exc: sa.exc.OperationalError, action: str) -> CatalogError:
        if self.is_postgresql:
            return CatalogError(f"catalog {action} failed: the connection to "
                                f"{display_url(self.url)} was lost ({_first_line(exc.orig)})",
                                code="CATALOG_UNAVAILABLE",
                                hint="is the PostgreSQL server up? then run the same "
                                "command again" + ("" if action == "read" else
                                                   " (it completes or undoes a half-done "
                                                   "step)"))
        return CatalogError(f"catalog {action} failed: {_first_line(exc.orig)}",
                            code="CATALOG_UNAVAILABLE",
                            hint="check that the catalog file is readable; 'edoc doctor' "
                            "says more")

    def on_dispose(self, release: Callable[[], None]) -> None:
        """Call ``release`` when this catalog is disposed (a writer lease of
        ``edoc.catalog.coordination`` ends with it)."""
        self._releases.append(release)

    def dispose(self) -> None:
        releases, self._releases = self._releases, []
        for release in releases:
            release()
        self.engine.dispose()


def driver_insert(conn: Connection, table: sa.Table, columns: Sequence[str]) -> str:
    """An INSERT of ``columns`` into ``table`` in the driver's own positional marks (qmark:
    sqlite3; format: psycopg), for ``exec_driver_sql`` with plain tuples: many rows at once
    without SQLAlchemy's per-row parameter processing (most of a bulk insert's cost). Every
    name in the text is the schema's own; nothing comes from input."""
    marks = ", ".join(["?" if conn.dialect.paramstyle == "qmark" else "%s"] * len(columns))
    return (f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608
            f"VALUES ({marks})")


def _first_line(error: object) -> str:
    """A driver error's first line (psycopg adds context lines; none holds a password)."""
    return str(error).strip().splitlines()[0] if str(error).strip() else repr(error)


class TransactionBase:
    """One open catalog write transaction; the concern modules add its typed operations."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
