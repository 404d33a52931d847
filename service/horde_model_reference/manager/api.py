"""ModelReferenceManager: the consumer API, sync and async, over a backend or the bus.

Warm reads are one dict lookup on an immutable snapshot: no I/O, no stat, no lock. Cold reads
load through the backend (sync callers via the manager's background loop, async callers on their
own loop). Data never expires into absence: revalidation happens in the background and replaces
a snapshot only with a newer, decodable one. With a NATS URL the manager follows the bus instead
(see `bus/consumer.py`) and serves new revisions within milliseconds of their publication.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
from anyio.abc import TaskStatus

from horde_model_reference._portal import get_portal, run_sync
from horde_model_reference.backends.base import ModelReferenceBackend
from horde_model_reference.backends.filesystem import LocalReadOnlyBackend
from horde_model_reference.cache import (
    ReferenceCache,
)
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.integrations.popularity import PopularityMixin
from horde_model_reference.logs import get_logger
from horde_model_reference.manager.prefetch import DeferredPrefetchHandle, PrefetchStrategy
from horde_model_reference.manager.reads import ReadApi
from horde_model_reference.manager.typed import TypedAccessMixin
from horde_model_reference.names import validate_model_name
from horde_model_reference.settings import (
    HordeModelReferenceSettings,
    ReplicateMode,
    check_settings,
    load_settings,
)

if TYPE_CHECKING:
    from horde_model_reference.bus.consumer import BusConsumer, BusOptions

__all__ = ["ModelReferenceManager", "validate_model_name"]

_log = get_logger(__name__)
_UNSET: Any = object()


def _prefetch_strategy(value: PrefetchStrategy | str) -> PrefetchStrategy:
    """`value` as a `PrefetchStrategy`; `ValueError` listing the valid ones otherwise."""
    try:
        return PrefetchStrategy(value)
    except ValueError:
        valid = ", ".join(strategy.value for strategy in PrefetchStrategy)
        raise ValueError(f"prefetch_strategy must be one of: {valid}; got {value!r}") from None


def _replicate_mode(
    backend: ModelReferenceBackend | None,
    requested: ReplicateMode | None,
    settings: HordeModelReferenceSettings,
) -> ReplicateMode:
    """The mode asked for, else the given backend's (`replicate_mode`), else the settings'.

    `RuntimeError` when the mode asked for is not the given backend's, as upstream.
    """
    backend_mode = getattr(backend, "replicate_mode", None)
    if requested and backend_mode and ReplicateMode(str(requested).upper()) != backend_mode:
        raise RuntimeError(
            "Backend replicate_mode does not match requested ModelReferenceManager configuration. "
            f"Backend mode: {backend_mode}, requested mode: {requested}."
        )
    return requested or backend_mode or settings.replicate_mode


class ModelReferenceManager(PopularityMixin, TypedAccessMixin, ReadApi):
    """The model reference, read from a backend or kept current over the bus. A singleton.

    The first construction sets `backend`, `base_path`, `replicate_mode`, `prefetch_strategy`
    (default LAZY, as upstream; SYNC with a NATS URL: construction waits for the bus's initial
    sync), `offline` (and `nats_url`); later constructions return the same
    instance and raise `RuntimeError` ("... different settings ...") when an argument they pass
    differs (arguments left out are not compared; upstream compared its defaults too).
    """

    _instance: ClassVar[ModelReferenceManager | None] = None
    _initialised: bool
    _class_lock: ClassVar[threading.RLock] = threading.RLock()

    def __new__(cls, *args: Any, **kwargs: Any) -> ModelReferenceManager:
        with cls._class_lock:
            if cls._instance is None:
                instance = super().__new__(cls)
                instance._initialised = False
                cls._instance = instance
            return cls._instance

    def __init__(
        self,
        backend: ModelReferenceBackend | None = _UNSET,
        base_path: str | Path | None = _UNSET,
        replicate_mode: ReplicateMode | None = _UNSET,
        prefetch_strategy: PrefetchStrategy = _UNSET,
        offline: bool = _UNSET,
        *,
        nats_url: str | None = _UNSET,
        settings: HordeModelReferenceSettings | None = None,
        provider_timeout: float | None = None,
        start_bus: bool = True,
    ) -> None:
        requested = {
            "backend": backend,
            "base_path": base_path,
            "replicate_mode": replicate_mode,
            "prefetch_strategy": prefetch_strategy,
            "offline": offline,
            "nats_url": nats_url,
        }
        with self._class_lock:
            if self._initialised:
                self._check_same_settings(requested)
                return
            self._setup(
                requested, check_settings(settings) if settings else load_settings(), provider_timeout
            )
            self._initialised = True
        self._start_prefetch(start_bus)

    # ----------------------------------------------------------------- construction

    def _setup(
        self, requested: dict[str, Any], settings: HordeModelReferenceSettings, provider_timeout: float | None
    ) -> None:
        self._settings = settings
        given = {key: value for key, value in requested.items() if value is not _UNSET}
        self._replicate_mode = _replicate_mode(given.get("backend"), given.get("replicate_mode"), settings)
        self._offline = bool(given.get("offline", settings.offline))
        backend_path = getattr(given.get("backend"), "base_path", None)
        self._base_path = Path(given.get("base_path") or backend_path or settings.resolved_base_path())
        self._nats_url: str | None = given.get("nats_url", settings.nats.url)
        # Upstream's default is LAZY; following the bus, the initial sync is one cheap snapshot
        # read, and construction waits for it (SYNC) so the manager is ready when it returns.
        default_strategy = PrefetchStrategy.SYNC if self._nats_url else PrefetchStrategy.LAZY
        self._prefetch_strategy = _prefetch_strategy(given.get("prefetch_strategy") or default_strategy)
        backend = given.get("backend")
        if backend is None and self._nats_url:
            backend = LocalReadOnlyBackend(self._base_path)
        elif backend is None:
            from horde_model_reference.backends.factory import backend_from_settings

            backend = backend_from_settings(
                settings,
                base_path=self._base_path,
                replicate_mode=self._replicate_mode,
                offline=self._offline,
            )
        self._backend: ModelReferenceBackend = backend
        self._requested = {
            "backend": self._backend,
            "base_path": self._base_path,
            "replicate_mode": self._replicate_mode,
            "prefetch_strategy": self._prefetch_strategy,
            "offline": self._offline,
            "nats_url": self._nats_url,
        }
        self._cache = ReferenceCache(negative_ttl=settings.negative_cache_seconds)
        self._revalidate_interval = min(
            settings.cache_ttl_seconds,
            float(getattr(self._backend, "revalidate_interval", settings.cache_ttl_seconds)),
        )
        self._revalidating: set[str] = set()
        self._provider_timeout = provider_timeout or settings.provider_timeout_seconds
        self._deferred_handle: DeferredPrefetchHandle | None = None
        self._async_handle: DeferredPrefetchHandle | None = None
        self._bus: BusConsumer | None = None
        if self._nats_url:
            from horde_model_reference.bus.consumer import BusConsumer

            self._bus = BusConsumer(self._cache, self._bus_options(), dispatch=self._dispatch_async)
        self._backend.add_invalidation_callback(self._on_backend_invalidation)

    def _bus_options(self) -> BusOptions:
        # The bus (nats-py, aiohttp, redis) is imported only by managers that follow it.
        from horde_model_reference.bus.connection import nats_auth_from_settings
        from horde_model_reference.bus.consumer import BusOptions

        nats = self._settings.nats
        return BusOptions(
            nats_url=self._nats_url or "",
            subject_prefix=nats.subject_prefix,
            request_timeout=nats.request_timeout,
            redis_url=self._settings.redis.url,
            redis_key_prefix=self._settings.redis.key_prefix,
            auth=nats_auth_from_settings(nats),
            jetstream=nats.jetstream,
            resync_jitter=nats.resync_jitter,
            snapshot_requests=nats.snapshot_requests,
        )

    def _check_same_settings(self, requested: dict[str, Any]) -> None:
        for key, value in requested.items():
            if value is _UNSET:
                continue
            current = self._requested[key]
            if key == "base_path" and value is not None:
                value = Path(value)
            if key == "prefetch_strategy":
                value = _prefetch_strategy(value)
            if value != current and not (key == "backend" and value is current):
                raise RuntimeError(
                    "ModelReferenceManager is a singleton and has already been instantiated with different "
                    f"settings: existing {key}={current!r}; new {key}={value!r} "
                    "(call ModelReferenceManager.reset() first)"
                )

    def _start_prefetch(self, start_bus: bool) -> None:
        if self._bus is not None:
            if not start_bus:
                return
            self._bus.start_in_background()
        strategy = self._prefetch_strategy
        if strategy is PrefetchStrategy.SYNC:
            self.warm_cache()
        elif strategy is PrefetchStrategy.DEFERRED:
            self._deferred_handle = DeferredPrefetchHandle(self.warm_cache_async)
        elif strategy is PrefetchStrategy.ASYNC:
            handle = DeferredPrefetchHandle(self.warm_cache_async)
            self._deferred_handle = handle
            self._async_handle = handle
            get_portal().start_task_soon(self._run_handle_async, handle)

    async def _run_handle_async(self, handle: DeferredPrefetchHandle) -> None:
        try:
            await handle.run_async()
        except Exception:
            _log.exception("async_prefetch_failed")

    def create_deferred_prefetch_handle(self, *, force_refresh: bool = False) -> DeferredPrefetchHandle:
        """A new warm-up handle (it becomes `deferred_prefetch_handle`); nothing runs until it is triggered."""
        handle = DeferredPrefetchHandle(self.warm_cache_async, force_refresh=force_refresh)
        self._deferred_handle = handle
        return handle

    def ensure_ready(self, *, overwrite_existing: bool = False) -> None:
        """Load every category now (blocking); afterwards `is_warm` is True and reads do no I/O."""
        self.get_all_model_references_or_none(overwrite_existing)

    async def ensure_ready_async(
        self, *, overwrite_existing: bool = False, httpx_client: object = None
    ) -> None:
        """`ensure_ready` on the running loop (`httpx_client` is accepted as upstream's and unused)."""
        await self.get_all_model_references_or_none_async(overwrite_existing)

    @classmethod
    def get_instance(cls) -> ModelReferenceManager:
        """The existing instance (raises `RuntimeError` when none was constructed)."""
        if cls._instance is None or not cls._instance._initialised:
            raise RuntimeError("ModelReferenceManager instance has not been created yet (construct it first)")
        return cls._instance

    @classmethod
    def has_instance(cls) -> bool:
        """Whether an instance exists."""
        return cls._instance is not None and cls._instance._initialised

    @classmethod
    def reset(cls) -> None:
        """Stop and forget the instance (its bus subscription is closed)."""
        with cls._class_lock:
            instance, cls._instance = cls._instance, None
        if instance is not None and instance._initialised:
            instance.close()

    async def run_bus(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Follow the bus on the caller's event loop until cancelled (for async applications).

        Construct the manager with `start_bus=False`, then `await tg.start(manager.run_bus)`:
        `tg.start` returns once the initial sync is complete.
        """
        if self._bus is None:
            raise RuntimeError(
                "ModelReferenceManager has no NATS URL: construct it with nats_url=... to follow the bus"
            )
        await self._bus.run(task_status=task_status)

    def close(self) -> None:
        """Stop following the bus and release the backend."""
        if self._bus is not None:
            self._bus.stop()
        try:
            run_sync(self._backend.aclose)
        except Exception:
            _log.exception("backend_close_failed", backend=getattr(self._backend, "name", "?"))

    # ----------------------------------------------------------------- properties

    @property
    def backend(self) -> ModelReferenceBackend:
        """The backend canonical data is read from."""
        return self._backend

    @property
    def base_path(self) -> Path:
        """Where catalogs live on disk."""
        return self._base_path

    @property
    def replicate_mode(self) -> ReplicateMode:
        """PRIMARY or REPLICA."""
        return self._replicate_mode

    @property
    def prefetch_strategy(self) -> PrefetchStrategy:
        """The warm-up strategy chosen at construction."""
        return self._prefetch_strategy

    @property
    def offline(self) -> bool:
        """Whether the manager never downloads."""
        return self._offline

    @property
    def deferred_prefetch_handle(self) -> DeferredPrefetchHandle | None:
        """The warm-up handle (DEFERRED and ASYNC strategies)."""
        return self._deferred_handle

    @property
    def prefetch_pending(self) -> bool:
        """Whether a deferred or background warm-up has not finished yet."""
        # The handle's own state, so that whoever awaited it sees `False` at once (no flag to lag behind).
        return any(
            handle is not None and not handle.done for handle in (self._async_handle, self._deferred_handle)
        )

    @property
    def bus_connected(self) -> bool:
        """Whether the manager follows the bus and is connected to it."""
        return self._bus is not None and self._bus.connected

    @property
    def data_root(self) -> Path:
        """The base path (the given backend's, by default), resolved (upstream's name)."""
        return self._base_path.resolve()

    def supports_metadata(self) -> bool:
        """False: backends here keep no per-category metadata files (revisions come from the bus)."""
        return False

    def get_metadata(
        self, category: str | MODEL_REFERENCE_CATEGORY, *, raise_if_unsupported: bool = False
    ) -> None:
        """None, as upstream for a backend without metadata; `NotImplementedError` when asked to raise."""
        if raise_if_unsupported:
            raise NotImplementedError(f"{type(self._backend).__name__} does not support metadata tracking")

    async def get_metadata_async(
        self, category: str | MODEL_REFERENCE_CATEGORY, *, raise_if_unsupported: bool = False
    ) -> None:
        """Async `get_metadata`."""
        self.get_metadata(category, raise_if_unsupported=raise_if_unsupported)
