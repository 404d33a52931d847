"""Recovery paths of the consumer sync: a connection closed for good, a service that started over,
a broken setup, a stopped background sync, and a cancelled warm-up."""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from bus_harness import IMAGE, canonical_digest, consumer, running_service, write_catalog
from horde_model_reference.bus.connection import NatsAuth
from horde_model_reference.bus.consumer import BusConsumer, BusOptions
from horde_model_reference.cache import ChangeNotice, ReferenceCache
from horde_model_reference.errors import BackendError
from horde_model_reference.manager.prefetch import DeferredPrefetchHandle
from horde_model_reference.supervisor import sole_exception

pytestmark = [pytest.mark.anyio]


async def _no_dispatch(notice: ChangeNotice) -> None:
    return None


def _versions(shared_data: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted((shared_data / "history-v2" / "image").glob("*.json"))]


@pytest.mark.integration
async def test_a_connection_closed_for_good_is_reopened(
    tmp_path: Path, shared_data: Path, nats_url: str, subject_prefix: str
) -> None:
    versions = _versions(shared_data)
    base = tmp_path / "primary"
    base.mkdir()
    write_catalog(base, IMAGE, versions[0])
    async with (
        running_service(base, nats_url=nats_url, subject_prefix=subject_prefix) as service,
        consumer(nats_url, subject_prefix) as follower,
    ):
        client = follower.engine._nc
        assert client is not None
        with capture_logs() as logs:
            await client.close()  # as nats-py does after a fatal server error (revoked credentials, ...)
            write_catalog(base, IMAGE, versions[1])
            revision = await service.refresh(IMAGE)
            await follower.wait_revision(revision, timeout=15)
        assert follower.digest() == canonical_digest(versions[1])
        assert any(entry["event"] == "nats_closed_unexpectedly" for entry in logs)


@pytest.mark.integration
async def test_a_service_that_started_over_is_followed(
    tmp_path: Path, shared_data: Path, nats_url: str, subject_prefix: str
) -> None:
    versions = _versions(shared_data)
    base = tmp_path / "primary"
    base.mkdir()
    write_catalog(base, IMAGE, versions[0])
    async with consumer(nats_url, subject_prefix) as follower:
        async with running_service(base, nats_url=nats_url, subject_prefix=subject_prefix) as service:
            for data in versions[1:4]:
                write_catalog(base, IMAGE, data)
                await follower.wait_revision(await service.refresh(IMAGE))
        held = follower.revision()
        assert held is not None and held >= 4
        shutil.rmtree(base / ".hmr")  # the service lost its state (no Redis to remember the revision)
        write_catalog(base, IMAGE, versions[5])
        with capture_logs() as logs:
            async with running_service(base, nats_url=nats_url, subject_prefix=subject_prefix):
                with anyio.fail_after(10):
                    while follower.digest() != canonical_digest(versions[5]):
                        await anyio.sleep(0.02)
        assert follower.revision() == 1
        assert any(entry["event"] == "bus_revision_went_back" for entry in logs)


async def test_a_broken_setup_is_logged_and_readers_are_not_held_forever(nats_url: str) -> None:
    options = BusOptions(
        nats_url=nats_url,
        ready_timeout=0.5,
        retry_interval=0.1,
        auth=NatsAuth(tls_ca_file="/nonexistent/ca.pem"),
    )
    engine = BusConsumer(ReferenceCache(), options, dispatch=_no_dispatch)
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            with anyio.fail_after(60):
                await tg.start(engine.run)
            assert engine.ready and not engine.connected
            tg.cancel_scope.cancel()
    assert any(entry["event"] == "bus_connect_failed" for entry in logs)


def test_stop_waits_for_the_background_sync_to_end(nats_url: str) -> None:
    engine = BusConsumer(ReferenceCache(), BusOptions(nats_url=nats_url), dispatch=_no_dispatch)
    engine.start_in_background()
    assert engine.wait_ready(10)
    engine.stop()
    assert not engine._running and not engine.connected


async def test_a_cancelled_warm_up_can_run_again() -> None:
    runs: list[str] = []

    async def warm(force: bool) -> None:
        runs.append("start")
        await anyio.sleep(0.3)
        runs.append("done")

    handle = DeferredPrefetchHandle(warm)
    with anyio.move_on_after(0.05):
        await handle
    assert runs == ["start"] and not handle.done
    await handle
    assert runs == ["start", "start", "done"] and handle.done
    await handle.run_async()
    assert runs.count("done") == 1


@pytest.mark.integration
async def test_the_service_stops_with_an_error_when_its_connection_is_closed_for_good(
    tmp_path: Path, shared_data: Path, nats_url: str, subject_prefix: str
) -> None:
    base = tmp_path / "primary"
    base.mkdir()
    write_catalog(base, IMAGE, _versions(shared_data)[0])
    with pytest.raises(BaseExceptionGroup) as info:
        async with running_service(base, nats_url=nats_url, subject_prefix=subject_prefix) as service:
            await service.nats_link.client.close()
            await anyio.sleep(60)  # a ceiling: the service's error ends the block long before
    error = sole_exception(info.value)
    assert isinstance(error, BackendError) and "closed for good" in str(error)
