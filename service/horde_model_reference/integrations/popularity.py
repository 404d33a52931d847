"""Models ranked by live AI-Horde usage: worker counts and requests per day, month, all time.

`PopularityService.rank(category, records, ...)` joins a category's records with the Horde's
status, statistics and (optionally) workers, read concurrently through `HordeApiClient` (cached,
behind its circuit breaker). Only image_generation and text_generation have Horde data; other
categories rank to an empty list, as in the reference implementation.

Names are matched case-insensitively. A text model also matches the names its backends report
it under: `aphrodite/<org/model>` and `koboldcpp/<model>`; its worker count is the largest of
those variants (as the reference does), its usage their sum. Unlike the reference, usage is not
summed over other quantizations or sizes of the same base model: a record counts its own names.

`PopularityMixin` gives a manager `await get_popular_models(...)` (and a sync variant).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any, Literal, Protocol, TypeVar, cast, get_args

import anyio
import msgspec

from horde_model_reference._portal import run_sync
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, parse_category
from horde_model_reference.integrations.horde_api import (
    DEFAULT_HORDE_API_URL,
    Answer,
    HordeApiClient,
    HordeModelStats,
    HordeModelStatus,
    HordeModelType,
    HordeWorker,
)
from horde_model_reference.names import TEXT_BACKEND_PREFIXES
from horde_model_reference.records import GenericModelRecord

__all__ = [
    "HORDE_MODEL_TYPES",
    "SORT_KEYS",
    "ModelUsage",
    "PopularModel",
    "PopularityMixin",
    "PopularityService",
    "SortKey",
    "UsageStats",
    "WorkerSummary",
]

SortKey = Literal["worker_count", "usage_day", "usage_month", "usage_total"]
SORT_KEYS: tuple[str, ...] = get_args(SortKey)

HORDE_MODEL_TYPES: dict[MODEL_REFERENCE_CATEGORY, HordeModelType] = {
    MODEL_REFERENCE_CATEGORY.image_generation: "image",
    MODEL_REFERENCE_CATEGORY.text_generation: "text",
}
"""The categories the Horde reports on, and the Horde's name for each."""

_T = TypeVar("_T")


class UsageStats(msgspec.Struct, frozen=True):
    """Requests served for a model over the past day, the past month and all time."""

    day: int
    month: int
    total: int


