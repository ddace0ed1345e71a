"""Fault injection for the crash and concurrency tests — without hooks in production code.

A *child* process opens the archive exactly as the CLI does (``Archive.open``), replaces its
object store by a ``KillingStore`` proxy and wraps its catalog's ``write()``, then runs a
real service (``Ingestor.run``, ``Disposer.run``, ``Lifecycle.correct`` …). Every store
operation that changes something (put, put_bytes, delete, delete_many, extend_retention,
set_legal_hold) and every catalog commit is one numbered *operation*; the child can

- ``SIGKILL`` itself right before or right after operation N (for a commit: "before" is
  inside the transaction with its statements executed, "after" is once it committed; for
  a put on the local store also "torn": the object stored, its metadata not yet), as
  the OOM killer or ``kill -9`` would stop it — no ``finally``, no rollback handler, no
  atexit (not a power cut: what the kernel already accepted survives);
- make every store write from operation N on fail with an ``OSError`` (``ENOSPC``: the disk
  is full), raised inside the real store's write path, as the kernel would raise it;
- freeze itself (``SIGSTOP``) there instead, until the parent resumes it: a live writer
  caught mid-commit, for deterministic races.

The child reports, one JSON line at a time into a report file (``write(2)`` with
``O_APPEND``: a line written before the kill survives it), each operation it is about to do,
each file the service reported as stored, and its result or error at the end. A run without
a fault is the *counting run*: its trace names every operation, and ``fault_points`` turns
it into the list of (operation, before/after) points a test kills at.

Children are forked from the test process by default (``fork=True``): the child process
starts with edoc already imported, which keeps a loop over a hundred fault points fast. A
forked child must only open archives this process does not have open: SQLite keeps its
POSIX-lock bookkeeping per process, keyed by inode, and a child inheriting it for an open
catalog skips locks it does not hold (https://www.sqlite.org/howtocorrupt.html, §2.6).
Fresh copies of a template archive are safe. Otherwise use ``fork=False``: the same child
runs as ``python -m tests.integration.faults SPEC.json REPORT`` in a new interpreter (also
under a prefix such as ``unshare …``).
"""

from __future__ import annotations

import contextlib
import errno as errno_mod
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

#: Store operations that change the store (reads never matter for crash consistency).
STORE_OPS = ("put", "put_bytes", "delete", "delete_many", "extend_retention",
             "set_legal_hold")
#: Exit status of a child whose service raised an EdocError: the error's own exit code.
#: A child that crashed on a Python exception (a bug) exits with this one instead.
CHILD_BUG = 70
REPO = Path(__file__).resolve().parents[2]

#: "torn": inside a put, after the object is stored and before its metadata is (the local
#: store's write protocol; only meaningful for a ``LocalStore``).
When = Literal["before", "after", "torn"]


@dataclass(frozen=True)
class FaultPoint:
    """Kill (or, with ``action="stop"``, SIGSTOP: freeze until the parent resumes it) the
    child right ``when`` the ``op``-th operation (1-based) of the run."""

    op: int
    when: When
    label: str = ""
    action: Literal["kill", "stop"] = "kill"

    def __str__(self) -> str:
        return f"{self.when} #{self.op} {self.label}"


@dataclass(frozen=True)
class DiskFull:
    """Every store write from operation ``from_op`` on fails with ``errno`` (space never
    comes back during the run)."""

    from_op: int
    errno: int = errno_mod.ENOSPC


@dataclass
class ChildSpec:
    """What the child runs. ``service`` is one of ``SERVICES``; ``args`` are its arguments."""

    archive: str
    service: str
    args: dict[str, Any] = field(default_factory=dict)
    kill: FaultPoint | None = None
    disk_full: DiskFull | None = None
    env: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ChildSpec:
        raw = json.loads(text)
        kill = FaultPoint(**raw["kill"]) if raw.get("kill") else None
        full = DiskFull(**raw["disk_full"]) if raw.get("disk_full") else None
        return cls(raw["archive"], raw["service"], raw.get("args", {}), kill, full,
                   raw.get("env", {}))


