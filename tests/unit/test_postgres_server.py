"""The suite's own PostgreSQL server (tests/postgres.py) starts, copies databases, restarts."""

from __future__ import annotations

from tests.postgres import PostgresServer


def test_fresh_databases_are_separate_and_survive_a_restart(postgres: PostgresServer) -> None:
    a, b = postgres.create_database(), postgres.create_database()
    assert a != b
    with postgres.connect(a) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (42)")
        # the template carries pg_trgm (counterparty fragment search)
        assert conn.execute("SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'").fetchone()
    with postgres.connect(b) as conn:
        assert conn.execute("SELECT to_regclass('t')").fetchone() == (None,)
    postgres.restart()
    with postgres.connect(a) as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(42,)]
    assert postgres.url(a).startswith("postgresql://postgres@127.0.0.1:")
    postgres.drop_database(a)
    postgres.drop_database(b)
