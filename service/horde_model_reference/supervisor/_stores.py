"""Where the service stores each snapshot before publishing its event: Redis, JetStream, or both.

A store that is slower than `store_wait` does not hold the event back: its write is cut short,
the store is reported down (later commits skip it at once) and the write is retried by the
actor's next passes (with backoff, each attempt bounded the same way), and pushed again when the
service's watcher sees the store back. Both stores
are written concurrently, so a commit waits for the slower of the two, never for their sum.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import anyio

from horde_model_reference.bus.snapshot_store import StoredSnapshot
from horde_model_reference.errors import BackendError
from horde_model_reference.logs import get_logger

__all__ = [
    "SinkBacklog",
    "SnapshotSink",
    "mark_behind",
    "retry_pending",
    "watch_store",
    "write_before_publish",
]

_log = get_logger(__name__)
_RETRY_BASE = 0.5
_RETRY_MAX = 30.0


@dataclass(frozen=True, slots=True)
class SnapshotSink:
    """One store the service writes snapshots to."""

    name: str
    """`redis` or `jetstream`: the prefix of its log events (`<name>_snapshot_write_failed`)."""
    put: Callable[[StoredSnapshot], Awaitable[None]]
    report: Callable[[bool], None]
    """Told whether each write succeeded (the service's view of the store's health)."""
    down: Callable[[], bool]
    """True while the store is known to be unreachable: writes wait for the watcher's poke."""


class SinkBacklog:
    """A category's state in one store: whether the store is behind, and the retry backoff."""

    __slots__ = ("failures", "pending", "retry_at", "write_failures")

    def __init__(self) -> None:
        self.pending = False
        """The store is behind the held revision (a write failed, or the store was reset)."""
        self.failures = 0
        """Consecutive failed writes (drives the backoff)."""
        self.retry_at = 0.0
        self.write_failures = 0
        """Failed writes since the service started."""


class _Slot(Protocol):
    """What the writes need from a `CategorySlot` (structural; avoids importing the actor)."""

    @property
    def category_name(self) -> str: ...

    revision: int
    digest: str | None
    data: bytes | None
    sinks: dict[str, SinkBacklog]

    @property
    def loaded(self) -> bool: ...

    def record_error(self, message: str) -> None: ...

    def mark_behind(self, store: str) -> None: ...

    def poke(self) -> int: ...


async def write_to(slot: _Slot, sink: SnapshotSink, *, bound: float) -> None:
    """Write the slot's snapshot to `sink` within `bound` seconds; a failure is logged and backed off."""
    backlog = slot.sinks[sink.name]
    if slot.data is None or slot.digest is None:
        backlog.pending = False
        return
    snapshot = StoredSnapshot(slot.category_name, slot.revision, slot.digest, slot.data)
    try:
        with anyio.fail_after(bound):
            await sink.put(snapshot)
    except (BackendError, TimeoutError) as exc:
        error = str(exc) if isinstance(exc, BackendError) else f"write took longer than {bound:.2f}s"
        sink.report(False)
        slot.record_error(error)
        backlog.failures += 1
        backlog.write_failures += 1
        retry_in = min(_RETRY_MAX, _RETRY_BASE * 2 ** (backlog.failures - 1))
        backlog.retry_at = time.monotonic() + retry_in
        _log.error(
            f"{sink.name}_snapshot_write_failed",
            category=slot.category_name,
            revision=snapshot.revision,
            error=error,
            failures=backlog.failures,
            retry_in=retry_in,
        )
        return
    sink.report(True)
    if backlog.failures:
        _log.info(
            f"{sink.name}_snapshot_write_recovered", category=slot.category_name, revision=snapshot.revision
        )
    backlog.failures = 0
    backlog.retry_at = 0.0
    backlog.pending = slot.revision != snapshot.revision


async def write_before_publish(slot: _Slot, sinks: Iterable[SnapshotSink], *, bound: float) -> None:
    """Write to every store not known down, concurrently, each within `bound` seconds."""
    async with anyio.create_task_group() as tg:
        for sink in sinks:
            if slot.sinks[sink.name].pending and not sink.down():
                tg.start_soon(partial(write_to, slot, sink, bound=bound), name=f"store:{sink.name}")


async def retry_pending(slot: _Slot, sinks: Iterable[SnapshotSink], *, bound: float) -> None:
    """Retry the stores that are behind, when their backoff allows (also a store known down: the
    attempt, bounded by `bound`, is how the failure shows and how its recovery is noticed first)."""
    now = time.monotonic()
    due = [sink for sink in sinks if slot.sinks[sink.name].pending and now >= slot.sinks[sink.name].retry_at]
    if not due:
        return
    async with anyio.create_task_group() as tg:
        for sink in due:
            tg.start_soon(partial(write_to, slot, sink, bound=bound), name=f"store-retry:{sink.name}")


def mark_behind(slots: Iterable[_Slot], store: str, states: Mapping[str, tuple[int, str]]) -> list[str]:
    """Mark every loaded category whose state in `store` differs from `states`; the names newly behind."""
    behind = []
    for slot in slots:
        if slot.loaded and states.get(slot.category_name) != (slot.revision, slot.digest):
            if not slot.sinks[store].pending:
                behind.append(slot.category_name)
            slot.mark_behind(store)
    return behind


async def watch_store(
    slots: Iterable[_Slot],
    store: str,
    read_states: Callable[[], Awaitable[Mapping[str, tuple[int, str]]]],
    *,
    is_ok: Callable[[], bool | None],
    set_ok: Callable[[bool], None],
    interval: float,
) -> None:
    """Every `interval`: read what `store` holds; keep its health current and refill what it lacks.

    Categories the store lost (emptied, reset, written by someone else) are marked behind and their
    actors woken; when the store comes back, the categories already behind are retried at once.
    """
    slots = list(slots)
    while True:
        await anyio.sleep(interval)
        try:
            states = await read_states()
        except BackendError as exc:
            _log.debug(f"{store}_check_failed", error=str(exc))
            set_ok(False)
            continue
        recovered = is_ok() is not True
        set_ok(True)
        if recovered:
            for slot in slots:
                backlog = slot.sinks[store]
                if backlog.pending:
                    backlog.retry_at = 0.0
                    slot.poke()
        behind = mark_behind(slots, store, states)
        if behind:
            _log.warning("snapshot_store_behind", store=store, categories=behind, action="writing them again")
            for slot in slots:
                if slot.category_name in behind:
                    slot.poke()