@dataclass
class ChildOutcome:
    """What the parent learns about a child run."""

    returncode: int
    #: Labels of the operations the child started, in order (the last may not have run).
    trace: list[str]
    #: Ingest results the service reported (``IngestResult.as_dict()``), in order.
    results: list[dict[str, Any]]
    done: dict[str, Any] | None
    error: dict[str, Any] | None
    stderr: str = ""

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL

    @property
    def stored(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r["status"] == "stored"]


def fault_points(trace: Sequence[str]) -> list[FaultPoint]:
    """Every kill point of a counting run: before and after each of its operations."""
    return [FaultPoint(n, when, label) for n, label in enumerate(trace, 1)
            for when in ("before", "after")]


def torn_points(trace: Sequence[str]) -> list[FaultPoint]:
    """Every put of a counting run, torn between storing the object and its metadata."""
    return [FaultPoint(n, "torn", label) for n, label in enumerate(trace, 1)
            if label.startswith("put")]


# -- the child ------------------------------------------------------------------------------

class _Report:
    """JSON lines appended with one ``write(2)`` each, so a SIGKILL never tears a line."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def __call__(self, **event: Any) -> None:
        os.write(self.fd, (json.dumps(event, default=str) + "\n").encode())


class _Injector:
    """Numbers the operations and carries out the fault plan."""

    def __init__(self, spec: ChildSpec, report: _Report) -> None:
        self.kill = spec.kill
        self.disk_full = spec.disk_full
        self.report = report
        self.n = 0
        self._count_lock = threading.Lock()
        #: The thread running the put to tear, while it runs: its metadata write kills the
        #: child. Per thread, as puts of other threads (jobs > 1, leaf writers) run meanwhile.
        self.tearing: int | None = None

    def begin(self, label: str) -> int:
        with self._count_lock:  # an ingest with jobs > 1 numbers operations from threads
            self.n += 1
            n = self.n
            self.report(op=n, label=label)
        if self.kill is not None and self.kill.op == n:
            if self.kill.when == "before":
                self._act()
            if self.kill.when == "torn":
                self.tearing = threading.get_ident()
        return n

    def end(self, n: int) -> None:
        if self.kill is not None and self.kill.op == n:
            self.tearing = None
        if self.kill is not None and self.kill.op == n and self.kill.when == "after":
            self._act()

    def _act(self) -> None:
        assert self.kill is not None
        if self.kill.action == "stop":
            os.kill(os.getpid(), signal.SIGSTOP)  # the parent sends SIGCONT when it is ready
        else:
            _die()

    def failing(self, n: int) -> int | None:
        if self.disk_full is not None and n >= self.disk_full.from_op:
            return self.disk_full.errno
        return None


def _die() -> None:
    # SIGKILL cannot be caught: no finally block, context manager exit or atexit runs.
    os.kill(os.getpid(), signal.SIGKILL)


class _FailingStream(io.RawIOBase):
    """A source whose reading fails as a full disk makes the store's write fail: the
    ``OSError`` surfaces inside the store's own write path (LocalStore maps it)."""

    def __init__(self, err: int) -> None:
        self.err = err

    def readable(self) -> bool:
        return True

    def readinto(self, _buffer: Any) -> int:
        raise OSError(self.err, os.strerror(self.err))


