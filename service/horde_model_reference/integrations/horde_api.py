"""A small client of the AI-Horde public API: live model status, usage statistics and workers.

Reads `GET /v2/status/models`, `/v2/stats/img/models`, `/v2/stats/text/models` and `/v2/workers`.
Every request is bounded by one overall timeout; answers are cached for `ttl` seconds; concurrent
callers of the same resource (on the same event loop) share one request. A circuit breaker opens
on the first failure (timeout, connection error, 5xx, malformed answer), so a Horde outage costs
one timeout: until its cooldown ends every call is answered at once, from the last good answer
when one is younger than `stale_ttl`, else with `HordeApiUnavailable`. After the cooldown requests
go out again (one per resource at a time): a success closes the breaker, a failure reopens it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import anyio
import msgspec

from horde_model_reference.errors import ModelReferenceError
from horde_model_reference.logs import get_logger

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DEFAULT_HORDE_API_URL",
    "Answer",
    "CircuitBreaker",
    "HordeApiClient",
    "HordeApiError",
    "HordeApiUnavailable",
    "HordeModelStats",
    "HordeModelStatus",
    "HordeModelType",
    "HordeWorker",
]

DEFAULT_HORDE_API_URL = "https://aihorde.net/api"
"""The public AI-Horde API (the `/v2/...` paths are appended)."""

HordeModelType = Literal["image", "text"]
BreakerState = Literal["closed", "open", "half_open"]

_log = get_logger(__name__)
_T = TypeVar("_T")
_CLIENT_AGENT = "horde-model-reference:0.1.0:https://github.com/Haidra-Org/horde-model-reference"


class HordeApiError(ModelReferenceError):
    """The AI-Horde API could not be read."""


class HordeApiUnavailable(HordeApiError):
    """The AI-Horde API failed (or its circuit breaker is open) and no usable cached answer exists."""

    def __init__(self, reason: str, *, retry_in: float | None = None) -> None:
        self.reason = reason
        self.retry_in = retry_in
        after = f"; next attempt in {retry_in:.0f} s" if retry_in else ""
        super().__init__(f"AI-Horde API unavailable: {reason}{after}")


class HordeModelStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One model in `GET /v2/status/models`: how many workers serve it, its queue and speed."""

    name: str
    count: int = 0
    performance: float | None = None
    queued: float | None = None
    jobs: float | None = None
    eta: int | None = None
    type: str | None = None


