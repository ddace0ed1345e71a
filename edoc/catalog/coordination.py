"""Coordination between edoc processes: writer registration, purge exclusivity, and who
owns a local store — in files for a SQLite catalog, in the database for PostgreSQL.

Three questions the commit protocol and the purge ask (``edoc.services.commit``,
``edoc.services.disposal``):

* **Is the writer that left an intent alive?** Each writing process registers a token and
  holds a lock for as long as it lives; the lock is dropped by whatever ends the process
  (kill -9 included). ``probe_writer`` takes the lock when it is free: the writer is dead,
  and while the caller holds it no other process recovers that writer's versions.
* **Is another purge running?** ``purge_lock`` is held for a whole run; a second one is
  refused with ``PURGE_RUNNING``, naming the holder (host, pid, since). The run asks its
  ``PurgeLease`` before each page it disposes: a PostgreSQL restart ends the session that
  held the lock, and a run that went on could race a second purge resuming its journal.
* **Does this local store belong to this host?** (PostgreSQL only.) A local-directory
  store is on one machine's disk; a shared catalog pointing at it from a second host, or
  from a copy of the archive directory with its own store, would catalogue objects the
  others cannot read. ``claim_local_store`` records the first owner and refuses others
  with ``LOCAL_STORE_ELSEWHERE``. S3 + PostgreSQL is the multi-host configuration.

``FileCoordination`` (SQLite): ``flock(2)`` on files under the archive directory —
``.writers/<token>.lock`` and ``.purge.lock`` — which only processes of one host see.
``DatabaseCoordination`` (PostgreSQL): session-level advisory locks
(``pg_advisory_lock``), held on a connection of their own; the server drops them when the
session ends (the process died, or its host did: TCP keepalives close the session), so a
process on any host can probe them with ``pg_try_advisory_lock``. The holder of a lock is
described in ``lock_holders`` for the refusal message.

A PostgreSQL restart ends every session, live writers' too: a writer re-takes its lock
before its next reservation (``writer_token``). An intent reserved before the restart may
meanwhile look abandoned to a concurrent repair, which then finishes or drops it; the live
writer's cataloguing then fails with ``RECORD_CHANGED`` and its job is retried (the
duplicate check makes the retry safe). Nothing is lost or stored twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import socket
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from edoc.catalog.engine import CatalogEngine
from edoc.catalog.schema import lock_holders
from edoc.clock import now, utc_text
from edoc.errors import CatalogError, EdocError

WRITERS_DIR = ".writers"
PURGE_LOCK_FILE = ".purge.lock"
#: The two-integer advisory lock space of edoc ("ed", n): bigint locks (writers, the
#: catalog write lock) live in a space of their own, so none collides with these.
_EDOC_CLASS = 0x6564
_PURGE_OBJ = 2


def host_name() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:60]


def new_token() -> str:
    """A writer token: host, pid and a random part (pids are reused)."""
    return f"{host_name()}-{os.getpid()}-{secrets.token_hex(4)}"


def _holder_text(name: str, since: str | None = None) -> str:
    return f"host {host_name()}, pid {os.getpid()}, since {since or utc_text(now())}"


def _purge_busy(holder: str | None) -> EdocError:
    who = f" ({holder})" if holder else ""
    return EdocError(f"another purge is running on this archive{who}", code="PURGE_RUNNING",
                     hint="wait for it to finish; runs are safe to repeat")


class PurgeLease:
    """What ``purge_lock`` yields: the run asks ``check`` before each page it disposes.
    A flock lives as long as its file descriptor, so the file lease cannot be lost."""

    def check(self) -> None:
        """Raise ``CATALOG_UNAVAILABLE`` if the lock is no longer held."""


class Coordination:
    """The interface; ``coordination_for`` picks the implementation."""

    def writer_token(self) -> str:
        """This process's writer token, registered (its lock taken) on first use; the
        threads of one run share it."""
        raise NotImplementedError

    def probe_writer(self, token: str, *, release: bool = True
                     ) -> contextlib.AbstractContextManager[bool]:
        """Yields whether writer ``token`` is dead; while True, this process holds its
        lock. ``release``: forget a dead writer's registration afterwards."""
        raise NotImplementedError

    def purge_lock(self) -> contextlib.AbstractContextManager[PurgeLease]:
        """Held for a whole purge run; raises ``PURGE_RUNNING`` naming the holder."""
        raise NotImplementedError

    def claim_local_store(self, store_path: Path) -> None:
        """Refuse a local store shared through the catalog by a second host or directory."""

    def retire_writer(self) -> None:
        """Give up this process's writer token (hook for long-lived workers, edoc.queue):
        intents it left behind when a commit failed and the drop failed too (the database
        went away) then look abandoned and are repaired as a dead writer's; the next
        reservation takes a new token. (Files: a no-op; the token lives until exit.)"""


# -- files (SQLite) -----------------------------------------------------------------------------

_FILE_OWNERS: dict[tuple[Path, int], str] = {}
_OWNERS_LOCK = threading.Lock()


