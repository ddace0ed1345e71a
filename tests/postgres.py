"""A disposable PostgreSQL server for the suite: initdb, start, restart, stop, fresh databases.

The suite starts a real server itself (Debian ``postgresql``: binaries under
``/usr/lib/postgresql/<major>/bin``, installed by ``.ci/run``; ``$EDOC_PG_BIN`` names another
directory). ``PostgresServer`` runs ``initdb`` into a temporary directory and ``postgres`` on a
free loopback port, trust authentication for the superuser ``postgres`` (the server is reachable
from this machine only and lives for one session).

Choices worth knowing:

* PostgreSQL refuses to run as root. When the suite runs as root the data directory is chowned
  to the ``postgres`` system user and the server processes run as that user (``subprocess``'s
  ``user=``: a direct setuid, no wrapper process, so signals reach the postmaster itself). The
  directory is made with ``tempfile.mkdtemp`` (pytest's tmp dirs are 0700 root-only).
* ``fsync=off`` and ``full_page_writes=off``: the cluster is disposable; a crash of the machine
  is not a case the tests need to survive. A ``restart`` is a fast shutdown (SIGINT), which
  writes everything out, so committed data survives it exactly as on a production server.
* ``create_database()`` copies a template database (``CREATE DATABASE … TEMPLATE``, ~20 ms)
  that already has the ``pg_trgm`` extension, so each test gets a fresh, empty catalog database.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

PG_BIN_ENV = "EDOC_PG_BIN"
SUPERUSER = "postgres"
TEMPLATE = "edoc_template"


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``: ``$EDOC_PG_BIN`` or the newest
    Debian ``/usr/lib/postgresql/<major>/bin``."""
    if os.environ.get(PG_BIN_ENV):
        candidate = Path(os.environ[PG_BIN_ENV])
        return candidate if (candidate / "postgres").is_file() else None
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, on ``127.0.0.1:port``.

    ``url(dbname)`` is a plain ``postgresql://`` URL (as a user would write it);
    ``create_database()`` returns the name of a fresh database; ``restart()`` is a fast
    shutdown and start on the same port and data; ``stop()`` ends it and removes the data."""

    def __init__(self, bin_dir: Path, root: Path | None = None) -> None:
        self.bin_dir = bin_dir
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="edoc-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.host = "127.0.0.1"
        self.user = SUPERUSER
        self._proc: subprocess.Popen[bytes] | None = None
        self._counter = itertools.count(1)
        self._run_as: str | None = SUPERUSER if os.geteuid() == 0 else None

    # -- lifecycle -----------------------------------------------------------------------------
    def _chown(self, path: Path) -> None:
        if self._run_as is None:
            return
        pw = pwd.getpwnam(self._run_as)
        os.chown(path, pw.pw_uid, pw.pw_gid)

    def _popen_kw(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"env": {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}}
        if self._run_as is not None:
            kw["user"] = self._run_as
            kw["group"] = pwd.getpwnam(self._run_as).pw_gid
            kw["extra_groups"] = []
            kw["env"]["HOME"] = str(self.root)
        return kw

    def initdb(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._chown(self.root)
        for d in (self.data, self.socket_dir):
            d.mkdir(exist_ok=True)
            d.chmod(0o700)
            self._chown(d)
        subprocess.run([str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                        "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       cwd=self.root, **self._popen_kw())

    def start(self, timeout: float = 30.0) -> None:
        if not (self.data / "PG_VERSION").exists():
            self.initdb()
        log = open(self.log, "ab")  # noqa: SIM115 - the server's stderr, closed in stop()
        self._log_handle = log
        self._proc = subprocess.Popen(
            [str(self.bin_dir / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-c", f"listen_addresses={self.host}",
             "-c", f"unix_socket_directories={self.socket_dir}",
             "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=300",
             "-c", "shared_buffers=64MB", "-c", "log_min_messages=warning"],
            stdout=log, stderr=log, cwd=self.root, start_new_session=True, **self._popen_kw())
        self._wait_ready(timeout)
        self._ensure_template()

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"postgres exited ({self._proc.returncode}):\n{self.log_tail()}")
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"postgres not ready in {timeout}s:\n{self.log_tail()}") from None
                time.sleep(0.1)

    def _ensure_template(self) -> None:
        with self.connect("postgres") as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEMPLATE,)).fetchone():
                return
            conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
        with self.connect(TEMPLATE) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")

    def restart(self, timeout: float = 30.0) -> None:
        """A fast shutdown (clients are disconnected, committed data kept) and a start on the
        same port and data directory."""
        self._shutdown(signal.SIGINT)
        self.start(timeout)

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash); ``start()`` recovers from the WAL."""
        self._shutdown(signal.SIGKILL)

    def _shutdown(self, sig: signal.Signals, grace: float = 20.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if sig == signal.SIGKILL:
                    os.killpg(proc.pid, sig)
                else:
                    proc.send_signal(sig)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if sig == signal.SIGKILL:
            # backends die with the postmaster's process group; give them a moment to go
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(AttributeError):
            self._log_handle.close()

    def stop(self) -> None:
        """End the server and remove its data directory."""
        self._shutdown(signal.SIGINT, grace=10.0)
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- databases -----------------------------------------------------------------------------
    def url(self, dbname: str) -> str:
        """A plain ``postgresql://`` URL for ``dbname`` (edoc maps it to psycopg 3)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def dsn(self, dbname: str) -> str:
        """A libpq connection string (for psycopg directly)."""
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname}"

    def connect(self, dbname: str = "postgres") -> Any:
        """An autocommit psycopg connection (a context manager)."""
        import psycopg

        return psycopg.connect(self.dsn(dbname), autocommit=True)

    def create_database(self, name: str | None = None) -> str:
        """A fresh database copied from the template (``pg_trgm`` installed); its name."""
        name = name or f"edoc_t{os.getpid()}_{next(self._counter)}"
        with self.connect("postgres") as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        return name

    def drop_database(self, name: str) -> None:
        with self.connect("postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
