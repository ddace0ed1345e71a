"""Shared test helpers: run the real CLI in-process and look inside a local archive."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

from cli import cli
from edoc.services.archive import Archive


def jst_today_minus(days: int) -> str:
    """A date `days` before today in Japan (input deadlines count JST business days)."""
    return (datetime.now(ZoneInfo("Asia/Tokyo")).date() - timedelta(days=days)).isoformat()


@dataclass
class Edoc:
    """The `edoc` command bound to one archive directory."""

    archive: Path

    def __call__(self, *args: str, archive: Path | None = None) -> Result:
        args = CATALOG.init_args(args)
        runner = CliRunner()
        return runner.invoke(cli, ["--archive", str(archive or self.archive), *args],
                             catch_exceptions=False)

    def json(self, *args: str) -> tuple[int, dict[str, Any]]:
        res = self(*args, "--json")
        return res.exit_code, json.loads(res.stdout)

    def ingest_one(self, path: Path, *args: str) -> tuple[int, dict[str, Any]]:
        """``ingest PATH ARGS --json``: the exit code and the one file's result."""
        code, doc = self.json("ingest", str(path), *args)
        return code, doc["results"][0]

    def latest_manifest(self, record_id: str) -> dict[str, Any]:
        """The latest version's manifest as ``show --json`` prints it."""
        code, doc = self.json("show", record_id)
        assert code == 0, doc
        return dict(doc["versions"][-1])

    def version_count(self) -> int:
        """Versions in the catalog (nothing half-stored: counts stay put on a refusal)."""
        with self.db() as db:
            return int(db.execute("SELECT count(*) FROM versions").fetchone()[0])

    # -- peeking inside the embedded default store --------------------------------------------
    @property
    def objects(self) -> Path:
        return self.archive / "store" / "objects"

    def db(self) -> Any:
        """The catalog's database: sqlite3, or a psycopg connection that takes sqlite3's
        ``?`` marks when the archive's catalog is PostgreSQL (``catalog_db``)."""
        return catalog_db(self.archive)

    def checkpoints(self) -> list[Path]:
        return sorted((self.objects / "checkpoints").glob("*.json"))


@dataclass
class Records:
    """An archive with named records in it (a module fixture's result): ``ids`` maps a
    test's name for a record to its record id."""

    edoc: Edoc
    ids: dict[str, str]

    def open(self) -> Archive:
        return Archive.open(str(self.edoc.archive))


def writable(path: Path) -> Path:
    """Objects are stored read-only; tampering tests make them writable first (as an
    attacker with file-system access would)."""
    path.chmod(0o600)
    return path


def write_profiles(directory: Path, profiles: dict[str, str]) -> Path:
    """A profile directory for ``EDOC_POLICIES``: ``{id: TOML text}`` as ``<id>.toml``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in profiles.items():
        (directory / f"{name}.toml").write_text(text, encoding="utf-8")
    return directory


@contextlib.contextmanager
def profiles_in_env(directory: Path, profiles: dict[str, str]) -> Iterator[Path]:
    """``profiles`` written to ``directory`` (``write_profiles``) and named by
    ``EDOC_POLICIES`` while the block runs: for module fixtures (children inherit it)."""
    pol = write_profiles(directory, profiles)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDOC_POLICIES", str(pol))
        yield pol


def init_on_s3(archive: Path, bucket: str, prefix: str) -> Edoc:
    """``edoc init`` of ``archive`` on ``s3://bucket/prefix`` (path-style addressing, as
    SeaweedFS on localhost needs), with the AWS variables the caller set."""
    e = Edoc(archive)
    res = e("init", str(archive), "--storage", f"s3://{bucket}/{prefix}",
            "--s3-addressing-style", "path")
    assert res.exit_code == 0, res.output
    return e


def short_profile(directory: Path, seconds: int, profile_id: str = "test-short") -> Path:
    """A test profile that keeps records ``seconds`` only (``extends`` general with a plain
    duration): records expire for real, no clock override. Point EDOC_POLICIES at it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{profile_id}.toml"
    path.write_text(f'id = "{profile_id}"\nextends = "general"\ntitle = "expires fast (tests)"\n'
                    f'[retention]\nduration = "PT{seconds}S"\n', encoding="utf-8")
    return directory


def drop_catalog(archive: Path) -> None:
    """Lose the catalog, as a disk failure would (with its WAL files; on PostgreSQL every
    table of the database, as a lost database restored empty would be)."""
    url = catalog_url(archive)
    if url.startswith("postgres"):
        with _pg_connect(url) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
        return
    for suffix in ("", "-wal", "-shm"):
        Path(str(archive / "catalog.sqlite") + suffix).unlink(missing_ok=True)


# -- the catalog backend of a run (tests/conftest.py: --catalog-backend) ----------------------

class CatalogBackend:
    """Which database an ``edoc init`` run through ``Edoc`` gets: SQLite in the archive
    (``server`` None), or a fresh database of the suite's PostgreSQL server per archive."""

    def __init__(self) -> None:
        self.server: Any = None  # tests.postgres.PostgresServer when postgresql

    @property
    def name(self) -> str:
        return "sqlite" if self.server is None else "postgresql"

    def init_args(self, args: tuple[str, ...]) -> tuple[str, ...]:
        if (self.server is None or not args or args[0] != "init" or "--catalog" in args
                or any(a.startswith("--catalog=") for a in args)):
            return args
        return (*args, "--catalog", self.server.url(self.server.create_database()))


