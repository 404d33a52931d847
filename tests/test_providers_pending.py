"""PendingModelProvider against a real HTTP server on 127.0.0.1 (no mocks of httpx)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from structlog.testing import capture_logs

from horde_model_reference import (
    MODEL_REFERENCE_CATEGORY,
    BackendError,
    GenericModelRecord,
    ImageGenerationModelRecord,
)
from horde_model_reference.providers import PENDING_SOURCE_ID, PendingModelProvider
from horde_model_reference.query.manager_api import ProviderQueryMixin

IMAGE = MODEL_REFERENCE_CATEGORY.image_generation
PATH = "/api/model_references/v2/image_generation/pending"


@dataclass
class Primary:
    """What the fake primary serves and what it was asked."""

    url: str
    responses: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    delay: float = 0.0
    first: list[tuple[int, bytes]] = field(default_factory=list)
    """Answers given (in order) before `responses` is used."""

    def serve(self, path: str, body: object, status: int = 200) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.responses[path] = (status, data)

    def hits(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)


@pytest.fixture
def primary() -> Iterator[Primary]:
    state = Primary(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append((self.path, self.headers.get("apikey")))
            if state.delay:
                time.sleep(state.delay)
            if state.first:
                status, body = state.first.pop(0)
            else:
                status, body = state.responses.get(self.path, (404, b'{"message": "not found"}'))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a client that gave up (the timeout test) is not an error here

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/api"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def beta(name: str, **fields: object) -> dict[str, object]:
    return {"name": name, "baseline": "stable_diffusion_xl", "nsfw": False, **fields}


def provider(primary: Primary, **options: float) -> PendingModelProvider:
    options.setdefault("retry_backoff_seconds", 0.0)
    return PendingModelProvider(
        primary_api_url=primary.url + "/", apikey="reader-key", categories=["image_generation"], **options
    )


@pytest.mark.anyio
async def test_fetches_beta_records_with_the_apikey(primary: Primary) -> None:
    primary.serve(PATH, {"beta_a": beta("beta_a"), "beta_b": {"baseline": "flux_1", "nsfw": True}})
    pending = provider(primary)
    assert pending.source_id == PENDING_SOURCE_ID == "pending"
    assert set(pending.provided_categories()) == {IMAGE}
    records = await pending.fetch_category_async(IMAGE)
    assert records is not None and list(records) == ["beta_a", "beta_b"]
    assert all(isinstance(r, ImageGenerationModelRecord) for r in records.values())
    assert records["beta_b"].name == "beta_b", "a record without a name takes its key"
    assert primary.requests == [(PATH, "reader-key")]


def test_sync_fetch_works_too(primary: Primary) -> None:
    primary.serve(PATH, {"beta_a": beta("beta_a")})
    assert list(provider(primary).fetch_category(IMAGE) or {}) == ["beta_a"]
    assert primary.requests == [(PATH, "reader-key")]


@pytest.mark.anyio
async def test_invalid_records_are_skipped(primary: Primary) -> None:
    primary.serve(PATH, {"good": beta("good"), "bad": beta("bad", nsfw="perhaps"), "odd": [1, 2]})
    with capture_logs() as logs:
        records = await provider(primary).fetch_category_async(IMAGE)
    assert list(records or {}) == ["good"]
    skipped = {log["model"]: log for log in logs if log["event"] == "pending_record_skipped"}
    assert set(skipped) == {"bad", "odd"}
    assert skipped["bad"]["field"] == "nsfw"


@pytest.mark.anyio
async def test_cached_for_the_ttl(primary: Primary) -> None:
    primary.serve(PATH, {"a": beta("a")})
    pending = provider(primary, cache_ttl_seconds=0.3)
    assert pending.cache_ttl_seconds() == 0.3
    await pending.fetch_category_async(IMAGE)
    pending.fetch_category(IMAGE)
    await pending.fetch_category_async(IMAGE)
    assert primary.hits(PATH) == 1
    await pending.fetch_category_async(IMAGE, force_refresh=True)
    assert primary.hits(PATH) == 2
    time.sleep(0.35)
    primary.serve(PATH, {"a": beta("a"), "b": beta("b")})
    assert list(await pending.fetch_category_async(IMAGE) or {}) == ["a", "b"]
    assert primary.hits(PATH) == 3


@pytest.mark.anyio
async def test_unconfigured_category_is_not_fetched(primary: Primary) -> None:
    pending = provider(primary)
    assert await pending.fetch_category_async(MODEL_REFERENCE_CATEGORY.clip) is None
    assert pending.fetch_category(MODEL_REFERENCE_CATEGORY.clip) is None
    assert primary.requests == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (500, b"{}", "HTTP 500"),
        (200, b"{not json", "malformed JSON"),
        (200, b"[1, 2]", "expected a JSON object, got a JSON list"),
    ],
)
async def test_failures_raise_without_a_cached_copy(
    primary: Primary, status: int, body: bytes, reason: str
) -> None:
    primary.serve(PATH, body, status)
    with pytest.raises(BackendError, match=reason):
        await provider(primary).fetch_category_async(IMAGE)
    with pytest.raises(BackendError, match=reason):
        provider(primary).fetch_category(IMAGE)


@pytest.mark.anyio
async def test_network_errors_raise_backend_error() -> None:
    pending = PendingModelProvider(
        primary_api_url="http://127.0.0.1:9/api",
        apikey="k",
        categories=[IMAGE],
        timeout_seconds=1,
        retry_backoff_seconds=0,
    )
    with pytest.raises(
        BackendError, match=r"pending: category 'image_generation': http://127.0.0.1:9/api/.*ConnectError"
    ):
        await pending.fetch_category_async(IMAGE)
    with pytest.raises(BackendError, match="ConnectError"):
        pending.fetch_category(IMAGE)


@pytest.mark.anyio
async def test_a_failed_refresh_keeps_the_last_good_copy(primary: Primary) -> None:
    primary.serve(PATH, {"a": beta("a")})
    pending = provider(primary)
    await pending.fetch_category_async(IMAGE)
    primary.serve(PATH, b"oops", 503)
    with capture_logs() as logs:
        kept = await pending.fetch_category_async(IMAGE, force_refresh=True)
    assert list(kept or {}) == ["a"]
    assert [log["reason"] for log in logs if log["event"] == "pending_fetch_failed"] == ["HTTP 503"]


@pytest.mark.anyio
async def test_request_timeout(primary: Primary) -> None:
    primary.serve(PATH, {"a": beta("a")})
    primary.delay = 0.5
    pending = provider(primary, timeout_seconds=0.1, retry_max_attempts=1)
    assert pending.fetch_timeout_seconds() == pytest.approx(1.1)
    with pytest.raises(BackendError, match="Timeout"):
        await pending.fetch_category_async(IMAGE)
    with pytest.raises(ValueError, match="timeout_seconds must be positive"):
        provider(primary, timeout_seconds=0)


class Host(ProviderQueryMixin):
    def __init__(self, canonical: Mapping[str, GenericModelRecord]) -> None:
        self._canonical = canonical
        self._provider_timeout = 5.0

    def _canonical_records_sync(
        self, category: MODEL_REFERENCE_CATEGORY
    ) -> Mapping[str, GenericModelRecord] | None:
        return self._canonical if category == IMAGE else None

    async def _canonical_records_async(
        self, category: MODEL_REFERENCE_CATEGORY
    ) -> Mapping[str, GenericModelRecord] | None:
        return self._canonical_records_sync(category)


def _canonical() -> dict[str, GenericModelRecord]:
    return {
        "shared": ImageGenerationModelRecord(
            name="shared", baseline="stable_diffusion_1", nsfw=False, version="canonical"
        ),
        "stable": ImageGenerationModelRecord(name="stable", baseline="stable_diffusion_1", nsfw=False),
    }


def test_pending_first_lets_beta_override_canonical(primary: Primary) -> None:
    primary.serve(PATH, {"shared": beta("shared", version="beta"), "new": beta("new")})
    host = Host(_canonical())
    host.register_provider(provider(primary))

    beta_first = host.query(IMAGE, source=["pending", "horde"])
    assert beta_first.names() == ["shared", "new", "stable"]
    assert beta_first.where(name="shared").first().version == "beta"  # type: ignore[union-attr]
    assert beta_first.duplicate_names() == {"shared": ["pending", "horde"]}
    assert beta_first.source_status() == {"pending": "ok", "horde": "ok"}

    canonical_first = host.query(IMAGE, source="any")
    assert canonical_first.where(name="shared").first().version == "canonical"  # type: ignore[union-attr]
    merged = host._merged_records_sync(IMAGE, ["pending", "horde"])
    assert merged is not None and merged["shared"].version == "beta"


@pytest.mark.anyio
async def test_pending_failure_leaves_canonical(primary: Primary) -> None:
    primary.serve(PATH, b"down", 502)
    host = Host(_canonical())
    host.register_provider(provider(primary))
    query = await host.query(IMAGE, source=["pending", "horde"]).fetch()
    assert query.names() == ["shared", "stable"]
    assert query.failed_sources() == ["pending"]
    assert "HTTP 502" in query.source_errors()["pending"]


@pytest.mark.anyio
@pytest.mark.parametrize("status", [401, 403, 404])
async def test_a_refusal_with_nothing_cached_is_none(primary: Primary, status: int) -> None:
    primary.serve(PATH, {"message": "no"}, status)
    with capture_logs() as logs:
        assert await provider(primary).fetch_category_async(IMAGE) is None
        assert provider(primary).fetch_category(IMAGE) is None
    assert primary.hits(PATH) == 2, "a refusal is not retried"
    refused = [log for log in logs if log["event"] == "pending_fetch_refused"]
    assert [(log["status"], log["kept"]) for log in refused] == [(status, "nothing")] * 2


@pytest.mark.anyio
async def test_a_refusal_keeps_the_last_good_copy(primary: Primary) -> None:
    primary.serve(PATH, {"a": beta("a")})
    pending = provider(primary)
    await pending.fetch_category_async(IMAGE)
    primary.serve(PATH, {"message": "forbidden"}, 403)
    assert list(await pending.fetch_category_async(IMAGE, force_refresh=True) or {}) == ["a"]


@pytest.mark.anyio
@pytest.mark.parametrize("status", [429, 500, 503])
async def test_transient_failures_are_retried(primary: Primary, status: int) -> None:
    primary.serve(PATH, b"busy", status)
    with pytest.raises(BackendError, match=f"HTTP {status}"):
        await provider(primary, retry_max_attempts=3).fetch_category_async(IMAGE)
    assert primary.hits(PATH) == 3
    with pytest.raises(BackendError, match=f"HTTP {status}"):
        provider(primary, retry_max_attempts=2).fetch_category(IMAGE)
    assert primary.hits(PATH) == 5


def test_retry_settings_are_checked_and_bound_the_read(primary: Primary) -> None:
    with pytest.raises(ValueError, match="retry_max_attempts must be at least 1, got 0"):
        provider(primary, retry_max_attempts=0)
    with pytest.raises(ValueError, match="retry_backoff_seconds must not be negative"):
        provider(primary, retry_backoff_seconds=-1)
    slow = provider(primary, timeout_seconds=2, retry_max_attempts=3, retry_backoff_seconds=1)
    assert slow.fetch_timeout_seconds() == pytest.approx(3 * 2 + 1 + 2 + 1)


def test_a_transient_failure_then_success_is_a_success(primary: Primary) -> None:
    primary.first = [(503, b"busy"), (502, b"busy")]
    primary.serve(PATH, {"a": beta("a")})
    assert list(provider(primary, retry_max_attempts=3).fetch_category(IMAGE) or {}) == ["a"]
    assert primary.hits(PATH) == 3
