"""RedisBackend against a real Redis: hits and misses, exact bytes, Redis down and coming back."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from horde_model_reference.backends import FileSystemBackend, GitHubBackend, HTTPBackend, RedisBackend
from horde_model_reference.backends.base import CategoryPayload
from horde_model_reference.bus.embedded import free_port
from horde_model_reference.catalog import catalog_digest
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY as C
from horde_model_reference.categories import get_category_descriptor
from horde_model_reference.errors import BackendError
from test_backend_http_server import (
    LoopThread,
    Upstream,
    github_path,
    golden,
    golden_categories,
    serve_github,
)

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


class CountingBackend(FileSystemBackend):
    """The real filesystem backend, counting how often it is asked."""

    def __init__(self, base_path: Path) -> None:
        super().__init__(base_path)
        self.calls = 0

    async def fetch_category(self, category: C, *, force_refresh: bool = False) -> CategoryPayload | None:
        self.calls += 1
        return await super().fetch_category(category, force_refresh=force_refresh)


@pytest.fixture
def catalogs(tmp_path: Path, shared_data: Path) -> Path:
    folder = tmp_path / "catalogs"
    folder.mkdir()
    for category in golden_categories(shared_data):
        (folder / get_category_descriptor(category).v2_filename).write_bytes(golden(shared_data, category))
    return folder


@pytest.fixture
async def raw_redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=False)
    try:
        yield client
    finally:
        await client.aclose()


def make(inner: FileSystemBackend | HTTPBackend, url: str, prefix: str, **options: float) -> RedisBackend:
    settings: dict[str, float] = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5, "retry_interval": 0.2}
    settings.update(options)
    return RedisBackend(inner, url, key_prefix=prefix, **settings)


async def test_miss_then_hit(
    catalogs: Path, redis_url: str, redis_prefix: str, raw_redis: aioredis.Redis
) -> None:
    inner = CountingBackend(catalogs)
    backend = make(inner, redis_url, redis_prefix)
    try:
        miss = await backend.fetch_category(C.controlnet)
        hit = await backend.fetch_category(C.controlnet)
    finally:
        await backend.aclose()
    assert miss is not None and hit is not None
    assert inner.calls == 1
    assert hit.data == miss.data and hit.digest == miss.digest
    assert hit.source == f"redis:{redis_prefix}:backend:controlnet"
    assert miss.revision == hit.revision == 1
    stored = await raw_redis.hgetall(f"{redis_prefix}:backend:controlnet")
    assert (
        stored[b"data"] == miss.data
        and stored[b"digest"] == miss.digest.encode()
        and stored[b"revision"] == b"1"
    )
    assert not await raw_redis.exists(f"{redis_prefix}:snapshot:controlnet")


async def test_bytes_round_trip_exactly(
    catalogs: Path, shared_data: Path, redis_url: str, redis_prefix: str
) -> None:
    odd = '{"naïve ✓":{"name":"naïve ✓","description":"line\\u2028sep \\u0000 \U0001f600"}}'.encode()
    (catalogs / "miscellaneous.json").write_bytes(odd)
    writer = make(FileSystemBackend(catalogs), redis_url, redis_prefix)
    reader = make(CountingBackend(catalogs / "nothing-here"), redis_url, redis_prefix)
    try:
        written = await writer.fetch_all()
        for category, payload in written.items():
            read = await reader.fetch_category(category)
            assert read is not None and read.source.startswith("redis:")
            assert read.data == payload.data and catalog_digest(read.data) == payload.digest
    finally:
        await writer.aclose()
        await reader.aclose()
    assert written[C.miscellaneous].data == odd
    assert written[C.image_generation].data == golden(shared_data, "image_generation").strip()


async def test_stale_entry_is_revalidated_and_revision_follows_the_body(
    catalogs: Path, redis_url: str, redis_prefix: str, raw_redis: aioredis.Redis
) -> None:
    inner = CountingBackend(catalogs)
    backend = make(inner, redis_url, redis_prefix, fresh_for=0.05)
    key = f"{redis_prefix}:backend:blip"
    try:
        first = await backend.fetch_category(C.blip)
        await asyncio.sleep(0.1)
        same = await backend.fetch_category(C.blip)
        assert inner.calls == 2 and same is not None and same.revision == 1
        (catalogs / "blip.json").write_bytes(b"{}")
        await asyncio.sleep(0.1)
        changed = await backend.fetch_category(C.blip)
    finally:
        await backend.aclose()
    assert first is not None and changed is not None
    assert changed.data == b"{}" and changed.revision == 2
    stored = await raw_redis.hmget(key, ["data", "digest", "revision"])
    assert stored == [b"{}", catalog_digest(b"{}").encode(), b"2"]


async def test_force_refresh_skips_the_cache(catalogs: Path, redis_url: str, redis_prefix: str) -> None:
    inner = CountingBackend(catalogs)
    backend = make(inner, redis_url, redis_prefix)
    try:
        await backend.fetch_category(C.blip)
        await backend.fetch_category(C.blip, force_refresh=True)
    finally:
        await backend.aclose()
    assert inner.calls == 2


async def test_stale_entry_is_served_when_the_wrapped_backend_fails(
    catalogs: Path, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    writer = make(FileSystemBackend(catalogs), redis_url, redis_prefix)
    try:
        good = await writer.fetch_category(C.esrgan)
    finally:
        await writer.aclose()
    dead_primary = HTTPBackend(
        f"http://127.0.0.1:{free_port()}/api", tmp_path / "replica", timeout=0.5, max_attempts=1
    )
    backend = make(dead_primary, redis_url, redis_prefix, fresh_for=0.0)
    try:
        with capture_logs() as logs:
            stale = await backend.fetch_category(C.esrgan)
    finally:
        await backend.aclose()
    assert good is not None and stale is not None and stale.data == good.data
    assert any(e["event"] == "redis_stale_entry_served" for e in logs)


async def test_redis_down_falls_through_to_the_wrapped_backend(catalogs: Path, redis_prefix: str) -> None:
    inner = CountingBackend(catalogs)
    backend = make(inner, f"redis://127.0.0.1:{free_port()}/0", redis_prefix)
    try:
        with capture_logs() as logs:
            started = time.monotonic()
            first = await backend.fetch_category(C.controlnet)
            second = await backend.fetch_category(C.controlnet)
            elapsed = time.monotonic() - started
    finally:
        await backend.aclose()
    assert first is not None and second is not None and first.data == second.data
    assert inner.calls == 2
    assert elapsed < 1.0
    assert not backend.redis_available
    down = [e for e in logs if e["event"] == "redis_unavailable"]
    assert down and down[0]["log_level"] == "error"


async def test_redis_down_and_wrapped_backend_failing_raises(tmp_path: Path, redis_prefix: str) -> None:
    dead_primary = HTTPBackend(f"http://127.0.0.1:{free_port()}/api", tmp_path, timeout=0.5, max_attempts=1)
    backend = make(dead_primary, f"redis://127.0.0.1:{free_port()}/0", redis_prefix)
    try:
        with pytest.raises(BackendError):
            await backend.fetch_category(C.controlnet)
    finally:
        await backend.aclose()


class OwnRedis:
    """A redis-server of the test's own, to stop and start again on the same port."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not on PATH: cannot stop and restart a Redis of our own")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.process = subprocess.Popen(
            [*args, "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_redis_coming_back_is_used_again(
    catalogs: Path, own_redis: OwnRedis, redis_prefix: str
) -> None:
    inner = CountingBackend(catalogs)
    backend = make(inner, own_redis.url, redis_prefix, retry_interval=0.1)
    try:
        with capture_logs() as logs:
            await backend.fetch_category(C.gfpgan)
            assert (await backend.fetch_category(C.gfpgan)) is not None and inner.calls == 1  # a hit

            own_redis.stop()
            down = await backend.fetch_category(C.gfpgan)
            assert down is not None and inner.calls == 2 and not backend.redis_available

            own_redis.start()  # empty: nothing was saved
            await asyncio.sleep(0.15)
            refilled = await backend.fetch_category(C.gfpgan)
            assert refilled is not None and inner.calls == 3 and backend.redis_available
            hit = await backend.fetch_category(C.gfpgan)
    finally:
        await backend.aclose()
    assert hit is not None and hit.source.startswith("redis:") and inner.calls == 3
    events = [e["event"] for e in logs]
    assert "redis_unavailable" in events and "redis_recovered" in events


