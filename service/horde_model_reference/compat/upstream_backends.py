"""Upstream's backend constructors (`backends.filesystem_backend`, `.github_backend`,
`.http_backend`, `.local_readonly_backend`).

Today's library builds its backends with keyword arguments (`base_path=`, `replicate_mode=`,
`cache_ttl_seconds=`, `retry_max_attempts=`, ...) and a default base path from its settings.
The classes here are thin subclasses of this package's backends that accept those arguments and
translate them; everything else (reads, revalidation, writes) is the backend's own.

- `FileSystemBackend` is PRIMARY only: another `replicate_mode` raises `ValueError` (as upstream).
  `skip_startup_metadata_population` and `audit_writer` are accepted and unused: this package
  keeps no metadata files next to the catalogs, and its write path keeps its own audit log.
- `GitHubBackend` is meant for REPLICA; PRIMARY is allowed (a one-time seed) with a warning.
- `HTTPBackend` reads a primary's API; `github_backend` is its fallback unless
  `enable_github_fallback=False`. Its local copies go to the fallback's base path (or the
  settings' one). `LocalReadOnlyBackend` reads files another process keeps current.
- `cache_ttl_seconds`, when given, is how often a manager re-checks the backend in the
  background. Left out, the backend's own interval applies (a `stat` a second for files).
"""

from __future__ import annotations

from pathlib import Path

from horde_model_reference.backends.base import ModelReferenceBackend
from horde_model_reference.backends.filesystem import FileSystemBackend as _FileSystemBackend
from horde_model_reference.backends.filesystem import LocalReadOnlyBackend as _LocalReadOnlyBackend
from horde_model_reference.backends.github import GitHubBackend as _GitHubBackend
from horde_model_reference.backends.http import HTTPBackend as _HTTPBackend
from horde_model_reference.logs import get_logger
from horde_model_reference.settings import ReplicateMode, load_settings

__all__ = ["FileSystemBackend", "GitHubBackend", "HTTPBackend", "LocalReadOnlyBackend"]

_log = get_logger(__name__)


def _mode(value: ReplicateMode | str) -> ReplicateMode:
    """`value` as a `ReplicateMode`, upstream's lower-case spelling included."""
    try:
        return ReplicateMode(str(value).upper())
    except ValueError:
        raise ValueError(f"replicate_mode must be PRIMARY or REPLICA, got {value!r}") from None


def _ttl(value: float | None) -> float | None:
    if value is not None and value < 0:
        raise ValueError(f"cache_ttl_seconds must not be negative, got {value!r}")
    return value


class FileSystemBackend(_FileSystemBackend):
    """Upstream's `FileSystemBackend(*, base_path=..., replicate_mode=PRIMARY, ...)`."""

    def __init__(
        self,
        base_path: str | Path | None = None,
        *,
        cache_ttl_seconds: float | None = None,
        replicate_mode: ReplicateMode | str = ReplicateMode.PRIMARY,
        skip_startup_metadata_population: bool = False,
        audit_writer: object = None,
    ) -> None:
        """`base_path` defaults to the settings' base path; `replicate_mode` must be PRIMARY."""
        if _mode(replicate_mode) is not ReplicateMode.PRIMARY:
            raise ValueError(
                f"FileSystemBackend can only be used in PRIMARY mode (got replicate_mode={replicate_mode!r}); "
                "for REPLICA mode, use GitHubBackend or HTTPBackend"
            )
        super().__init__(base_path if base_path is not None else load_settings().resolved_base_path())
        ttl = _ttl(cache_ttl_seconds)
        if ttl is not None:
            self.revalidate_interval = ttl


class GitHubBackend(_GitHubBackend):
    """Upstream's `GitHubBackend(*, base_path=..., retry_max_attempts=..., replicate_mode=REPLICA)`.

    URLs, proxy and repositories come from the settings (`HORDE_MODEL_REFERENCE_*`), as upstream.
    """

    def __init__(
        self,
        *,
        base_path: str | Path | None = None,
        cache_ttl_seconds: float | None = None,
        retry_max_attempts: int = 3,
        retry_backoff_seconds: float = 0.5,
        replicate_mode: ReplicateMode | str = ReplicateMode.REPLICA,
    ) -> None:
        """`base_path` defaults to the settings' base path."""
        settings = load_settings()
        mode = _mode(replicate_mode)
        ttl = _ttl(cache_ttl_seconds)
        super().__init__(
            base_path if base_path is not None else settings.resolved_base_path(),
            base_url=settings.github_base_url,
            proxy_url_base=settings.github_proxy_url_base,
            image_repo=settings.image_github_repo,
            text_repo=settings.text_github_repo,
            max_attempts=retry_max_attempts,
            backoff_base=retry_backoff_seconds,
        )
        self.replicate_mode = mode
        if ttl is not None:
            self.revalidate_interval = ttl
        if mode is ReplicateMode.PRIMARY:
            _log.warning(
                "github_backend_in_primary_mode", hint="meant for REPLICA or a one-time seed of a PRIMARY"
            )


class LocalReadOnlyBackend(_LocalReadOnlyBackend):
    """Upstream's `LocalReadOnlyBackend(*, base_path=..., cache_ttl_seconds=...)` (always REPLICA)."""

    def __init__(
        self, base_path: str | Path | None = None, *, cache_ttl_seconds: float | None = None
    ) -> None:
        """`base_path` defaults to the settings' base path."""
        super().__init__(base_path if base_path is not None else load_settings().resolved_base_path())
        ttl = _ttl(cache_ttl_seconds)
        if ttl is not None:
            self.revalidate_interval = ttl


class HTTPBackend(_HTTPBackend):
    """Upstream's `HTTPBackend(*, primary_api_url, github_backend, timeout_seconds=..., ...)` (REPLICA)."""

    def __init__(
        self,
        *,
        primary_api_url: str,
        github_backend: ModelReferenceBackend | None = None,
        cache_ttl_seconds: float | None = None,
        timeout_seconds: float = 10.0,
        retry_max_attempts: int = 3,
        retry_backoff_seconds: float = 1.0,
        enable_github_fallback: bool = True,
    ) -> None:
        """Without `github_backend` (or with `enable_github_fallback=False`) there is no fallback."""
        base_path = getattr(github_backend, "base_path", None) or load_settings().resolved_base_path()
        ttl = _ttl(cache_ttl_seconds)
        super().__init__(
            primary_api_url,
            base_path,
            fallback=github_backend if enable_github_fallback else None,
            timeout=timeout_seconds,
            max_attempts=retry_max_attempts,
            backoff_base=retry_backoff_seconds,
        )
        if ttl is not None:
            self.revalidate_interval = ttl
