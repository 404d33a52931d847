"""Readiness and metrics from the supervisor's per-category state and counters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import pytest

from horde_model_reference.bus.events import CategoryHealth, HealthReply
from horde_model_reference.http import StaticSnapshotSource, create_app

pytestmark = pytest.mark.anyio


class _CountingSource(StaticSnapshotSource):
    """clip loaded with counters; blip still loading."""

    def status(self) -> HealthReply:
        status = super().status()
        clip = msgspec.structs.replace(
            status.categories["clip"],
            events_published=3,
            publish_failures=1,
            fetch_count=4,
            fetch_seconds_total=0.5,
            last_fetch_seconds=0.125,
            fetch_failures=2,
            redis_write_failures=5,
        )
        blip = CategoryHealth(revision=0, digest=None, state="loading")
        return msgspec.structs.replace(status, categories={"clip": clip, "blip": blip})


@pytest.fixture
async def client(shared_data: Path) -> AsyncIterator[httpx.AsyncClient]:
    source = _CountingSource.from_directory(shared_data / "golden-v2", categories=["clip", "blip"])
    transport = httpx.ASGITransport(create_app(source))
    async with httpx.AsyncClient(transport=transport, base_url="http://hmr") as http:
        yield http


async def test_a_loading_category_is_not_ready(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert body["categories"]["blip"] == {"state": "loading", "revision": 0, "last_error": None}
    assert body["categories"]["clip"]["state"] == "loaded"


async def test_metrics_export_states_and_counters(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    for line in (
        'hmr_category_state{category="blip",state="loading"} 1',
        'hmr_category_state{category="blip",state="loaded"} 0',
        'hmr_category_state{category="clip",state="loaded"} 1',
        'hmr_category_events_published_total{category="clip"} 3',
        'hmr_category_publish_failures_total{category="clip"} 1',
        'hmr_category_fetch_failures_total{category="clip"} 2',
        'hmr_category_redis_write_failures_total{category="clip"} 5',
        "# TYPE hmr_category_fetch_duration_seconds summary",
        'hmr_category_fetch_duration_seconds_sum{category="clip"} 0.5',
        'hmr_category_fetch_duration_seconds_count{category="clip"} 4',
        'hmr_category_last_fetch_duration_seconds{category="clip"} 0.125',
    ):
        assert line in text.splitlines(), line
    assert 'hmr_category_last_fetch_duration_seconds{category="blip"}' not in text
