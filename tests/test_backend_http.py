"""HTTPBackend against a real HTTP server on 127.0.0.1 serving the golden v2 files as a primary."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from horde_model_reference.backends import GitHubBackend, HTTPBackend
from horde_model_reference.backends._remote import _retry_after
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY as C
from horde_model_reference.errors import BackendError
from test_backend_http_server import (
    GARBAGE,
    PRIMARY_PREFIX,
    Upstream,
    github_path,
    golden,
    golden_categories,
    serve_github,
    serve_primary,
)

pytestmark = pytest.mark.anyio

CONTROLNET = f"{PRIMARY_PREFIX}/controlnet"
IMAGE = f"{PRIMARY_PREFIX}/image_generation"


@pytest.fixture
def primary(shared_data: Path) -> Iterator[Upstream]:
    server = Upstream().start()
    serve_primary(server, shared_data)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def github(shared_data: Path) -> Iterator[Upstream]:
    server = Upstream().start()
    serve_github(server, shared_data)
    try:
        yield server
    finally:
        server.stop()


def make(primary: Upstream, base: Path, **options: object) -> HTTPBackend:
    settings: dict[str, object] = {
        "timeout": 2.0,
        "max_attempts": 3,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
    }
    settings.update(options)
    return HTTPBackend(f"{primary.url}/api", base, **settings)  # type: ignore[arg-type]


async def test_reads_every_category_from_the_primary_byte_for_byte(
    primary: Upstream, shared_data: Path, tmp_path: Path
) -> None:
    backend = make(primary, tmp_path)
    try:
        payloads = await backend.fetch_all()
    finally:
        await backend.aclose()
    assert sorted(c.value for c in payloads) == sorted(golden_categories(shared_data))
    for category, payload in payloads.items():
        assert payload.data == golden(shared_data, category.value).strip()
        assert (tmp_path / category_file(category)).read_bytes() == payload.data
        assert payload.source == f"{primary.url}{PRIMARY_PREFIX}/{category.value}"


def category_file(category: C) -> str:
    from horde_model_reference.categories import get_category_descriptor

    return get_category_descriptor(category).v2_filename


async def test_unchanged_category_costs_one_download(primary: Upstream, tmp_path: Path) -> None:
    backend = make(primary, tmp_path)
    try:
        first = await backend.fetch_category(C.image_generation)
        second = await backend.fetch_category(C.image_generation)
    finally:
        await backend.aclose()
    assert first is not None and second is not None and first.data is second.data
    assert [h.status for h in primary.hits_for(IMAGE)] == [200, 304]
    assert primary.bytes_served(IMAGE) == len(primary.files[IMAGE])


async def test_500_then_200_is_retried(primary: Upstream, tmp_path: Path) -> None:
    primary.fault(CONTROLNET, "500")
    backend = make(primary, tmp_path)
    try:
        payload = await backend.fetch_category(C.controlnet)
    finally:
        await backend.aclose()
    assert payload is not None
    assert [h.status for h in primary.hits_for(CONTROLNET)] == [500, 200]


async def test_429_is_retried(primary: Upstream, tmp_path: Path) -> None:
    primary.fault(CONTROLNET, "429", "429")
    backend = make(primary, tmp_path)
    try:
        payload = await backend.fetch_category(C.controlnet)
    finally:
        await backend.aclose()
    assert payload is not None
    assert [h.status for h in primary.hits_for(CONTROLNET)] == [429, 429, 200]


async def test_attempts_are_bounded_then_last_good(primary: Upstream, tmp_path: Path) -> None:
    backend = make(primary, tmp_path, max_attempts=2)
    try:
        good = await backend.fetch_category(C.controlnet)
        primary.always(CONTROLNET, "503")
        kept = await backend.fetch_category(C.controlnet)
    finally:
        await backend.aclose()
    assert kept is good
    assert [h.status for h in primary.hits_for(CONTROLNET)] == [200, 503, 503]


async def test_404_means_the_category_does_not_exist(primary: Upstream, tmp_path: Path) -> None:
    backend = make(primary, tmp_path)
    try:
        assert await backend.fetch_category(C.controlnet_annotator) is None
    finally:
        await backend.aclose()
    assert [h.status for h in primary.hits_for(f"{PRIMARY_PREFIX}/controlnet_annotator")] == [404]


async def test_garbage_keeps_the_last_good_copy_and_is_logged(primary: Upstream, tmp_path: Path) -> None:
    backend = make(primary, tmp_path)
    try:
        good = await backend.fetch_category(C.controlnet)
        assert good is not None
        primary.always(CONTROLNET, "garbage")
        with capture_logs() as logs:
            kept = await backend.fetch_category(C.controlnet)
    finally:
        await backend.aclose()
    assert kept is good
    assert (tmp_path / "controlnet.json").read_bytes() == good.data
    errors = [e for e in logs if e["log_level"] == "error"]
    assert errors and errors[0]["category"] == "controlnet" and "rejected" in errors[0]["reason"]


async def test_a_hanging_primary_is_bounded_then_last_good(primary: Upstream, tmp_path: Path) -> None:
    backend = make(primary, tmp_path, timeout=0.3, max_attempts=2)
    try:
        good = await backend.fetch_category(C.controlnet)
        primary.always(CONTROLNET, "hang")
        started = time.monotonic()
        kept = await backend.fetch_category(C.controlnet)
        elapsed = time.monotonic() - started
    finally:
        await backend.aclose()
    assert kept is good
    assert elapsed < 20  # the hang lasts forever: any bound shows the timeout works


async def test_a_hanging_primary_falls_back_to_github(
    primary: Upstream, github: Upstream, tmp_path: Path
) -> None:
    fallback = GitHubBackend(tmp_path / "github", base_url=github.url, timeout=2.0)
    backend = make(primary, tmp_path / "http", timeout=0.3, max_attempts=1, fallback=fallback)
    primary.always(CONTROLNET, "hang")
    try:
        with capture_logs() as logs:
            started = time.monotonic()
            payload = await backend.fetch_category(C.controlnet)
            elapsed = time.monotonic() - started
    finally:
        await backend.aclose()
    assert payload is not None and payload.source == github.url + github_path("controlnet")
    assert elapsed < 20  # the hang lasts forever: any bound shows the timeout works
    assert any(e["event"] == "primary_failed_using_fallback" for e in logs)
    assert backend.last_fetched(C.controlnet) == payload.fetched_at


async def test_primary_down_with_a_disk_copy_starts_offline(primary: Upstream, tmp_path: Path) -> None:
    first = make(primary, tmp_path)
    try:
        good = await first.fetch_category(C.image_generation)
    finally:
        await first.aclose()
    assert good is not None
    primary.stop()

    backend = make(primary, tmp_path)
    try:
        started = time.monotonic()
        offline = await backend.fetch_category(C.image_generation)
        assert time.monotonic() - started < 0.5
        await asyncio.sleep(0.3)
        again = await backend.fetch_category(C.image_generation)
    finally:
        await backend.aclose()
    assert offline is not None and offline.data == good.data
    assert again is not None and again.data == good.data


async def test_primary_down_without_any_copy_or_fallback_raises(primary: Upstream, tmp_path: Path) -> None:
    primary.stop()
    backend = make(primary, tmp_path, max_attempts=2)
    try:
        with pytest.raises(BackendError) as info:
            await backend.fetch_category(C.controlnet)
    finally:
        await backend.aclose()
    assert info.value.backend == "http" and info.value.category == "controlnet"


async def test_url_compatible_with_todays_setting(
    primary: Upstream, tmp_path: Path, shared_data: Path
) -> None:
    backend = HTTPBackend(f"{primary.url}/api/model_references/", tmp_path, timeout=2.0)
    try:
        payload = await backend.fetch_category(C.blip)
    finally:
        await backend.aclose()
    assert backend.url_for(C.blip) == f"{primary.url}{PRIMARY_PREFIX}/blip"
    assert payload is not None and payload.data == golden(shared_data, "blip").strip()


async def test_garbage_from_primary_without_copy_uses_fallback(
    primary: Upstream, github: Upstream, tmp_path: Path
) -> None:
    primary.always(CONTROLNET, "garbage")
    fallback = GitHubBackend(tmp_path / "github", base_url=github.url, timeout=2.0)
    backend = make(primary, tmp_path / "http", fallback=fallback)
    try:
        payload = await backend.fetch_category(C.controlnet)
    finally:
        await backend.aclose()
    assert payload is not None and payload.data.startswith(b"{")
    assert primary.bytes_served(CONTROLNET) == len(GARBAGE)


def test_backoff_is_exponential_jittered_capped_and_honours_retry_after(tmp_path: Path) -> None:
    backend = HTTPBackend("http://127.0.0.1:9/api", tmp_path, backoff_base=0.5, backoff_max=8.0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)]:
        delays = [backend._backoff(attempt, None) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempt, min(delays), max(delays))
        assert len(set(delays)) > 100, "no jitter: every client would retry in lockstep"
    assert backend._backoff(1, 3.0) == 3.0, "Retry-After longer than our own delay wins"
    assert backend._backoff(1, 60.0) == 8.0, "but never beyond backoff_max"


@pytest.mark.parametrize(
    ("header", "expected"),
    [("2", 2.0), ("0.5", 0.5), ("-1", 0.0), ("Wed, 21 Oct 2026 07:28:00 GMT", None), (None, None)],
)
def test_retry_after_seconds_are_read_and_dates_fall_back_to_our_backoff(
    header: str | None, expected: float | None
) -> None:
    headers = {"retry-after": header} if header is not None else {}
    assert _retry_after(httpx.Response(429, headers=headers)) == expected