class WorkerSummary(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A worker serving a model."""

    id: str
    name: str
    performance: str | None = None
    online: bool = False
    trusted: bool = False
    uptime: int = 0
    max_length: int | None = None
    max_context_length: int | None = None
    bridge_agent: str | None = None
    nsfw: bool | None = None


class ModelUsage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A model's live Horde figures (None fields are left out of the JSON)."""

    worker_count: int = 0
    """Workers serving it: the worker list's count when fetched, else the status count."""
    queued_jobs: float | None = None
    performance: float | None = None
    eta: int | None = None
    queued: float | None = None
    usage_stats: UsageStats | None = None
    worker_summaries: dict[str, WorkerSummary] | None = None
    observed_at: int = 0
    """Unix time of the oldest Horde answer used."""
    stale: bool = False
    """True when the Horde was unreachable and a cached answer older than the TTL was used."""


class PopularModel(msgspec.Struct, frozen=True, kw_only=True):
    """A record with its live Horde figures (as the reference's `PopularModelResult`)."""

    name: str
    record: GenericModelRecord
    stats: ModelUsage


class PopularityService:
    """Ranks records by live Horde usage; owns a `HordeApiClient` unless one is given."""

    def __init__(
        self,
        client: HordeApiClient | None = None,
        *,
        base_url: str = DEFAULT_HORDE_API_URL,
        timeout: float = 10.0,
        ttl: float = 60.0,
    ) -> None:
        self.client = client or HordeApiClient(base_url, timeout=timeout, ttl=ttl)

    def status(self) -> dict[str, Any]:
        """The Horde API's circuit breaker state (for health output)."""
        return self.client.breaker.status()

    async def rank(
        self,
        category: str | MODEL_REFERENCE_CATEGORY,
        records: Mapping[str, GenericModelRecord],
        *,
        limit: int = 10,
        sort_by: SortKey | str = "worker_count",
        include_workers: bool = False,
    ) -> list[PopularModel]:
        """The `limit` records of `category` ranked by `sort_by`, best first (ties by name).

        Raises `ValueError` for a bad `limit` or `sort_by`, `HordeApiUnavailable` when the Horde
        cannot be read and no cached answer is young enough.
        """
        cat = parse_category(category)
        _check_args(limit, sort_by)
        kind = HORDE_MODEL_TYPES.get(cat)
        if kind is None or not records:
            return []
        client = self.client
        calls: list[Callable[[], Awaitable[Answer[Any]]]] = [
            partial(client.model_status, kind),
            partial(client.model_stats, kind),
        ]
        if include_workers:
            calls.append(partial(client.workers, kind))
        answers = await _gather(calls)
        status = cast(Answer[tuple[HordeModelStatus, ...]], answers[0])
        stats = cast(Answer[HordeModelStats], answers[1])
        workers = cast(Answer[tuple[HordeWorker, ...]], answers[2]) if include_workers else None
        observed = int(min(answer.fetched_at for answer in answers))
        stale = any(answer.stale for answer in answers)
        joined = _Joined(status.value, stats.value, workers.value if workers is not None else None)
        text = cat is MODEL_REFERENCE_CATEGORY.text_generation
        usages = {name: joined.usage(name, text, observed, stale) for name in records}
        ranked = sorted(usages.items(), key=lambda item: (-_metric(item[1], sort_by), item[0]))
        return [PopularModel(name=name, record=records[name], stats=usage) for name, usage in ranked[:limit]]


class _Joined:
    """The Horde answers indexed by lower-case model name."""

    def __init__(
        self,
        status: Sequence[HordeModelStatus],
        stats: HordeModelStats,
        workers: Sequence[HordeWorker] | None,
    ) -> None:
        self.status = {entry.name.lower(): entry for entry in status}
        self.day = _lower_keys(stats.day)
        self.month = _lower_keys(stats.month)
        self.total = _lower_keys(stats.total)
        self.workers: dict[str, list[HordeWorker]] | None = None
        if workers is not None:
            self.workers = {}
            for worker in workers:
                for model in worker.models:
                    self.workers.setdefault(model.lower(), []).append(worker)

    def usage(self, name: str, text: bool, observed_at: int, stale: bool) -> ModelUsage:
        names = _variants(name) if text else (name.lower(),)
        statuses = [self.status[n] for n in names if n in self.status]
        status = max(statuses, key=lambda s: s.count) if statuses else None
        day = sum(self.day.get(n, 0) for n in names)
        month = sum(self.month.get(n, 0) for n in names)
        total = sum(self.total.get(n, 0) for n in names)
        summaries: dict[str, WorkerSummary] | None = None
        if self.workers is not None:
            summaries = {}
            for n in names:
                for worker in self.workers.get(n, ()):
                    summaries.setdefault(worker.id, _summary(worker))
        status_count = status.count if status is not None else 0
        count = status_count if summaries is None else len(summaries)
        return ModelUsage(
            worker_count=count,
            queued_jobs=status.jobs if status else None,
            performance=status.performance if status else None,
            eta=status.eta if status else None,
            queued=status.queued if status else None,
            usage_stats=UsageStats(day, month, total) if day or month or total else None,
            worker_summaries=summaries or None,
            observed_at=observed_at,
            stale=stale,
        )


def _variants(name: str) -> tuple[str, ...]:
    """The lower-case names a text model is reported under: itself and its backend variants."""
    lower = name.lower()
    for prefix in TEXT_BACKEND_PREFIXES:
        if lower.startswith(prefix):
            lower = lower[len(prefix) :]
            break
    bare = lower.split("/", 1)[1] if "/" in lower else lower
    return tuple(dict.fromkeys((lower, f"aphrodite/{lower}", f"koboldcpp/{bare}")))


def _lower_keys(values: Mapping[str, int]) -> dict[str, int]:
    lowered: dict[str, int] = {}
    for key, value in values.items():
        lowered[key.lower()] = lowered.get(key.lower(), 0) + value
    return lowered


def _summary(worker: HordeWorker) -> WorkerSummary:
    return WorkerSummary(
        id=worker.id,
        name=worker.name,
        performance=worker.performance,
        online=worker.online,
        trusted=worker.trusted,
        uptime=worker.uptime,
        max_length=worker.max_length,
        max_context_length=worker.max_context_length,
        bridge_agent=worker.bridge_agent,
        nsfw=worker.nsfw,
    )


def _metric(usage: ModelUsage, sort_by: str) -> float:
    if sort_by == "worker_count":
        return float(usage.worker_count)
    stats = usage.usage_stats
    if stats is None:
        return 0.0
    return float({"usage_day": stats.day, "usage_month": stats.month}.get(sort_by, stats.total))


def _check_args(limit: object, sort_by: object) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"limit must be an integer >= 1, got {limit!r}")
    if sort_by not in SORT_KEYS:
        raise ValueError(f"sort_by must be one of {', '.join(SORT_KEYS)}, got {sort_by!r}")


