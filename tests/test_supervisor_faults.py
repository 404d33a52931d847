"""`hmr serve` under faults: crashing and hanging actors, NATS and Redis outages, SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import msgspec
import nats
import nats.errors
import pytest
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from structlog.testing import capture_logs

from horde_model_reference.backends.base import CategoryPayload
from horde_model_reference.backends.filesystem import FileSystemBackend
from horde_model_reference.bus.embedded import EmbeddedNatsServer, free_port
from horde_model_reference.bus.events import CategoryChanged, Heartbeat, Snapshot, decode_event
from horde_model_reference.bus.snapshot_store import RedisSnapshotStore
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.supervisor import ServiceConfig, run_service
from horde_model_reference.supervisor.testing import RawDirectoryBackend, running_service

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def _catalog(record_type: str, *names: str, note: str = "") -> bytes:
    records = {
        n: {"record_type": record_type, "name": n, "description": f"{n} {note}".strip()} for n in names
    }
    return msgspec.json.format(msgspec.json.encode(records), indent=2)


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _config(tmp_path: Path, nats_url: str | None, subject_prefix: str, **overrides: Any) -> ServiceConfig:
    settings: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "nats_url": nats_url,
        "subject_prefix": subject_prefix,
        "poll_interval": 0.05,
        "heartbeat_interval": 0.5,
        "restart_backoff": 0.05,
        "restart_backoff_max": 0.2,
        "categories": ("clip", "blip"),
    } | overrides
    return ServiceConfig(**settings)


async def _next(sub: Subscription, wait: float = 60.0) -> Any:
    return decode_event((await sub.next_msg(timeout=wait)).data)


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url, connect_timeout=3)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def base(tmp_path: Path) -> Path:
    path = tmp_path / "base"
    path.mkdir()
    _write(path / "clip.json", _catalog("clip", "c1", "c2"))
    _write(path / "blip.json", _catalog("blip", "b1"))
    return path


class _FlakyBackend(RawDirectoryBackend):
    """Raises for some categories: `failures[category]` times, or forever when None; may hang."""

    def __init__(self, base_path: Path, failures: dict[str, int | None], *, hang: bool = False) -> None:
        super().__init__(base_path)
        self.failures = dict(failures)
        self.hang = hang

    async def fetch_category(
        self, category: MODEL_REFERENCE_CATEGORY, *, force_refresh: bool = False
    ) -> CategoryPayload | None:
        if category.value in self.failures:
            remaining = self.failures[category.value]
            if remaining is None or remaining > 0:
                if remaining is not None:
                    self.failures[category.value] = remaining - 1
                if self.hang:
                    await anyio.sleep_forever()
                raise RuntimeError(f"boom in {category.value}")
        return await super().fetch_category(category, force_refresh=force_refresh)


# -- crashing actors ----------------------------------------------------------------------------


async def test_an_actor_that_always_raises_is_restarted_and_the_others_keep_publishing(
    tmp_path: Path, base: Path, nc: Client, nats_url: str, subject_prefix: str
) -> None:
    sub = await nc.subscribe(f"{subject_prefix}.changed.>")
    await nc.flush()
    backend = _FlakyBackend(base, {"clip": None})
    with capture_logs() as logs:
        async with running_service(_config(tmp_path, nats_url, subject_prefix), backend) as service:
            first = await _next(sub)
            assert (first.category, first.revision) == ("blip", 1)
            with anyio.fail_after(60):  # clip crashed and was restarted a few times
                while service.status().actor_restarts.get("clip", 0) < 3:
                    await anyio.sleep(0.02)
            _write(base / "blip.json", _catalog("blip", "b1", "b2"))
            second = await _next(sub)
            assert (second.category, second.revision, second.added) == ("blip", 2, ["b2"])
            health = service.status()
            assert health.actor_restarts["clip"] >= 3 and health.actor_restarts["blip"] == 0
            assert health.categories["clip"].last_error == "RuntimeError: boom in clip"
            assert health.categories["clip"].digest is None
    crashes = [e for e in logs if e["event"] == "actor_crashed"]
    assert crashes and all(e["category"] == "clip" for e in crashes)
    assert isinstance(crashes[0]["exc_info"], RuntimeError)  # unexpected errors carry the traceback
    delays = [e["restart_in"] for e in crashes]
    assert max(delays) <= 0.2 and delays[1] >= delays[0] * 0.5  # exponential with jitter, capped


async def test_an_actor_recovers_after_transient_crashes(
    tmp_path: Path, base: Path, nc: Client, nats_url: str, subject_prefix: str
) -> None:
    sub = await nc.subscribe(f"{subject_prefix}.changed.clip")
    await nc.flush()
    backend = _FlakyBackend(base, {"clip": 3})
    async with running_service(_config(tmp_path, nats_url, subject_prefix), backend) as service:
        event = await _next(sub)
        assert (event.revision, event.added) == (1, ["c1", "c2"])
        assert service.status().actor_restarts["clip"] == 3


async def test_a_hanging_fetch_is_timed_out_and_restarted(
    tmp_path: Path, base: Path, nc: Client, nats_url: str, subject_prefix: str
) -> None:
    sub = await nc.subscribe(f"{subject_prefix}.changed.>")
    await nc.flush()
    backend = _FlakyBackend(base, {"clip": 2}, hang=True)
    config = _config(tmp_path, nats_url, subject_prefix, fetch_timeout=0.2)
    async with running_service(config, backend) as service:
        seen = {(e.category, e.revision) for e in [await _next(sub), await _next(sub)]}
        assert seen == {("blip", 1), ("clip", 1)}
        clip = service.status().categories["clip"]
        assert clip.restarts == 2 and clip.last_error is not None and "timed out" in clip.last_error


# -- shutdown -----------------------------------------------------------------------------------


class _CancelAfterFetch(RawDirectoryBackend):
    """Cancels the service right after returning changed bytes: the change is in flight."""

    scope: anyio.CancelScope | None = None
    armed = False

    async def fetch_category(
        self, category: MODEL_REFERENCE_CATEGORY, *, force_refresh: bool = False
    ) -> CategoryPayload | None:
        payload = await super().fetch_category(category, force_refresh=force_refresh)
        if self.armed and category.value == "clip" and self.scope is not None:
            self.scope.cancel()
        return payload


async def test_cancellation_drains_the_in_flight_change_and_returns_cleanly(
    tmp_path: Path, base: Path, nc: Client, nats_url: str, subject_prefix: str
) -> None:
    sub = await nc.subscribe(f"{subject_prefix}.changed.clip")
    await nc.flush()
    backend = _CancelAfterFetch(base)
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            backend.scope = tg.cancel_scope
            config = _config(tmp_path, nats_url, subject_prefix)
            service = await tg.start(partial(run_service, handle_signals=False), config, backend)
            assert (await _next(sub)).revision == 1
            backend.armed = True
            _write(base / "clip.json", _catalog("clip", "c1", "c2", "c3"))
    event = await _next(sub, wait=2)  # published and flushed although the service was stopping
    assert (event.revision, event.added) == (2, ["c3"])
    assert service.status().nats_connected is False
    assert [e["event"] for e in logs if e["event"] in ("category_changed", "service_stopped")][-2:] == [
        "category_changed",
        "service_stopped",
    ]


# Logging is configured before the service modules are imported: get_logger binds at import time.
_SERVE_SCRIPT = """
import sys, anyio
from horde_model_reference.logs import configure_logging
configure_logging(json=True, level="INFO")
from horde_model_reference.backends.filesystem import FileSystemBackend
from horde_model_reference.supervisor import ServiceConfig, run_service
config = ServiceConfig(data_dir=sys.argv[1], nats_url=None, subject_prefix=sys.argv[3],
                       categories=("clip", "blip"), poll_interval=0.05, heartbeat_interval=0.2)