class KillingStore:
    """An ``ObjectStore`` proxy that numbers every changing operation (see module doc)."""

    def __init__(self, inner: Any, injector: _Injector) -> None:
        self._inner = inner
        self._inj = injector
        self.kind: str = inner.kind
        self.guarantee: str = inner.guarantee
        if injector.kill is not None and injector.kill.when == "torn":
            write_meta = inner._write_meta  # LocalStore: the step after link(2)

            def torn(*args: Any) -> None:
                if injector.tearing == threading.get_ident():
                    _die()
                write_meta(*args)

            inner._write_meta = torn

    def _run(self, label: str, fn: Callable[[], Any]) -> Any:
        n = self._inj.begin(label)
        result = fn()
        self._inj.end(n)
        return result

    def put(self, key: str, stream: BinaryIO, *, size: int, sha256: str,
            retain_until: datetime, legal_hold: bool = False) -> Any:
        n = self._inj.begin(f"put {key}")
        err = self._inj.failing(n)
        source: Any = _FailingStream(err) if err is not None else stream
        result = self._inner.put(key, source, size=size, sha256=sha256,
                                 retain_until=retain_until, legal_hold=legal_hold)
        self._inj.end(n)
        return result

    def put_bytes(self, key: str, data: bytes, *, retain_until: datetime) -> Any:
        n = self._inj.begin(f"put_bytes {key}")
        err = self._inj.failing(n)
        if err is not None:
            result = self._inner.put(key, _FailingStream(err), size=len(data),
                                     sha256=hashlib.sha256(data).hexdigest(),
                                     retain_until=retain_until)
        else:
            result = self._inner.put_bytes(key, data, retain_until=retain_until)
        self._inj.end(n)
        return result

    def delete(self, key: str, version_id: str) -> None:
        self._run(f"delete {key}", lambda: self._inner.delete(key, version_id))

    def delete_many(self, items: Sequence[tuple[str, str]]) -> Any:
        # One operation: the kill points are before the batch and after it (every
        # deletion durable); a batch cut short inside is what a resumed purge also meets
        # when some of its versions are gone already (tests/integration/test_purge.py).
        return self._run(f"delete_many {len(items)} versions",
                         lambda: self._inner.delete_many(items))

    def extend_retention(self, key: str, version_id: str, retain_until: datetime) -> None:
        self._run(f"extend_retention {key}",
                  lambda: self._inner.extend_retention(key, version_id, retain_until))

    def set_legal_hold(self, key: str, version_id: str, on: bool) -> None:
        self._run(f"set_legal_hold {key}",
                  lambda: self._inner.set_legal_hold(key, version_id, on))

    # reads pass through unchanged
    def open(self, key: str, version_id: str | None = None) -> BinaryIO:
        result: BinaryIO = self._inner.open(key, version_id)
        return result

    def read(self, key: str, version_id: str | None = None) -> bytes:
        result: bytes = self._inner.read(key, version_id)
        return result

    def open_with_info(self, key: str, version_id: str | None = None) -> Any:
        return self._inner.open_with_info(key, version_id)

    def stat(self, key: str, version_id: str | None = None) -> Any:
        return self._inner.stat(key, version_id)

    def versions(self, key: str) -> Any:
        return self._inner.versions(key)

    def version_stamps(self, key: str) -> Any:
        return self._inner.version_stamps(key)

    def list(self, prefix: str) -> Iterator[Any]:
        result: Iterator[Any] = self._inner.list(prefix)
        return result


def _wrap_catalog_writes(catalog: Any, injector: _Injector) -> None:
    """Number each catalog commit; "before" kills with the transaction's statements run but
    not committed, "after" once ``COMMIT`` returned."""
    original = catalog.write

    @contextlib.contextmanager
    def write() -> Iterator[Any]:
        n = 0
        with original() as conn:
            yield conn
            n = injector.begin("commit")
        injector.end(n)

    catalog.write = write


def _service(spec: ChildSpec, archive: Any, report: _Report) -> dict[str, Any] | None:
    args = spec.args
    if spec.service == "ingest":
        from edoc.services.ingest import Ingestor, IngestRequest

        requests = [IngestRequest(path=f["path"], profiles=tuple(f.get("profiles", ())),
                                  date=f.get("date"), amount=f.get("amount"),
                                  counterparty=f.get("counterparty"))
                    for f in args["files"]]
        run = Ingestor(archive, jobs=int(args.get("jobs", 1))).run(
            requests, lambda r: report(result=r.as_dict()))
        return {"ok": run.ok, "checkpoint": run.checkpoint,
                "checkpoint_error": run.checkpoint_error}
    if spec.service == "purge":
        from edoc.services.disposal import Disposer

        return Disposer(archive).run(dry_run=False).as_dict()
    if spec.service in ("correct", "extend"):
        from edoc.services.ingest import IngestRequest
        from edoc.services.lifecycle import Lifecycle

        life = Lifecycle(archive)
        if spec.service == "correct":
            change = life.correct(args["record_id"], reason=args["reason"],
                                  file=args.get("file"),
                                  changes=IngestRequest(path=args.get("file") or "",
                                                        amount=args.get("amount")))
        else:
            change = life.extend_retention(args["record_id"], reason=args["reason"],
                                           changes=IngestRequest(path="", loss_year=True))
        return change.as_dict()
    raise ValueError(f"unknown service {spec.service}")


