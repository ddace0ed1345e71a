"""The one clock edoc reads: "now" as an aware UTC datetime, injectable.

Every instant edoc records (ingest time, event times, retention checks, file stamps in a
bundle) comes from :func:`now`. The *official* time of a record is still its RFC 3161
token's genTime (DESIGN.md "Time"); this clock only decides what edoc writes beside it.

Tests and embedders swap the clock in one place instead of patching call sites::

    with use_clock(FixedClock(datetime(2030, 4, 1, tzinfo=UTC))):
        ...

The clock is process-wide on purpose (not a context variable): ingest runs files on worker
threads and verify forks workers, and all of them must read the same clock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Anything that says what time it is (aware, UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FixedClock:
    """A clock that says ``at`` until told otherwise (tests, reproducible renderings)."""

    at: datetime

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")

    def now(self) -> datetime:
        return self.at.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self.at = self.at + delta


_SYSTEM = SystemClock()
_current: Clock = _SYSTEM
_lock = threading.Lock()


def now() -> datetime:
    """The current instant, aware and in UTC, from the clock in use."""
    return _current.now()


def utc_text(instant: datetime) -> str:
    """How edoc writes an instant (manifests, events, catalog): UTC, ISO 8601, microseconds."""
    return instant.astimezone(UTC).isoformat(timespec="microseconds")


def current() -> Clock:
    """The clock in use (pass it on to a collaborator that takes a clock)."""
    return _current


@contextmanager
def use_clock(clock: Clock) -> Iterator[Clock]:
    """Make ``clock`` the process's clock for the ``with`` block, then restore the last one."""
    global _current
    with _lock:
        previous, _current = _current, clock
    try:
        yield clock
    finally:
        with _lock:
            _current = previous
