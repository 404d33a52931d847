"""Category snapshots in Redis: revision, digest and the v2 JSON bytes of one category per key.

Key `<prefix>:snapshot:<category>` is a hash with the fields `revision`, `digest`, `data` and
`signature` (the service's signature of category, revision and digest; empty without a key). It is
written with ONE `HSET` (all the fields) and read with ONE `HGETALL`, so a reader never sees a
revision with the wrong body or signature. Bytes in, bytes out (`decode_responses=False`); every wait is bounded
by the socket timeouts and the pool's `BlockingConnectionPool` timeout. Redis errors surface as
`BackendError` carrying the category.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import anyio
import msgspec
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from horde_model_reference.bus.signing import Signer, sign_snapshot
from horde_model_reference.categories import all_categories
from horde_model_reference.errors import BackendError
from horde_model_reference.logs import get_logger
from horde_model_reference.urls import redact_url

__all__ = ["DEFAULT_KEY_PREFIX", "CircuitBreaker", "RedisSnapshotStore", "StoredSnapshot"]

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
    signature: str | None = None
    """The service's signature over category, revision and digest (`bus.signing.sign_snapshot`)."""


class CircuitBreaker:
    """Skip a source for `cooldown` seconds after it failed: a hung store costs one timeout, not one per call.

    After the cooldown one call tries again (half-open); a success closes the breaker.
    """

    def __init__(self, name: str, cooldown: float) -> None:
        self.name = name
        self.cooldown = cooldown
        self._open_until = 0.0
        self.trips = 0
        """How often the breaker opened."""

    @property
    def is_open(self) -> bool:
        """Whether calls are skipped right now."""
        return time.monotonic() < self._open_until

    def allow(self) -> bool:
        """Whether a call may go to the source now."""
        return not self.is_open

    def failed(self, error: str) -> None:
        """A call failed: open the breaker (logged once per opening)."""
        self.trips += 1
        self._open_until = time.monotonic() + self.cooldown
        _log.warning("bus_source_unavailable", source=self.name, error=error, skipped_for=self.cooldown)

    def succeeded(self) -> None:
        """A call succeeded: close the breaker."""
        if self._open_until:
            _log.info("bus_source_recovered", source=self.name)
        self._open_until = 0.0


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
        op_timeout: float | None = None,
        signer: Signer | None = None,
    ) -> None:
        self.url = redact_url(url)
        self._signer = signer
        self.key_prefix = key_prefix
        # Each command gets one quick retry; the overall bound (`op_timeout`) is enforced per call below.
        self._op_timeout = op_timeout or 2 * (socket_timeout + connect_timeout) + pool_timeout
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
        """Store `snapshot` in one command (HSET with all fields; signed when the store has a key)."""
        signature = snapshot.signature or sign_snapshot(
            self._signer, snapshot.category, snapshot.revision, snapshot.digest
        )
        mapping: dict[FieldT, EncodableT] = {
            "revision": snapshot.revision,
            "digest": snapshot.digest,
            "data": snapshot.data,
            "signature": signature or "",
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
                signature=fields.get(b"signature", b"").decode("ascii") or None,
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
