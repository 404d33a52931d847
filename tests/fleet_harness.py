"""Helpers for fleet tests (JetStream snapshots, herd control): fixtures, a configurable consumer."""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import nats
import pytest

from bus_harness import Consumer
from horde_model_reference.bus.consumer import BusConsumer, BusOptions
from horde_model_reference.bus.jetstream_store import bucket_name
from horde_model_reference.cache import ChangeNotice, ReferenceCache

__all__ = ["drop_buckets", "follower", "golden_base", "options", "until"]


@pytest.fixture
def golden_base(tmp_path: Path, shared_data: Path) -> Path:
    """A primary's base path holding the real golden catalogs."""
    target = tmp_path / "primary"
    shutil.copytree(shared_data / "golden-v2", target)
    return target


@pytest.fixture
async def drop_buckets(nats_url: str, subject_prefix: str) -> AsyncIterator[None]:
    """Delete the test's snapshot bucket and object store from the shared server afterwards."""
    yield
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for delete, name in ((js.delete_key_value, bucket_name(subject_prefix)),):
            try:
                await delete(name)
            except nats.js.errors.NotFoundError:
                pass
        try:
            await js.delete_object_store(bucket_name(subject_prefix) + "_large")
        except nats.js.errors.NotFoundError:
            pass
    finally:
        await nc.close()


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
