"""Probe worker: a process holding in-process bus consumers (and bare NATS subscribers, the floor).

Started by `ours_propagation.py` (several of them, to spread the consumers over processes); speaks
the `_probe` worker protocol (`--serve`). Each consumer is what a `ModelReferenceManager` runs in
bus mode: a `BusConsumer` keeping a `ReferenceCache` in sync (the manager itself is a process
singleton, so its engine is used directly). The consumers and subscribers run on one event loop
in a background thread (an anyio blocking portal); every consumer has its own NATS connection.

Each consumer records the `time.time()` at which its change notice for each image_generation
revision was dispatched: after the new snapshot is installed in its cache (right after, or once
the consumer's sync task gets to it when the change was patched inline), so the figure is when the
revision was readable at the latest.

Operations:

- `start {count, nats_url, redis_url, subject_prefix, key_prefix}`: start `count` consumers and
  wait until each finished its initial sync; returns the image_generation revision they hold;
- `wait {revision, timeout}`: wait until every consumer holds image_generation >= `revision`;
  returns, per consumer, when it first could read that revision (or a later one);
- `stats`: the consumers' counters summed (`BusConsumer.stats`: snapshots read from Redis and
  over NATS, deltas patched, ...);
- `stop`: stop the consumers (their connections close);
- `floor_start {count, nats_url, subject}` / `floor_wait {id, timeout}` / `floor_stop`: `count`
  bare NATS subscriptions (one connection each) recording when each message id arrived.
The process exits when its stdin closes (its parent is gone).
"""

from __future__ import annotations

import faulthandler
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import anyio
import anyio.to_thread
from anyio.from_thread import BlockingPortal, start_blocking_portal

from _probe import serve
from horde_model_reference import MODEL_REFERENCE_CATEGORY
from horde_model_reference.bus.connection import NatsOptions, connect_nats
from horde_model_reference.bus.consumer import BusConsumer, BusOptions
from horde_model_reference.cache import ChangeNotice, ReferenceCache

IMAGE = MODEL_REFERENCE_CATEGORY.image_generation.value
_portal_cm = start_blocking_portal(backend="asyncio")
_portal: BlockingPortal = _portal_cm.__enter__()


class Fleet:
    """Consumers on the portal's loop, and what each saw."""

    def __init__(self) -> None:
        self.consumers: list[BusConsumer] = []
        self.caches: list[ReferenceCache] = []
        self.seen: list[list[tuple[int, float]]] = []  # per consumer: (image revision, time.time())
        self.changed: anyio.Event | None = None  # created on the loop; replaced after each change
        self.future: Future[None] | None = None

    def _dispatcher(self, index: int) -> Callable[[ChangeNotice], Any]:
        seen = self.seen[index]

        async def dispatch(notice: ChangeNotice) -> None:
            if notice.category.value == IMAGE:
                seen.append((notice.new_revision, time.time()))
                self._signal()

        return dispatch

    def _signal(self) -> None:
        changed, self.changed = self.changed, anyio.Event()
        if changed is not None:
            changed.set()

    def held(self, index: int) -> int:
        snapshot = self.caches[index].snapshots.get(IMAGE)
        return snapshot.revision if snapshot is not None else -1

    async def run(self, options: BusOptions, count: int, *, task_status: Any) -> None:
        self.changed = anyio.Event()
        async with anyio.create_task_group() as tg:
            for index in range(count):
                cache = ReferenceCache()
                self.caches.append(cache)
                self.seen.append([])
                consumer = BusConsumer(cache, options, dispatch=self._dispatcher(index))
                self.consumers.append(consumer)
                tg.start_soon(consumer.run)
            for consumer in self.consumers:
                if not await anyio.to_thread.run_sync(consumer.wait_ready, 60):
                    raise TimeoutError("a consumer did not finish its initial sync within 60 s")
            task_status.started()
            await anyio.sleep_forever()

    def _notified(self, index: int, revision: int) -> bool:
        return any(rev >= revision for rev, _ in self.seen[index])

    async def wait(self, revision: int, timeout: float) -> dict[str, Any]:
        # Every consumer's change notice, not only its cache: a notice is dispatched after the
        # install (at once, or queued for the consumer's sync task when it patched inline).
        with anyio.move_on_after(timeout):
            while not all(self._notified(i, revision) for i in range(len(self.caches))):
                assert self.changed is not None
                await self.changed.wait()
        times, missing = [], 0
        for index, seen in enumerate(self.seen):
            first = next((at for rev, at in seen if rev >= revision), None)
            if first is None or self.held(index) < revision:
                missing += 1
            else:
                times.append(first)
        return {"times": times, "missing": missing}


