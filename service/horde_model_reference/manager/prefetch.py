"""When the manager warms its cache: `PrefetchStrategy` and `DeferredPrefetchHandle`."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Generator
from enum import StrEnum
from typing import Any

import anyio

from horde_model_reference._portal import run_sync

__all__ = ["DeferredPrefetchHandle", "PrefetchStrategy"]

_WAIT_SLICE = 0.5
"""Waiters re-check this often whether a cancelled run left the warm-up for them to do."""


class PrefetchStrategy(StrEnum):
    """Controls when the manager fetches and decodes the catalogs."""

    LAZY = "lazy"
    """Load each category on first access."""
    SYNC = "sync"
    """Load and decode every category during construction, on the calling thread."""
    DEFERRED = "deferred"
    """Expose a `DeferredPrefetchHandle` the caller triggers later (sync or async)."""
    ASYNC = "async"
    """Warm in the background on the manager's own loop thread: construction returns at once, and
    awaiting the handle joins that warm-up instead of starting a second one."""
    NONE = "none"
    """No warm-up; the first read loads (as LAZY) but nothing is scheduled."""


class DeferredPrefetchHandle:
    """A warm-up that runs at most once, however it is triggered (await, `run_sync`, `run_async`)."""

    def __init__(self, warm: Callable[[bool], Awaitable[None]], *, force_refresh: bool = False) -> None:
        self._warm = warm
        self._force_refresh = force_refresh
        self._lock = threading.Lock()
        self._started = False
        self._done = threading.Event()
        self._error: BaseException | None = None

    @property
    def force_refresh(self) -> bool:
        """Whether the warm-up re-fetches data already cached."""
        return self._force_refresh

    @property
    def done(self) -> bool:
        """Whether the warm-up has finished (successfully or not)."""
        return self._done.is_set()

    def _claim(self) -> bool:
        with self._lock:
            if self._started:
                return False
            self._started = True
            return True

    def _release(self) -> None:
        with self._lock:
            self._started = False

    async def run_async(self, *, httpx_client: object = None) -> None:
        """Run the warm-up on the current loop, or wait for the run already in progress.

        `httpx_client` is accepted as upstream's and unused (backends keep their own clients).
        """
        while not self._done.is_set():
            if self._claim():
                try:
                    await self._warm(self._force_refresh)
                except Exception as exc:
                    self._finish(exc)
                    raise
                except BaseException:
                    self._release()  # cancelled: another caller may run it later
                    raise
                self._finish(None)
                return
            await anyio.to_thread.run_sync(self._done.wait, _WAIT_SLICE)
        if self._error is not None:
            raise self._error

    def run_sync(self) -> None:
        """Run the warm-up from sync code (on the manager's background loop), or wait for it."""
        while not self._done.is_set():
            if self._claim():
                try:
                    run_sync(self._warm, self._force_refresh)
                except Exception as exc:
                    self._finish(exc)
                    raise
                except BaseException:
                    self._release()
                    raise
                self._finish(None)
                return
            self._done.wait(_WAIT_SLICE)
        if self._error is not None:
            raise self._error

    def _finish(self, error: Exception | None) -> None:
        self._error = error
        self._done.set()

    def __await__(self) -> Generator[Any, None, None]:
        return self.run_async().__await__()