async def test_usable_from_several_event_loops(catalogs: Path, redis_url: str, redis_prefix: str) -> None:
    backend = make(FileSystemBackend(catalogs), redis_url, redis_prefix)
    loops = [LoopThread(), LoopThread()]

    async def several() -> list[bytes]:
        found = []
        for category in (C.blip, C.clip, C.blip):
            payload = await backend.fetch_category(category)
            assert payload is not None
            found.append(payload.data)
        return found

    try:
        futures = [loop.submit(several()) for loop in loops]
        mine = await several()
        theirs = [await asyncio.wrap_future(future) for future in futures]
        assert len(backend._clients._items) == 3  # one client per loop, never shared
        # Closing from this loop also closes the clients of the other (still running) loops.
        await backend.aclose()
    finally:
        for loop in loops:
            loop.close()
    assert theirs == [mine, mine]
    assert not backend._clients._items


async def test_a_change_reported_by_the_wrapped_backend_bypasses_a_fresh_entry(
    shared_data: Path, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    upstream = Upstream().start()
    serve_github(upstream, shared_data)
    path = github_path("controlnet")
    try:
        first = GitHubBackend(tmp_path, base_url=upstream.url, timeout=2.0)
        try:
            old = await first.fetch_category(C.controlnet)
        finally:
            await first.aclose()
        records = msgspec.json.decode(upstream.files[path])
        records.pop("control_qr_sdxl")
        upstream.serve(path, msgspec.json.encode(records))

        changed: list[C] = []
        backend = make(
            GitHubBackend(tmp_path, base_url=upstream.url, timeout=2.0), redis_url, redis_prefix, fresh_for=60
        )
        backend.add_invalidation_callback(changed.append)
        try:
            offline = await backend.fetch_category(C.controlnet)  # the disk copy, refreshed in the background
            for _ in range(1500):
                if changed:
                    break
                await asyncio.sleep(0.02)
            latest = await backend.fetch_category(C.controlnet)
        finally:
            await backend.aclose()
    finally:
        upstream.stop()
    assert old is not None and offline is not None and latest is not None
    assert offline.data == old.data and offline.revision == 1
    assert b"control_qr_sdxl" not in latest.data and latest.revision == 2


async def test_a_corrupt_entry_is_ignored_and_rewritten(
    catalogs: Path, redis_url: str, redis_prefix: str, raw_redis: aioredis.Redis
) -> None:
    key = f"{redis_prefix}:backend:clip"
    await raw_redis.hset(
        key, mapping={"data": b"{}", "digest": "0" * 64, "revision": 7, "stored_at": repr(time.time())}
    )
    inner = CountingBackend(catalogs)
    backend = make(inner, redis_url, redis_prefix)
    try:
        with capture_logs() as logs:
            payload = await backend.fetch_category(C.clip)
    finally:
        await backend.aclose()
    assert payload is not None and inner.calls == 1 and payload.data != b"{}"
    assert any(e["event"] == "redis_entry_corrupt" for e in logs)
    assert await raw_redis.hget(key, "digest") == payload.digest.encode()


async def test_writes_go_through_and_update_the_cache(
    catalogs: Path, redis_url: str, redis_prefix: str, raw_redis: aioredis.Redis
) -> None:
    backend = make(FileSystemBackend(catalogs), redis_url, redis_prefix)
    try:
        before = await backend.fetch_category(C.codeformer)
        assert backend.supports_writes()
        written = await backend.write_category(C.codeformer, b"{}")
        after = await backend.fetch_category(C.codeformer)
    finally:
        await backend.aclose()
    assert before is not None and before.revision == 1
    assert written.revision == 2 and after is not None and after.data == b"{}" and after.revision == 2
    assert (catalogs / "codeformer.json").read_bytes() == b"{}"
    assert await raw_redis.hmget(f"{redis_prefix}:backend:codeformer", ["data", "revision"]) == [b"{}", b"2"]