async def _gather(calls: Sequence[Callable[[], Awaitable[_T]]]) -> list[_T]:
    """Run `calls` concurrently; raise the first failure unwrapped (the others are cancelled)."""
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    async def one(index: int, call: Callable[[], Awaitable[_T]], scope: anyio.CancelScope) -> None:
        try:
            results[index] = await call()
        except Exception as exc:
            errors.append(exc)
            scope.cancel()

    async with anyio.create_task_group() as tg:
        for index, call in enumerate(calls):
            tg.start_soon(one, index, call, tg.cancel_scope)
    if errors:
        raise errors[0]
    return results


class _RecordHost(Protocol):
    async def get_model_reference_or_none_async(
        self, category: str | MODEL_REFERENCE_CATEGORY
    ) -> dict[str, GenericModelRecord] | None: ...


class PopularityMixin:
    """Adds `get_popular_models` to a manager (the host reads records; see `_RecordHost`).

    The service is made on first use from `self._settings.horde_api` when that exists (`url`,
    `timeout`, `cache_ttl`), else the defaults; `self._popularity` may be set to inject one.
    """

    _popularity: PopularityService | None = None

    async def get_popular_models(
        self,
        category: str | MODEL_REFERENCE_CATEGORY,
        *,
        limit: int = 10,
        sort_by: SortKey = "worker_count",
        include_workers: bool = False,
    ) -> list[PopularModel]:
        """Models of `category` ranked by live Horde usage (a coroutine, as in the reference).

        Empty for categories the Horde does not report on and for a category without a catalog.
        Raises `HordeApiUnavailable` when the Horde cannot be read and nothing usable is cached.
        """
        cat = parse_category(category)
        _check_args(limit, sort_by)
        if cat not in HORDE_MODEL_TYPES:
            return []
        records = await cast(_RecordHost, self).get_model_reference_or_none_async(cat)
        if not records:
            return []
        return await self.popularity_service.rank(
            cat, records, limit=limit, sort_by=sort_by, include_workers=include_workers
        )

    def get_popular_models_sync(
        self,
        category: str | MODEL_REFERENCE_CATEGORY,
        *,
        limit: int = 10,
        sort_by: SortKey = "worker_count",
        include_workers: bool = False,
    ) -> list[PopularModel]:
        """`get_popular_models` for synchronous callers (runs on the shared background loop)."""
        call = partial(
            self.get_popular_models, category, limit=limit, sort_by=sort_by, include_workers=include_workers
        )
        return run_sync(call)

    @property
    def popularity_service(self) -> PopularityService:
        """The service behind `get_popular_models` (created on first use)."""
        service = self._popularity
        if service is None:
            settings = getattr(getattr(self, "_settings", None), "horde_api", None)
            service = self._popularity = PopularityService(
                base_url=str(getattr(settings, "url", None) or DEFAULT_HORDE_API_URL),
                timeout=float(getattr(settings, "timeout", None) or 10.0),
                ttl=float(getattr(settings, "cache_ttl", None) or 60.0),
            )
        return service
