"""Consumers kept in sync over real NATS (and real Redis): replay, deltas, gaps, faults."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from bus_harness import IMAGE, ChildConsumer, canonical_digest, consumer, running_service, write_catalog
from conftest import port_open, wait_for
from horde_model_reference.bus.connection import NatsOptions, connect_nats
from horde_model_reference.bus.consumer import BusConsumer
from horde_model_reference.bus.embedded import EmbeddedNatsServer, free_port
from horde_model_reference.bus.events import CategoryChanged, Heartbeat, Subjects, encode_event
from horde_model_reference.catalog import decode_catalog
from horde_model_reference.legacy import legacy_to_v2_json

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def _history(shared_data: Path) -> list[bytes]:
    """The 40 historical image catalogs as v2 bytes, oldest first (000-027 converted by us)."""
    versions = []
    for path in sorted((shared_data / "history" / "image").glob("*.json")):
        versions.append(legacy_to_v2_json(IMAGE, path.read_bytes())[0])
    return versions


def _distinct(versions: list[bytes]) -> list[bytes]:
    result: list[bytes] = []
    for data in versions:
        if not result or canonical_digest(result[-1]) != canonical_digest(data):
            result.append(data)
    return result


async def test_replay_40_versions_every_consumer_converges(
    tmp_path: Path, shared_data: Path, nats_url: str, redis_url: str, subject_prefix: str, redis_prefix: str
) -> None:
    versions = _distinct(_history(shared_data))
    base = tmp_path / "primary"
    base.mkdir()
    write_catalog(base, IMAGE, versions[0])
    async with (
        running_service(
            base,
            nats_url=nats_url,
            subject_prefix=subject_prefix,
            redis_url=redis_url,
            redis_key_prefix=redis_prefix,
        ) as service,
        consumer(nats_url, subject_prefix, redis_url=redis_url, redis_key_prefix=redis_prefix) as with_redis,
        consumer(nats_url, subject_prefix) as nats_only,
    ):
        child = await anyio.to_thread.run_sync(ChildConsumer, nats_url, subject_prefix, tmp_path, redis_url)
        try:
            first = service.revision(IMAGE)
            for index, data in enumerate(versions[1:], start=1):
                write_catalog(base, IMAGE, data)
                revision = await service.refresh(IMAGE)
                assert revision == first + index
                for each in (with_redis, nats_only):
                    await each.wait_revision(revision)
                    assert each.digest() == canonical_digest(data)
                answer = await anyio.to_thread.run_sync(child.ask, f"wait image_generation {revision}")
                assert answer == {"reached": True, "revision": revision}
            final = decode_catalog(IMAGE, versions[-1]).records
            for each in (with_redis, nats_only):
                assert dict(each.cache.snapshots[IMAGE.value].records) == final
                assert [n.new_revision for n in each.notices if n.category is IMAGE][
                    -len(versions) + 1 :
                ] == list(range(first + 1, first + len(versions)))
            state = await anyio.to_thread.run_sync(child.ask, "state")
            assert state["image_generation"][:2] == [
                first + len(versions) - 1,
                canonical_digest(versions[-1]),
            ]
            assert with_redis.engine.stats["patched"] > 0, "small changes should be patched from deltas"
        finally:
            await anyio.to_thread.run_sync(child.close)


async def test_late_consumer_is_consistent_from_its_first_read(
    tmp_path: Path, shared_data: Path, nats_url: str, subject_prefix: str
) -> None:
    base = tmp_path / "primary"
    base.mkdir()
    data = (shared_data / "golden-v2" / "stable_diffusion.json").read_bytes()
    write_catalog(base, IMAGE, data)
    async with running_service(base, nats_url=nats_url, subject_prefix=subject_prefix) as service:
        await service.refresh(IMAGE)
        async with consumer(nats_url, subject_prefix) as late:
            assert late.revision() == service.revision(IMAGE)
            assert late.digest() == canonical_digest(data)


async def test_duplicate_and_out_of_order_events_are_ignored(
    tmp_path: Path, shared_data: Path, nats_url: str, subject_prefix: str
) -> None:
    versions = sorted((shared_data / "history-v2" / "image").glob("*.json"))
    base = tmp_path / "primary"
    base.mkdir()
    write_catalog(base, IMAGE, versions[0].read_bytes())
    async with (
        running_service(base, nats_url=nats_url, subject_prefix=subject_prefix) as service,
        consumer(nats_url, subject_prefix) as follower,
    ):
        captured: list[bytes] = []
        nc = await connect_nats(NatsOptions(url=nats_url, name="test-injector"))

        async def capture(msg: object) -> None:
            captured.append(getattr(msg, "data", b""))

        await nc.subscribe(Subjects(subject_prefix).changed(IMAGE.value), cb=capture)
        await nc.flush()
        for version in versions[1:4]:
            write_catalog(base, IMAGE, version.read_bytes())
            await follower.wait_revision(await service.refresh(IMAGE))
        originals = list(captured)
        assert len(originals) == 3
        held = (follower.revision(), follower.digest())
        ignored = follower.engine.stats["ignored"]
        replays = [*originals, *reversed(originals), originals[0]]
        for data in replays:
            await nc.publish(Subjects(subject_prefix).changed(IMAGE.value), data)
        await nc.flush()
        with anyio.fail_after(60):  # every replay was seen (and ignored)
            while follower.engine.stats["ignored"] < ignored + len(replays):
                await anyio.sleep(0.02)
        assert (follower.revision(), follower.digest()) == held
        assert follower.engine.stats["ignored"] == ignored + len(replays)
        await nc.close()


async def test_gap_in_revisions_is_resynchronised_from_a_snapshot(
    tmp_path: Path, shared_data: Path, nats_url: str, subject_prefix: str
) -> None:
    versions = sorted((shared_data / "history-v2" / "image").glob("*.json"))
    base = tmp_path / "primary"
    base.mkdir()
    write_catalog(base, IMAGE, versions[0].read_bytes())
    async with (
        running_service(base, nats_url=nats_url, subject_prefix=subject_prefix) as service,
        consumer(nats_url, subject_prefix) as follower,
    ):
        write_catalog(base, IMAGE, versions[1].read_bytes())
        revision = await service.refresh(IMAGE)
        await follower.wait_revision(revision)
        fake = CategoryChanged(
            category=IMAGE.value, revision=revision + 5, digest="0" * 64, previous_digest=None, records=None
        )
        nc = await connect_nats(NatsOptions(url=nats_url, name="test-injector"))
        await nc.publish(Subjects(subject_prefix).changed(IMAGE.value), encode_event(fake))
        await nc.flush()
        await anyio.sleep(0.5)
        assert follower.revision() == revision, "a snapshot behind the event must not be taken as newer"
        assert follower.digest() == canonical_digest(versions[1].read_bytes())
        await nc.close()


async def test_nats_killed_and_restarted_mid_replay(
    tmp_path: Path,
    shared_data: Path,
    own_nats: EmbeddedNatsServer,
    redis_url: str,
    subject_prefix: str,
    redis_prefix: str,
) -> None:
    versions = [path.read_bytes() for path in sorted((shared_data / "history-v2" / "image").glob("*.json"))]
    base = tmp_path / "primary"
    base.mkdir()
    write_catalog(base, IMAGE, versions[0])
    url = own_nats.url
    async with (
        running_service(
            base,
            nats_url=url,
            subject_prefix=subject_prefix,
            redis_url=redis_url,
            redis_key_prefix=redis_prefix,
        ) as service,
        consumer(url, subject_prefix, redis_url=redis_url, redis_key_prefix=redis_prefix) as with_redis,
        consumer(url, subject_prefix) as nats_only,
    ):
        for data in versions[1:4]:
            write_catalog(base, IMAGE, data)
            revision = await service.refresh(IMAGE)
        await with_redis.wait_revision(revision)
        await anyio.to_thread.run_sync(own_nats.stop)
        for data in versions[4:8]:
            write_catalog(base, IMAGE, data)
            revision = await service.refresh(IMAGE)
        await anyio.to_thread.run_sync(own_nats.start)
        for each in (with_redis, nats_only):
            await each.wait_revision(revision, timeout=20)
            assert each.digest() == canonical_digest(versions[7])
        for data in versions[8:]:
            write_catalog(base, IMAGE, data)
            revision = await service.refresh(IMAGE)
        for each in (with_redis, nats_only):
            await each.wait_revision(revision)
            assert each.digest() == canonical_digest(versions[-1])


async def test_redis_stopped_and_restarted(
    tmp_path: Path, shared_data: Path, nats_url: str, subject_prefix: str
) -> None:
    binary = __import__("shutil").which("redis-server")
    if binary is None:
        pytest.skip("redis-server binary not installed: cannot stop and restart a Redis of the test's own")
    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)]

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: port_open(port), 60, f"redis-server on port {port}")
        return process

    redis_process = start()
    versions = [path.read_bytes() for path in sorted((shared_data / "history-v2" / "image").glob("*.json"))]
    base = tmp_path / "primary"
    base.mkdir()
    write_catalog(base, IMAGE, versions[0])
    try:
        async with (
            running_service(
                base, nats_url=nats_url, subject_prefix=subject_prefix, redis_url=redis_url
            ) as service,
            consumer(nats_url, subject_prefix, redis_url=redis_url) as follower,
        ):
            redis_process.terminate()
            redis_process.wait()
            with capture_logs():
                for data in versions[1:5]:
                    write_catalog(base, IMAGE, data)
                    revision = await service.refresh(IMAGE)
                await follower.wait_revision(revision)
            assert follower.digest() == canonical_digest(versions[4])
            redis_process = start()
            for data in versions[5:]:
                write_catalog(base, IMAGE, data)
                revision = await service.refresh(IMAGE)
            await follower.wait_revision(revision)
            assert follower.digest() == canonical_digest(versions[-1])
    finally:
        redis_process.terminate()
        redis_process.wait()


async def test_paused_consumer_process_catches_up(
    tmp_path: Path, shared_data: Path, nats_url: str, subject_prefix: str
) -> None:
    versions = [path.read_bytes() for path in sorted((shared_data / "history-v2" / "image").glob("*.json"))]
    base = tmp_path / "primary"
    base.mkdir()
    write_catalog(base, IMAGE, versions[0])
    async with running_service(base, nats_url=nats_url, subject_prefix=subject_prefix) as service:
        child = await anyio.to_thread.run_sync(ChildConsumer, nats_url, subject_prefix, tmp_path)
        try:
            child.process.send_signal(signal.SIGSTOP)
            for data in versions[1:6]:
                write_catalog(base, IMAGE, data)
                revision = await service.refresh(IMAGE)
            await anyio.sleep(1.0)
            child.process.send_signal(signal.SIGCONT)
            answer = await anyio.to_thread.run_sync(child.ask, f"wait image_generation {revision} 15")
            assert answer == {"reached": True, "revision": revision}
            state = await anyio.to_thread.run_sync(child.ask, "state")
            assert state["image_generation"][1] == canonical_digest(versions[5])
        finally:
            child.process.send_signal(signal.SIGCONT)
            await anyio.to_thread.run_sync(child.close)


async def test_corrupt_file_publishes_nothing_and_consumers_keep_last_good(
    tmp_path: Path, shared_data: Path, nats_url: str, subject_prefix: str
) -> None:
    good = (shared_data / "golden-v2" / "stable_diffusion.json").read_bytes()
    base = tmp_path / "primary"
    base.mkdir()
    write_catalog(base, IMAGE, good)
    async with (
        running_service(base, nats_url=nats_url, subject_prefix=subject_prefix) as service,
        consumer(nats_url, subject_prefix) as follower,
    ):
        revision = service.revision(IMAGE)
        await follower.wait_revision(revision)
        failures = service.status().categories[IMAGE.value].fetch_failures
        write_catalog(base, IMAGE, b'{"half a file": {"name": ')
        with anyio.fail_after(60):  # the service has read (and rejected) the corrupt file
            while service.status().categories[IMAGE.value].fetch_failures == failures:
                await anyio.sleep(0.02)
        assert "cannot be decoded" in (service.status().categories[IMAGE.value].last_error or "")
        assert service.revision(IMAGE) == revision
        assert follower.revision() == revision
        assert follower.digest() == canonical_digest(good)


class _LossyConsumer(BusConsumer):
    """A consumer that never sees change events: only heartbeats can tell it about changes."""

    async def _on_changed(self, event: CategoryChanged) -> None:
        return None


async def test_lost_events_are_recovered_from_the_heartbeat(
    tmp_path: Path, shared_data: Path, nats_url: str, subject_prefix: str
) -> None:
    versions = [path.read_bytes() for path in sorted((shared_data / "history-v2" / "image").glob("*.json"))]
    base = tmp_path / "primary"
    base.mkdir()
    write_catalog(base, IMAGE, versions[0])
    async with (
        running_service(base, nats_url=nats_url, subject_prefix=subject_prefix) as service,
        consumer(nats_url, subject_prefix, engine_class=_LossyConsumer) as lossy,
    ):
        write_catalog(base, IMAGE, versions[1])
        await lossy.wait_revision(await service.refresh(IMAGE), timeout=5)
        assert lossy.digest() == canonical_digest(versions[1])


class _FlakyConsumer(BusConsumer):
    """A consumer whose heartbeat handling breaks once with an unexpected error."""

    broke = False

    async def _on_heartbeat(self, heartbeat: Heartbeat) -> None:
        if not self.broke:
            self.broke = True
            raise RuntimeError("unexpected bug while handling a heartbeat")
        await super()._on_heartbeat(heartbeat)


async def test_an_unexpected_error_does_not_stop_the_sync(
    tmp_path: Path, shared_data: Path, nats_url: str, subject_prefix: str
) -> None:
    versions = [path.read_bytes() for path in sorted((shared_data / "history-v2" / "image").glob("*.json"))]
    base = tmp_path / "primary"
    base.mkdir()
    write_catalog(base, IMAGE, versions[0])
    with capture_logs() as logs:
        async with (
            running_service(base, nats_url=nats_url, subject_prefix=subject_prefix) as service,
            consumer(nats_url, subject_prefix, engine_class=_FlakyConsumer) as flaky,
        ):
            engine = flaky.engine
            assert isinstance(engine, _FlakyConsumer)
            with anyio.fail_after(60):
                while not engine.broke:
                    await anyio.sleep(0.01)
            write_catalog(base, IMAGE, versions[1])
            await flaky.wait_revision(await service.refresh(IMAGE), timeout=5)
    assert any(entry["event"] == "bus_item_failed" for entry in logs)