class Floor:
    """Bare NATS subscribers: when each message id arrived at each of them."""

    def __init__(self) -> None:
        self.clients: list[Any] = []
        self.received: list[dict[str, float]] = []
        self.changed: anyio.Event | None = None

    def _signal(self) -> None:
        changed, self.changed = self.changed, anyio.Event()
        if changed is not None:
            changed.set()

    async def start(self, url: str, subject: str, count: int) -> None:
        self.changed = anyio.Event()
        for index in range(count):
            client = await connect_nats(NatsOptions(url=url, name=f"bench-floor-{index}"))
            received: dict[str, float] = {}

            async def on_message(msg: Any, received: dict[str, float] = received) -> None:
                received[msg.data.decode()] = time.time()
                self._signal()

            await client.subscribe(subject, cb=on_message)
            await client.flush()
            self.clients.append(client)
            self.received.append(received)

    async def wait(self, message_id: str, timeout: float) -> dict[str, Any]:
        with anyio.move_on_after(timeout):
            while not all(message_id in r for r in self.received):
                assert self.changed is not None
                await self.changed.wait()
        times = [r[message_id] for r in self.received if message_id in r]
        return {"times": times, "missing": len(self.received) - len(times)}

    async def stop(self) -> None:
        for client in self.clients:
            with anyio.move_on_after(2):
                await client.close()
        self.clients.clear()
        self.received.clear()


_fleet: Fleet | None = None
_floor: Floor | None = None


def start(args: dict[str, Any]) -> dict[str, Any]:
    global _fleet
    if _fleet is not None:
        raise RuntimeError("consumers already started")
    options = BusOptions(
        nats_url=args["nats_url"],
        subject_prefix=args["subject_prefix"],
        redis_url=args["redis_url"],
        redis_key_prefix=args["key_prefix"],
        ready_timeout=30.0,
    )
    fleet = Fleet()
    fleet.future, _ = _portal.start_task(fleet.run, options, args["count"])
    _fleet = fleet
    return {"revisions": [fleet.held(i) for i in range(args["count"])]}


def wait(args: dict[str, Any]) -> dict[str, Any]:
    assert _fleet is not None
    return _portal.call(_fleet.wait, args["revision"], args["timeout"])


def stats(args: dict[str, Any]) -> dict[str, Any]:
    assert _fleet is not None
    total: dict[str, int] = {}
    for consumer in _fleet.consumers:
        for key, value in consumer.stats.items():
            total[key] = total.get(key, 0) + value
    return {"stats": total, "consumers": len(_fleet.consumers)}


def stop(args: dict[str, Any]) -> dict[str, Any]:
    global _fleet
    fleet, _fleet = _fleet, None
    if fleet is not None and fleet.future is not None:
        fleet.future.cancel()
        began = time.monotonic()
        while not fleet.future.done() and time.monotonic() - began < 10:
            time.sleep(0.01)
    return {"stopped": fleet is not None}


def floor_start(args: dict[str, Any]) -> dict[str, Any]:
    global _floor
    floor = Floor()
    _portal.call(floor.start, args["nats_url"], args["subject"], args["count"])
    _floor = floor
    return {"subscribers": args["count"]}


def floor_wait(args: dict[str, Any]) -> dict[str, Any]:
    assert _floor is not None
    return _portal.call(_floor.wait, args["id"], args["timeout"])


def floor_stop(args: dict[str, Any]) -> dict[str, Any]:
    global _floor
    floor, _floor = _floor, None
    if floor is not None:
        _portal.call(floor.stop)
    return {"stopped": floor is not None}


def _reported(op: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """`op`, with any BaseException but an exit turned into an error answer (not a dead worker)."""

    def call(args: dict[str, Any]) -> dict[str, Any]:
        try:
            return op(args)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            raise RuntimeError(f"{op.__name__} failed: {exc!r}") from exc

    return call


if __name__ == "__main__":
    faulthandler.enable()
    ops = [start, wait, stats, stop, floor_start, floor_wait, floor_stop]
    try:
        serve({op.__name__: _reported(op) for op in ops})
    finally:
        stop({})
        floor_stop({})
        _portal_cm.__exit__(None, None, None)
