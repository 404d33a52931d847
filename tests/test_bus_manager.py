"""ModelReferenceManager following the bus inside an async application (on the application's loop)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from bus_harness import IMAGE, canonical_digest, running_service, write_catalog
from horde_model_reference import ChangeNotice, ModelReferenceManager, PrefetchStrategy
from horde_model_reference.settings import HordeModelReferenceSettings, NatsSettings

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@pytest.fixture(autouse=True)
def _reset_singleton() -> Iterator[None]:
    ModelReferenceManager.reset()
    yield
    ModelReferenceManager.reset()


def _settings(subject_prefix: str) -> HordeModelReferenceSettings:
    return HordeModelReferenceSettings(nats=NatsSettings(subject_prefix=subject_prefix))


async def test_async_application_runs_the_sync_on_its_own_loop(
    tmp_path: Path, shared_data: Path, nats_url: str, subject_prefix: str
) -> None:
    versions = sorted((shared_data / "history-v2" / "image").glob("*.json"))
    base = tmp_path / "primary"
    shutil.copytree(shared_data / "golden-v2", base)
    write_catalog(base, IMAGE, versions[0].read_bytes())
    notices: list[tuple[ChangeNotice, str]] = []
    async with running_service(base, nats_url=nats_url, subject_prefix=subject_prefix) as service:
        manager = ModelReferenceManager(
            nats_url=nats_url,
            prefetch_strategy=PrefetchStrategy.LAZY,
            settings=_settings(subject_prefix),
            start_bus=False,
        )

        async def on_change(notice: ChangeNotice) -> None:
            notices.append((notice, threading.current_thread().name))

        def broken(notice: ChangeNotice) -> None:
            raise RuntimeError("a consumer bug")

        manager.on_change(broken)
        manager.on_change(on_change)
        async with anyio.create_task_group() as tg:
            await tg.start(manager.run_bus)
            assert manager.revision(IMAGE) == service.revision(IMAGE)
            first = await manager.get_model_names_async(IMAGE)
            assert len(first) > 100
            with capture_logs() as logs:
                write_catalog(base, IMAGE, versions[1].read_bytes())
                revision = await service.refresh(IMAGE)
                with anyio.fail_after(60):
                    while manager.revision(IMAGE) != revision:
                        await anyio.sleep(0.005)
            snapshot = manager.snapshot(IMAGE)
            assert snapshot is not None and snapshot.digest == canonical_digest(versions[1].read_bytes())
            assert any(entry["event"] == "on_change_callback_failed" for entry in logs)
            with pytest.raises(RuntimeError, match="already running"):
                await manager.run_bus()
            tg.cancel_scope.cancel()
    changes = [notice for notice, _ in notices if notice.new_revision == revision]
    assert changes and changes[0].old_revision == revision - 1
    assert {thread for _, thread in notices} == {threading.current_thread().name}


async def test_run_bus_without_a_nats_url_is_a_clear_error(tmp_path: Path) -> None:
    manager = ModelReferenceManager(
        base_path=tmp_path, prefetch_strategy=PrefetchStrategy.LAZY, nats_url=None
    )
    with pytest.raises(RuntimeError, match="no NATS URL"):
        await manager.run_bus()