class HordeModelStats(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /v2/stats/{img,text}/models`: requests per model name over a day, a month, all time."""

    day: dict[str, int] = msgspec.field(default_factory=dict)
    month: dict[str, int] = msgspec.field(default_factory=dict)
    total: dict[str, int] = msgspec.field(default_factory=dict)


class HordeWorker(msgspec.Struct, frozen=True, kw_only=True):
    """One worker in `GET /v2/workers` (the fields used here; the others are ignored)."""

    id: str
    name: str
    type: str | None = None
    performance: str | None = None
    online: bool = False
    trusted: bool = False
    uptime: int = 0
    models: tuple[str, ...] = ()
    max_length: int | None = None
    max_context_length: int | None = None
    bridge_agent: str | None = None
    nsfw: bool | None = None


class Answer(msgspec.Struct, Generic[_T], frozen=True):
    """A value read from the API, when it was fetched (Unix time), and whether it is a stale copy."""

    value: _T
    fetched_at: float
    stale: bool = False


class CircuitBreaker:
    """Closed -> open after `failure_threshold` consecutive failures -> half-open after `cooldown`.

    Thread-safe. While open, `allow()` is False. Once the cooldown has passed the breaker is
    half-open: requests go out again (the client sends at most one per resource at a time), and
    the first failure opens it again with a new cooldown while a success closes it.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 1,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or cooldown <= 0:
            raise ValueError("failure_threshold must be >= 1 and cooldown > 0")
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self.last_error: str | None = None
        self.opened_total = 0

    @property
    def state(self) -> BreakerState:
        """ "closed", "open" (calls refused) or "half_open" (the cooldown is over or a probe runs)."""
        with self._lock:
            return self._state()

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cooldown:
            return "half_open"
        return "open"

    @property
    def retry_in(self) -> float | None:
        """Seconds until the next probe is allowed; None while closed."""
        with self._lock:
            if self._opened_at is None:
                return None
            return max(0.0, self.cooldown - (self._clock() - self._opened_at))

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success."""
        with self._lock:
            return self._failures

    def allow(self) -> bool:
        """Whether a request may go out now (closed or half-open)."""
        with self._lock:
            return self._state() != "open"

    def record_success(self) -> None:
        """A request succeeded: close the breaker."""
        with self._lock:
            was_open = self._opened_at is not None
            self._failures = 0
            self._opened_at = None
            self.last_error = None
        if was_open:
            _log.info("horde_api_breaker", state="closed")

    def record_failure(self, reason: str) -> None:
        """A request failed: open the breaker once the threshold is reached (restart the cooldown)."""
        with self._lock:
            self._failures += 1
            self.last_error = reason
            opening = self._failures >= self.failure_threshold
            if opening:
                if self._opened_at is None:
                    self.opened_total += 1
                self._opened_at = self._clock()
        if opening:
            _log.warning(
                "horde_api_breaker",
                state="open",
                failures=self._failures,
                cooldown=self.cooldown,
                error=reason,
            )

    def status(self) -> dict[str, Any]:
        """For health output: `degraded`, `consecutive_failures`, `seconds_until_retry`, `state`."""
        retry_in = self.retry_in
        return {
            "degraded": self.state != "closed",
            "consecutive_failures": self.consecutive_failures,
            "seconds_until_retry": None if retry_in is None else round(retry_in, 1),
            "state": self.state,
            "last_error": self.last_error,
        }


class _FetchFailed(Exception):
    """One request failed (the reason is the message)."""


@dataclass
class _Flight:
    thread: int
    done: anyio.Event = field(default_factory=anyio.Event)
    answer: Answer[Any] | None = None


@dataclass
class _Counters:
    requests: int = 0
    failures: int = 0
    cache_hits: int = 0
    short_circuited: int = 0
    stale_served: int = 0


class HordeApiClient:
    """Reads the AI-Horde API with a timeout, a TTL cache, a circuit breaker and request sharing.

    Safe to share between event loops in different threads (each request uses its own
    `httpx.AsyncClient`: requests are rare, once per `ttl` per resource).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_HORDE_API_URL,
        *,
        timeout: float = 10.0,
        ttl: float = 60.0,
        stale_ttl: float = 3600.0,
        breaker: CircuitBreaker | None = None,
        client_agent: str = _CLIENT_AGENT,
    ) -> None:
        if timeout <= 0 or ttl < 0 or stale_ttl < 0:
            raise ValueError("timeout must be > 0, ttl and stale_ttl >= 0")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.ttl = ttl
        self.stale_ttl = stale_ttl
        self.breaker = breaker or CircuitBreaker()
        self.counters = _Counters()
        self._headers = {"Client-Agent": client_agent, "Accept": "application/json"}
        self._cache: dict[str, tuple[float, Answer[Any]]] = {}
        self._flights: dict[str, _Flight] = {}
        self._lock = threading.Lock()

    async def model_status(self, kind: HordeModelType) -> Answer[tuple[HordeModelStatus, ...]]:
        """`GET /v2/status/models?type=<kind>&model_state=known`."""
        params = {"type": _kind(kind), "model_state": "known"}
        return await self._get("/v2/status/models", params, tuple[HordeModelStatus, ...])

    async def model_stats(self, kind: HordeModelType) -> Answer[HordeModelStats]:
        """`GET /v2/stats/img/models` or `/v2/stats/text/models` (`model_state=known`)."""
        path = "/v2/stats/img/models" if _kind(kind) == "image" else "/v2/stats/text/models"
        return await self._get(path, {"model_state": "known"}, HordeModelStats)

    async def workers(self, kind: HordeModelType) -> Answer[tuple[HordeWorker, ...]]:
        """`GET /v2/workers?type=<kind>`."""
        return await self._get("/v2/workers", {"type": _kind(kind)}, tuple[HordeWorker, ...])

    def forget(self) -> None:
        """Drop every cached answer (the breaker keeps its state)."""
        with self._lock:
            self._cache.clear()

    # -- internals ----------------------------------------------------------------------------

    async def _get(self, path: str, params: dict[str, str], kind: type[_T]) -> Answer[_T]:
        key = path + "?" + "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        cached = self._fresh(key)
        if cached is not None:
            return cached
        flight = self._join(key)
        if flight is not None:
            await flight.done.wait()
            if flight.answer is not None:
                return flight.answer
            return self._fallback(key, self.breaker.last_error or "the shared request failed")
        if not self.breaker.allow():
            self.counters.short_circuited += 1
            return self._fallback(key, self.breaker.last_error or "circuit breaker open")
        flight = _Flight(threading.get_ident())
        with self._lock:
            self._flights[key] = flight
        try:
            value = await self._fetch(path, params, kind)
        except _FetchFailed as exc:
            self.counters.failures += 1
            self.breaker.record_failure(str(exc))
            _log.warning("horde_api_request_failed", url=self.base_url + path, params=params, error=str(exc))
            return self._fallback(key, str(exc))
        else:
            self.breaker.record_success()
            answer: Answer[_T] = Answer(value, time.time())
            with self._lock:
                self._cache[key] = (time.monotonic(), answer)
            flight.answer = answer
            return answer
        finally:
            with self._lock:
                self._flights.pop(key, None)
            flight.done.set()

    def _fresh(self, key: str) -> Answer[Any] | None:
        with self._lock:
            entry = self._cache.get(key)
        if entry is not None and time.monotonic() - entry[0] < self.ttl:
            self.counters.cache_hits += 1
            return entry[1]
        return None

    def _join(self, key: str) -> _Flight | None:
        """The request for `key` already under way on this thread's event loop, if any."""
        with self._lock:
            flight = self._flights.get(key)
        return flight if flight is not None and flight.thread == threading.get_ident() else None

    def _fallback(self, key: str, reason: str) -> Answer[Any]:
        """The last good answer when young enough (marked stale), else `HordeApiUnavailable`."""
        with self._lock:
            entry = self._cache.get(key)
        if entry is not None and time.monotonic() - entry[0] < self.stale_ttl:
            self.counters.stale_served += 1
            return Answer(entry[1].value, entry[1].fetched_at, stale=True)
        raise HordeApiUnavailable(reason, retry_in=self.breaker.retry_in)

    async def _fetch(self, path: str, params: dict[str, str], kind: type[_T]) -> _T:
        import httpx  # Only a manager that asks AI-Horde for popularity pays for the import.

        url = self.base_url + path
        self.counters.requests += 1
        response: httpx.Response | None = None
        with anyio.move_on_after(self.timeout):
            try:
                async with httpx.AsyncClient(timeout=self.timeout, headers=self._headers) as client:
                    response = await client.get(url, params=params)
            except httpx.HTTPError as exc:
                raise _FetchFailed(f"GET {path}: {type(exc).__name__}: {exc or 'no detail'}") from None
        if response is None:
            raise _FetchFailed(f"GET {path}: timed out after {self.timeout:g} s")
        if response.status_code != 200:
            raise _FetchFailed(f"GET {path}: HTTP {response.status_code}")
        try:
            return msgspec.json.decode(response.content, type=kind)
        except msgspec.DecodeError as exc:
            raise _FetchFailed(f"GET {path}: unexpected answer: {exc}") from None


def _kind(kind: str) -> str:
    if kind not in ("image", "text"):
        raise ValueError(f"unknown Horde model type {kind!r}; expected 'image' or 'text'")
    return kind
