"""Running pyHanko's coroutines from edoc's synchronous code: one event loop per thread.

pyHanko's signing and time-stamping APIs are async; edoc's services are synchronous and run
records on worker threads (ingest ``--jobs``) and forked processes (verify workers).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import selectors
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    pass


T = TypeVar("T")


class _ThreadLoop:
    """The event loop of one thread in one process, closed when the thread ends.

    ``asyncio.run`` builds and tears down a loop per call (~70 µs, more under thread
    contention); a run seals and stamps once per record, so each thread keeps one loop.
    A forked child makes its own. The loop polls with ``poll(2)``, not epoll: an epoll
    instance is one kernel object shared across fork, so a child dropping the loop it
    inherited (its ``close`` unregisters the self-pipe) would unregister the *parent's*
    self-pipe too, and the parent's loop would never again be woken by another thread —
    ``run_in_executor`` (pyHanko's PKCS#11 signer) would hang. poll keeps no kernel state."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop: asyncio.AbstractEventLoop = asyncio.SelectorEventLoop(
            selectors.PollSelector())

    def __del__(self) -> None:
        if self.pid == os.getpid() and not self.loop.is_closed():
            self.loop.close()


_THREAD_LOOPS = threading.local()


def _thread_loop() -> asyncio.AbstractEventLoop:
    held: _ThreadLoop | None = getattr(_THREAD_LOOPS, "held", None)
    if held is None or held.pid != os.getpid() or held.loop.is_closed():
        held = _ThreadLoop()
        _THREAD_LOOPS.held = held
    return held.loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a pyHanko coroutine to completion from synchronous code.

    Inside an already running event loop (an async caller) the coroutine runs on a worker thread
    with its own loop, so synchronous edoc APIs stay callable from anywhere.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        in_loop = False
    else:
        in_loop = True
    if not in_loop:
        # Outside the except block, so errors raised by the coroutine do not carry a spurious
        # "no running event loop" context in tracebacks.
        return _thread_loop().run_until_complete(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