class FileCoordination(Coordination):
    def __init__(self, archive_dir: Path) -> None:
        self.dir = archive_dir

    def writer_token(self) -> str:
        import atexit
        import errno
        import fcntl

        with _OWNERS_LOCK:
            key = (self.dir, os.getpid())
            token = _FILE_OWNERS.get(key)
            if token is not None:
                return token
            token = new_token()
            lock_dir = self.dir / WRITERS_DIR
            path = lock_dir / f"{token}.lock"
            # Locked under a temporary name, then renamed: no one ever sees it unlocked.
            tmp = lock_dir / f".{token}.tmp"
            try:
                lock_dir.mkdir(mode=0o700, exist_ok=True)
                fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                tmp.replace(path)
            except OSError as exc:
                raise EdocError(f"cannot write in the archive directory {self.dir} "
                                f"({exc.strerror}); nothing stored",
                                code="ARCHIVE_READ_ONLY" if exc.errno == errno.EROFS
                                else "ARCHIVE_NOT_WRITABLE",
                                hint="run edoc where the archive directory is writable"
                                ) from None
            _FILE_OWNERS[key] = token
            pid = os.getpid()

            def release() -> None:
                if os.getpid() == pid:
                    with contextlib.suppress(OSError):
                        path.unlink()

            atexit.register(release)
            return token

    @contextlib.contextmanager
    def probe_writer(self, token: str, *, release: bool = True) -> Iterator[bool]:
        import fcntl

        path = self.dir / WRITERS_DIR / f"{token}.lock"
        try:
            fd = os.open(path, os.O_RDONLY)  # flock(2) needs no write access
        except FileNotFoundError:
            yield True  # never got a lock file, or was recovered by a run that just finished
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
            if release:
                with contextlib.suppress(OSError):
                    path.unlink()
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def purge_lock(self) -> Iterator[PurgeLease]:
        import fcntl

        path = self.dir / PURGE_LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                with contextlib.suppress(OSError):
                    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
                raise _purge_busy(holder or None) from None
            with contextlib.suppress(OSError):  # who holds it, for a second purge's refusal
                os.ftruncate(fd, 0)
                os.pwrite(fd, _holder_text("purge").encode(), 0)
            yield PurgeLease()
        finally:
            os.close(fd)


# -- the database (PostgreSQL) ------------------------------------------------------------------

def _writer_key(token: str) -> int:
    """A writer's bigint advisory lock key: 63 bits of SHA-256 of its token."""
    return int.from_bytes(hashlib.sha256(token.encode()).digest()[:8], "big") >> 1


class _Session:
    """A connection of its own in autocommit, for session-level advisory locks."""

    def __init__(self, catalog: CatalogEngine) -> None:
        self.pid = os.getpid()
        # Weakly: a session is a value of ``_DB_OWNERS`` (keyed weakly by its catalog) and
        # of that catalog's finalizer, and a strong reference would keep both alive.
        self._catalog = weakref.ref(catalog)
        self.lost = False
        try:
            self.conn: Connection = catalog.engine.connect().execution_options(
                isolation_level="AUTOCOMMIT")
        except sa.exc.OperationalError as exc:
            raise catalog.unavailable(exc, "read") from None

    def scalar(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        return self.execute(sa.text(sql), params).scalar()

    def execute(self, statement: Any, params: dict[str, Any] | None = None) -> Any:
        """One statement; a connection lost (a restart) is ``CATALOG_UNAVAILABLE``."""
        if self.lost:
            raise CatalogError("the database session was lost", code="CATALOG_UNAVAILABLE",
                               hint="is the PostgreSQL server up? then run the same command "
                               "again")
        try:
            return self.conn.execute(statement, params or {})
        except sa.exc.OperationalError as exc:
            self.lost = True
            catalog = self._catalog()
            if catalog is None:
                raise
            raise catalog.unavailable(exc, "write") from None

    def alive(self) -> bool:
        """Whether the session is the one that took the locks: once a statement failed on
        a lost connection it stays dead (SQLAlchemy would quietly reconnect to a new
        session, which holds none of them)."""
        if self.lost:
            return False
        try:
            self.conn.execute(sa.text("SELECT 1"))
            return True
        except sa.exc.DBAPIError:
            self.lost = True
            return False

    def close(self) -> None:
        """End the session itself (not back into the pool): its locks go with it."""
        with contextlib.suppress(Exception):
            self.conn.invalidate()
        with contextlib.suppress(Exception):
            self.conn.close()


class _SessionLease(PurgeLease):
    def __init__(self, session: _Session) -> None:
        self.session = session

    def check(self) -> None:
        held = self.session.alive() and self.session.scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = :c "
            "AND objid = :o AND objsubid = 2 AND pid = pg_backend_pid() AND granted",
            {"c": _EDOC_CLASS, "o": _PURGE_OBJ})
        if not held:
            raise EdocError(
                "purge stopped: the database session holding the purge lock was lost (a "
                "PostgreSQL restart or failover); what it disposed so far is journaled",
                code="CATALOG_UNAVAILABLE",
                hint="run purge again when the server is up: it resumes the journaled run "
                "and certifies it")


