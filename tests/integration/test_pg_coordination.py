"""Coordination through a PostgreSQL catalog (edoc/catalog/coordination.py), with real
processes and the suite's own server: a second purge is refused naming the holder; intents
left by a writer killed on "another host" (a copy of the archive directory, sharing only the
catalog and the bucket) are repaired there; a local store refuses a second directory; and
two archive directories on S3 + PostgreSQL work as one archive."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edoc.catalog import Catalog
from edoc.catalog.coordination import DatabaseCoordination, FileCoordination
from edoc.errors import EdocError
from tests import samples
from tests.helpers import Edoc, jst_today_minus
from tests.integration.faults import REPO, Child, ChildSpec, FaultPoint
from tests.postgres import PostgresServer
from tests.seaweed import SeaweedServer, StoreFactory, use_identity

_PROBE = ("import sys; from pathlib import Path; from edoc.catalog import Catalog; "
          "from edoc.catalog.coordination import DatabaseCoordination as D; "
          "c = D(Catalog(sys.argv[1], Path('.')))\n"
          "with c.probe_writer(sys.argv[2], release=False) as dead: print(dead)")


def _probe_elsewhere(url: str, token: str) -> bool:
    """Whether a process of its own (no shared memory, no shared files) finds ``token``
    dead."""
    out = subprocess.run([sys.executable, "-c", _PROBE, url, token], cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip() == "True"


def _init(archive: Path, url: str, *extra: str) -> Edoc:
    e = Edoc(archive)
    res = e("init", str(archive), "--catalog", url, *extra)
    assert res.exit_code == 0, res.output
    return e


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    return postgres.url(postgres.create_database())


def test_a_second_purge_is_refused_naming_the_holder(pg_url: str, tmp_path: Path) -> None:
    e = _init(tmp_path / "a", pg_url)
    cat = Catalog(pg_url, e.archive)
    first, second = DatabaseCoordination(cat), DatabaseCoordination(Catalog(pg_url, e.archive))
    with first.purge_lock():
        with pytest.raises(EdocError) as caught, second.purge_lock():
            pass
        assert caught.value.code == "PURGE_RUNNING"
        assert "host " in caught.value.message and "pid " in caught.value.message
        assert "since " in caught.value.message
        # the CLI says the same (its own database session, as another host's would be)
        code, doc = e.json("purge", "--yes")
        assert code != 0 and doc["error"]["code"] == "PURGE_RUNNING", doc
        assert "pid " in doc["error"]["message"]
    with second.purge_lock():  # free once the first ended
        pass


def test_file_purge_lock_names_the_holder_too(tmp_path: Path) -> None:
    a, b = FileCoordination(tmp_path), FileCoordination(tmp_path)
    with a.purge_lock(), pytest.raises(EdocError) as caught, b.purge_lock():
        pass
    assert caught.value.code == "PURGE_RUNNING" and "pid " in caught.value.message


def test_writer_liveness_is_seen_from_any_process(pg_url: str, tmp_path: Path) -> None:
    e = _init(tmp_path / "a", pg_url)
    me = DatabaseCoordination(Catalog(pg_url, e.archive))
    token = me.writer_token()
    assert me.writer_token() == token  # one per process
    assert not _probe_elsewhere(pg_url, token)  # alive while this process lives
    # a token whose session is gone is dead, and the prober holds it meanwhile
    with me.probe_writer("nobody-1-00000000") as dead:
        assert dead
        assert not _probe_elsewhere(pg_url, "nobody-1-00000000")
    assert _probe_elsewhere(pg_url, "nobody-1-00000000")


def test_intents_of_a_writer_killed_on_another_host_are_repaired(
        pg_url: str, tmp_path: Path, seaweed: SeaweedServer, s3_store_factory: StoreFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = s3_store_factory.bucket("edoc-pgcoord")
    use_identity(monkeypatch, seaweed, "writer", tmp_path)
    host_a = _init(tmp_path / "host-a", pg_url, "--storage",
                   f"s3://{bucket}/{tmp_path.name}", "--s3-addressing-style", "path")
    host_b = Edoc(tmp_path / "host-b")
    shutil.copytree(host_a.archive, host_b.archive)  # edoc.toml and keys: nothing else
    f = samples.small_jpeg(tmp_path / "r.jpg", 7, target_bytes=10_000)
    args = {"files": [{"path": str(f), "date": jst_today_minus(1)}]}
    # A on "host a" is frozen after storing the content (its intent is in the catalog)
    a = Child(ChildSpec(str(host_a.archive), "ingest", args,
                        kill=FaultPoint(2, "after", action="stop")), fork=False)
    try:
        a.wait_stopped()
        code, doc = host_b.json("doctor", "--repair")
        intents = [c for c in doc["checks"] if c["name"] == "intents"]
        assert intents and "1 version(s) being written" in intents[0]["detail"], doc
        # host b ingesting the same file is told it is being stored by another run
        code, doc = host_b.json("ingest", str(f), "--date", jst_today_minus(1))
        assert doc["results"][0]["error"]["code"] == "DUPLICATE_CONTENT", doc
    finally:
        os.kill(a.pid, signal.SIGKILL)  # the host's writer dies (its session ends with it)
    a.wait()
    # killed: host b repairs what it left (the content reached the bucket: completed)
    code, doc = host_b.json("doctor", "--repair")
    assert any("completed" in line for line in doc["repaired"]), doc
    code, doc = host_b.json("verify", "--all")
    assert code == 0, doc
    code, doc = host_a.json("ledger", "verify")
    assert code == 0, doc
    code, doc = host_a.json("search")
    sha = hashlib.sha256(f.read_bytes()).hexdigest()
    assert [r["content_sha256"] for r in doc["records"]] == [sha]


def test_a_local_store_serves_one_directory(pg_url: str, tmp_path: Path) -> None:
    e = _init(tmp_path / "a", pg_url)
    copy = tmp_path / "b"
    shutil.copytree(e.archive, copy)  # same catalog, but a store of its own
    code, doc = Edoc(copy).json("search")
    assert code != 0 and doc["error"]["code"] == "LOCAL_STORE_ELSEWHERE", doc
    assert e.json("search")[0] == 0


def test_two_hosts_on_s3_and_postgresql_are_one_archive(
        pg_url: str, tmp_path: Path, seaweed: SeaweedServer, s3_store_factory: StoreFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = s3_store_factory.bucket("edoc-pgcoord")
    use_identity(monkeypatch, seaweed, "writer", tmp_path)
    a = _init(tmp_path / "host-a", pg_url, "--storage", f"s3://{bucket}/{tmp_path.name}2",
              "--s3-addressing-style", "path")
    b = Edoc(tmp_path / "host-b")
    shutil.copytree(a.archive, b.archive)
    assert not (b.archive / "catalog.sqlite").exists()
    ids: dict[str, Any] = {}
    for n, who in enumerate((a, b, a, b)):
        f = tmp_path / f"doc{n}.txt"
        f.write_text(f"from host {n}", encoding="utf-8")
        code, res = who.ingest_one(f, "--date", jst_today_minus(1), "--counterparty", f"取引先{n}")
        assert code == 0, res
        ids[res["record_id"]] = n
    for who in (a, b):
        code, doc = who.json("search")
        assert {r["record_id"] for r in doc["records"]} == set(ids)
        code, doc = who.json("ledger", "verify")
        assert code == 0, doc
    code, doc = b.json("verify", "--all")
    assert code == 0, doc


def test_work_goes_on_after_a_server_restart(postgres: PostgresServer, pg_url: str,
                                             tmp_path: Path) -> None:
    """One process, one archive open across a PostgreSQL restart (a failover): pooled
    connections are replaced, the writer takes a new lease, nothing is lost."""
    from edoc.services.archive import Archive
    from edoc.services.ingest import Ingestor, IngestRequest

    e = _init(tmp_path / "a", pg_url)
    a = Archive.open(str(e.archive))
    try:
        def ingest(n: int) -> str:
            f = tmp_path / f"doc{n}.txt"
            f.write_text(f"document {n}", encoding="utf-8")
            got: list[Any] = []
            run = Ingestor(a).run([IngestRequest(path=str(f), date=jst_today_minus(1))],
                                  got.append)
            assert run.ok, [r.as_dict() for r in got]
            return str(got[0].record_id)

        first = ingest(0)
        from edoc.catalog.coordination import coordination_for

        token = coordination_for(a.catalog, a.cfg.dir).writer_token()
        postgres.restart()
        second = ingest(1)
        # A new lease under a new token; the old one is a dead writer's, so whatever the
        # restart left reserved under it is anyone's to repair.
        renewed = coordination_for(a.catalog, a.cfg.dir).writer_token()
        assert renewed != token
        assert _probe_elsewhere(pg_url, token)
        assert not _probe_elsewhere(pg_url, renewed)  # the new lease is held
    finally:
        a.close()
    assert _probe_elsewhere(pg_url, renewed)  # and ends with the archive's catalog
    code, doc = e.json("search")
    assert {r["record_id"] for r in doc["records"]} == {first, second}
    code, doc = e.json("ledger", "verify")
    assert code == 0, doc


def _terminate(postgres: PostgresServer, url: str, pid: int) -> None:
    """End one backend from outside, as a server restart or failover ends them all."""
    with postgres.connect(url.rsplit("/", 1)[1]) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


@pytest.mark.parametrize("action", ["read", "write"])
def test_a_connection_lost_mid_command_is_a_catalog_error_not_an_internal_one(
        postgres: PostgresServer, pg_url: str, tmp_path: Path, action: str) -> None:
    """A catalog connection that drops under a running statement (the multi-host test's
    auditor met it in a restart) stops the command with ``CATALOG_UNAVAILABLE`` and a hint,
    never ``INTERNAL_ERROR``; the next command on the same catalog works."""
    e = _init(tmp_path / "a", pg_url)
    cat = Catalog(pg_url, e.archive)
    try:
        opened = cat.write() if action == "write" else cat.read()
        with pytest.raises(EdocError) as caught, opened as conn:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            assert isinstance(pid, int)
            _terminate(postgres, pg_url, pid)
            conn.exec_driver_sql("SELECT count(*) FROM versions").scalar()
        assert caught.value.code == "CATALOG_UNAVAILABLE", caught.value.message
        assert f"catalog {action} failed: the connection to" in caught.value.message
        assert "PostgreSQL server up" in (caught.value.hint or "")
        assert list(cat.record_ids()) == []  # the pool hands out a live connection next
    finally:
        cat.dispose()


def test_a_purge_that_loses_its_lock_stops_and_the_next_one_resumes_it(
        postgres: PostgresServer, pg_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A restart mid-purge ends the session holding the purge lock, and a second purge
    could take it: the run stops before its next page with ``CATALOG_UNAVAILABLE`` (not
    ``INTERNAL_ERROR``, not disposing on without the lock), and the next purge resumes the
    journaled run and certifies every version once."""
    import time

    import edoc.services.disposal as disposal
    from tests.helpers import profiles_in_env

    with profiles_in_env(tmp_path / "policies", {"test-short": (
            'id = "test-short"\nextends = "general"\ntitle = "expires fast (tests)"\n'
            '[retention]\nduration = "PT1S"\n')}):
        e = _init(tmp_path / "a", pg_url)
        files = [samples.small_jpeg(tmp_path / f"r{i}.jpg", seed=300 + i,
                                    target_bytes=10_000) for i in range(3)]
        code, doc = e.json("ingest", *map(str, files), "--profile", "test-short",
                           "--date", jst_today_minus(1))
        assert code == 0, doc
        expected = {r["record_id"] for r in doc["results"]}
        time.sleep(2)

        monkeypatch.setattr(disposal, "PAGE_RECORDS", 1)
        pages: list[str] = []
        original = disposal.Disposer._dispose_page

        def dispose_page(self: Any, run_id: str, ids: Any, report: Any) -> None:
            pages.append(run_id)
            if len(pages) == 2:  # the lock's session ends between the first two pages
                with postgres.connect(pg_url.rsplit("/", 1)[1]) as admin:
                    admin.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE "
                                  "locktype = 'advisory' AND classid = %s AND objid = 2",
                                  (0x6564,))
            original(self, run_id, ids, report)

        monkeypatch.setattr(disposal.Disposer, "_dispose_page", dispose_page)
        code, doc = e.json("purge", "--yes")
        assert code != 0 and doc["error"]["code"] == "CATALOG_UNAVAILABLE", doc
        assert "purge lock was lost" in doc["error"]["message"]
        assert "resumes" in doc["error"]["hint"]
        assert len(pages) == 2  # the second page was never disposed

        code, doc = e.json("purge", "--yes")
        assert code == 0, doc
        assert doc["resumed_runs"] == [pages[0]]
        # The stopped run's journal (two pages) is certified, the third record by a new run.
        import json

        listed = [item["record_id"] for cert in doc["certificates"]
                  for item in json.loads((e.objects / cert).read_bytes())["disposed"]]
        assert sorted(listed) == sorted(expected)  # each once
        code, doc = e.json("search")
        assert not expected & {r["record_id"] for r in doc["records"]}
        code, doc = e.json("ledger", "verify")
        assert code == 0, doc
