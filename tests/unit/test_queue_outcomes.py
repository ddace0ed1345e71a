"""Recording a job's outcome rides out a lost connection, and only that (edoc.queue.app).

A narrow test of the error path with a stand-in for procrastinate's call; the real restart
is exercised by tests/integration/test_workers_multihost.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import procrastinate.exceptions
import psycopg
import pytest

from edoc.queue import app as app_mod


class _Pool:
    def __init__(self) -> None:
        self.checks = 0

    async def check(self) -> None:
        self.checks += 1


class _App:
    def __init__(self) -> None:
        self.connector = type("C", (), {"pool": _Pool()})()


def _failing(times: int, exc: BaseException) -> tuple[Any, list[int]]:
    calls: list[int] = []

    async def record(job_id: int) -> str:
        calls.append(job_id)
        if len(calls) <= times:
            raise exc
        return f"recorded {job_id}"

    return record, calls


def _wrapped_connector_error(cause: BaseException) -> procrastinate.exceptions.ConnectorException:
    try:
        raise procrastinate.exceptions.ConnectorException("wrapped") from cause
    except procrastinate.exceptions.ConnectorException as exc:
        return exc


@pytest.mark.parametrize("lost", [
    psycopg.OperationalError("server closed the connection unexpectedly"),
    _wrapped_connector_error(psycopg.OperationalError("terminating connection")),
], ids=["psycopg", "procrastinate-wrapped"])
def test_a_lost_connection_is_tried_again_after_the_pool_is_checked(
        lost: BaseException) -> None:
    app = _App()
    record, calls = _failing(2, lost)
    riding = app_mod._riding_out_restarts(app, record)  # type: ignore[arg-type]
    assert asyncio.run(riding(7)) == "recorded 7"
    assert calls == [7, 7, 7]
    assert app.connector.pool.checks == 2


def test_a_statement_the_server_refused_is_not_tried_again() -> None:
    # e.g. procrastinate's "Job was not found or not in doing status": the outcome was
    # recorded by an earlier attempt or another worker; trying again cannot help.
    refused = _wrapped_connector_error(psycopg.errors.RaiseException("Job was not found"))
    app = _App()
    record, calls = _failing(5, refused)
    riding = app_mod._riding_out_restarts(app, record)  # type: ignore[arg-type]
    with pytest.raises(procrastinate.exceptions.ConnectorException):
        asyncio.run(riding(7))
    assert calls == [7] and app.connector.pool.checks == 0


def test_the_retries_stop_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_mod, "PERSIST_WITHIN_S", 1.0)
    app = _App()
    record, calls = _failing(1000, psycopg.OperationalError("connection refused"))
    riding = app_mod._riding_out_restarts(app, record)  # type: ignore[arg-type]
    with pytest.raises(psycopg.OperationalError):
        asyncio.run(riding(1))
    assert 1 < len(calls) < 5  # 0.5 s, then the next wait would pass the deadline
