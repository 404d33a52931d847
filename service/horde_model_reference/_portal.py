"""One background event loop thread that sync callers use to run the async core.

Sync code (a worker with no event loop, or sync code called from inside someone else's loop)
runs coroutines here through an anyio blocking portal, so it never blocks a loop it does not own.
The thread starts on first use. It is a daemon thread, so it never keeps a finished program alive;
at interpreter exit its tasks (a bus subscription, say) are cancelled and given a moment to close
their connections.
"""

from __future__ import annotations

import atexit
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar, TypeVarTuple

import anyio
from anyio.from_thread import BlockingPortal

__all__ = ["get_portal", "run_sync", "shutdown_portal"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_SHUTDOWN_TIMEOUT = 5.0

_lock = threading.Lock()
_portal: BlockingPortal | None = None
_thread: threading.Thread | None = None


def _serve(handoff: queue.Queue[BlockingPortal | BaseException]) -> None:
    async def main() -> None:
        async with BlockingPortal() as portal:
            handoff.put(portal)
            await portal.sleep_until_stopped()

    try:
        anyio.run(main, backend="asyncio")
    except BaseException as exc:
        handoff.put(exc)


def get_portal() -> BlockingPortal:
    """The shared portal, started on first use."""
    global _portal, _thread
    portal = _portal
    if portal is not None:
        return portal
    with _lock:
        if _portal is None:
            handoff: queue.Queue[BlockingPortal | BaseException] = queue.Queue()
            _thread = threading.Thread(target=_serve, args=(handoff,), name="hmr-portal", daemon=True)
            _thread.start()
            started = handoff.get()
            if isinstance(started, BaseException):
                raise started
            _portal = started
            atexit.register(shutdown_portal)
        return _portal


def run_sync(func: Callable[[*Ts], Awaitable[T]], *args: *Ts) -> T:
    """Run the coroutine function `func(*args)` on the background loop and return its result."""
    return get_portal().call(func, *args)


def shutdown_portal() -> None:
    """Cancel the background loop's tasks and stop it (bounded by a few seconds)."""
    global _portal, _thread
    with _lock:
        portal, thread, _portal, _thread = _portal, _thread, None, None
    if portal is None or thread is None:
        return
    try:
        portal.start_task_soon(portal.stop, True)
    except RuntimeError:
        return
    thread.join(_SHUTDOWN_TIMEOUT)
