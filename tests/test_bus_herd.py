"""Herd control and the bugs found with a fleet (issue 15), each against real servers: stale
heartbeats, an emptied Redis, a hung Redis (SIGSTOP of a redis-server of the test's own), jitter."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import nats
import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from bus_harness import running_service
from fleet_harness import follower, options, until
from horde_model_reference.bus.connection import NatsOptions, connect_nats
from horde_model_reference.bus.embedded import free_port
from horde_model_reference.bus.events import CategoryState, Heartbeat, encode_event
from horde_model_reference.bus.snapshot_store import RedisSnapshotStore, StoredSnapshot
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

CLIP = MODEL_REFERENCE_CATEGORY.clip


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own on a free port (never the shared one): (url, process)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server binary")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)
    try:
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.kill()
        process.wait(timeout=10)


async def test_a_heartbeat_older_than_an_applied_event_does_not_send_the_consumer_back(
    golden_base: Path,
    nats_url: str,
    subject_prefix: str,
    redis_url: str,
    redis_prefix: str,
) -> None:
    async with (
        running_service(
            golden_base,
            nats_url=nats_url,
            subject_prefix=subject_prefix,
            redis_url=redis_url,
            redis_key_prefix=redis_prefix,
        ) as service,
        follower(
            options(nats_url, subject_prefix, redis_url=redis_url, redis_key_prefix=redis_prefix)
        ) as fan,
    ):
        old = service.snapshot(CLIP)
        assert old is not None
        (golden_base / "clip.json").write_bytes(
            (golden_base / "clip.json").read_bytes().replace(b"ViT", b"ViT2")
        )
        await until(lambda: (fan.revision(CLIP) or 0) > old.revision, "the change")
        held = (fan.revision(CLIP), fan.digest(CLIP))
        # A stale Redis holding the older data (the service refills it soon: the race the bug lost).
        store = RedisSnapshotStore(redis_url, key_prefix=redis_prefix)
        await store.put(StoredSnapshot("clip", old.revision, old.digest, bytes(old.data)))
        await store.aclose()
        nc = await nats.connect(nats_url)
        try:
            stale = Heartbeat(
                service_id=service.service_id,
                started_at=service.started_at,
                sent_at=time.time() - 1,
                categories={"clip": CategoryState(old.revision, old.digest)},
            )
            probe = Heartbeat(
                service_id=service.service_id,
                started_at=service.started_at,
                sent_at=time.time(),
                categories={"lora": CategoryState(1, "0" * 64)},  # not served: makes the consumer look
            )
            resyncs = fan.engine.stats["resyncs"]
            with capture_logs() as logs:
                await nc.publish(f"{subject_prefix}.heartbeat", encode_event(stale))
                await nc.publish(f"{subject_prefix}.heartbeat", encode_event(probe))
                await nc.flush()
                await until(lambda: fan.engine.stats["resyncs"] > resyncs, "the probe heartbeat handled")
        finally:
            await nc.close()
        assert (fan.revision(CLIP), fan.digest(CLIP)) == held
        assert not [e for e in logs if e["event"] == "bus_revision_went_back"]
        revisions = [n.new_revision for n in fan.notices if n.category is CLIP]
        assert revisions == sorted(revisions)


async def test_an_emptied_redis_is_refilled(
    golden_base: Path,
    nats_url: str,
    subject_prefix: str,
    own_redis: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, _ = own_redis
    store = RedisSnapshotStore(url)
    client = Redis.from_url(url)
    try:
        async with running_service(
            golden_base, nats_url=nats_url, subject_prefix=subject_prefix, redis_url=url
        ) as service:
            expected = {
                c.value: (s.revision, s.digest) for c in service.categories if (s := service.snapshot(c))
            }
            await _until_async(lambda: _states_are(store, expected), "the snapshots in Redis")
            await client.flushall()
            assert await store.get_states() == {}
            with capture_logs() as logs:
                await _until_async(lambda: _states_are(store, expected), "Redis refilled")
            assert service.status().redis_connected is True
            assert any(e["event"] == "snapshot_store_behind" and e["store"] == "redis" for e in logs)
    finally:
        await client.aclose()
        await store.aclose()


async def test_a_hung_redis_neither_holds_back_publishes_nor_stalls_consumers(
    golden_base: Path,
    nats_url: str,
    subject_prefix: str,
    own_redis: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, process = own_redis
    async with (
        running_service(
            golden_base, nats_url=nats_url, subject_prefix=subject_prefix, redis_url=url
        ) as service,
        follower(options(nats_url, subject_prefix, redis_url=url)) as fan,
    ):
        os.kill(process.pid, signal.SIGSTOP)
        (golden_base / "clip.json").write_bytes(
            (golden_base / "clip.json").read_bytes().replace(b"ViT", b"ViT2")
        )
        await until(lambda: service.revision(CLIP) == 2, "the change committed")
        await until(lambda: fan.revision(CLIP) == 2, "the change at the consumer", timeout=30)
        await until(lambda: service.status().redis_connected is False, "Redis seen down", timeout=30)
        # A consumer that must go through the hung Redis (JetStream off): one timeout, then the service.
        with capture_logs() as logs:
            slow = options(nats_url, subject_prefix, redis_url=url, jetstream=False, request_timeout=1.0)
            async with follower(slow) as fresh:
                assert fresh.revision(CLIP) == 2
                assert (
                    fresh.engine.stats["snapshots_redis"] == 0 and fresh.engine.stats["snapshots_nats"] >= 10
                )
        tripped = [e for e in logs if e["event"] == "bus_source_unavailable" and e["source"] == "redis"]
        assert len(tripped) == 1, tripped


async def test_clients_reconnect_with_jitter(nats_url: str) -> None:
    options = NatsOptions(url=nats_url, reconnect_time_wait=1.0)
    clients = [await connect_nats(options) for _ in range(4)]
    try:
        waits = {nc.options["reconnect_time_wait"] for nc in clients}
    finally:
        for nc in clients:
            await nc.close()
    assert len(waits) == 4 and all(0.5 <= wait <= 1.5 for wait in waits)


async def _states_are(store: RedisSnapshotStore, expected: dict[str, tuple[int, str]]) -> bool:
    return await store.get_states() == expected


async def _until_async(condition: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await anyio.sleep(0.05)


class _Children:
    """Consumer processes (tests/fleet_child.py), each holding several consumers."""

    def __init__(self, nats_url: str, prefix: str, redis_url: str, processes: int, per_process: int) -> None:
        script = Path(__file__).resolve().parent / "fleet_child.py"
        env = {**os.environ, "HORDE_MODEL_REFERENCE_LOG_LEVEL": "ERROR"}
        self.procs = [
            subprocess.Popen(
                [sys.executable, str(script), nats_url, prefix, redis_url, str(per_process), "nojs"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=env,
            )
            for _ in range(processes)
        ]
        for proc in self.procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    def histories(self, category: str) -> list[list[int]]:
        result: list[list[int]] = []
        for proc in self.procs:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(f"history {category}\n")
            proc.stdin.flush()
            result.extend(json.loads(proc.stdout.readline()))
        return result

    def close(self) -> None:
        for proc in self.procs:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait(timeout=10)


async def test_a_stopped_consumer_process_never_moves_back_with_a_stale_redis(
    golden_base: Path,
    nats_url: str,
    subject_prefix: str,
    own_redis: tuple[str, subprocess.Popen[bytes]],
) -> None:
    """The issue's reproduction: Redis stops taking writes (maxmemory 1), one of two consumer
    processes is stopped while three versions are written 1.5 s apart, then continued."""
    url, _ = own_redis
    clip = golden_base / "clip.json"
    original = clip.read_bytes()
    async with running_service(
        golden_base, nats_url=nats_url, subject_prefix=subject_prefix, redis_url=url, heartbeat_interval=0.3
    ) as service:
        children = await anyio.to_thread.run_sync(_Children, nats_url, subject_prefix, url, 2, 10)
        try:
            client = Redis.from_url(url)
            await client.config_set("maxmemory", 1)
            await client.config_set("maxmemory-policy", "noeviction")
            await client.aclose()
            os.kill(children.procs[0].pid, signal.SIGSTOP)
            for step in range(3):
                revision = service.revision(CLIP)
                clip.write_bytes(original.replace(b"ViT", f"ViT-{step}".encode()))
                await until(lambda revision=revision: service.revision(CLIP) > revision, f"version {step}")
                await anyio.sleep(1.5)
            os.kill(children.procs[0].pid, signal.SIGCONT)
            final = service.revision(CLIP)

            def reached() -> bool:
                return all(h and h[-1] == final for h in children.histories("clip"))

            await until(reached, "every consumer at the last revision", timeout=60)
            for history in children.histories("clip"):
                assert history == sorted(history), history
        finally:
            await anyio.to_thread.run_sync(children.close)
