"""backend_from_settings: which backend each mode and setting gives, and the PRIMARY's GitHub seed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from horde_model_reference.backends import (
    FileSystemBackend,
    GitHubBackend,
    HTTPBackend,
    LocalReadOnlyBackend,
    ModelReferenceBackend,
    RedisBackend,
    backend_from_settings,
)
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY as C
from horde_model_reference.settings import HordeModelReferenceSettings, ReplicateMode, load_settings
from test_backend_http_server import Upstream, github_path, serve_github

P = "HORDE_MODEL_REFERENCE_"


@pytest.fixture
def upstream(shared_data: Path) -> Iterator[Upstream]:
    server = Upstream().start()
    serve_github(server, shared_data)
    try:
        yield server
    finally:
        server.stop()


def build(
    env: dict[str, str], base: Path, mode: ReplicateMode = ReplicateMode.REPLICA, offline: bool = False
) -> ModelReferenceBackend:
    return backend_from_settings(load_settings(env), base_path=base, replicate_mode=mode, offline=offline)


def test_primary_is_the_filesystem_and_never_wrapped_in_redis(tmp_path: Path) -> None:
    backend = build({f"{P}REDIS__URL": "redis://127.0.0.1:1/0"}, tmp_path, ReplicateMode.PRIMARY)
    assert type(backend) is FileSystemBackend
    assert backend.supports_writes() and backend.base_path == tmp_path


def test_replica_offline_reads_local_files(tmp_path: Path) -> None:
    backend = build({}, tmp_path, offline=True)
    assert type(backend) is LocalReadOnlyBackend
    assert not backend.supports_writes()


def test_replica_defaults_to_github_with_settings_applied(tmp_path: Path) -> None:
    env = {
        f"{P}GITHUB_BASE_URL": "http://mirror.invalid/raw/",
        f"{P}GITHUB_PROXY_URL_BASE": "http://proxy.invalid",
        f"{P}IMAGE_GITHUB_REPO__OWNER": "someone",
        f"{P}TEXT_GITHUB_REPO__BRANCH": "dev",
        f"{P}PRIMARY_API_TIMEOUT": "3.5",
    }
    backend = build(env, tmp_path)
    assert isinstance(backend, GitHubBackend)
    assert backend.timeout == 3.5
    assert backend.url_for(C.image_generation) == (
        "http://proxy.invalid/http://mirror.invalid/raw/someone/AI-Horde-image-model-reference/main/stable_diffusion.json"
    )
    assert backend.url_for(C.text_generation) == (
        "http://proxy.invalid/http://mirror.invalid/raw/Haidra-Org/AI-Horde-text-model-reference/dev/models.csv"
    )


def test_replica_with_a_primary_uses_http_with_github_fallback(tmp_path: Path) -> None:
    env = {f"{P}PRIMARY_API_URL": "https://models.example.invalid/api", f"{P}PRIMARY_API_TIMEOUT": "4"}
    backend = build(env, tmp_path)
    assert isinstance(backend, HTTPBackend)
    assert (
        backend.url_for(C.controlnet) == "https://models.example.invalid/api/model_references/v2/controlnet"
    )
    assert backend.timeout == 4.0
    assert isinstance(backend.fallback, GitHubBackend) and backend.fallback.base_path == tmp_path


@pytest.mark.parametrize("offline", [False, True])
def test_redis_wraps_a_replica(tmp_path: Path, offline: bool) -> None:
    env = {
        f"{P}REDIS__URL": "redis://127.0.0.1:6379/3",
        f"{P}REDIS__KEY_PREFIX": "custom:prefix",
        f"{P}REDIS__SOCKET_TIMEOUT": "0.75",
        f"{P}CACHE_TTL_SECONDS": "12",
    }
    backend = build(env, tmp_path, offline=offline)
    assert isinstance(backend, RedisBackend)
    assert isinstance(backend.inner, LocalReadOnlyBackend if offline else GitHubBackend)
    assert backend.key(C.clip) == "custom:prefix:backend:clip"
    assert backend.socket_timeout == 0.75 and backend.fresh_for == 12.0


def test_redis_default_key_prefix(tmp_path: Path) -> None:
    backend = build({f"{P}REDIS__URL": "redis://127.0.0.1:6379/0"}, tmp_path)
    assert isinstance(backend, RedisBackend) and backend.key(C.clip) == "hmr:v1:backend:clip"


def test_todays_lowercase_mode_is_accepted(tmp_path: Path) -> None:
    settings = HordeModelReferenceSettings()
    backend = backend_from_settings(
        settings,
        base_path=tmp_path,
        replicate_mode="primary",  # type: ignore[arg-type]
        offline=False,
    )
    assert type(backend) is FileSystemBackend


def seed_env(upstream: Upstream) -> dict[str, str]:
    return {f"{P}GITHUB_SEED_ENABLED": "1", f"{P}GITHUB_BASE_URL": upstream.url}


def test_primary_seeds_an_empty_directory_once_from_github(upstream: Upstream, tmp_path: Path) -> None:
    backend = build(seed_env(upstream), tmp_path, ReplicateMode.PRIMARY)
    assert type(backend) is FileSystemBackend
    written = sorted(p.name for p in tmp_path.iterdir())
    assert "stable_diffusion.json" in written and "text_generation.json" in written
    assert "legacy" not in written  # only v2 catalogs land in a primary's directory
    requests = len(upstream.hits)
    assert requests == 10

    build(seed_env(upstream), tmp_path, ReplicateMode.PRIMARY)
    assert len(upstream.hits) == requests  # not seeded again: the directory has catalogs


def test_seed_keeps_existing_catalogs(upstream: Upstream, tmp_path: Path) -> None:
    (tmp_path / "blip.json").write_bytes(b"{}")
    build(seed_env(upstream), tmp_path, ReplicateMode.PRIMARY)
    assert upstream.hits == []
    assert (tmp_path / "blip.json").read_bytes() == b"{}"


def test_seed_failure_leaves_the_directory_empty(upstream: Upstream, tmp_path: Path) -> None:
    upstream.stop()
    env = {**seed_env(upstream), f"{P}PRIMARY_API_TIMEOUT": "0.5"}
    backend = build(env, tmp_path, ReplicateMode.PRIMARY)
    assert type(backend) is FileSystemBackend
    assert list(tmp_path.iterdir()) == []


@pytest.mark.anyio
async def test_seed_works_from_inside_a_running_loop(upstream: Upstream, tmp_path: Path) -> None:
    backend = build(seed_env(upstream), tmp_path, ReplicateMode.PRIMARY)
    payload = await backend.fetch_category(C.controlnet)
    assert payload is not None and b"control_qr_sdxl" in payload.data
    assert upstream.hits_for(github_path("controlnet"))
