"""Group commit: the short catalog write transactions of many threads, committed together.

An ingest with several files in flight makes two small catalog transactions per file (the
write intent and the cataloguing, see ``edoc.services.ingest``). Each commit is made durable with an
fsync (SQLite WAL, ``synchronous=FULL``), and the catalog has one writer at a time, so one
commit per transaction caps a run at a few hundred transactions a second however many files
are in flight — and on a busy disk far fewer. Here a thread that finds a commit under way
queues its transaction; the next thread to commit runs every queued transaction in one
catalog transaction and one fsync (the classic group commit of database logs).

Each queued transaction runs inside its own SAVEPOINT, so one that raises (a duplicate
found under the write lock, say) is undone alone and its error raised in its own thread;
the others commit. A group of one needs no savepoint: if it raises, the whole catalog
transaction is rolled back. If the shared commit itself fails, every transaction of the
group gets that error: none of them happened. A caller returns only once its transaction
committed — the guarantee a plain ``Catalog.write()`` gives, which the commit protocol
relies on (an intent must be durable before the objects it announces are stored).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Connection

from edoc.catalog.engine import CatalogEngine

T = TypeVar("T")

#: A group larger than this is split: one very long transaction would hold the catalog's
#: write lock against other processes for too long.
MAX_GROUP = 256


@dataclass(eq=False)
class _Job(Generic[T]):
    work: Callable[[Connection], T]
    done: bool = False
    result: T | None = None
    error: BaseException | None = None


class GroupCommitter:
    """Runs ``work(conn)`` functions of many threads in shared catalog transactions."""

    def __init__(self, catalog: CatalogEngine) -> None:
        # Weakly: the committer is the value of ``_COMMITTERS``, keyed weakly by its
        # catalog; a strong reference back would keep the catalog, its engine and its
        # SQLite connections open for the life of the process.
        self._catalog = weakref.ref(catalog)
        self._cond = threading.Condition()
        self._queue: list[_Job[Any]] = []
        self._committing = False

    def run(self, work: Callable[[Connection], T]) -> T:
        """``work``'s result once its changes are committed; its exception if it raised
        (only its own changes undone), or the commit's if the shared commit failed."""
        job: _Job[T] = _Job(work)
        with self._cond:
            self._queue.append(job)
        while True:
            with self._cond:
                while self._committing and not job.done:
                    self._cond.wait()
                if job.done:
                    break
                # No commit under way: this thread commits what is queued (its own work
                # among it, unless more than MAX_GROUP came first: then it goes round again).
                self._committing = True
                group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
            try:
                self._commit(group)
            finally:
                with self._cond:
                    for queued in group:
                        queued.done = True
                    self._committing = False
                    self._cond.notify_all()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]  # set whenever error is None

    def _commit(self, group: list[_Job[Any]]) -> None:
        catalog = self._catalog()
        if catalog is None:  # not while its callers hold the catalog they got it from
            raise RuntimeError("the catalog of this group commit is gone")
        try:
            with catalog.write() as conn:
                if len(group) == 1:
                    # Alone in the transaction: it needs no savepoint (two statements that
                    # SQLAlchemy compiles afresh each time, issue 8); if it raises, the
                    # whole transaction is rolled back instead.
                    self._run_alone(group[0], conn)
                    return
                for job in group:
                    savepoint = conn.begin_nested()
                    try:
                        job.result = job.work(conn)
                    except Exception as exc:
                        savepoint.rollback()
                        job.error = exc
                    else:
                        savepoint.commit()
        except _RolledBack:
            pass  # the job's own error is set: nothing of it happened
        except BaseException as exc:
            # The transaction did not commit: none of the group's work happened.
            for job in group:
                job.result, job.error = None, exc
            if not isinstance(exc, Exception):
                raise  # Ctrl-C in the committing thread: the others see it as their error

    @staticmethod
    def _run_alone(job: _Job[Any], conn: Connection) -> None:
        try:
            job.result = job.work(conn)
        except Exception as exc:
            job.error = exc
            raise _RolledBack from exc


class _RolledBack(Exception):
    """Raised through ``Catalog.write()`` to roll back a group of one whose work raised."""


_COMMITTERS: weakref.WeakKeyDictionary[CatalogEngine, GroupCommitter] = weakref.WeakKeyDictionary()
_COMMITTERS_LOCK = threading.Lock()


def committer(catalog: CatalogEngine) -> GroupCommitter:
    """The process's group committer for ``catalog`` (one per catalog object)."""
    with _COMMITTERS_LOCK:
        found = _COMMITTERS.get(catalog)
        if found is None:
            found = _COMMITTERS[catalog] = GroupCommitter(catalog)
        return found
