"""`HTTPBackend`: a primary's HTTP API (REPLICA), downloaded with the machinery of `_remote.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Unpack

from horde_model_reference.backends._remote import RemoteOptions, _RemoteBackend
from horde_model_reference.backends.base import CategoryPayload, InvalidationCallback, ModelReferenceBackend
from horde_model_reference.catalog import validate_catalog_bytes
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, get_category_descriptor, parse_category
from horde_model_reference.errors import BackendError
from horde_model_reference.logs import get_logger
from horde_model_reference.settings import ReplicateMode
from horde_model_reference.urls import redact_url

__all__ = ["HTTPBackend", "RemoteOptions"]

_log = get_logger(__name__)


class HTTPBackend(_RemoteBackend):
    """Reads `{primary}/model_references/v2/{category}` from a primary's HTTP API (REPLICA).

    When the primary fails (after retries), the last good copy it served is kept; a category the
    primary has not served yet comes from `fallback` (usually a `GitHubBackend`) if one is given.
    The primary is the authority, so its copy is preferred to the fallback's: a replica never
    flips between the two while the primary has a short outage. A 404 means the category does
    not exist (None).
    """

    name = "http"
    replicate_mode = ReplicateMode.REPLICA

    def __init__(
        self,
        primary_url: str,
        base_path: str | Path,
        *,
        fallback: ModelReferenceBackend | None = None,
        **options: Unpack[RemoteOptions],
    ) -> None:
        super().__init__(base_path, **options)
        root = primary_url.rstrip("/")
        # Today's setting sometimes already names the collection (".../api/model_references/").
        self.references_url = root if root.endswith("/model_references") else f"{root}/model_references"
        self.fallback = fallback

    def url_for(self, category: MODEL_REFERENCE_CATEGORY) -> str | None:
        """`{primary}/model_references/v2/{category}`."""
        return f"{self.references_url}/v2/{parse_category(category).value}"

    def _to_v2(self, category: MODEL_REFERENCE_CATEGORY, body: bytes, url: str) -> bytes:
        validate_catalog_bytes(category, body, source=redact_url(url))
        return body

    def _validator_path(self, category: MODEL_REFERENCE_CATEGORY) -> Path:
        return self.base_path / f"{get_category_descriptor(category).v2_filename}.etag"

    async def _on_source_failure(
        self, category: MODEL_REFERENCE_CATEGORY, held: CategoryPayload | None, error: BackendError
    ) -> CategoryPayload | None:
        if held is not None or self.fallback is None:
            return await super()._on_source_failure(category, held, error)
        _log.warning(
            "primary_failed_using_fallback",
            backend=self.name,
            category=category.value,
            fallback=self.fallback.name,
            reason=error.reason,
        )
        try:
            return await self.fallback.fetch_category(category)
        except BackendError as fallback_error:
            raise BackendError(
                self.name, category.value, f"{error.reason}; fallback {self.fallback.name}: {fallback_error}"
            ) from fallback_error

    def last_fetched(self, category: MODEL_REFERENCE_CATEGORY) -> float | None:
        """When the primary (else the fallback) last provided `category`."""
        own = super().last_fetched(category)
        if own is None and self.fallback is not None:
            return self.fallback.last_fetched(category)
        return own

    def add_invalidation_callback(self, callback: InvalidationCallback) -> None:
        """Register `callback` here and on the fallback."""
        super().add_invalidation_callback(callback)
        if self.fallback is not None:
            self.fallback.add_invalidation_callback(callback)

    async def aclose(self) -> None:
        """Close this backend and the fallback."""
        await super().aclose()
        if self.fallback is not None:
            await self.fallback.aclose()