#: each open catalog's writer (token, session); a lease ends with its catalog's dispose()
_DB_OWNERS: weakref.WeakKeyDictionary[CatalogEngine, tuple[str, _Session]] = (
    weakref.WeakKeyDictionary())


class DatabaseCoordination(Coordination):
    def __init__(self, catalog: CatalogEngine) -> None:
        self.catalog = catalog

    def writer_token(self) -> str:
        """The lease lives as long as the catalog object (``dispose`` ends it: a process
        that opened an archive for one command leaves nothing in flight afterwards) or
        the process, whichever ends first."""
        with _OWNERS_LOCK:
            found = _DB_OWNERS.get(self.catalog)
            if found is not None and found[1].pid == os.getpid() and found[1].alive():
                return found[0]
            if found is not None and found[1].pid == os.getpid():
                # The server restarted and the old token's lock went with its session. A new
                # token, not the old one locked again: what this process reserved under the
                # old one and did not finish (its commit failed with the connection) is then
                # a dead writer's, repaired by any process — locked again, it would look
                # alive for as long as this process lives, and every retry of its document
                # would wait on it. Jobs still committing under the old token are safe
                # (``edoc.queue.work._retire_if_orphaned_here``).
                found[1].close()
            token = new_token()  # (a forked child, too, takes its own)
            session = _Session(self.catalog)
            # A fresh random key: nobody else holds it, so this does not wait.
            session.scalar("SELECT pg_advisory_lock(:k)", {"k": _writer_key(token)})
            _DB_OWNERS[self.catalog] = (token, session)
            self.catalog.on_dispose(session.close)
            weakref.finalize(self.catalog, session.close)  # or when the catalog is dropped
            return token

    def retire_writer(self) -> None:
        with _OWNERS_LOCK:
            found = _DB_OWNERS.pop(self.catalog, None)
        if found is not None and found[1].pid == os.getpid():
            found[1].close()  # the session ends (not back into the pool): its lock with it

    @contextlib.contextmanager
    def probe_writer(self, token: str, *, release: bool = True) -> Iterator[bool]:
        key = _writer_key(token)
        if any(t == token and sess.pid == os.getpid() for t, sess in list(_DB_OWNERS.values())):
            yield False  # this very process
            return
        session = _Session(self.catalog)
        try:
            if not session.scalar("SELECT pg_try_advisory_lock(:k)", {"k": key}):
                yield False
                return
            try:
                yield True
            finally:
                session.scalar("SELECT pg_advisory_unlock(:k)", {"k": key})
        finally:
            session.close()

    @contextlib.contextmanager
    def purge_lock(self) -> Iterator[PurgeLease]:
        session = _Session(self.catalog)
        try:
            got = session.scalar("SELECT pg_try_advisory_lock(:c, :o)",
                                 {"c": _EDOC_CLASS, "o": _PURGE_OBJ})
            if not got:
                holder = session.execute(
                    sa.select(lock_holders.c.holder).where(lock_holders.c.name == "purge")
                ).scalar()
                raise _purge_busy(str(holder) if holder else None)
            self._describe(session, "purge", _holder_text("purge"))
            try:
                yield _SessionLease(session)
            finally:
                # A lost session took its lock with it, and a second purge may hold the
                # lock and its description by now: both are left alone then.
                if session.alive():
                    session.execute(lock_holders.delete()
                                    .where(lock_holders.c.name == "purge"))
                    session.scalar("SELECT pg_advisory_unlock(:c, :o)",
                                   {"c": _EDOC_CLASS, "o": _PURGE_OBJ})
        finally:
            session.close()

    @staticmethod
    def _describe(session: _Session, name: str, holder: str) -> None:
        from sqlalchemy.dialects.postgresql import insert

        stmt = insert(lock_holders).values(name=name, holder=holder, since=utc_text(now()))
        session.execute(stmt.on_conflict_do_update(
            index_elements=[lock_holders.c.name],
            set_={"holder": stmt.excluded.holder, "since": stmt.excluded.since}))

    def claim_local_store(self, store_path: Path) -> None:
        from sqlalchemy.dialects.postgresql import insert

        owner = f"{host_name()}:{store_path}"
        with self.catalog.read() as c:
            c.execute(insert(lock_holders).values(
                name="local-store", holder=owner, since=utc_text(now()))
                .on_conflict_do_nothing(index_elements=[lock_holders.c.name]))
            found = c.execute(sa.select(lock_holders.c.holder)
                              .where(lock_holders.c.name == "local-store")).scalar()
            c.commit()
        if found != owner:
            raise EdocError(
                f"this archive's catalog is shared, but its local store is on {found}: a "
                "local-directory store serves one host and one directory",
                code="LOCAL_STORE_ELSEWHERE",
                hint="use S3 storage (edoc init --storage s3://...) for several hosts")


def coordination_for(catalog: CatalogEngine, archive_dir: Path) -> Coordination:
    """Files under the archive directory for SQLite; the database for PostgreSQL."""
    if catalog.is_postgresql:
        return DatabaseCoordination(catalog)
    return FileCoordination(archive_dir)
