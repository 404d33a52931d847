"""Shared by the network backends (GitHub, HTTP, Redis): one client per running event loop.

Loops: an `httpx.AsyncClient` is bound to the event loop it was first used on, so one is kept per
running loop (weakly keyed by the loop) and never shared between loops.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

import anyio

from horde_model_reference.logs import get_logger

_log = get_logger("horde_model_reference.backends.http")  # the log lines of every network backend
_T = TypeVar("_T")


class _PerLoop(Generic[_T]):
    """One resource per running event loop (clients must never cross loops)."""

    def __init__(self, factory: Callable[[], _T], closer: Callable[[_T], Coroutine[Any, Any, None]]) -> None:
        self._factory = factory
        self._closer = closer
        self._items: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _T] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self) -> _T:
        """The resource of the running loop, created on first use."""
        loop = asyncio.get_running_loop()
        with self._lock:
            item = self._items.get(loop)
            if item is None:
                item = self._items[loop] = self._factory()
            return item

    async def aclose(self, timeout: float = 5.0) -> None:
        """Close every resource: this loop's now, another running loop's on that loop (not awaited).

        Not waiting for other loops means no deadlock when one of them is blocked on this call
        (a sync `close()` from async code); a loop that already ended leaves its resource to GC.
        """
        current = asyncio.get_running_loop()
        with self._lock:
            items = list(self._items.items())
            self._items.clear()
        for loop, item in items:
            kind = type(item).__name__
            if loop is current:
                try:
                    with anyio.move_on_after(timeout, shield=True):
                        await self._closer(item)
                except Exception as exc:  # closing is best effort, but never silent
                    _log.warning("client_close_failed", resource=kind, error=repr(exc))
            elif loop.is_running() and not loop.is_closed():
                future = asyncio.run_coroutine_threadsafe(self._closer(item), loop)
                future.add_done_callback(functools.partial(_log_close_failure, kind=kind))
            else:
                _log.debug("client_dropped_with_its_loop", resource=kind)


def _log_close_failure(future: concurrent.futures.Future[None], *, kind: str) -> None:
    if not future.cancelled() and future.exception() is not None:
        _log.warning("client_close_failed", resource=kind, error=repr(future.exception()))
