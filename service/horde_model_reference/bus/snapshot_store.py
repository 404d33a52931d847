"""Category snapshots in Redis: revision, digest and the v2 JSON bytes of one category per key.

Key `<prefix>:snapshot:<category>` is a hash with the fields `revision`, `digest` and `data`. It is
written with ONE `HSET` (all three fields) and read with ONE `HGETALL`, so a reader never sees a
revision with the wrong body. Bytes in, bytes out (`decode_responses=False`); every wait is bounded
by the socket timeouts and the pool's `BlockingConnectionPool` timeout. Redis errors surface as
`BackendError` carrying the category.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import anyio
import msgspec
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from horde_model_reference.categories import all_categories
from horde_model_reference.errors import BackendError
from horde_model_reference.logs import get_logger
from horde_model_reference.urls import redact_url

__all__ = ["DEFAULT_KEY_PREFIX", "RedisSnapshotStore", "StoredSnapshot"]

DEFAULT_KEY_PREFIX = "hmr:v1"
_BACKEND = "redis"
_log = get_logger(__name__)


class StoredSnapshot(msgspec.Struct, frozen=True):
    """A category's snapshot as stored in Redis."""

    category: str
    revision: int
    digest: str
    data: bytes
    """The canonical v2 JSON bytes."""


class RedisSnapshotStore:
    """Reads and writes category snapshots in Redis (`redis.asyncio`, bytes only)."""

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        socket_timeout: float = 2.0,
        connect_timeout: float = 2.0,
        pool_timeout: float = 2.0,
        max_connections: int = 16,
    ) -> None:
        self.url = redact_url(url)
        self.key_prefix = key_prefix
        # Each command gets one quick retry; the overall bound is enforced per call below.
        self._op_timeout = 2 * (socket_timeout + connect_timeout) + pool_timeout
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=pool_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            decode_responses=False,
            protocol=3,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=1),
        )
        self._redis: Redis = Redis.from_pool(pool)

    def key(self, category: str) -> str:
        """The Redis key of `category`'s snapshot."""
        return f"{self.key_prefix}:snapshot:{category}"

    async def put(self, snapshot: StoredSnapshot) -> None:
        """Store `snapshot` in one command (HSET with all fields)."""
        mapping: dict[FieldT, EncodableT] = {
            "revision": snapshot.revision,
            "digest": snapshot.digest,
            "data": snapshot.data,
        }
        await self._call(
            snapshot.category, "put", self._redis.hset(self.key(snapshot.category), mapping=mapping)
        )

    async def get(self, category: str) -> StoredSnapshot | None:
        """The stored snapshot of `category`, or None when there is none (one HGETALL)."""
        fields: dict[bytes, bytes] = await self._call(
            category, "get", self._redis.hgetall(self.key(category))
        )
        if not fields:
            return None
        try:
            return StoredSnapshot(
                category=category,
                revision=int(fields[b"revision"]),
                digest=fields[b"digest"].decode("ascii"),
                data=bytes(fields[b"data"]),
            )
        except (KeyError, ValueError) as exc:
            raise BackendError(
                _BACKEND, category, f"malformed snapshot at {self.key(category)!r}: {exc!r}"
            ) from None

    async def get_states(self, categories: Iterable[str] | None = None) -> dict[str, tuple[int, str]]:
        """`{category: (revision, digest)}` for every stored snapshot (one pipelined round trip)."""
        names = [str(c) for c in (categories if categories is not None else all_categories())]
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hmget(self.key(name), ["revision", "digest"])
            replies: list[Any] = await self._call(None, "get_states", pipe.execute())
        states: dict[str, tuple[int, str]] = {}
        for name, (revision, digest) in zip(names, replies, strict=True):
            if revision is None or digest is None:
                continue
            try:
                states[name] = (int(revision), digest.decode("ascii"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise BackendError(
                    _BACKEND, name, f"malformed revision at {self.key(name)!r}: {exc!r}"
                ) from None
        return states

    async def get_revisions(self, categories: Iterable[str] | None = None) -> dict[str, int]:
        """`{category: revision}` for every stored snapshot."""
        return {name: revision for name, (revision, _) in (await self.get_states(categories)).items()}

    async def ping(self) -> bool:
        """Whether Redis answers (never raises)."""
        try:
            await self._call(None, "ping", self._redis.ping())
        except BackendError as exc:
            _log.debug("redis_ping_failed", url=self.url, error=str(exc))
            return False
        return True

    async def aclose(self) -> None:
        """Close the connections."""
        with anyio.move_on_after(self._op_timeout, shield=True):
            await self._redis.aclose()

    async def _call(self, category: str | None, operation: str, awaitable: Any) -> Any:
        try:
            with anyio.fail_after(self._op_timeout):
                return await awaitable
        except TimeoutError:
            raise BackendError(
                _BACKEND, category, f"{operation} timed out after {self._op_timeout:.1f}s ({self.url})"
            ) from None
        except RedisError as exc:
            raise BackendError(_BACKEND, category, f"{operation} failed ({self.url}): {exc!r}") from exc
