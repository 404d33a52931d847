"""`backend_from_settings`: the backend a process should use, from its settings and mode.

- PRIMARY: `FileSystemBackend(base_path)`; with `github_seed_enabled` and no catalog in the
  directory yet, the directory is seeded once from GitHub first. Never wrapped in Redis.
- REPLICA, offline: `LocalReadOnlyBackend(base_path)` (never downloads).
- REPLICA with `primary_api_url`: `HTTPBackend` on the primary, with a `GitHubBackend` fallback.
- REPLICA otherwise: `GitHubBackend`.
- A REPLICA backend is wrapped in `RedisBackend` when `redis.url` is set.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from pathlib import Path

from horde_model_reference.backends.base import ModelReferenceBackend
from horde_model_reference.backends.filesystem import (
    FileSystemBackend,
    LocalReadOnlyBackend,
    atomic_write_bytes,
)
from horde_model_reference.backends.github import GitHubBackend
from horde_model_reference.backends.http import HTTPBackend
from horde_model_reference.backends.redis import RedisBackend
from horde_model_reference.categories import canonical_categories, get_category_descriptor
from horde_model_reference.logs import get_logger
from horde_model_reference.settings import HordeModelReferenceSettings, ReplicateMode

__all__ = ["backend_from_settings", "seed_from_github"]

_log = get_logger(__name__)


def backend_from_settings(
    settings: HordeModelReferenceSettings,
    *,
    base_path: Path,
    replicate_mode: ReplicateMode,
    offline: bool,
) -> ModelReferenceBackend:
    """The backend for `replicate_mode` (see the module docstring for the rules)."""
    base_path = Path(base_path)
    if ReplicateMode(str(replicate_mode).upper()) is ReplicateMode.PRIMARY:
        if settings.github_seed_enabled and not _has_catalogs(base_path):
            seed_from_github(settings, base_path)
        return FileSystemBackend(base_path)
    backend: ModelReferenceBackend
    if offline:
        backend = LocalReadOnlyBackend(base_path)
    else:
        github = GitHubBackend.from_settings(settings, base_path, timeout=settings.primary_api_timeout)
        if settings.primary_api_url:
            backend = HTTPBackend(
                settings.primary_api_url, base_path, fallback=github, timeout=settings.primary_api_timeout
            )
        else:
            backend = github
    redis = settings.redis
    if redis.url:
        backend = RedisBackend(
            backend,
            redis.url,
            key_prefix=redis.key_prefix,
            fresh_for=settings.cache_ttl_seconds,
            socket_timeout=redis.socket_timeout,
            socket_connect_timeout=redis.socket_connect_timeout,
            pool_size=redis.pool_size,
        )
    _log.info("backend_selected", backend=backend.name, mode=str(replicate_mode), offline=offline)
    return backend


def _has_catalogs(base_path: Path) -> bool:
    return any((base_path / get_category_descriptor(c).v2_filename).is_file() for c in canonical_categories())


def seed_from_github(settings: HordeModelReferenceSettings, base_path: Path) -> int:
    """Download every legacy catalog from GitHub and write the v2 files `base_path` lacks.

    Blocking; runs on a private event loop in its own thread, so it may be called from anywhere
    (even from inside a running loop). Existing files are never overwritten. Returns how many
    files were written; failures are logged and leave the directory as it was.
    """
    written: list[int] = []

    async def download(scratch: Path) -> None:
        github = GitHubBackend.from_settings(
            settings, scratch, timeout=settings.primary_api_timeout, refresh_on_start=False
        )
        try:
            payloads = await github.fetch_all()
        finally:
            await github.aclose()
        count = 0
        for category, payload in payloads.items():
            target = base_path / get_category_descriptor(category).v2_filename
            if not target.exists():
                atomic_write_bytes(target, payload.data)
                count += 1
        written.append(count)

    def run() -> None:
        try:
            with tempfile.TemporaryDirectory(prefix="hmr-seed-") as scratch:
                asyncio.run(download(Path(scratch)))
        except Exception:
            _log.exception("github_seed_failed", base_path=str(base_path))

    thread = threading.Thread(target=run, name="hmr-github-seed", daemon=True)
    thread.start()
    thread.join()
    count = written[0] if written else 0
    _log.info("github_seed_done", base_path=str(base_path), written=count)
    return count
