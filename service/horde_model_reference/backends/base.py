"""The backend protocol: where canonical catalog bytes come from (and, optionally, go to)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import Protocol, runtime_checkable

import anyio
import msgspec

from horde_model_reference.catalog import DecodedCatalog, catalog_digest, decode_catalog
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.errors import BackendError
from horde_model_reference.logs import get_logger

__all__ = ["CategoryPayload", "InvalidationCallback", "ModelReferenceBackend", "fetch_categories"]

_log = get_logger(__name__)

InvalidationCallback = Callable[[MODEL_REFERENCE_CATEGORY], None]
"""Called (from any thread) with a category whose data the backend knows has changed."""


class CategoryPayload(msgspec.Struct, frozen=True, dict=True, kw_only=True):
    """A category's canonical v2 JSON bytes as a backend returned them (build it with `from_bytes`)."""

    category: MODEL_REFERENCE_CATEGORY
    data: bytes
    """The canonical v2 JSON bytes (see `from_bytes`); the digest is computed over exactly these."""
    fetched_at: float
    """Unix time the backend read or received the bytes."""
    revision: int | None = None
    """The service revision, when the backend knows it (Redis, bus); None for plain sources."""
    source: str = ""
    """Where the bytes came from (a path or URL), for logs and errors."""
    decoded: DecodedCatalog | None = None
    """The records, when the backend decoded the bytes to check them: readers reuse them instead
    of decoding the same bytes again."""
    given_digest: str | None = None
    """The digest as it arrived with the bytes (checked by the backend), or None."""

    @cached_property
    def digest(self) -> str:
        """sha256 hex of `data`: the given one, else computed on first use (a first load needs none)."""
        return self.given_digest if self.given_digest is not None else catalog_digest(self.data)

    def known_digest(self) -> str | None:
        """The digest when it was given or already computed, else None (nothing is hashed)."""
        known: str | None = self.__dict__.get("digest", self.given_digest)
        return known

    def updated(self, *, fetched_at: float | None = None, revision: int | None = None) -> CategoryPayload:
        """The same bytes with a new fetch time and/or revision (a digest already computed is kept)."""
        return msgspec.structs.replace(
            self,
            fetched_at=self.fetched_at if fetched_at is None else fetched_at,
            revision=self.revision if revision is None else revision,
            given_digest=self.known_digest(),
        )

    @classmethod
    def from_bytes(
        cls,
        category: MODEL_REFERENCE_CATEGORY,
        data: bytes,
        *,
        source: str = "",
        revision: int | None = None,
        decoded: DecodedCatalog | None = None,
        fetched_at: float | None = None,
        digest: str | None = None,
    ) -> CategoryPayload:
        """A payload of the canonical form of `data`: surrounding whitespace removed.

        Canonical bytes carry no leading or trailing whitespace, so they embed verbatim as a JSON value
        in a `Snapshot` and every hop computes the same digest. Pass `digest` only when the caller
        already checked that it is the digest of these canonical bytes.
        """
        return cls(
            category=category,
            data=data.strip(),
            fetched_at=time.time() if fetched_at is None else fetched_at,
            revision=revision,
            source=source,
            decoded=decoded,
            given_digest=digest,
        )

    def records(self) -> DecodedCatalog:
        """The decoded records: the backend's when it decoded them, else decoded now."""
        if self.decoded is not None:
            return self.decoded
        return decode_catalog(self.category, self.data, source=self.source or None)


@runtime_checkable
class ModelReferenceBackend(Protocol):
    """Loads canonical catalogs. Async first; every network or disk wait is bounded by a timeout."""

    name: str

    async def fetch_category(
        self, category: MODEL_REFERENCE_CATEGORY, *, force_refresh: bool = False
    ) -> CategoryPayload | None:
        """The category's current bytes, or None when the backend has no catalog for it.

        Raises `BackendError` when the source failed and there is no last good copy to return.
        """
        ...

    async def fetch_all(
        self, *, force_refresh: bool = False
    ) -> dict[MODEL_REFERENCE_CATEGORY, CategoryPayload]:
        """Every category the backend has (failures are logged and left out)."""
        ...

    def last_fetched(self, category: MODEL_REFERENCE_CATEGORY) -> float | None:
        """Unix time of the last successful fetch of `category`, or None."""
        ...

    def add_invalidation_callback(self, callback: InvalidationCallback) -> None:
        """Register `callback` to be told when a category's data changed."""
        ...

    def supports_writes(self) -> bool:
        """Whether `write_category` is available."""
        ...

    async def write_category(self, category: MODEL_REFERENCE_CATEGORY, data: bytes) -> CategoryPayload:
        """Replace the category atomically with `data` (v2 JSON). Only when `supports_writes()`."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...


async def fetch_categories(
    backend: ModelReferenceBackend,
    categories: Iterable[MODEL_REFERENCE_CATEGORY],
    *,
    force_refresh: bool = False,
) -> dict[MODEL_REFERENCE_CATEGORY, CategoryPayload]:
    """Fetch `categories` from `backend` concurrently; a failing one is logged and left out.

    The result is in category declaration order. Backends implement `fetch_all` with this.
    """
    result: dict[MODEL_REFERENCE_CATEGORY, CategoryPayload] = {}

    async def one(category: MODEL_REFERENCE_CATEGORY) -> None:
        try:
            payload = await backend.fetch_category(category, force_refresh=force_refresh)
        except BackendError as exc:
            _log.error("category_fetch_failed", backend=backend.name, category=category.value, error=str(exc))
            return
        if payload is not None:
            result[category] = payload

    async with anyio.create_task_group() as tg:
        for category in categories:
            tg.start_soon(one, category)
    return {category: result[category] for category in MODEL_REFERENCE_CATEGORY if category in result}
