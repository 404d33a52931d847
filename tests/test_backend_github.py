"""GitHubBackend against a real HTTP server on 127.0.0.1 serving the real legacy files."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from structlog.testing import capture_logs

from horde_model_reference.backends import GitHubBackend
from horde_model_reference.backends import github as github_module
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY as C
from horde_model_reference.categories import get_category_descriptor
from horde_model_reference.errors import BackendError
from horde_model_reference.legacy import legacy_to_v2_json
from test_backend_http_server import (
    GARBAGE,
    GITHUB_BASE,
    LoopThread,
    Upstream,
    etag_of,
    github_path,
    serve_github,
)

pytestmark = pytest.mark.anyio

CONTROLNET = github_path("controlnet")
IMAGE = github_path("image_generation")
TEXT = github_path("text_generation")


@pytest.fixture
def upstream(shared_data: Path) -> Iterator[Upstream]:
    server = Upstream().start()
    serve_github(server, shared_data)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def conversions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts calls of the real legacy converter (to prove a 304 costs no decode)."""
    calls: list[str] = []
    real = github_module._legacy_to_v2

    def counting(category: C, data: bytes, source: str | None = None) -> bytes:
        calls.append(category.value)
        return real(category, data, source)

    monkeypatch.setattr(github_module, "_legacy_to_v2", counting)
    return calls


def make(upstream: Upstream, base: Path, **options: object) -> GitHubBackend:
    settings: dict[str, object] = {
        "timeout": 2.0,
        "max_attempts": 3,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
    }
    settings.update(options)
    return GitHubBackend(base, base_url=upstream.url, **settings)  # type: ignore[arg-type]


def expected_v2(shared_data: Path, category: C) -> bytes:
    folder = "text" if category is C.text_generation else "image"
    legacy = get_category_descriptor(category).legacy_filename
    assert legacy is not None
    return legacy_to_v2_json(category, (shared_data / "current" / folder / legacy).read_bytes())[0]


async def test_fetch_all_converts_the_real_files_and_keeps_local_copies(
    upstream: Upstream, shared_data: Path, tmp_path: Path
) -> None:
    backend = make(upstream, tmp_path)
    try:
        payloads = await backend.fetch_all()
    finally:
        await backend.aclose()
    expected = [
        c
        for c in C
        if get_category_descriptor(c).github_source and not get_category_descriptor(c).managed_elsewhere
    ]
    assert sorted(payloads) == sorted(expected)
    for category, payload in payloads.items():
        assert payload.data == expected_v2(shared_data, category)
        assert (tmp_path / get_category_descriptor(category).v2_filename).read_bytes() == payload.data
        assert payload.source == upstream.url + github_path(category.value)
    assert (tmp_path / "legacy" / "models.csv").read_bytes() == (
        shared_data / "current/text/models.csv"
    ).read_bytes()
    sidecar = msgspec.json.decode((tmp_path / "legacy" / "stable_diffusion.json.etag").read_bytes())
    assert sidecar["etag"] and sidecar["digest"] == payloads[C.image_generation].digest


async def test_unchanged_file_is_neither_downloaded_nor_decoded_twice(
    upstream: Upstream, tmp_path: Path, conversions: list[str]
) -> None:
    backend = make(upstream, tmp_path)
    try:
        first = await backend.fetch_category(C.image_generation)
        second = await backend.fetch_category(C.image_generation)
        third = await backend.fetch_category(C.image_generation, force_refresh=True)
    finally:
        await backend.aclose()
    assert first is not None and second is not None and third is not None
    assert first.data is second.data is third.data
    assert second.fetched_at >= first.fetched_at
    assert [h.status for h in upstream.hits_for(IMAGE)] == [200, 304, 304]
    assert upstream.bytes_served(IMAGE) == len(upstream.files[IMAGE])
    assert conversions == ["image_generation"]


async def test_a_changed_file_is_downloaded_and_reported(upstream: Upstream, tmp_path: Path) -> None:
    changed: list[C] = []
    backend = make(upstream, tmp_path)
    backend.add_invalidation_callback(changed.append)
    try:
        before = await backend.fetch_category(C.controlnet)
        records = msgspec.json.decode(upstream.files[CONTROLNET])
        records.pop("control_qr_sdxl")
        upstream.serve(CONTROLNET, msgspec.json.encode(records))
        after = await backend.fetch_category(C.controlnet)
    finally:
        await backend.aclose()
    assert before is not None and after is not None
    assert before.digest != after.digest
    assert b"control_qr_sdxl" in before.data and b"control_qr_sdxl" not in after.data
    assert changed == [C.controlnet]


