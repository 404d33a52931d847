"""`GitHubBackend`: the legacy files of the public GitHub repositories, converted to v2 (REPLICA).

URL of a category's file: `{base_url}/{owner}/{name}/{branch}/{legacy_filename}`, the repository
chosen by the category's `github_source` (image or text). With a proxy (today's
`GITHUB_PROXY_URL_BASE`) the full URL is appended to the proxy base:
`{proxy_url_base}/{base_url}/{owner}/...`.

Local copies under `base_path`: the v2 bytes at `<v2_filename>`, the download at
`legacy/<legacy_filename>` and its ETag in `legacy/<legacy_filename>.etag`. Requests are
conditional, so an unchanged file (304) costs neither a download nor a conversion. A download
that cannot be converted, or whose every record was rejected, never replaces the last good copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Unpack

from horde_model_reference.backends._remote import RemoteOptions, _RemoteBackend
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, get_category_descriptor, parse_category
from horde_model_reference.errors import CatalogDecodeError
from horde_model_reference.legacy import legacy_to_v2_json
from horde_model_reference.logs import get_logger
from horde_model_reference.settings import (
    GithubRepoSettings,
    HordeModelReferenceSettings,
    ImageGithubRepoSettings,
    ReplicateMode,
    TextGithubRepoSettings,
)
from horde_model_reference.urls import redact_url

__all__ = ["DEFAULT_GITHUB_BASE_URL", "GitHubBackend"]

DEFAULT_GITHUB_BASE_URL = "https://raw.githubusercontent.com"
_EMPTY_CATALOG = b"{}"

_log = get_logger(__name__)


def _legacy_to_v2(category: MODEL_REFERENCE_CATEGORY, data: bytes, source: str | None = None) -> bytes:
    """A category's legacy file as v2 JSON bytes (raises `CatalogDecodeError` when unusable).

    Skipped records are logged by the converter. A file that held records but yielded none (every
    record rejected) is refused as a whole: it would empty a category.
    """
    v2, issues = legacy_to_v2_json(category, data, source=source)
    if issues and v2.strip() == _EMPTY_CATALOG:
        raise CatalogDecodeError(category.value, f"all {len(issues)} record(s) were rejected", source=source)
    return v2


class GitHubBackend(_RemoteBackend):
    """Downloads the legacy catalogs from GitHub (or a proxy of it) and serves them as v2."""

    name = "github"
    replicate_mode = ReplicateMode.REPLICA

    def __init__(
        self,
        base_path: str | Path,
        *,
        base_url: str = DEFAULT_GITHUB_BASE_URL,
        proxy_url_base: str | None = None,
        image_repo: GithubRepoSettings | None = None,
        text_repo: GithubRepoSettings | None = None,
        **options: Unpack[RemoteOptions],
    ) -> None:
        super().__init__(base_path, **options)
        self.base_url = base_url.rstrip("/")
        self.proxy_url_base = proxy_url_base.rstrip("/") if proxy_url_base else None
        self.repos: dict[str, GithubRepoSettings] = {
            "image": image_repo or ImageGithubRepoSettings(),
            "text": text_repo or TextGithubRepoSettings(),
        }

    @classmethod
    def from_settings(
        cls,
        settings: HordeModelReferenceSettings,
        base_path: str | Path,
        *,
        timeout: float = 10.0,
        refresh_on_start: bool = True,
    ) -> GitHubBackend:
        """A backend configured from `settings` (base URL, proxy, repositories)."""
        return cls(
            base_path,
            base_url=settings.github_base_url,
            proxy_url_base=settings.github_proxy_url_base,
            image_repo=settings.image_github_repo,
            text_repo=settings.text_github_repo,
            timeout=timeout,
            refresh_on_start=refresh_on_start,
        )

    def url_for(self, category: MODEL_REFERENCE_CATEGORY) -> str | None:
        """The (proxied) URL of `category`'s legacy file, or None when it has none."""
        descriptor = get_category_descriptor(category)
        if descriptor.github_source is None or descriptor.legacy_filename is None:
            return None
        repo = self.repos[descriptor.github_source]
        url = f"{self.base_url}/{repo.owner}/{repo.name}/{repo.branch}/{descriptor.legacy_filename}"
        return f"{self.proxy_url_base}/{url}" if self.proxy_url_base else url

    def legacy_path_for(self, category: MODEL_REFERENCE_CATEGORY) -> Path | None:
        """Where the last good legacy download of `category` is kept."""
        filename = get_category_descriptor(category).legacy_filename
        return self.base_path / "legacy" / filename if filename else None

    def _body_path(self, category: MODEL_REFERENCE_CATEGORY) -> Path | None:
        return self.legacy_path_for(category)

    def _validator_path(self, category: MODEL_REFERENCE_CATEGORY) -> Path:
        path = self.legacy_path_for(category)
        if path is None:
            raise ValueError(f"category {parse_category(category).value!r} has no legacy file")
        return path.with_name(path.name + ".etag")

    def _to_v2(self, category: MODEL_REFERENCE_CATEGORY, body: bytes, url: str) -> bytes:
        return _legacy_to_v2(category, body, source=redact_url(url))