SERVICES = ("ingest", "purge", "correct", "extend")


def child_main(spec: ChildSpec, report_path: str) -> int:
    """Run one child; returns its exit status (the error's exit code, like the CLI)."""
    from edoc.errors import EdocError
    from edoc.services.archive import Archive

    os.environ.update(spec.env)
    report = _Report(report_path)
    injector = _Injector(spec, report)
    try:
        archive = Archive.open(spec.archive)
        archive.store = KillingStore(archive.store, injector)
        _wrap_catalog_writes(archive.catalog, injector)
        done = _service(spec, archive, report)
    except EdocError as exc:
        report(error=exc.as_dict())
        return exc.exit_code
    except Exception:
        report(error={"code": "CHILD_EXCEPTION", "message": traceback.format_exc()})
        return CHILD_BUG
    report(done=done)
    ok = bool(done.get("ok", True)) if done else True
    return 0 if ok else 1


def _read_report(path: Path) -> tuple[list[str], list[dict[str, Any]], dict[str, Any] | None,
                                      dict[str, Any] | None]:
    trace: list[str] = []
    results: list[dict[str, Any]] = []
    done = error = None
    for line in path.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if "op" in event:
            trace.append(event["label"])
        elif "result" in event:
            results.append(event["result"])
        elif "done" in event:
            done = event["done"]
        elif "error" in event:
            error = event["error"]
    return trace, results, done, error


class Child:
    """A running child (forked, or a subprocess when ``fork=False`` or with a ``prefix``
    such as ``unshare …``); ``wait()`` collects its outcome."""

    def __init__(self, spec: ChildSpec, *, fork: bool = True, prefix: Sequence[str] = ()
                 ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="edoc-fault-")
        self.report = Path(self._tmp.name) / "report.jsonl"
        self.report.touch()
        self._proc: subprocess.Popen[str] | None = None
        self.pid: int
        if fork and not prefix:
            self.pid = _fork(spec, str(self.report))
        else:
            spec_file = Path(self._tmp.name) / "spec.json"
            spec_file.write_text(spec.to_json(), encoding="utf-8")
            self._proc = subprocess.Popen(
                [*prefix, sys.executable, "-m", "tests.integration.faults", str(spec_file),
                 str(self.report)], cwd=REPO, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, text=True, env={**os.environ, **spec.env})
            self.pid = self._proc.pid

    def wait_stopped(self, timeout: float = 60) -> None:
        """Until the child froze itself at its ``action="stop"`` fault point."""
        if self._proc is None:
            _, status = os.waitpid(self.pid, os.WUNTRACED)
            if not os.WIFSTOPPED(status):
                raise AssertionError(f"child ended ({os.waitstatus_to_exitcode(status)}) "
                                     "instead of stopping")
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # a subprocess's state, as the kernel shows it
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "T":
                return
            if self._proc.poll() is not None:
                raise AssertionError("child ended instead of stopping")
            time.sleep(0.01)
        raise AssertionError("child did not stop in time")

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def wait(self, timeout: float = 120) -> ChildOutcome:
        stderr = ""
        if self._proc is None:
            _, status = os.waitpid(self.pid, 0)
            code = os.waitstatus_to_exitcode(status)
        else:
            _, stderr = self._proc.communicate(timeout=timeout)
            code = self._proc.returncode
        trace, results, done, error = _read_report(self.report)
        self._tmp.cleanup()
        return ChildOutcome(code, trace, results, done, error, stderr)


def run_child(spec: ChildSpec, *, fork: bool = True, prefix: Sequence[str] = ()
              ) -> ChildOutcome:
    """Run ``spec`` in a child process and wait for it (killed or not)."""
    return Child(spec, fork=fork, prefix=prefix).wait()


def _fork(spec: ChildSpec, report: str) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child never returns into the test runner
        status = CHILD_BUG
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            status = child_main(spec, report)
        finally:
            os._exit(status)
    return pid


def main(argv: Sequence[str]) -> int:
    spec_path, report = argv
    return child_main(ChildSpec.from_json(Path(spec_path).read_text(encoding="utf-8")), report)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