async def test_500_then_200_is_retried(upstream: Upstream, tmp_path: Path) -> None:
    upstream.fault(CONTROLNET, "500", "503")
    backend = make(upstream, tmp_path)
    try:
        payload = await backend.fetch_category(C.controlnet)
    finally:
        await backend.aclose()
    assert payload is not None
    assert [h.status for h in upstream.hits_for(CONTROLNET)] == [500, 503, 200]


async def test_429_is_retried(upstream: Upstream, tmp_path: Path) -> None:
    upstream.fault(CONTROLNET, "429")
    backend = make(upstream, tmp_path)
    try:
        payload = await backend.fetch_category(C.controlnet)
    finally:
        await backend.aclose()
    assert payload is not None
    assert [h.status for h in upstream.hits_for(CONTROLNET)] == [429, 200]


async def test_404_means_no_catalog(upstream: Upstream, tmp_path: Path) -> None:
    upstream.files.pop(CONTROLNET)
    backend = make(upstream, tmp_path)
    try:
        assert await backend.fetch_category(C.controlnet) is None
    finally:
        await backend.aclose()
    assert [h.status for h in upstream.hits_for(CONTROLNET)] == [404]


async def test_categories_without_a_legacy_file_are_none_without_a_request(
    upstream: Upstream, tmp_path: Path
) -> None:
    backend = make(upstream, tmp_path)
    try:
        for category in (C.controlnet_annotator, C.lora, C.ti, C.video_generation):
            assert await backend.fetch_category(category) is None
    finally:
        await backend.aclose()
    assert upstream.hits == []


async def test_garbage_keeps_the_last_good_copy_and_is_logged(
    upstream: Upstream, tmp_path: Path, shared_data: Path
) -> None:
    backend = make(upstream, tmp_path)
    v2_file = tmp_path / "text_generation.json"
    try:
        good = await backend.fetch_category(C.text_generation)
        assert good is not None
        upstream.serve(TEXT, GARBAGE)
        with capture_logs() as logs:
            kept = await backend.fetch_category(C.text_generation)
        assert kept is not None and kept.data == good.data
        assert v2_file.read_bytes() == good.data
        assert (tmp_path / "legacy" / "models.csv").read_bytes() != GARBAGE
        errors = [e for e in logs if e["log_level"] == "error"]
        assert errors and errors[0]["category"] == "text_generation" and "rejected" in errors[0]["reason"]
        # The garbage's ETag was not kept: the good copy's ETag is sent, and the fixed file is a 304.
        upstream.serve(TEXT, (shared_data / "current/text/models.csv").read_bytes())
        revalidated = await backend.fetch_category(C.text_generation)
        assert revalidated is not None and revalidated.data is kept.data
    finally:
        await backend.aclose()
    hits = upstream.hits_for(TEXT)
    assert [h.status for h in hits] == [200, 200, 304]
    assert hits[1].if_none_match == hits[2].if_none_match == etag_of(upstream.files[TEXT])


async def test_a_download_whose_every_record_is_rejected_is_refused(
    upstream: Upstream, tmp_path: Path
) -> None:
    backend = make(upstream, tmp_path)
    try:
        good = await backend.fetch_category(C.controlnet)
        upstream.serve(CONTROLNET, b'{"a": 1, "b": [2]}')
        with capture_logs() as logs:
            kept = await backend.fetch_category(C.controlnet)
    finally:
        await backend.aclose()
    assert good is not None and kept is good
    assert any(e["event"] == "remote_source_failed" for e in logs)


async def test_garbage_without_any_copy_raises(upstream: Upstream, tmp_path: Path) -> None:
    upstream.serve(CONTROLNET, GARBAGE)
    backend = make(upstream, tmp_path)
    try:
        with pytest.raises(BackendError) as info:
            await backend.fetch_category(C.controlnet)
    finally:
        await backend.aclose()
    assert info.value.backend == "github" and info.value.category == "controlnet"
    assert not (tmp_path / "controlnet.json").exists()


async def test_a_hanging_server_is_bounded_by_the_timeout(upstream: Upstream, tmp_path: Path) -> None:
    backend = make(upstream, tmp_path, timeout=0.3, max_attempts=2)
    try:
        good = await backend.fetch_category(C.controlnet)
        upstream.always(CONTROLNET, "hang")
        started = time.monotonic()
        kept = await backend.fetch_category(C.controlnet)
        elapsed = time.monotonic() - started
    finally:
        await backend.aclose()
    assert kept is good
    assert elapsed < 20  # the hang lasts forever: any bound shows the timeout works


