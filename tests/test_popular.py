"""Popularity from the AI-Horde API, against a local fake of its endpoints (a real HTTP server).

Covers the ranking (worker counts, usage, workers, text backend variants), the TTL cache, request
sharing, and the circuit breaker: an outage (server down or hanging) costs one timeout, then
every call is answered at once (from a stale copy when there is one).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from fixtures.horde_api.fake_horde import FakeHorde
from horde_model_reference.catalog import decode_catalog
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.integrations import (
    CircuitBreaker,
    HordeApiClient,
    HordeApiUnavailable,
    PopularityMixin,
    PopularityService,
)
from horde_model_reference.records import GenericModelRecord

IMAGE = MODEL_REFERENCE_CATEGORY.image_generation
TEXT = MODEL_REFERENCE_CATEGORY.text_generation


@pytest.fixture
def horde() -> Iterator[FakeHorde]:
    with FakeHorde() as fake:
        yield fake


@pytest.fixture(scope="module")
def image_records(shared_data: Path) -> dict[str, GenericModelRecord]:
    return decode_catalog(IMAGE, (shared_data / "golden-v2" / "stable_diffusion.json").read_bytes()).records


@pytest.fixture(scope="module")
def text_records(shared_data: Path) -> dict[str, GenericModelRecord]:
    return decode_catalog(TEXT, (shared_data / "golden-v2" / "text_generation.json").read_bytes()).records


def _service(url: str, **options: Any) -> PopularityService:
    breaker = CircuitBreaker(cooldown=options.pop("cooldown", 30.0))
    return PopularityService(HordeApiClient(url, breaker=breaker, **options))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- ranking ----------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_image_ranked_by_worker_count(
    horde: FakeHorde, image_records: dict[str, GenericModelRecord]
) -> None:
    ranked = await _service(horde.base_url).rank(IMAGE, image_records, limit=5)
    assert [item.name for item in ranked] == [
        "AlbedoBase XL (SDXL)",
        "Deliberate",
        "Flux.1-Schnell fp8 (Compact)",
        "stable_diffusion",
        "Deliberate 3.0",  # the Horde reports it as "deliberate 3.0": names match case-insensitively
    ]
    top = ranked[0]
    assert top.record is image_records["AlbedoBase XL (SDXL)"]
    assert top.stats.worker_count == 24
    assert (top.stats.performance, top.stats.queued, top.stats.queued_jobs, top.stats.eta) == (
        2304000.0,
        1200000.0,
        3.0,
        12,
    )
    assert top.stats.usage_stats is not None
    assert (top.stats.usage_stats.day, top.stats.usage_stats.month, top.stats.usage_stats.total) == (
        52000,
        1500000,
        9000000,
    )
    assert top.stats.worker_summaries is None
    assert not top.stats.stale and abs(top.stats.observed_at - time.time()) < 60
    assert ranked[4].stats.usage_stats is None  # no statistics for it: left out, not zeros
    assert "Custom Model Not In Reference" not in {item.name for item in ranked}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("sort_by", "expected"),
    [
        (
            "usage_day",
            ["Deliberate", "AlbedoBase XL (SDXL)", "Flux.1-Schnell fp8 (Compact)", "stable_diffusion"],
        ),
        (
            "usage_month",
            ["Flux.1-Schnell fp8 (Compact)", "AlbedoBase XL (SDXL)", "Deliberate", "stable_diffusion"],
        ),
        (
            "usage_total",
            ["stable_diffusion", "Deliberate", "AlbedoBase XL (SDXL)", "Flux.1-Schnell fp8 (Compact)"],
        ),
    ],
)
async def test_image_ranked_by_usage(
    horde: FakeHorde, image_records: dict[str, GenericModelRecord], sort_by: str, expected: list[str]
) -> None:
    ranked = await _service(horde.base_url).rank(IMAGE, image_records, limit=4, sort_by=sort_by)
    assert [item.name for item in ranked] == expected


@pytest.mark.anyio
async def test_include_workers_counts_the_worker_list(
    horde: FakeHorde, image_records: dict[str, GenericModelRecord]
) -> None:
    ranked = await _service(horde.base_url).rank(IMAGE, image_records, limit=4, include_workers=True)
    counts = {item.name: item.stats.worker_count for item in ranked}
    assert counts == {
        "AlbedoBase XL (SDXL)": 2,
        "Deliberate": 1,
        "Flux.1-Schnell fp8 (Compact)": 1,
        "stable_diffusion": 1,
    }
    summaries = ranked[0].stats.worker_summaries
    assert summaries is not None
    rig = summaries["7d0c1b52-1111-4a6e-9a0e-000000000001"]
    assert (rig.name, rig.online, rig.trusted, rig.uptime, rig.nsfw) == ("Rig One", True, True, 8123456, True)
    assert rig.bridge_agent is not None and rig.bridge_agent.startswith("AI Horde Worker reGen")
    assert "/api/v2/workers" in horde.paths()


@pytest.mark.anyio
async def test_text_models_add_up_their_backend_variants(
    horde: FakeHorde, text_records: dict[str, GenericModelRecord]
) -> None:
    service = _service(horde.base_url)
    ranked = await service.rank(TEXT, text_records, limit=2)
    assert [item.name for item in ranked] == ["acrastt/Marx-3B-V3", "alpindale/goliath-120b"]
    marx, goliath = ranked[0].stats, ranked[1].stats
    assert marx.worker_count == 5  # the largest variant (aphrodite/acrastt/...: 5, koboldcpp/...: 3)
    assert marx.usage_stats is not None and goliath.usage_stats is not None
    assert (marx.usage_stats.day, marx.usage_stats.month, marx.usage_stats.total) == (150, 4000, 60000)
    assert (goliath.usage_stats.day, goliath.usage_stats.total) == (400, 20000)
    by_day = await service.rank(TEXT, text_records, limit=1, sort_by="usage_day")
    assert by_day[0].name == "alpindale/goliath-120b"
    with_workers = await service.rank(TEXT, text_records, limit=2, include_workers=True)
    marx_workers = with_workers[0].stats.worker_summaries
    assert marx_workers is not None and {w.name for w in marx_workers.values()} == {
        "Kobold Box",
        "Aphrodite Node",
    }
    assert with_workers[0].stats.worker_count == 2
    assert marx_workers["9a3e5f10-3333-4b1c-8d2e-000000000001"].max_context_length == 4096


@pytest.mark.anyio
async def test_requests_carry_client_agent_and_model_state(
    horde: FakeHorde, image_records: dict[str, GenericModelRecord]
) -> None:
    await _service(horde.base_url).rank(IMAGE, image_records, include_workers=True)
    seen = {path: (query, agent) for path, query, agent in horde.hits}
    assert seen["/api/v2/status/models"][0] == {"type": "image", "model_state": "known"}
    assert seen["/api/v2/stats/img/models"][0] == {"model_state": "known"}
    assert seen["/api/v2/workers"][0] == {"type": "image"}
    assert all(agent and agent.startswith("horde-model-reference:") for _, agent in seen.values())


@pytest.mark.anyio
async def test_other_categories_and_bad_arguments(horde: FakeHorde) -> None:
    service = _service(horde.base_url)
    clip = {"ViT-L/14": GenericModelRecord(name="ViT-L/14")}
    assert await service.rank(MODEL_REFERENCE_CATEGORY.clip, clip) == []
    assert horde.hits == []  # nothing asked of the Horde
    with pytest.raises(ValueError, match="sort_by"):
        await service.rank(IMAGE, clip, sort_by="downloads")
    with pytest.raises(ValueError, match="limit"):
        await service.rank(IMAGE, clip, limit=0)


# -- cache and request sharing ----------------------------------------------------------------


@pytest.mark.anyio
async def test_answers_are_cached_for_the_ttl(
    horde: FakeHorde, image_records: dict[str, GenericModelRecord]
) -> None:
    service = _service(horde.base_url, ttl=0.3)
    for _ in range(5):
        await service.rank(IMAGE, image_records)
    assert len(horde.hits) == 2  # status + stats, once
    assert service.client.counters.cache_hits == 8
    await anyio.sleep(0.35)
    await service.rank(IMAGE, image_records)
    assert len(horde.hits) == 4


@pytest.mark.anyio
async def test_concurrent_callers_share_one_request(
    horde: FakeHorde, image_records: dict[str, GenericModelRecord]
) -> None:
    service = _service(horde.base_url)
    results: list[int] = []

    async def call() -> None:
        results.append(len(await service.rank(IMAGE, image_records)))

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(call)
    assert results == [10] * 8
    assert sorted(horde.paths()) == ["/api/v2/stats/img/models", "/api/v2/status/models"]


# -- outages and the circuit breaker ------------------------------------------------------------


@pytest.mark.anyio
async def test_hanging_horde_costs_one_timeout_then_the_breaker_answers(
    horde: FakeHorde, image_records: dict[str, GenericModelRecord]
) -> None:
    service = _service(horde.base_url, timeout=0.5)
    horde.mode = "hang"
    started = time.perf_counter()
    with pytest.raises(HordeApiUnavailable, match="timed out after 0.5 s") as first:
        await service.rank(IMAGE, image_records)
    took = time.perf_counter() - started
    assert 0.45 <= took < 2.0  # status and stats time out together: one timeout, not two
    assert first.value.retry_in is not None and first.value.retry_in > 25
    asked = len(horde.hits)
    for _ in range(20):
        with pytest.raises(HordeApiUnavailable, match="next attempt in"):
            await service.rank(IMAGE, image_records, include_workers=True)
    assert len(horde.hits) == asked  # the breaker answered: nothing more was sent
    status = service.status()
    assert status["degraded"] is True and status["state"] == "open" and status["seconds_until_retry"] > 25
    assert service.client.counters.short_circuited >= 20


@pytest.mark.anyio
async def test_horde_down_opens_the_breaker(image_records: dict[str, GenericModelRecord]) -> None:
    service = _service(f"http://127.0.0.1:{_free_port()}/api", timeout=2.0)
    with pytest.raises(HordeApiUnavailable, match="ConnectError"):
        await service.rank(IMAGE, image_records)
    sent = service.client.counters.requests
    with pytest.raises(HordeApiUnavailable):
        await service.rank(IMAGE, image_records)
    assert service.client.counters.requests == sent  # answered by the breaker, without waiting
    assert service.client.breaker.state == "open"


@pytest.mark.anyio
@pytest.mark.parametrize(("mode", "message"), [("error", "HTTP 500"), ("garbage", "unexpected answer")])
async def test_bad_answers_open_the_breaker(
    horde: FakeHorde, image_records: dict[str, GenericModelRecord], mode: str, message: str
) -> None:
    horde.mode = mode
    service = _service(horde.base_url)
    with pytest.raises(HordeApiUnavailable, match=message):
        await service.rank(IMAGE, image_records)
    assert service.client.breaker.state == "open"


@pytest.mark.anyio
async def test_outage_serves_the_stale_copy_then_recovers_after_the_cooldown(
    horde: FakeHorde, image_records: dict[str, GenericModelRecord]
) -> None:
    service = _service(horde.base_url, timeout=0.4, ttl=0.0, cooldown=0.6)
    fresh = await service.rank(IMAGE, image_records, limit=3)
    assert not fresh[0].stats.stale
    horde.mode = "hang"
    started = time.perf_counter()
    stale = await service.rank(IMAGE, image_records, limit=3)  # one timeout, then the last good copy
    assert 0.35 <= time.perf_counter() - started < 2.0
    assert [item.name for item in stale] == [item.name for item in fresh]
    assert stale[0].stats.stale and stale[0].stats.worker_count == 24
    assert stale[0].stats.observed_at == fresh[0].stats.observed_at
    sent = service.client.counters.requests
    again = await service.rank(IMAGE, image_records, limit=3)
    assert again[0].stats.stale and service.client.counters.requests == sent  # the breaker: no wait
    assert service.client.counters.stale_served >= 4

    horde.mode = "ok"
    await anyio.sleep(0.65)  # the cooldown is over: the next call probes
    recovered = await service.rank(IMAGE, image_records, limit=3)
    assert not recovered[0].stats.stale
    assert service.client.breaker.state == "closed"
    assert service.status()["degraded"] is False


def test_circuit_breaker_states() -> None:
    now = [100.0]
    breaker = CircuitBreaker(failure_threshold=2, cooldown=10.0, clock=lambda: now[0])
    assert breaker.state == "closed" and breaker.allow() and breaker.retry_in is None
    breaker.record_failure("one")
    assert breaker.state == "closed" and breaker.allow()  # below the threshold
    breaker.record_failure("two")
    assert breaker.state == "open" and not breaker.allow()
    assert breaker.retry_in == 10.0 and breaker.last_error == "two" and breaker.opened_total == 1
    now[0] += 10.0
    assert breaker.state == "half_open"
    assert breaker.allow()  # probing
    breaker.record_failure("three")  # the probe failed: open again, a new cooldown
    assert breaker.state == "open" and breaker.retry_in == 10.0 and not breaker.allow()
    now[0] += 10.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.consecutive_failures == 0 and breaker.last_error is None
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)


# -- the manager mixin --------------------------------------------------------------------------


class _Host(PopularityMixin):
    def __init__(self, records: dict[str, GenericModelRecord], service: PopularityService) -> None:
        self._records = records
        self._popularity = service

    async def get_model_reference_or_none_async(
        self, category: str | MODEL_REFERENCE_CATEGORY
    ) -> dict[str, GenericModelRecord] | None:
        return self._records if category == IMAGE else None


@pytest.mark.anyio
async def test_mixin_get_popular_models(
    horde: FakeHorde, image_records: dict[str, GenericModelRecord]
) -> None:
    host = _Host(image_records, _service(horde.base_url))
    ranked = await host.get_popular_models("image_generation", limit=2, sort_by="usage_total")
    assert [item.name for item in ranked] == ["stable_diffusion", "Deliberate"]
    assert await host.get_popular_models(TEXT) == []  # no catalog here
    assert await host.get_popular_models("clip") == []
    with pytest.raises(ValueError, match="sort_by"):
        await host.get_popular_models(IMAGE, sort_by="bogus")  # type: ignore[arg-type]


def test_mixin_sync_variant_and_default_service(
    horde: FakeHorde, image_records: dict[str, GenericModelRecord]
) -> None:
    host = _Host(image_records, _service(horde.base_url))
    ranked = host.get_popular_models_sync(IMAGE, limit=1)
    assert ranked[0].name == "AlbedoBase XL (SDXL)"

    class _Settings:
        class horde_api:  # shaped like a settings group
            url = "http://127.0.0.1:9/api"
            timeout = 3.0
            cache_ttl = 5.0

    bare = _Host(image_records, None)  # type: ignore[arg-type]
    bare._settings = _Settings()  # type: ignore[attr-defined]
    service = bare.popularity_service
    assert service.client.base_url == "http://127.0.0.1:9/api"
    assert (service.client.timeout, service.client.ttl) == (3.0, 5.0)
