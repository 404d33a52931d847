"""One background event loop thread that sync callers use to run the async core.

Sync code (a worker with no event loop, or sync code called from inside someone else's loop)
runs coroutines here through an anyio blocking portal, so it never blocks a loop it does not own.
The thread starts on first use and stops at interpreter exit.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import TypeVar, TypeVarTuple, Unpack

from anyio.from_thread import BlockingPortal, start_blocking_portal

__all__ = ["get_portal", "run_sync", "shutdown_portal"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_lock = threading.Lock()
_portal: BlockingPortal | None = None
_context: AbstractContextManager[BlockingPortal] | None = None


def get_portal() -> BlockingPortal:
    """The shared portal, started on first use."""
    global _portal, _context
    portal = _portal
    if portal is not None:
        return portal
    with _lock:
        if _portal is None:
            _context = start_blocking_portal(backend="asyncio")
            _portal = _context.__enter__()
            atexit.register(shutdown_portal)
        return _portal


def run_sync(func: Callable[[Unpack[Ts]], Awaitable[T]], *args: *Ts) -> T:
    """Run the coroutine function `func(*args)` on the background loop and return its result."""
    return get_portal().call(func, *args)


def shutdown_portal() -> None:
    """Stop the background loop (waits for the tasks it runs to finish or be cancelled)."""
    global _portal, _context
    with _lock:
        context, _context, _portal = _context, None, None
    if context is not None:
        context.__exit__(None, None, None)
