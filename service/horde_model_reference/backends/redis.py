"""`RedisBackend`: another backend behind a cache shared by every process on the same Redis.

Key `<prefix>:backend:<category>` (prefix default `hmr:v1`; distinct from the service's
`<prefix>:snapshot:<category>`) is a hash with the fields `data`, `digest`, `revision`,
`stored_at` and `source`, written with ONE `HSET` (all fields) and read with ONE `HGETALL`, so a
reader never sees a body with the wrong digest or revision. Bytes in, bytes out
(`decode_responses=False`).

Freshness rule (independent of any Redis TTL; keys never expire, so a category never reads as
absent because a TTL lapsed): an entry whose `stored_at` is less than `fresh_for` seconds old is
served as is. An older entry is revalidated through the wrapped backend (for a remote backend
that is a conditional request) and rewritten; when the wrapped backend fails, the old entry is
still served. A change the wrapped backend reports (its invalidation callback, e.g. after a
background refresh) makes the next fetch skip the entry and rewrite it. When Redis is down (connection refused, timeout), every fetch goes to the wrapped
backend; Redis is retried after `retry_interval` seconds and used again as soon as it answers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from horde_model_reference.backends._net import _PerLoop
from horde_model_reference.backends.base import (
    CategoryPayload,
    InvalidationCallback,
    ModelReferenceBackend,
    fetch_categories,
)
from horde_model_reference.catalog import catalog_digest
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, canonical_categories, parse_category
from horde_model_reference.errors import BackendError
from horde_model_reference.logs import get_logger
from horde_model_reference.settings import ReplicateMode
from horde_model_reference.urls import redact_url

__all__ = ["DEFAULT_REDIS_KEY_PREFIX", "RedisBackend"]

DEFAULT_REDIS_KEY_PREFIX = "hmr:v1"

_log = get_logger(__name__)


class _RedisDown(Exception):
    """Redis did not answer (already logged)."""


class RedisBackend:
    """Wraps `inner` with a shared Redis cache; falls through to `inner` whenever Redis is down."""

    name = "redis"
    replicate_mode = ReplicateMode.PRIMARY

    def __init__(
        self,
        inner: ModelReferenceBackend,
        url: str,
        *,
        key_prefix: str = DEFAULT_REDIS_KEY_PREFIX,
        fresh_for: float = 30.0,
        socket_timeout: float = 2.0,
        socket_connect_timeout: float = 2.0,
        pool_size: int = 10,
        retry_interval: float = 5.0,
    ) -> None:
        self.inner = inner
        self.url = url
        self.key_prefix = key_prefix
        self.fresh_for = fresh_for
        self.socket_timeout = socket_timeout
        self.socket_connect_timeout = socket_connect_timeout
        self.pool_size = pool_size
        self.retry_interval = retry_interval
        # One quick retry per command (a pooled connection may be stale after a Redis restart).
        self._op_timeout = 2 * (socket_timeout + socket_connect_timeout)
        self._clients: _PerLoop[Redis] = _PerLoop(self._new_client, lambda c: c.aclose())
        self._down_until = 0.0
        self._down = False
        self._served: dict[MODEL_REFERENCE_CATEGORY, str] = {}
        self._fetched: dict[MODEL_REFERENCE_CATEGORY, float] = {}
        self._callbacks: list[InvalidationCallback] = []
        self._changed: set[MODEL_REFERENCE_CATEGORY] = set()
        inner.add_invalidation_callback(self._inner_changed)

    def key(self, category: MODEL_REFERENCE_CATEGORY) -> str:
        """The Redis key of `category`."""
        return f"{self.key_prefix}:backend:{parse_category(category).value}"

    @property
    def redis_available(self) -> bool:
        """False while Redis is considered down (between a failure and the next retry)."""
        return not self._down

    # ------------------------------------------------------------------ the protocol

    async def fetch_category(
        self, category: MODEL_REFERENCE_CATEGORY, *, force_refresh: bool = False
    ) -> CategoryPayload | None:
        """A fresh Redis entry, else the wrapped backend's answer (stored in Redis for the others)."""
        category = parse_category(category)
        cached: CategoryPayload | None = None
        redis_ok = True
        try:
            cached = await self._read(category)
        except _RedisDown:
            redis_ok = False
        changed = category in self._changed
        if cached is not None and not force_refresh and not changed and self._is_fresh(cached):
            return self._served_payload(category, cached)
        self._changed.discard(category)
        try:
            payload = await self.inner.fetch_category(category, force_refresh=force_refresh)
        except BackendError as exc:
            if cached is None:
                raise
            _log.warning(
                "redis_stale_entry_served",
                category=category.value,
                inner=self.inner.name,
                error=str(exc),
                age=round(time.time() - cached.fetched_at, 3),
            )
            return self._served_payload(category, cached)
        if payload is None:
            return None
        if redis_ok:
            payload = await self._store(category, payload, cached)
        return self._served_payload(category, payload)

    async def fetch_all(
        self, *, force_refresh: bool = False
    ) -> dict[MODEL_REFERENCE_CATEGORY, CategoryPayload]:
        """Every canonical category, fetched concurrently (failures logged, left out)."""
        return await fetch_categories(self, canonical_categories(), force_refresh=force_refresh)

    def last_fetched(self, category: MODEL_REFERENCE_CATEGORY) -> float | None:
        """When `category` was last served (from Redis or the wrapped backend)."""
        return self._fetched.get(category)

    def add_invalidation_callback(self, callback: InvalidationCallback) -> None:
        """Call `callback(category)` when the wrapped backend or Redis shows a category changed."""
        self._callbacks.append(callback)

    def supports_writes(self) -> bool:
        """Whether the wrapped backend takes writes."""
        return self.inner.supports_writes()

    async def write_category(self, category: MODEL_REFERENCE_CATEGORY, data: bytes) -> CategoryPayload:
        """Write through the wrapped backend, then update Redis."""
        category = parse_category(category)
        payload = await self.inner.write_category(category, data)
        try:
            cached = await self._read(category)
            payload = await self._store(category, payload, cached)
        except _RedisDown:
            pass  # logged; the next fetch stores it
        return self._served_payload(category, payload)

    async def aclose(self) -> None:
        """Close the Redis clients of every loop, then the wrapped backend."""
        await self._clients.aclose(timeout=self._op_timeout)
        await self.inner.aclose()

    # ------------------------------------------------------------------ internals

    def _new_client(self) -> Redis:
        pool = BlockingConnectionPool.from_url(
            self.url,
            max_connections=self.pool_size,
            timeout=self.socket_timeout,
            socket_timeout=self.socket_timeout,
            socket_connect_timeout=self.socket_connect_timeout,
            decode_responses=False,
            protocol=3,
            retry=Retry(NoBackoff(), retries=1),
        )
        return Redis.from_pool(pool)

    def _is_fresh(self, payload: CategoryPayload) -> bool:
        age = time.time() - payload.fetched_at
        return -self.fresh_for < age < self.fresh_for

    def _inner_changed(self, category: MODEL_REFERENCE_CATEGORY) -> None:
        """The wrapped backend has newer data: the next fetch skips the Redis entry and rewrites it."""
        self._changed.add(category)
        self._notify(category)

    def _notify(self, category: MODEL_REFERENCE_CATEGORY) -> None:
        for callback in list(self._callbacks):
            try:
                callback(category)
            except Exception:
                _log.exception("invalidation_callback_failed", backend=self.name, category=category.value)

    def _served_payload(
        self, category: MODEL_REFERENCE_CATEGORY, payload: CategoryPayload
    ) -> CategoryPayload:
        previous = self._served.get(category)
        self._served[category] = payload.digest
        self._fetched[category] = time.time()
        if previous is not None and previous != payload.digest:
            self._notify(category)
        return payload

    async def _call(
        self, category: MODEL_REFERENCE_CATEGORY, operation: str, command: Callable[[Redis], Awaitable[Any]]
    ) -> Any:
        """Run one Redis command, bounded by the operation timeout; `_RedisDown` when it fails."""
        if self._down and time.monotonic() < self._down_until:
            raise _RedisDown
        try:
            with anyio.fail_after(self._op_timeout):
                result = await command(self._clients.get())
        except (RedisError, OSError, TimeoutError) as exc:
            self._down_until = time.monotonic() + self.retry_interval
            level = _log.debug if self._down else _log.error
            level(
                "redis_unavailable",
                url=redact_url(self.url),
                category=category.value,
                operation=operation,
                error=repr(exc),
                retry_in=self.retry_interval,
            )
            self._down = True
            raise _RedisDown from exc
        if self._down:
            self._down = False
            _log.info("redis_recovered", url=redact_url(self.url))
        return result

    async def _read(self, category: MODEL_REFERENCE_CATEGORY) -> CategoryPayload | None:
        key = self.key(category)
        fields: dict[bytes, bytes] = await self._call(category, "read", lambda r: r.hgetall(key))
        if not fields:
            return None
        try:
            data = bytes(fields[b"data"]).strip()
            digest = fields[b"digest"].decode("ascii")
            stored_at = float(fields[b"stored_at"])
            revision = int(fields[b"revision"])
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            _log.error("redis_entry_malformed", key=key, category=category.value, error=repr(exc))
            return None
        if catalog_digest(data) != digest:
            _log.error("redis_entry_corrupt", key=key, category=category.value, reason="digest mismatch")
            return None
        return CategoryPayload.from_bytes(
            category, data, fetched_at=stored_at, revision=revision, source=f"redis:{key}", digest=digest
        )

    async def _store(
        self, category: MODEL_REFERENCE_CATEGORY, payload: CategoryPayload, cached: CategoryPayload | None
    ) -> CategoryPayload:
        """Write `payload` with its revision (the wrapped backend's, else the next one) in one HSET."""
        now = time.time()
        key = self.key(category)
        if cached is not None and cached.digest == payload.digest:
            # Unchanged: only mark it fresh. Never rewrite the revision alone: another writer may have
            # stored a newer body since we read, and its revision must stay with it.
            revision = cached.revision
            mapping: dict[FieldT, EncodableT] = {"stored_at": repr(now)}
        else:
            previous = cached.revision if cached is not None and cached.revision is not None else 0
            revision = payload.revision or previous + 1
            mapping = {
                "data": payload.data,
                "digest": payload.digest,
                "revision": revision,
                "stored_at": repr(now),
                "source": payload.source,
            }
        try:
            await self._call(category, "write", lambda r: r.hset(key, mapping=mapping))
        except _RedisDown:
            return payload
        if revision is None or payload.revision == revision:
            return payload
        return payload.updated(revision=revision)