anyio.run(run_service, config, FileSystemBackend(sys.argv[2]))
"""


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.fixture
def serve_process(
    tmp_path: Path, base: Path, subject_prefix: str
) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    args = [sys.executable, "-c", _SERVE_SCRIPT, str(tmp_path / "data"), str(base), subject_prefix]
    process = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    assert process.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(process.stderr or []), daemon=True)
    reader.start()
    try:
        yield process, lines
    finally:
        if process.poll() is None:  # SIGTERM first, so the embedded nats-server is stopped too
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


async def test_sigterm_drains_stops_the_embedded_nats_and_exits_zero(
    base: Path, subject_prefix: str, serve_process: tuple[subprocess.Popen[str], list[str]]
) -> None:
    process, lines = serve_process
    ready: dict[str, Any] | None = None
    with anyio.fail_after(30):
        while ready is None:
            assert process.poll() is None, "".join(lines)
            found = [json.loads(line) for line in list(lines) if '"service_ready"' in line]
            ready = found[0] if found else None
            await anyio.sleep(0.05)
    url = ready["nats_url"]
    port = int(url.rsplit(":", 1)[1])
    client = await nats.connect(url, connect_timeout=3)
    try:
        beat = await client.subscribe(f"{subject_prefix}.heartbeat")
        changed = await client.subscribe(f"{subject_prefix}.changed.clip")
        assert isinstance(await _next(beat), Heartbeat)
        _write(base / "clip.json", _catalog("clip", "c1", "c2", "c9"))
        event = await _next(changed)
        assert isinstance(event, CategoryChanged) and (event.revision, event.added) == (2, ["c9"])
    finally:
        await client.close()

    process.send_signal(signal.SIGTERM)
    returncode = await anyio.to_thread.run_sync(partial(process.wait, timeout=20))
    assert returncode == 0, "".join(lines)
    events = [json.loads(line).get("event") for line in lines if line.startswith("{")]
    assert "signal_received" in events and "service_stopped" in events and "embedded_nats_stopped" in events
    assert not _port_open(port)


async def test_embedded_nats_is_started_when_no_url_is_configured(
    tmp_path: Path, base: Path, subject_prefix: str
) -> None:
    config = _config(tmp_path, None, subject_prefix)
    async with running_service(config, FileSystemBackend(base)) as service:
        url = service.nats_url
        assert url is not None and service.status().embedded_nats is True
        assert (tmp_path / "data" / "nats").is_dir()
        client = await nats.connect(url, connect_timeout=3)
        try:
            reply = decode_event(
                (await client.request(f"{subject_prefix}.snapshot.blip", b"", timeout=3)).data
            )
            assert isinstance(reply, Snapshot) and reply.revision == 1
        finally:
            await client.close()
    assert not _port_open(int(url.rsplit(":", 1)[1]))


# -- NATS outage --------------------------------------------------------------------------------


async def test_nats_killed_and_restarted_the_service_reconnects_and_keeps_publishing(
    tmp_path: Path, base: Path, own_nats: EmbeddedNatsServer, subject_prefix: str
) -> None:
    reconnected = anyio.Event()

    async def on_reconnect() -> None:
        reconnected.set()

    client = await nats.connect(
        own_nats.url, max_reconnect_attempts=-1, reconnect_time_wait=0.05, reconnected_cb=on_reconnect
    )
    # A long heartbeat interval: a heartbeat soon after the restart is the one sent on reconnect.
    config = _config(tmp_path, own_nats.url, subject_prefix, nats_reconnect_wait=0.5, heartbeat_interval=30.0)
    try:
        changed = await client.subscribe(f"{subject_prefix}.changed.clip")
        beats = await client.subscribe(f"{subject_prefix}.heartbeat")
        await client.flush()
        with capture_logs() as logs:
            async with running_service(config, FileSystemBackend(base)) as service:
                assert (await _next(changed)).revision == 1
                await beats.next_msg(timeout=2)  # the first heartbeat, sent at startup

                await anyio.to_thread.run_sync(own_nats.stop)
                _write(base / "clip.json", _catalog("clip", "c1", "c2", "c3"))  # committed while NATS is down
                with anyio.fail_after(60):
                    while service.revision("clip") < 2:  # state of another task
                        await anyio.sleep(0.02)
                assert service.status().nats_connected is False
                await anyio.to_thread.run_sync(own_nats.start)

                with anyio.fail_after(10):
                    await reconnected.wait()
                beat = await _next(beats, wait=5)  # sent on reconnect: consumers resync from it
                assert isinstance(beat, Heartbeat) and beat.categories["clip"].revision == 2
                assert service.status().nats_connected is True

                _write(base / "clip.json", _catalog("clip", "c1", "c2", "c3", "c4"))
                event = await _next(changed, wait=5)
                while event.revision == 2:  # the event buffered during the outage may arrive too
                    event = await _next(changed, wait=5)
                assert (event.revision, event.added) == (3, ["c4"])
    finally:
        await client.close()
    names = [e["event"] for e in logs]
    assert "nats_disconnected" in names and "nats_reconnected" in names


# -- Redis outage -------------------------------------------------------------------------------


async def test_unreachable_redis_keeps_publishing_on_nats_and_logs_the_error(
    tmp_path: Path, base: Path, nc: Client, nats_url: str, subject_prefix: str
) -> None:
    sub = await nc.subscribe(f"{subject_prefix}.changed.clip")
    await nc.flush()
    config = _config(
        tmp_path, nats_url, subject_prefix, redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout=0.3
    )
    with capture_logs() as logs:
        async with running_service(config, FileSystemBackend(base)) as service:
            assert (await _next(sub)).revision == 1
            _write(base / "clip.json", _catalog("clip", "c1", "c2", "c3"))
            assert (await _next(sub)).revision == 2
            health = service.status()
            assert health.redis_connected is False and health.nats_connected is True
            reply = decode_event((await nc.request(f"{subject_prefix}.snapshot.clip", b"", timeout=3)).data)
            assert isinstance(reply, Snapshot) and reply.revision == 2  # snapshots still served over NATS
    names = {e["event"] for e in logs if e["log_level"] == "error"}
    assert {"redis_unavailable_at_start", "redis_snapshot_write_failed"} <= names


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[int, Any]]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server binary to stop and restart")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)]
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        processes.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 30  # a ceiling for a loaded machine
        while not _port_open(port):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)

    def stop() -> None:
        processes[-1].kill()
        processes[-1].wait(timeout=5)

    start()
    try:
        yield port, type("RedisControl", (), {"start": staticmethod(start), "stop": staticmethod(stop)})
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=5)


async def test_redis_stopped_and_restarted_gets_the_current_snapshot_again(
    tmp_path: Path, base: Path, nc: Client, nats_url: str, subject_prefix: str, own_redis: tuple[int, Any]
) -> None:
    port, control = own_redis
    url = f"redis://127.0.0.1:{port}/0"
    sub = await nc.subscribe(f"{subject_prefix}.changed.clip")
    await nc.flush()
    config = _config(tmp_path, nats_url, subject_prefix, redis_url=url, redis_timeout=0.3)
    store = RedisSnapshotStore(
        url, key_prefix=config.redis_key_prefix, socket_timeout=0.3, connect_timeout=0.3
    )
    try:
        async with running_service(config, FileSystemBackend(base)) as service:
            assert (await _next(sub)).revision == 1
            await anyio.to_thread.run_sync(control.stop)
            _write(base / "clip.json", _catalog("clip", "c1", "c2", "c3"))
            assert (await _next(sub)).revision == 2  # published although Redis is down
            assert service.status().redis_connected is False
            await anyio.to_thread.run_sync(control.start)  # empty: it kept nothing
            with anyio.fail_after(60):
                while (stored := await _get_or_none(store, "clip")) is None or stored.revision != 2:
                    await anyio.sleep(0.1)
            assert stored.data == (base / "clip.json").read_bytes()
            assert service.status().redis_connected is True
    finally:
        await store.aclose()


async def _get_or_none(store: RedisSnapshotStore, category: str) -> Any:
    try:
        return await store.get(category)
    except Exception:  # Redis is still starting
        return None
