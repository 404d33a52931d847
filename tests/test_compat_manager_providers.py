"""Drop-in providers and backends: upstream's module paths, constructor arguments and outcomes.

The pending provider talks to a real HTTP server on 127.0.0.1; the backends read the real
catalogs from disk. No network beyond the loopback.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from horde_model_reference import (
    MODEL_REFERENCE_CATEGORY,
    BackendError,
    ImageGenerationModelRecord,
    ReplicateMode,
)
from horde_model_reference.backends.filesystem_backend import FileSystemBackend
from horde_model_reference.backends.github_backend import GitHubBackend
from horde_model_reference.model_reference_manager import ModelReferenceManager, PrefetchStrategy
from horde_model_reference.providers import (
    ANY_SOURCE,
    HORDE_SOURCE_ID,
    PENDING_SOURCE_ID,
    RESERVED_SOURCE_IDS,
    ModelProvider,
    ModelProviderRegistry,
    PendingModelProvider,
    StaticModelProvider,
    normalize_source_selector,
)
from horde_model_reference.providers.pending_provider import PENDING_SOURCE_ID as PENDING_FROM_MODULE
from horde_model_reference.providers.pending_provider import PendingModelProvider as PendingFromModule

IMAGE = MODEL_REFERENCE_CATEGORY.image_generation
KNOWN = "AlbedoBase XL (SDXL)"


def test_the_providers_package_names() -> None:
    from horde_model_reference.providers.base import ModelProvider as ProviderFromBase
    from horde_model_reference.providers.registry import ModelProviderRegistry as RegistryFromModule
    from horde_model_reference.providers.static_provider import StaticModelProvider as StaticFromModule

    assert (ProviderFromBase, RegistryFromModule, StaticFromModule) == (
        ModelProvider,
        ModelProviderRegistry,
        StaticModelProvider,
    )
    assert (HORDE_SOURCE_ID, ANY_SOURCE, PENDING_SOURCE_ID) == ("horde", "any", "pending")
    assert frozenset({"horde", "any"}) == RESERVED_SOURCE_IDS
    assert PendingFromModule is PendingModelProvider and PENDING_FROM_MODULE == "pending"
    assert issubclass(PendingModelProvider, ModelProvider) and issubclass(StaticModelProvider, ModelProvider)
    registry = ModelProviderRegistry()
    civitai = StaticModelProvider("civitai", {IMAGE: {}})
    registry.register(civitai)
    assert registry.source_ids() == ["civitai"] and registry.all() == [civitai]
    assert registry.providers_for(IMAGE) == [civitai] and registry.has("civitai")
    with pytest.raises(ValueError, match="A provider is already registered under source id 'civitai'"):
        registry.register(StaticModelProvider("civitai", {}))
    registry.clear()
    assert registry.all() == [] and registry.get("civitai") is None


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("horde", ["horde"]),
        ("any", ["any"]),
        (["pending", "horde", "pending"], ["pending", "horde"]),
        (("a", "b"), ["a", "b"]),
        ([], ["horde"]),
    ],
)
def test_normalize_source_selector_returns_upstreams_lists(
    source: str | list[str], expected: list[str]
) -> None:
    assert normalize_source_selector(source) == expected
    assert isinstance(normalize_source_selector(source), list)


# -- PendingModelProvider ------------------------------------------------------------------------


class _Primary:
    """A primary on 127.0.0.1 answering every request with one status and body."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b"{}"
        self.hits = 0
        self.url = ""


@pytest.fixture
def primary() -> Iterator[_Primary]:
    state = _Primary()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits += 1
            self.send_response(state.status)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/api"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _pending(primary: _Primary, **options: float) -> PendingModelProvider:
    """Built with every argument upstream's constructor takes."""
    arguments: dict[str, float] = {
        "cache_ttl_seconds": 60,
        "timeout_seconds": 10.0,
        "retry_max_attempts": 3,
        "retry_backoff_seconds": 0.0,
        **options,
    }
    return PendingModelProvider(
        primary_api_url=primary.url,
        apikey="reader-key",
        categories={IMAGE},
        **arguments,  # type: ignore[arg-type]
    )


@pytest.mark.anyio
async def test_a_403_with_nothing_cached_is_none(primary: _Primary) -> None:
    primary.status, primary.body = 403, b'{"message": "forbidden"}'
    assert _pending(primary).fetch_category(IMAGE) is None
    assert await _pending(primary).fetch_category_async(IMAGE) is None
    assert primary.hits == 2


def test_pending_records_and_the_unconfigured_category(primary: _Primary) -> None:
    primary.body = json.dumps({"beta": {"baseline": "flux_1", "nsfw": False}}).encode()
    pending = _pending(primary)
    assert pending.source_id == "pending" and pending.cache_ttl_seconds() == 60
    records = pending.fetch_category(IMAGE)
    assert records is not None and isinstance(records["beta"], ImageGenerationModelRecord)
    assert records["beta"].name == "beta"
    assert pending.fetch_category(MODEL_REFERENCE_CATEGORY.clip) is None
    assert primary.hits == 1