async def test_a_dropped_connection_is_retried(upstream: Upstream, tmp_path: Path) -> None:
    upstream.fault(CONTROLNET, "drop")
    backend = make(upstream, tmp_path)
    try:
        payload = await backend.fetch_category(C.controlnet)
    finally:
        await backend.aclose()
    assert payload is not None


async def test_server_down_with_a_good_disk_copy_starts_offline(upstream: Upstream, tmp_path: Path) -> None:
    first = make(upstream, tmp_path)
    try:
        good = await first.fetch_category(C.image_generation)
    finally:
        await first.aclose()
    assert good is not None
    upstream.stop()

    backend = make(upstream, tmp_path)
    try:
        with capture_logs() as logs:
            started = time.monotonic()
            offline = await backend.fetch_category(C.image_generation)
            elapsed = time.monotonic() - started
            assert offline is not None and offline.data == good.data
            assert elapsed < 0.5
            deadline = time.monotonic() + 30  # the background refresh fails (server down) and keeps the copy
            while not any(e["event"] == "remote_request_failed" for e in logs):
                assert time.monotonic() < deadline, "the background refresh never ran"
                await asyncio.sleep(0.02)
            again = await backend.fetch_category(C.image_generation)
            assert again is not None and again.data == good.data
    finally:
        await backend.aclose()
    assert any(e["event"] == "local_copy_adopted" for e in logs)
    assert any(e["event"] == "remote_request_failed" for e in logs)


async def test_a_disk_copy_is_revalidated_with_its_etag(
    upstream: Upstream, tmp_path: Path, conversions: list[str]
) -> None:
    first = make(upstream, tmp_path)
    try:
        await first.fetch_category(C.image_generation)
    finally:
        await first.aclose()
    changed: list[C] = []
    backend = make(upstream, tmp_path)
    backend.add_invalidation_callback(changed.append)
    try:
        await backend.fetch_category(C.image_generation)
        for _ in range(1500):
            if len(upstream.hits_for(IMAGE)) == 2 and not backend._refreshing:
                break
            await asyncio.sleep(0.02)
    finally:
        await backend.aclose()
    hits = upstream.hits_for(IMAGE)
    assert [h.status for h in hits] == [200, 304]
    assert hits[1].if_none_match is not None
    assert conversions == ["image_generation"]
    assert changed == []


async def test_a_changed_upstream_replaces_the_disk_copy_in_the_background(
    upstream: Upstream, tmp_path: Path
) -> None:
    first = make(upstream, tmp_path)
    try:
        old = await first.fetch_category(C.controlnet)
    finally:
        await first.aclose()
    records = msgspec.json.decode(upstream.files[CONTROLNET])
    records.pop("control_qr_sdxl")
    upstream.serve(CONTROLNET, msgspec.json.encode(records))
    changed: list[C] = []
    backend = make(upstream, tmp_path)
    backend.add_invalidation_callback(changed.append)
    try:
        served_first = await backend.fetch_category(C.controlnet)
        for _ in range(1500):
            if changed:
                break
            await asyncio.sleep(0.02)
        latest = await backend.fetch_category(C.controlnet)
    finally:
        await backend.aclose()
    assert old is not None and served_first is not None and latest is not None
    assert served_first.data == old.data
    assert changed == [C.controlnet]
    assert b"control_qr_sdxl" not in latest.data
    assert (tmp_path / "controlnet.json").read_bytes() == latest.data


async def test_proxy_prefix_gets_the_full_url(upstream: Upstream, tmp_path: Path, shared_data: Path) -> None:
    backend = GitHubBackend(tmp_path, proxy_url_base=f"{upstream.url}/proxy/", timeout=2.0)
    try:
        payload = await backend.fetch_category(C.controlnet)
    finally:
        await backend.aclose()
    assert backend.url_for(C.controlnet) == f"{upstream.url}/proxy/{GITHUB_BASE}{CONTROLNET}"
    assert payload is not None and payload.data == expected_v2(shared_data, C.controlnet)
    assert [h.proxied for h in upstream.hits_for(CONTROLNET)] == [True]


async def test_usable_from_several_event_loops(upstream: Upstream, tmp_path: Path) -> None:
    backend = make(upstream, tmp_path)
    loops = [LoopThread(), LoopThread()]

    async def several() -> list[bytes]:
        found = []
        for category in (C.controlnet, C.esrgan, C.controlnet):
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


async def test_write_is_refused(upstream: Upstream, tmp_path: Path) -> None:
    backend = make(upstream, tmp_path)
    assert not backend.supports_writes()
    with pytest.raises(BackendError):
        await backend.write_category(C.controlnet, b"{}")
    await backend.aclose()
