"""The supervisor's health counters and category states (for `/metrics`, `/api/ready`, `hmr status`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from horde_model_reference.backends.base import CategoryPayload
from horde_model_reference.bus.embedded import free_port
from horde_model_reference.bus.events import CategoryHealth, Subjects
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.supervisor import ServiceConfig
from horde_model_reference.supervisor.actor import ActorContext, CategoryActor, CategorySlot
from horde_model_reference.supervisor.service import Supervisor
from horde_model_reference.supervisor.state import StateFile
from horde_model_reference.supervisor.testing import RawDirectoryBackend, running_service

pytestmark = pytest.mark.anyio

CLIP = MODEL_REFERENCE_CATEGORY.clip


def _catalog(*names: str) -> bytes:
    return msgspec.json.encode({n: {"record_type": "clip", "name": n} for n in names})


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _config(tmp_path: Path, nats_url: str, subject_prefix: str, **overrides: Any) -> ServiceConfig:
    settings: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "nats_url": nats_url,
        "subject_prefix": subject_prefix,
        "poll_interval": 0.05,
        "restart_backoff": 0.05,
        "restart_backoff_max": 0.1,
        "categories": ("clip", "blip", "esrgan"),
    } | overrides
    return ServiceConfig(**settings)


async def _until(service: Supervisor, category: str, check: Any, wait: float = 60.0) -> CategoryHealth:
    """Poll the health until `check` holds for what the test asserts (a ceiling, not a speed check)."""
    with anyio.fail_after(wait):
        while not check(health := service.status().categories[category]):
            await anyio.sleep(0.02)
    return health


class _FailingBackend(RawDirectoryBackend):
    """Every fetch of clip raises."""

    async def fetch_category(
        self, category: MODEL_REFERENCE_CATEGORY, *, force_refresh: bool = False
    ) -> CategoryPayload | None:
        if category is CLIP:
            raise RuntimeError("disk on fire")
        return await super().fetch_category(category, force_refresh=force_refresh)


@pytest.mark.integration
async def test_states_and_counters_of_a_running_service(
    tmp_path: Path, nats_url: str, subject_prefix: str
) -> None:
    base = tmp_path / "base"
    base.mkdir()
    _write(base / "clip.json", _catalog("c1"))
    async with running_service(
        _config(tmp_path, nats_url, subject_prefix), RawDirectoryBackend(base)
    ) as service:
        health = service.status().categories
        assert {name: h.state for name, h in health.items()} == {
            "clip": "loaded",
            "blip": "absent",
            "esrgan": "absent",
        }
        clip = health["clip"]
        assert (clip.events_published, clip.publish_failures, clip.fetch_failures) == (1, 0, 0)
        assert clip.fetch_count >= 1 and clip.last_fetch_seconds is not None
        assert clip.fetch_seconds_total > 0 and clip.redis_write_failures == 0

        _write(base / "clip.json", _catalog("c1", "c2"))
        # the revision is held (and served) before the stores are written and the event published
        clip = await _until(service, "clip", lambda h: h.revision == 2 and h.events_published == 2)

        _write(base / "esrgan.json", b"[1, 2")  # never loaded, and its catalog is rejected
        await _until(service, "esrgan", lambda h: h.state == "failed")
        _write(base / "esrgan.json", msgspec.json.encode({"e1": {"record_type": "esrgan", "name": "e1"}}))
        await _until(service, "esrgan", lambda h: h.state == "loaded")
        (base / "esrgan.json").unlink()
        assert service.status().categories["esrgan"].state == "loaded"  # the last good snapshot stays


@pytest.mark.integration
async def test_fetch_failures_make_a_never_loaded_category_failed(
    tmp_path: Path, nats_url: str, subject_prefix: str
) -> None:
    base = tmp_path / "base"
    base.mkdir()
    config = _config(tmp_path, nats_url, subject_prefix, categories=("clip", "blip"))
    async with running_service(config, _FailingBackend(base)) as service:
        clip = await _until(service, "clip", lambda h: h.fetch_failures >= 2)
        assert clip.state == "failed" and clip.fetch_count >= clip.fetch_failures
        assert clip.last_fetch_seconds is not None and clip.events_published == 0
        assert service.status().categories["blip"].state == "absent"


@pytest.mark.integration
async def test_redis_write_failures_are_counted(tmp_path: Path, nats_url: str, subject_prefix: str) -> None:
    base = tmp_path / "base"
    base.mkdir()
    _write(base / "clip.json", _catalog("c1"))
    config = _config(
        tmp_path,
        nats_url,
        subject_prefix,
        categories=("clip",),
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        redis_timeout=0.3,
    )
    async with running_service(config, RawDirectoryBackend(base)) as service:
        _write(base / "clip.json", _catalog("c1", "c2"))
        clip = await _until(
            service,
            "clip",
            lambda h: h.revision == 2 and h.events_published == 2 and h.redis_write_failures >= 1,
        )
        assert clip.state == "loaded" and clip.revision == 2


async def test_a_failed_publish_is_counted_and_loading_until_the_first_pass(tmp_path: Path) -> None:
    _write(tmp_path / "clip.json", _catalog("c1"))
    published: list[str] = []

    async def publish(subject: str, payload: bytes) -> bool:
        published.append(subject)
        return False

    context = ActorContext(
        backend=RawDirectoryBackend(tmp_path),
        state=StateFile(tmp_path / "data"),
        store=None,
        subjects=Subjects("hmr.test"),
        service_id="s",
        poll_interval=1.0,
        fetch_timeout=5.0,
        delta_max_bytes=1024,
        publish=publish,
        redis_result=lambda ok: None,
        redis_down=lambda: False,
    )
    slot = CategorySlot(CLIP)
    assert slot.state == "loading" and slot.health().state == "loading"
    await CategoryActor(slot, context).run_pass()
    health = slot.health()
    assert published == ["hmr.test.changed.clip"]
    assert (health.state, health.events_published, health.publish_failures) == ("loaded", 0, 1)
    assert health.fetch_count == 1 and health.fetch_failures == 0