CATALOG = CatalogBackend()


def catalog_url(archive: Path) -> str:
    """The ``catalog.url`` the archive's edoc.toml names."""
    import tomllib

    cfg = tomllib.loads((archive / "edoc.toml").read_text(encoding="utf-8"))
    return str(cfg.get("catalog", {}).get("url", "sqlite:///catalog.sqlite"))


def _pg_connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"),
                           autocommit=True)


class PgDb:
    """A psycopg connection used as the tests use sqlite3's: ``execute(sql, params)`` with
    ``?`` marks, integer 0/1 for the ``stored`` flag, commit when the block ends."""

    def __init__(self, url: str) -> None:
        self._conn = _pg_connect(url)

    def execute(self, sql: str, params: Any = ()) -> Any:
        import re

        sql = re.sub(r"\bstored\s*=\s*0\b", "stored = false", sql)
        sql = re.sub(r"\bstored\s*=\s*1\b", "stored = true", sql)
        return self._conn.execute(sql.replace("?", "%s"), tuple(params))

    def commit(self) -> None:
        """Autocommit: each statement is committed as it runs."""

    def iterdump(self) -> Any:
        """Every row of every table, one line each (as sqlite3's dump holds every value)."""
        tables = [t for (t,) in self._conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        for table in tables:
            for row in self._conn.execute(f'SELECT * FROM "{table}"'):
                yield f"{table}: {row!r}"

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> PgDb:
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.close()


def catalog_db(archive: Path) -> Any:
    url = catalog_url(archive)
    if url.startswith("postgres"):
        return PgDb(url)
    return sqlite3.connect(archive / "catalog.sqlite")


def copy_tree(src: Path, dest: Path) -> None:
    """``cp -a src dest``, run as a child process, never with ``shutil.copytree``: this test
    process often has ``src``'s SQLite catalog open (pooled connections of the CLI runs made
    in process), and closing any descriptor of a file drops every POSIX lock the process
    holds on it (https://www.sqlite.org/howtocorrupt.html, §2.2). A copy read in process thus
    silently released the catalog's WAL locks, so another process could take itself for the
    catalog's only user (presumably what happened when a frozen writer's committed intent
    was missing from this process's view: the racing-writer test failed about one run in
    two after the quick bench)."""
    if dest.exists():
        raise FileExistsError(dest)  # as copytree: never merged into an existing tree
    subprocess.run(["cp", "-a", "--", str(src), str(dest)], check=True)


def copy_archive(src: Path, dest: Path) -> Path:
    """A second, independent archive: ``src`` copied (as ``cp -a``), and when its catalog
    is PostgreSQL, the database cloned too (``CREATE DATABASE … TEMPLATE``) and named in the
    copy's edoc.toml — a copy of the directory alone would share the first's catalog."""
    copy_tree(src, dest)
    url = catalog_url(src)
    if not url.startswith("postgres"):
        return dest
    base, _, source_db = url.rpartition("/")
    clone = f"{source_db[:40]}_c{abs(hash(str(dest))) % 10**9}"
    with _pg_connect(base + "/postgres") as conn:
        # the template may have no other session: end the pooled ones of this process
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s AND pid <> pg_backend_pid()", (source_db,))
        conn.execute(f'DROP DATABASE IF EXISTS "{clone}"')
        conn.execute(f'CREATE DATABASE "{clone}" TEMPLATE "{source_db}"')
    with _pg_connect(f"{base}/{clone}") as conn:
        # the copy is an archive of its own, its local store its own
        conn.execute("DELETE FROM lock_holders WHERE name = 'local-store'")
    cfg = dest / "edoc.toml"
    text = cfg.read_text(encoding="utf-8")
    cfg.write_text(text.replace(f'url = "{url}"', f'url = "{base}/{clone}"'), encoding="utf-8")
    return dest


#: an archive written by the 0.1.0 release before the package layout changed (corrected,
#: held and deleted records, an evidence bundle): what every later format must still read
LEGACY_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "legacy-archive-0.1.0.tar.gz"


def legacy_manifests() -> list[bytes]:
    """The stored bytes of every manifest in the 0.1.0 archive, read from the tarball."""
    with tarfile.open(LEGACY_FIXTURE) as tar:
        return [tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers() if m.name.endswith("/manifest.json")]


@contextlib.contextmanager
def legacy_archive(directory: Path) -> Iterator[Edoc]:
    """The 0.1.0 archive unpacked into ``directory`` (as ``directory/archive``); afterwards
    its directories are made writable again so pytest can remove them (the local store
    leaves objects read-only)."""
    with tarfile.open(LEGACY_FIXTURE) as tar:
        tar.extractall(directory, filter="data")
    e = Edoc(directory / "archive")
    try:
        yield e
    finally:
        for p in e.archive.rglob("*"):
            if p.is_dir():
                p.chmod(0o700)


def new_archive(directory: Path, *args: str) -> Edoc:
    """``edoc init`` of a new local archive at ``directory`` (asserted to succeed)."""
    e = Edoc(directory)
    res = e("init", str(directory), *args)
    assert res.exit_code == 0, res.output
    return e
