"""RedisSnapshotStore against a real Redis: one-command writes and reads, bytes in and out."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import pytest
from redis.asyncio import Redis

from horde_model_reference.bus.embedded import free_port
from horde_model_reference.bus.snapshot_store import RedisSnapshotStore, StoredSnapshot
from horde_model_reference.catalog import catalog_digest
from horde_model_reference.errors import BackendError

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@pytest.fixture
async def store(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisSnapshotStore]:
    store = RedisSnapshotStore(redis_url, key_prefix=redis_prefix)
    try:
        yield store
    finally:
        await store.aclose()
        raw = Redis.from_url(redis_url)
        keys = [key async for key in raw.scan_iter(match=f"{redis_prefix}:*")]
        if keys:
            await raw.delete(*keys)
        await raw.aclose()


def _snapshot(category: str, revision: int, data: bytes) -> StoredSnapshot:
    return StoredSnapshot(category, revision, catalog_digest(data), data)


async def test_put_then_get_round_trips_bytes(store: RedisSnapshotStore, redis_url: str) -> None:
    data = b'{"a": {"name": "a", "note": "\xc3\xa9t\xc3\xa9"}}'
    await store.put(_snapshot("clip", 7, data))

    got = await store.get("clip")

    assert got == _snapshot("clip", 7, data)
    assert isinstance(got.data, bytes)
    raw = Redis.from_url(redis_url)
    try:
        assert await raw.type(store.key("clip")) in (b"hash", "hash")
        assert set(await raw.hkeys(store.key("clip"))) == {b"revision", b"digest", b"data", b"signature"}
    finally:
        await raw.aclose()


async def test_get_missing_is_none(store: RedisSnapshotStore) -> None:
    assert await store.get("blip") is None


async def test_revisions_and_states(store: RedisSnapshotStore) -> None:
    await store.put(_snapshot("clip", 3, b"{}"))
    await store.put(_snapshot("image_generation", 41, b'{"x": {}}'))

    assert await store.get_revisions() == {"clip": 3, "image_generation": 41}
    states = await store.get_states(["clip", "blip"])
    assert states == {"clip": (3, catalog_digest(b"{}"))}


async def test_put_is_one_hset_command(store: RedisSnapshotStore, redis_url: str) -> None:
    """MONITOR shows exactly one command touching the key per put: HSET with all three fields."""
    key = store.key("controlnet")
    seen: list[str] = []
    monitor_client = Redis.from_url(redis_url, socket_timeout=5)
    try:
        async with monitor_client.monitor() as monitor:

            async def write() -> None:  # MONITOR is on: entering the block waited for its OK
                await store.put(_snapshot("controlnet", 1, b'{"a": {}}'))
                await store.put(_snapshot("controlnet", 2, b'{"b": {}}'))

            async with anyio.create_task_group() as tg:
                tg.start_soon(write)
                with anyio.move_on_after(60):  # a ceiling for a loaded machine
                    while len(seen) < 2:
                        command = (await monitor.next_command())["command"]
                        if key in command:
                            seen.append(command)
    finally:
        await monitor_client.aclose()

    assert len(seen) == 2
    for command, revision in zip(seen, (1, 2), strict=True):
        assert command.upper().startswith("HSET")
        assert "revision" in command and "digest" in command and "data" in command
        assert f" {revision} " in command or command.endswith(f" {revision}")


async def test_reader_never_sees_a_revision_with_the_wrong_body(store: RedisSnapshotStore) -> None:
    bodies = {n: (b'{"m": {"n": %d}}' % n) * 1 for n in range(1, 60)}
    mismatches: list[int] = []

    async def writer() -> None:
        for n, body in bodies.items():
            await store.put(_snapshot("esrgan", n, body))

    async def reader() -> None:
        for _ in range(200):
            got = await store.get("esrgan")
            if got is not None and (
                got.data != bodies[got.revision] or got.digest != catalog_digest(got.data)
            ):
                mismatches.append(got.revision)

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        tg.start_soon(reader)
    assert mismatches == []
    final = await store.get("esrgan")
    assert final is not None and final.revision == 59


async def test_unreachable_redis_raises_backend_error_quickly() -> None:
    store = RedisSnapshotStore(
        f"redis://127.0.0.1:{free_port()}/0",
        key_prefix="hmr-test:closed",
        socket_timeout=0.5,
        connect_timeout=0.5,
    )
    started = time.monotonic()
    try:
        with pytest.raises(BackendError) as caught:
            await store.put(_snapshot("clip", 1, b"{}"))
        assert caught.value.category == "clip"
        assert caught.value.backend == "redis"
        with pytest.raises(BackendError):
            await store.get_revisions()
        assert await store.ping() is False
    finally:
        await store.aclose()
    assert time.monotonic() - started < 10


async def test_credentials_are_not_in_errors() -> None:
    store = RedisSnapshotStore(f"redis://user:s3cret@127.0.0.1:{free_port()}/0", connect_timeout=0.3)
    try:
        with pytest.raises(BackendError) as caught:
            await store.get("clip")
        assert "s3cret" not in str(caught.value)
    finally:
        await store.aclose()