def test_server_errors_are_retried_retry_max_attempts_times(primary: _Primary) -> None:
    primary.status, primary.body = 503, b"busy"
    with pytest.raises(BackendError, match="HTTP 503"):
        _pending(primary, retry_max_attempts=2).fetch_category(IMAGE)
    assert primary.hits == 2


def test_a_403_feeds_an_empty_source_into_a_merged_query(
    primary: _Primary, catalog_dir: Path, manager_reset: None
) -> None:
    primary.status = 403
    manager = ModelReferenceManager(base_path=catalog_dir, offline=True)
    manager.register_provider(_pending(primary), replace=True)
    query = manager.query(IMAGE, source=[PENDING_SOURCE_ID, HORDE_SOURCE_ID])
    assert query.source_status() == {"pending": "empty", "horde": "ok"}
    assert KNOWN in query.names()


# -- backends built with upstream's arguments ----------------------------------------------------


def test_filesystem_backend_with_upstreams_arguments(catalog_dir: Path, manager_reset: None) -> None:
    backend = FileSystemBackend(
        base_path=catalog_dir, cache_ttl_seconds=60, replicate_mode=ReplicateMode.PRIMARY
    )
    assert backend.replicate_mode is ReplicateMode.PRIMARY and backend.base_path == catalog_dir
    assert backend.revalidate_interval == 60
    manager = ModelReferenceManager(
        backend=backend, prefetch_strategy=PrefetchStrategy.LAZY, replicate_mode=ReplicateMode.PRIMARY
    )
    assert manager.get_model(IMAGE, KNOWN).name == KNOWN
    assert (
        FileSystemBackend(base_path=catalog_dir, replicate_mode="primary").replicate_mode
        is ReplicateMode.PRIMARY
    )


def test_filesystem_backend_is_primary_only(catalog_dir: Path) -> None:
    with pytest.raises(ValueError, match="FileSystemBackend can only be used in PRIMARY mode"):
        FileSystemBackend(base_path=catalog_dir, replicate_mode=ReplicateMode.REPLICA)
    with pytest.raises(ValueError, match="replicate_mode must be PRIMARY or REPLICA, got 'mirror'"):
        FileSystemBackend(base_path=catalog_dir, replicate_mode="mirror")
    with pytest.raises(ValueError, match="cache_ttl_seconds must not be negative"):
        FileSystemBackend(base_path=catalog_dir, cache_ttl_seconds=-1)


def test_filesystem_backend_defaults_to_the_settings_base_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIWORKER_CACHE_HOME", str(tmp_path))
    from horde_model_reference.settings import load_settings

    assert FileSystemBackend().base_path == load_settings().resolved_base_path()


def test_github_backend_with_upstreams_arguments(tmp_path: Path) -> None:
    backend = GitHubBackend(
        base_path=tmp_path,
        cache_ttl_seconds=30,
        retry_max_attempts=5,
        retry_backoff_seconds=2,
        replicate_mode="REPLICA",
    )
    assert backend.replicate_mode is ReplicateMode.REPLICA and backend.base_path == tmp_path
    assert (backend.max_attempts, backend.backoff_base, backend.revalidate_interval) == (5, 2, 30)
    assert (backend.url_for(IMAGE) or "").endswith("/stable_diffusion.json")
    with capture_logs() as logs:
        seeding = GitHubBackend(base_path=tmp_path, replicate_mode=ReplicateMode.PRIMARY)
    assert seeding.replicate_mode is ReplicateMode.PRIMARY
    assert [log["event"] for log in logs] == ["github_backend_in_primary_mode"]


def test_local_readonly_and_http_backends_with_upstreams_arguments(
    catalog_dir: Path, manager_reset: None
) -> None:
    from horde_model_reference.backends.http_backend import HTTPBackend
    from horde_model_reference.backends.local_readonly_backend import LocalReadOnlyBackend
    from horde_model_reference.model_reference_manager import HTTPBackend as HTTPFromManager

    local = LocalReadOnlyBackend(base_path=catalog_dir, cache_ttl_seconds=5)
    assert local.replicate_mode is ReplicateMode.REPLICA and not local.supports_writes()
    assert local.revalidate_interval == 5
    manager = ModelReferenceManager(backend=local, replicate_mode=ReplicateMode.REPLICA)
    assert manager.get_model(IMAGE, KNOWN).name == KNOWN

    assert HTTPFromManager is HTTPBackend
    github = GitHubBackend(base_path=catalog_dir)
    http = HTTPBackend(
        primary_api_url="http://127.0.0.1:9/api",
        github_backend=github,
        timeout_seconds=2,
        retry_max_attempts=4,
        retry_backoff_seconds=0.5,
    )
    assert http.replicate_mode is ReplicateMode.REPLICA and http.fallback is github
    assert http.base_path == catalog_dir and (http.timeout, http.max_attempts, http.backoff_base) == (
        2,
        4,
        0.5,
    )
    assert http.url_for(IMAGE) == "http://127.0.0.1:9/api/model_references/v2/image_generation"
    alone = HTTPBackend(
        primary_api_url="http://127.0.0.1:9/api", github_backend=github, enable_github_fallback=False
    )
    assert alone.fallback is None
