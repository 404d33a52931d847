"""Beta records: a primary's pending-queue models, served under the source id `"pending"`.

Reads `GET {primary}/model_references/v2/{category}/pending` with an `apikey` header and caches
each category for the TTL. Invalid records are skipped and logged. A network error, 429 or 5xx is
retried (`retry_max_attempts`, backoff doubling from `retry_backoff_seconds`, at most 10 s); when
it still fails the last good copy is kept, or `BackendError` raised when there is none. A refusal
(another 4xx, for instance 403 for a key that may not read the queue) gives the last good copy or
None, as upstream. Select `["pending", "horde"]` to let beta override canonical.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Set
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from horde_model_reference.catalog import decode_record
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, parse_category
from horde_model_reference.errors import BackendError, RecordDecodeError
from horde_model_reference.logs import get_logger
from horde_model_reference.providers.base import ModelProvider
from horde_model_reference.records import GenericModelRecord

if TYPE_CHECKING:
    import httpx

__all__ = ["PENDING_SOURCE_ID", "PendingModelProvider"]

PENDING_SOURCE_ID = "pending"

_log = get_logger(__name__)
_MAX_BACKOFF_SECONDS = 10.0
_Records = Mapping[str, GenericModelRecord]


class PendingModelProvider(ModelProvider):
    """Serves a primary's pending (beta) models for the configured categories."""

    def __init__(
        self,
        *,
        primary_api_url: str,
        apikey: str,
        categories: Iterable[str | MODEL_REFERENCE_CATEGORY],
        cache_ttl_seconds: float = 60.0,
        timeout_seconds: float = 10.0,
        retry_max_attempts: int = 3,
        retry_backoff_seconds: float = 1.0,
    ) -> None:
        """`primary_api_url` includes the API root (for example `https://host/api`)."""
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds!r}")
        if retry_max_attempts < 1:
            raise ValueError(f"retry_max_attempts must be at least 1, got {retry_max_attempts!r}")
        if retry_backoff_seconds < 0:
            raise ValueError(f"retry_backoff_seconds must not be negative, got {retry_backoff_seconds!r}")
        self._attempts = retry_max_attempts
        self._backoff = retry_backoff_seconds
        self._base_url = primary_api_url.rstrip("/")
        self._headers = {"apikey": apikey}
        self._categories = frozenset(parse_category(c) for c in categories)
        self._ttl = cache_ttl_seconds
        self._timeout = timeout_seconds
        self._lock = threading.Lock()
        self._cache: dict[MODEL_REFERENCE_CATEGORY, tuple[float, _Records]] = {}

    @property
    def source_id(self) -> str:
        """Always `"pending"`."""
        return PENDING_SOURCE_ID

    def provided_categories(self) -> Set[MODEL_REFERENCE_CATEGORY]:
        """The configured categories."""
        return self._categories

    def cache_ttl_seconds(self) -> float | None:
        """How long a fetched category is reused."""
        return self._ttl

    def fetch_timeout_seconds(self) -> float | None:
        """Every attempt's timeout and backoff plus a second, so the request's own timeout reports first."""
        waits = sum(self._delay(attempt) for attempt in range(1, self._attempts))
        return self._attempts * self._timeout + waits + 1.0

    def _delay(self, attempt: int) -> float:
        """The wait before retry number `attempt` (1 for the first retry)."""
        return min(self._backoff * 2 ** (attempt - 1), _MAX_BACKOFF_SECONDS)

    def _url_for(self, category: MODEL_REFERENCE_CATEGORY) -> str:
        """The pending endpoint of `category`."""
        return f"{self._base_url}/model_references/v2/{category.value}/pending"

    def fetch_category(
        self, category: MODEL_REFERENCE_CATEGORY, *, force_refresh: bool = False
    ) -> _Records | None:
        """Pending records of `category` (cached for the TTL); None for a category not configured.

        A refusal (4xx) gives the last good copy or None; a request that still fails after its
        retries raises `BackendError` when no earlier copy is cached.
        """
        cat = parse_category(category)
        if cat not in self._categories:
            return None
        cached = None if force_refresh else self._fresh(cat)
        if cached is not None:
            return cached
        import httpx  # Imported by the first fetch, not by every worker that imports the package.

        url = self._url_for(cat)
        reason = ""
        with httpx.Client(timeout=self._timeout) as client:
            for attempt in range(self._attempts):
                if attempt:
                    time.sleep(self._delay(attempt))
                try:
                    response = client.get(url, headers=self._headers)
                except httpx.HTTPError as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                    continue
                if not _transient(response.status_code):
                    return self._accept(cat, url, response)
                reason = f"HTTP {response.status_code}"
        return self._fallback(cat, url, reason)

    async def fetch_category_async(
        self, category: MODEL_REFERENCE_CATEGORY, *, force_refresh: bool = False
    ) -> _Records | None:
        """As `fetch_category`, with `httpx.AsyncClient`."""
        cat = parse_category(category)
        if cat not in self._categories:
            return None
        cached = None if force_refresh else self._fresh(cat)
        if cached is not None:
            return cached
        import httpx

        url = self._url_for(cat)
        reason = ""
        async with httpx.AsyncClient(timeout=self._timeout) as client:
            for attempt in range(self._attempts):
                if attempt:
                    await anyio.sleep(self._delay(attempt))
                try:
                    response = await client.get(url, headers=self._headers)
                except httpx.HTTPError as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                    continue
                if not _transient(response.status_code):
                    return self._accept(cat, url, response)
                reason = f"HTTP {response.status_code}"
        return self._fallback(cat, url, reason)

    def _fresh(self, category: MODEL_REFERENCE_CATEGORY) -> _Records | None:
        with self._lock:
            entry = self._cache.get(category)
        if entry is None or time.monotonic() - entry[0] >= self._ttl:
            return None
        return entry[1]

    def _accept(
        self, category: MODEL_REFERENCE_CATEGORY, url: str, response: httpx.Response
    ) -> _Records | None:
        if 400 <= response.status_code < 500:
            return self._refused(category, url, response.status_code)
        if response.status_code != 200:
            return self._fallback(category, url, f"HTTP {response.status_code}")
        try:
            raw = msgspec.json.decode(response.content)
        except msgspec.DecodeError as exc:
            return self._fallback(category, url, f"malformed JSON: {exc}")
        if not isinstance(raw, dict):
            return self._fallback(category, url, f"expected a JSON object, got a JSON {type(raw).__name__}")
        records = MappingProxyType(_decode_records(category, raw, url))
        with self._lock:
            self._cache[category] = (time.monotonic(), records)
        return records

    def _refused(self, category: MODEL_REFERENCE_CATEGORY, url: str, status: int) -> _Records | None:
        """The primary refused the request (4xx): the last good copy, or None as upstream."""
        with self._lock:
            entry = self._cache.get(category)
        _log.warning(
            "pending_fetch_refused",
            category=category.value,
            url=url,
            status=status,
            kept="last good" if entry else "nothing",
        )
        return entry[1] if entry else None

    def _fallback(self, category: MODEL_REFERENCE_CATEGORY, url: str, reason: str) -> _Records:
        with self._lock:
            entry = self._cache.get(category)
        if entry is None:
            raise BackendError(PENDING_SOURCE_ID, category.value, f"{url}: {reason}")
        _log.warning(
            "pending_fetch_failed", category=category.value, url=url, reason=reason, kept="last good"
        )
        return entry[1]


def _transient(status: int) -> bool:
    """A status worth retrying: 429 or a server error."""
    return status == 429 or status >= 500


def _decode_records(
    category: MODEL_REFERENCE_CATEGORY, raw: dict[str, Any], url: str
) -> dict[str, GenericModelRecord]:
    records: dict[str, GenericModelRecord] = {}
    for name, fields in raw.items():
        if not isinstance(fields, dict):
            _log.warning(
                "pending_record_skipped", category=category.value, model=name, reason="not an object"
            )
            continue
        try:
            records[name] = decode_record(category, {"name": name, **fields})
        except RecordDecodeError as exc:
            _log.warning(
                "pending_record_skipped",
                category=category.value,
                model=name,
                reason=exc.reason,
                field=exc.field,
                url=url,
            )
    return records
