"""Helpers for fleet tests (JetStream snapshots, herd control): a configurable consumer, polling.

Their fixtures (`golden_base`, and the snapshot buckets dropped with `subject_prefix`) are in conftest."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from bus_harness import Consumer
from horde_model_reference.bus.consumer import BusConsumer, BusOptions
from horde_model_reference.cache import ChangeNotice, ReferenceCache

__all__ = ["follower", "options", "until"]


@asynccontextmanager
async def follower(options: BusOptions) -> AsyncIterator[Consumer]:
    """A consumer with the given options, synced (its first sync done) until the block exits."""
    cache = ReferenceCache()
    handle: Consumer

    async def dispatch(notice: ChangeNotice) -> None:
        handle.notices.append(notice)

    engine = BusConsumer(cache, options, dispatch=dispatch)
    handle = Consumer(cache, engine)
    async with anyio.create_task_group() as tg:
        await tg.start(engine.run)
        yield handle
        tg.cancel_scope.cancel()


def options(nats_url: str, subject_prefix: str, **overrides: object) -> BusOptions:
    defaults: dict[str, object] = {"retry_interval": 0.2, "resync_jitter": 0.2, "ready_timeout": 20.0}
    return BusOptions(nats_url=nats_url, subject_prefix=subject_prefix, **{**defaults, **overrides})  # type: ignore[arg-type]


async def until(condition: object, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await anyio.sleep(0.02)
