"""The HTTP face through ASGI (httpx.ASGITransport): every endpoint and every error, on golden-v2 data."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from fixtures.horde_api.fake_horde import FakeHorde
from horde_model_reference.bus.events import CategoryHealth, HealthReply, Snapshot
from horde_model_reference.catalog import decode_catalog
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, get_category_descriptor
from horde_model_reference.http import StaticSnapshotSource, create_app
from horde_model_reference.integrations import CircuitBreaker, HordeApiClient, PopularityService
from horde_model_reference.legacy import to_legacy_stable_diffusion, to_legacy_text_db

pytestmark = pytest.mark.anyio

V2 = "/api/model_references/v2"
V1 = "/api/model_references/v1"
IMAGE = MODEL_REFERENCE_CATEGORY.image_generation
TEXT = MODEL_REFERENCE_CATEGORY.text_generation


@pytest.fixture
def golden(shared_data: Path) -> Path:
    return shared_data / "golden-v2"


@pytest.fixture
def source(golden: Path) -> StaticSnapshotSource:
    return StaticSnapshotSource.from_directory(golden)


@pytest.fixture
def horde() -> Iterator[FakeHorde]:
    with FakeHorde() as fake:
        yield fake


def _popularity(url: str, timeout: float = 2.0) -> PopularityService:
    return PopularityService(HordeApiClient(url, timeout=timeout, breaker=CircuitBreaker(cooldown=30.0)))


@pytest.fixture
async def client(source: StaticSnapshotSource, horde: FakeHorde) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(source, popularity=_popularity(horde.base_url))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://hmr") as http:
        yield http


def _golden_bytes(golden: Path, category: MODEL_REFERENCE_CATEGORY) -> bytes:
    return (golden / get_category_descriptor(category).v2_filename).read_bytes()


def _golden_json(golden: Path, category: MODEL_REFERENCE_CATEGORY) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(_golden_bytes(golden, category))
    return value


# -- v2 ---------------------------------------------------------------------------------------------


async def test_model_categories_lists_those_with_data(client: httpx.AsyncClient, golden: Path) -> None:
    response = await client.get(f"{V2}/model_categories")
    assert response.status_code == 200
    present = [
        c.value
        for c in MODEL_REFERENCE_CATEGORY
        if (golden / get_category_descriptor(c).v2_filename).is_file()
    ]
    assert response.json() == present
    assert "image_generation" in present and "video_generation" not in present


async def test_category_serves_the_snapshot_bytes_with_etag(
    client: httpx.AsyncClient, source: StaticSnapshotSource, golden: Path
) -> None:
    for category in (IMAGE, TEXT, MODEL_REFERENCE_CATEGORY.controlnet):
        response = await client.get(f"{V2}/{category.value}")
        snapshot = source.snapshot(category)
        assert snapshot is not None
        assert response.status_code == 200
        assert response.content == _golden_bytes(golden, category).strip()  # as held, not re-encoded
        assert response.headers["etag"] == f'"{snapshot.digest}"'
        assert response.headers["x-hmr-revision"] == "1"
        assert response.headers["content-type"] == "application/json"
        assert response.headers["cache-control"] == "no-cache"


async def test_if_none_match_answers_304(client: httpx.AsyncClient, source: StaticSnapshotSource) -> None:
    first = await client.get(f"{V2}/image_generation")
    etag = first.headers["etag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = await client.get(f"{V2}/image_generation", headers={"If-None-Match": header})
        assert again.status_code == 304, header
        assert again.content == b""
        assert again.headers["etag"] == etag
    stale = await client.get(f"{V2}/image_generation", headers={"If-None-Match": '"not-the-digest"'})
    assert stale.status_code == 200 and stale.content == first.content


async def test_a_new_revision_changes_the_etag(
    client: httpx.AsyncClient, source: StaticSnapshotSource
) -> None:
    old = await client.get(f"{V2}/clip")
    records = json.loads(old.content)
    records.pop(next(iter(records)))
    source.replace("clip", json.dumps(records).encode())
    new = await client.get(f"{V2}/clip", headers={"If-None-Match": old.headers["etag"]})
    assert new.status_code == 200
    assert new.headers["etag"] != old.headers["etag"] and new.headers["x-hmr-revision"] == "2"
    assert json.loads(new.content) == records
    assert (await client.get(f"{V2}/revisions")).json()["clip"]["revision"] == 2


async def test_stable_diffusion_alias(client: httpx.AsyncClient) -> None:
    alias = await client.get(f"{V2}/stable_diffusion")
    assert alias.status_code == 200
    assert alias.content == (await client.get(f"{V2}/image_generation")).content


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (f"{V2}/nonsense", "unknown category 'nonsense'; valid categories: blip, clip"),
        (f"{V2}/video_generation", "category 'video_generation' has no catalog on this server"),
        (f"{V2}/lora", "category 'lora': this server does not serve it"),
        (f"{V2}/nonsense/model/x", "unknown category 'nonsense'"),
        (
            f"{V2}/image_generation/model/No Such Model",
            "model 'No Such Model' not found in category 'image_generation'",
        ),
        (
            f"{V2}/text_generation/model/acrastt/Nope",
            "model 'acrastt/Nope' not found in category 'text_generation'",
        ),
        (
            "/api/model_references/v3/image_generation",
            "no such endpoint: /api/model_references/v3/image_generation",
        ),
    ],
)
async def test_not_found(client: httpx.AsyncClient, path: str, message: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["detail"]


async def test_one_model_by_name(client: httpx.AsyncClient, golden: Path) -> None:
    image = _golden_json(golden, IMAGE)
    response = await client.get(f"{V2}/image_generation/model/AlbedoBase XL (SDXL)")
    assert response.status_code == 200
    assert response.json() == image["AlbedoBase XL (SDXL)"]
    assert b"\n" not in response.content  # compact, values untouched
    etag = response.headers["etag"]
    cached = await client.get(
        f"{V2}/image_generation/model/AlbedoBase XL (SDXL)", headers={"If-None-Match": etag}
    )
    assert cached.status_code == 304

    text = _golden_json(golden, TEXT)
    slashed = await client.get(f"{V2}/text_generation/model/acrastt/Marx-3B-V3")  # names contain '/'
    assert slashed.status_code == 200 and slashed.json() == text["acrastt/Marx-3B-V3"]
    prefixed = await client.get(f"{V2}/text_generation/model/aphrodite/acrastt/Marx-3B-V3")
    assert prefixed.json() == text["acrastt/Marx-3B-V3"]
    # the catalog key, not the name field, identifies a record
    controlnet = await client.get(f"{V2}/controlnet/model/control_qr_sdxl")
    assert controlnet.status_code == 200 and controlnet.json()["name"] == "control_qr_xl"


async def test_invalid_model_name_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{V2}/image_generation/model/a\\b")
    assert response.status_code == 422
    assert "invalid model name" in response.json()["detail"]


async def test_revisions(client: httpx.AsyncClient, source: StaticSnapshotSource) -> None:
    revisions = (await client.get(f"{V2}/revisions")).json()
    snapshot = source.snapshot(IMAGE)
    assert snapshot is not None
    assert revisions["image_generation"] == {"revision": 1, "digest": snapshot.digest, "record_count": 161}
    assert revisions["text_generation"]["record_count"] == 719
    assert revisions["video_generation"] == {"revision": 0, "digest": None, "record_count": 0}


# -- v1 (legacy) ----------------------------------------------------------------------------------


async def test_legacy_image_under_every_alias(client: httpx.AsyncClient, golden: Path) -> None:
    expected = to_legacy_stable_diffusion(decode_catalog(IMAGE, _golden_bytes(golden, IMAGE)).records)
    for name in ("image_generation", "image_generation.json", "stable_diffusion", "stable_diffusion.json"):
        response = await client.get(f"{V1}/{name}")
        assert response.status_code == 200, name
        assert response.content == expected
        assert response.headers["etag"].startswith('"v1-')


async def test_legacy_text_as_db_json(client: httpx.AsyncClient, golden: Path) -> None:
    expected = to_legacy_text_db(decode_catalog(TEXT, _golden_bytes(golden, TEXT)).records)
    for name in ("text_generation", "text_generation.json", "db.json"):
        response = await client.get(f"{V1}/{name}")
        assert response.status_code == 200, name
        assert response.content == expected
    db = json.loads(expected)
    assert "koboldcpp/Marx-3B-V3" in db and "aphrodite/acrastt/Marx-3B-V3" in db
    etag = response.headers["etag"]
    assert (await client.get(f"{V1}/db.json", headers={"If-None-Match": etag})).status_code == 304


async def test_legacy_other_categories(client: httpx.AsyncClient) -> None:
    for name in ("lora", "ti", "lora.json"):
        response = await client.get(f"{V1}/{name}")
        assert response.status_code == 200 and response.json() == {}
    clip = await client.get(f"{V1}/clip")
    assert clip.status_code == 404
    assert "no legacy (v1) format on this server" in clip.json()["detail"]
    assert f"{V2}/clip" in clip.json()["detail"]
    unknown = await client.get(f"{V1}/nonsense.json")
    assert unknown.status_code == 404 and "unknown category 'nonsense'" in unknown.json()["detail"]
    categories = await client.get(f"{V1}/model_categories")
    assert categories.json() == ["image_generation", "text_generation", "lora", "ti"]


# -- search -----------------------------------------------------------------------------------------


async def _search(client: httpx.AsyncClient, category: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"{V2}/{category}/search", params=params)
    assert response.status_code == 200, response.text
    value: dict[str, Any] = response.json()
    return value


async def test_search_defaults_and_paging(client: httpx.AsyncClient, golden: Path) -> None:
    image = _golden_json(golden, IMAGE)
    page = await _search(client, "image_generation")
    assert (page["total"], page["offset"], page["limit"], page["has_more"]) == (161, 0, 50, True)
    assert [r["name"] for r in page["results"]] == list(image)[:50]
    assert page["results"][0] == image[next(iter(image))]
    last = await _search(client, "image_generation", offset=150, limit=20)
    assert len(last["results"]) == 11 and last["has_more"] is False
    beyond = await _search(client, "image_generation", offset=500)
    assert beyond["results"] == [] and beyond["total"] == 161


async def test_search_filters(client: httpx.AsyncClient, golden: Path) -> None:
    image = _golden_json(golden, IMAGE)
    sfw = await _search(client, "image_generation", nsfw="false", limit=500)
    assert sfw["total"] == sum(1 for r in image.values() if not r["nsfw"])
    assert all(not r["nsfw"] for r in sfw["results"])
    sdxl = await _search(client, "image_generation", baseline="stable_diffusion_xl", limit=500)
    assert sdxl["total"] == sum(1 for r in image.values() if r["baseline"] == "stable_diffusion_xl") > 0
    inpainting = await _search(client, "image_generation", inpainting="true", limit=500)
    assert inpainting["total"] == sum(1 for r in image.values() if r.get("inpainting")) > 0
    named = await _search(client, "image_generation", name_contains="DELIBERATE", limit=500)
    assert {r["name"] for r in named["results"]} == {n for n in image if "deliberate" in n.lower()}


async def test_search_tags(client: httpx.AsyncClient, golden: Path) -> None:
    image = _golden_json(golden, IMAGE)
    tags = {name: set(r.get("tags") or ()) for name, r in image.items()}
    either = await client.get(
        f"{V2}/image_generation/search",
        params=[("tags_any", "anime"), ("tags_any", "furry"), ("limit", "500")],
    )
    assert {r["name"] for r in either.json()["results"]} == {
        n for n, t in tags.items() if t & {"anime", "furry"}
    }
    both = await _search(client, "image_generation", tags_all="anime", limit=500)
    assert {r["name"] for r in both["results"]} == {n for n, t in tags.items() if "anime" in t}
    none = await _search(client, "image_generation", tags_none="anime", limit=500)
    assert none["total"] == 161 - both["total"]


async def test_search_sort(client: httpx.AsyncClient, golden: Path) -> None:
    image = _golden_json(golden, IMAGE)
    biggest = await _search(
        client, "image_generation", sort_by="size_on_disk_bytes", sort_desc="true", limit=3
    )
    sizes = sorted((r.get("size_on_disk_bytes") or 0 for r in image.values()), reverse=True)[:3]
    assert [r["size_on_disk_bytes"] for r in biggest["results"]] == sizes
    by_name = await _search(client, "image_generation", sort_by="name", limit=500)
    names = [r["name"] for r in by_name["results"]]
    assert names == sorted(names)


async def test_search_text_filters(client: httpx.AsyncClient, golden: Path) -> None:
    text = _golden_json(golden, TEXT)
    assert (await _search(client, "text_generation", limit=1))["total"] == 719
    # v2 catalogs list plain names: no backend variations to select or drop
    assert (await _search(client, "text_generation", backend="koboldcpp"))["total"] == 0
    assert (await _search(client, "text_generation", exclude_backend_variations="true"))["total"] == 719
    quantized = await _search(client, "text_generation", quantized="true", limit=500)
    plain = await _search(client, "text_generation", quantized="false", limit=1)
    assert quantized["total"] + plain["total"] == 719
    nsfw = await _search(client, "text_generation", nsfw="true", limit=500)
    assert nsfw["total"] == sum(1 for r in text.values() if r["nsfw"])
    assert (await _search(client, "text_generation", source="any"))["total"] == 719


async def test_search_licensing_filters(client: httpx.AsyncClient) -> None:
    assert (await _search(client, "clip", commercial_use="unknown"))["total"] == 2
    assert (await _search(client, "clip", commercial_use="allowed"))["total"] == 0
    assert (await _search(client, "clip", redistribution="prohibited"))["total"] == 0
    assert (await _search(client, "clip", license_id="MIT"))["total"] == 0


@pytest.mark.parametrize(
    ("category", "params", "parameter", "message"),
    [
        ("image_generation", {"limit": "0"}, "limit", "must be between 1 and 500, got 0"),
        ("image_generation", {"limit": "501"}, "limit", "must be between 1 and 500"),
        ("image_generation", {"limit": "ten"}, "limit", "expected an integer between 1 and 500, got 'ten'"),
        ("image_generation", {"offset": "-1"}, "offset", "must be >= 0"),
        ("image_generation", {"nsfw": "maybe"}, "nsfw", "expected a boolean"),
        ("image_generation", {"sort_desc": "2"}, "sort_desc", "expected a boolean"),
        ("image_generation", {"sort_by": "bogus"}, "sort_by", "unknown field 'bogus'"),
        ("image_generation", {"sort_by": "config"}, "sort_by", "cannot order by 'config'"),
        ("image_generation", {"source": "civitai"}, "source", "unknown source 'civitai'"),
        ("image_generation", {"backend": "koboldcpp"}, "backend", "applies to text_generation only"),
        ("image_generation", {"quantized": "true"}, "quantized", "applies to text_generation only"),
        ("image_generation", {"commercial_use": "maybe"}, "commercial_use", "must be one of allowed"),
        ("clip", {"nsfw": "true"}, "nsfw", "unknown field 'nsfw' for ClipModelRecord"),
        ("clip", {"tags_any": "x"}, "tags_any", "unknown field 'tags'"),
        ("text_generation", {"inpainting": "true"}, "inpainting", "unknown field 'inpainting'"),
        ("text_generation", {"backend": "ollama"}, "backend", "unknown text backend 'ollama'"),
    ],
)
async def test_search_bad_parameters_are_422(
    client: httpx.AsyncClient, category: str, params: dict[str, str], parameter: str, message: str
) -> None:
    response = await client.get(f"{V2}/{category}/search", params=params)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith(f"query parameter {parameter!r}: "), detail
    assert message in detail


async def test_search_unknown_category_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{V2}/nonsense/search")
    assert response.status_code == 404 and "unknown category" in response.json()["detail"]


# -- popular --------------------------------------------------------------------------------------


async def test_popular(client: httpx.AsyncClient, horde: FakeHorde, golden: Path) -> None:
    response = await client.get(f"{V2}/image_generation/popular", params={"limit": 2})
    assert response.status_code == 200
    ranked = response.json()
    assert [item["name"] for item in ranked] == ["AlbedoBase XL (SDXL)", "Deliberate"]
    assert ranked[0]["record"] == _golden_json(golden, IMAGE)["AlbedoBase XL (SDXL)"]
    stats = ranked[0]["stats"]
    assert stats["worker_count"] == 24 and stats["usage_stats"] == {
        "day": 52000,
        "month": 1500000,
        "total": 9000000,
    }
    assert "worker_summaries" not in stats  # None fields are left out, as today's primary does
    by_total = (await client.get(f"{V2}/text_generation/popular", params={"sort_by": "usage_total"})).json()
    assert by_total[0]["name"] == "acrastt/Marx-3B-V3"
    workers = (
        await client.get(f"{V2}/image_generation/popular", params={"include_workers": "true", "limit": 1})
    ).json()
    assert set(workers[0]["stats"]["worker_summaries"]) == {
        "7d0c1b52-1111-4a6e-9a0e-000000000001",
        "7d0c1b52-1111-4a6e-9a0e-000000000002",
    }
    assert (await client.get(f"{V2}/clip/popular")).json() == []


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"limit": "101"}, "limit"),
        ({"sort_by": "downloads"}, "sort_by"),
        ({"include_workers": "x"}, "include_workers"),
    ],
)
async def test_popular_bad_parameters_are_422(
    client: httpx.AsyncClient, params: dict[str, str], parameter: str
) -> None:
    response = await client.get(f"{V2}/image_generation/popular", params=params)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"query parameter {parameter!r}")


async def test_popular_while_the_horde_is_down(source: StaticSnapshotSource, horde: FakeHorde) -> None:
    horde.mode = "error"
    app = create_app(source, popularity=_popularity(horde.base_url))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://hmr") as client:
        response = await client.get(f"{V2}/image_generation/popular")
        assert response.status_code == 503
        detail = response.json()["detail"]  # status and stats are asked together: either fails first
        assert re.match(
            r"AI-Horde API unavailable: GET /v2/stat(us|s/img)/models: HTTP 500; next attempt in", detail
        )
        assert 25 <= int(response.headers["retry-after"]) <= 30
        heartbeat = (await client.get("/api/heartbeat")).json()
        assert heartbeat["status"] == "ok" and heartbeat["ai_horde"]["degraded"] is True
        assert heartbeat["ai_horde"]["consecutive_failures"] >= 1
        asked = len(horde.hits)
        assert (await client.get(f"{V2}/image_generation/popular")).status_code == 503
        assert len(horde.hits) == asked


# -- service endpoints ----------------------------------------------------------------------------


async def test_heartbeat_replicate_mode_health(
    client: httpx.AsyncClient, source: StaticSnapshotSource
) -> None:
    heartbeat = (await client.get("/api/heartbeat")).json()
    assert heartbeat["status"] == "ok"
    assert heartbeat["ai_horde"] == {
        "degraded": False,
        "consecutive_failures": 0,
        "seconds_until_retry": None,
        "state": "closed",
        "last_error": None,
    }
    mode = (await client.get("/api/replicate_mode")).json()
    assert mode == {"replicate_mode": "PRIMARY", "canonical_format": "v2", "writable": False}
    health = await client.get("/api/health")
    assert health.status_code == 200 and health.json()["service_id"] == source.service_id
    root = await client.get("/api")
    assert "docs/http.md" in root.json()["message"]


async def test_ready(client: httpx.AsyncClient) -> None:
    ready = await client.get("/api/ready")
    assert ready.status_code == 200
    states = ready.json()["categories"]
    assert states["image_generation"]["state"] == "loaded" and states["video_generation"]["state"] == "absent"


class _FailingSource(StaticSnapshotSource):
    """A source whose image category never loaded because its fetch fails."""

    def status(self) -> HealthReply:
        status = super().status()
        broken = CategoryHealth(
            revision=0, digest=None, last_error="BackendError: disk on fire", last_error_at=1.0
        )
        return msgspec.structs.replace(status, categories={**status.categories, "image_generation": broken})


async def test_not_ready_while_a_category_fails(golden: Path) -> None:
    source = _FailingSource({"clip": _golden_bytes(golden, MODEL_REFERENCE_CATEGORY.clip)})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(create_app(source)), base_url="http://hmr"
    ) as client:
        response = await client.get("/api/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert body["categories"]["image_generation"] == {
        "state": "failed",
        "revision": 0,
        "last_error": "BackendError: disk on fire",
    }


async def test_metrics(client: httpx.AsyncClient) -> None:
    await client.get(f"{V2}/image_generation")
    await client.get(f"{V2}/image_generation")
    await client.get(f"{V2}/nonsense")
    await client.get(f"{V2}/text_generation/popular")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.text
    assert 'hmr_category_revision{category="image_generation"} 1' in text
    assert 'hmr_category_records{category="text_generation"} 719' in text
    assert 'hmr_category_loaded{category="video_generation"} 0' in text
    assert 'hmr_actor_restarts_total{category="clip"} 0' in text
    assert (
        'hmr_http_requests_total{route="/api/model_references/v2/{category}",method="GET",status="200"} 2'
        in text
    )
    assert (
        'hmr_http_requests_total{route="/api/model_references/v2/{category}",method="GET",status="404"} 1'
        in text
    )
    assert 'hmr_http_request_duration_seconds_count{route="/api/model_references/v2/{category}"} 3' in text
    assert "hmr_horde_api_requests_total 2" in text
    assert "hmr_horde_api_breaker_open 0" in text
    assert (await client.get("/api/metrics")).text.startswith("# HELP hmr_info")


# -- errors ---------------------------------------------------------------------------------------


async def test_method_not_allowed_is_json(client: httpx.AsyncClient) -> None:
    response = await client.patch(f"{V2}/image_generation", content=b"{}")
    assert response.status_code == 405
    assert response.json() == {
        "detail": "method PATCH is not allowed on /api/model_references/v2/image_generation"
    }


class _BrokenSource(StaticSnapshotSource):
    def snapshot(self, category: str | MODEL_REFERENCE_CATEGORY) -> Snapshot | None:
        raise RuntimeError("boom")


async def test_internal_error_is_json_500() -> None:
    app = create_app(_BrokenSource({}))
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://hmr") as client:
        response = await client.get(f"{V2}/image_generation")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error (RuntimeError); see the service log"}


async def test_cors_when_configured(source: StaticSnapshotSource) -> None:
    app = create_app(source, cors_origins=["https://models.example"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://hmr") as client:
        response = await client.get(f"{V2}/model_categories", headers={"Origin": "https://models.example"})
    assert response.headers["access-control-allow-origin"] == "https://models.example"
