"""ModelReferenceManager: the consumer API, sync and async, over a backend or the bus.

Warm reads are one dict lookup on an immutable snapshot: no I/O, no stat, no lock. Cold reads
load through the backend (sync callers via the manager's background loop, async callers on their
own loop). Data never expires into absence: revalidation happens in the background and replaces
a snapshot only with a newer, decodable one. With a NATS URL the manager follows the bus instead
(see `bus/consumer.py`) and serves new revisions within milliseconds of their publication.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import anyio
import anyio.to_thread
import msgspec

from horde_model_reference._portal import get_portal, run_sync
from horde_model_reference.backends.base import CategoryPayload, ModelReferenceBackend
from horde_model_reference.backends.filesystem import LocalReadOnlyBackend
from horde_model_reference.bus.consumer import BusConsumer, BusOptions
from horde_model_reference.cache import (
    CategorySnapshot,
    ChangeCallback,
    ChangeNotice,
    ReferenceCache,
    log_callback_failure,
)
from horde_model_reference.catalog import decode_catalog, validate_catalog_bytes
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, canonical_categories, parse_category
from horde_model_reference.errors import (
    BackendError,
    CatalogDecodeError,
    CategoryNotFoundError,
    InvalidModelNameError,
    ModelNotFoundError,
)
from horde_model_reference.logs import get_logger
from horde_model_reference.manager_typed import TypedAccessMixin
from horde_model_reference.prefetch import DeferredPrefetchHandle, PrefetchStrategy
from horde_model_reference.query.manager_api import ProviderQueryMixin
from horde_model_reference.records import GenericModelRecord
from horde_model_reference.settings import HordeModelReferenceSettings, ReplicateMode, load_settings
from horde_model_reference.source_consts import HORDE_SOURCE_ID, SourceSelector

__all__ = ["ModelReferenceManager", "validate_model_name"]

_log = get_logger(__name__)
_UNSET: Any = object()
_TEXT_BACKEND_PREFIXES = ("aphrodite/", "koboldcpp/")


def validate_model_name(name: object) -> str:
    """Reject names that could escape a directory: empty, NUL, backslash, absolute, or '..' parts.

    A single '/' is allowed (text model ids are `org/model`).
    """
    if not isinstance(name, str) or not name:
        raise InvalidModelNameError(name, "must be a non-empty string")
    if len(name) > 256:
        raise InvalidModelNameError(name, "longer than 256 characters")
    if "\x00" in name or "\\" in name:
        raise InvalidModelNameError(name, "contains a NUL or a backslash")
    if name.startswith("/") or any(part == ".." for part in name.split("/")):
        raise InvalidModelNameError(name, "is absolute or contains '..'")
    return name


def _name_candidates(category: str, name: str) -> tuple[str, ...]:
    if category == MODEL_REFERENCE_CATEGORY.text_generation:
        for prefix in _TEXT_BACKEND_PREFIXES:
            if name.startswith(prefix):
                return (name, name[len(prefix) :])
    return (name,)


class ModelReferenceManager(TypedAccessMixin, ProviderQueryMixin):
    """The model reference, read from a backend or kept current over the bus. A singleton.

    The first construction sets `backend`, `base_path`, `replicate_mode`, `prefetch_strategy`,
    `offline` (and `nats_url`); later constructions return the same instance and raise
    `RuntimeError` when they ask for different settings.
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
            self._setup(requested, settings or load_settings(), provider_timeout)
            self._initialised = True
        self._start_prefetch()

    # ----------------------------------------------------------------- construction

    def _setup(
        self, requested: dict[str, Any], settings: HordeModelReferenceSettings, provider_timeout: float | None
    ) -> None:
        self._settings = settings
        given = {key: value for key, value in requested.items() if value is not _UNSET}
        self._replicate_mode = given.get("replicate_mode") or settings.replicate_mode
        self._offline = bool(given.get("offline", settings.offline))
        self._base_path = Path(given.get("base_path") or settings.resolved_base_path())
        self._prefetch_strategy = PrefetchStrategy(given.get("prefetch_strategy") or PrefetchStrategy.SYNC)
        self._nats_url: str | None = given.get("nats_url", settings.nats.url)
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
        self._async_warm_pending = False
        self._bus: BusConsumer | None = None
        if self._nats_url:
            self._bus = BusConsumer(self._cache, self._bus_options(), dispatch=self._dispatch_async)
        self._backend.add_invalidation_callback(self._on_backend_invalidation)

    def _bus_options(self) -> BusOptions:
        nats = self._settings.nats
        return BusOptions(
            nats_url=self._nats_url or "",
            subject_prefix=nats.subject_prefix,
            request_timeout=nats.request_timeout,
            redis_url=self._settings.redis.url,
            redis_key_prefix=self._settings.redis.key_prefix,
            user=nats.user,
            password=nats.password,
            token=nats.token,
            creds_file=nats.creds_file,
        )

    def _check_same_settings(self, requested: dict[str, Any]) -> None:
        for key, value in requested.items():
            if value is _UNSET:
                continue
            current = self._requested[key]
            if key == "base_path" and value is not None:
                value = Path(value)
            if value != current and not (key == "backend" and value is current):
                raise RuntimeError(
                    f"ModelReferenceManager already exists with {key}={current!r}; "
                    f"cannot construct it again with {key}={value!r} (call ModelReferenceManager.reset() first)"
                )

    def _start_prefetch(self) -> None:
        if self._bus is not None:
            self._bus.start_in_background()
        strategy = self._prefetch_strategy
        if strategy is PrefetchStrategy.SYNC:
            self.warm_cache()
        elif strategy is PrefetchStrategy.DEFERRED:
            self._deferred_handle = DeferredPrefetchHandle(self.warm_cache_async)
        elif strategy is PrefetchStrategy.ASYNC:
            handle = DeferredPrefetchHandle(self.warm_cache_async)
            self._deferred_handle = handle
            self._async_warm_pending = True
            get_portal().start_task_soon(self._run_handle_async, handle)

    async def _run_handle_async(self, handle: DeferredPrefetchHandle) -> None:
        try:
            await handle.run_async()
        except Exception:
            _log.exception("async_prefetch_failed")
        finally:
            self._async_warm_pending = False

    @classmethod
    def get_instance(cls) -> ModelReferenceManager:
        """The existing instance (raises `RuntimeError` when none was constructed)."""
        if cls._instance is None or not cls._instance._initialised:
            raise RuntimeError("ModelReferenceManager has not been constructed yet")
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
    def is_warm(self) -> bool:
        """Whether every canonical category is loaded or known to be absent."""
        return all(
            category.value in self._cache.snapshots or self._cache.is_known_missing(category.value)
            for category in canonical_categories()
        )

    @property
    def prefetch_pending(self) -> bool:
        """Whether a deferred or background warm-up has not finished yet."""
        handle = self._deferred_handle
        return self._async_warm_pending or (handle is not None and not handle.done)

    @property
    def bus_connected(self) -> bool:
        """Whether the manager follows the bus and is connected to it."""
        return self._bus is not None and self._bus.connected

    # ----------------------------------------------------------------- loading

    def warm_cache(self, *, force_refresh: bool = False) -> None:
        """Load and decode every canonical category now (blocking)."""
        run_sync(self.warm_cache_async, force_refresh)

    async def warm_cache_async(self, force_refresh: bool = False) -> None:
        """Load and decode every canonical category concurrently."""
        if self._bus is not None:
            await anyio.to_thread.run_sync(self._bus.wait_ready, self._bus.options.ready_timeout)
            return
        async with anyio.create_task_group() as tg:
            for category in canonical_categories():
                tg.start_soon(self._load_quietly, category, force_refresh)

    async def _load_quietly(self, category: MODEL_REFERENCE_CATEGORY, force: bool) -> None:
        try:
            await self._load_async(category, force)
        except (BackendError, CatalogDecodeError) as exc:
            _log.error("category_load_failed", category=category.value, error=str(exc))

    async def _load_async(self, category: MODEL_REFERENCE_CATEGORY, force: bool) -> CategorySnapshot | None:
        """Fetch, decode and install one category; keep the last good snapshot on any failure."""
        key = category.value
        generation = self._cache.next_generation()
        current = self._cache.snapshots.get(key)
        try:
            payload = await self._backend.fetch_category(category, force_refresh=force)
        except BackendError:
            if current is not None:
                _log.warning("category_refresh_failed_kept_last_good", category=key, exc_info=True)
                return current
            raise
        if payload is None:
            if current is None:
                self._cache.mark_missing(key)
            return current
        if current is not None and current.digest == payload.digest:
            self._cache.checked_at[key] = time.monotonic()
            return current
        if len(payload.data) > 65536:
            decoded = await anyio.to_thread.run_sync(decode_catalog, category, payload.data)
        else:
            decoded = decode_catalog(category, payload.data)
        notice = self._cache.install(
            category,
            decoded.records,
            revision=payload.revision or 0,
            digest=payload.digest,
            raw=payload.data,
            issues=decoded.issues,
            generation=generation,
        )
        if notice is not None:
            await self._dispatch_async(notice)
        return self._cache.snapshots.get(key)

    async def _dispatch_async(self, notice: ChangeNotice) -> None:
        for callback in self._cache.callbacks:
            try:
                result = callback(notice)
                if result is not None:
                    await result
            except Exception:
                log_callback_failure(callback, notice)

    def _on_backend_invalidation(self, category: MODEL_REFERENCE_CATEGORY) -> None:
        self._cache.checked_at.pop(category.value, None)

    def _maybe_revalidate(self, key: str) -> None:
        if self._bus is not None:
            return
        checked = self._cache.checked_at.get(key, 0.0)
        if time.monotonic() - checked < self._revalidate_interval or key in self._revalidating:
            return
        self._revalidating.add(key)
        get_portal().start_task_soon(self._revalidate, MODEL_REFERENCE_CATEGORY(key))

    async def _revalidate(self, category: MODEL_REFERENCE_CATEGORY) -> None:
        try:
            await self._load_async(category, False)
        except Exception:
            _log.exception("category_revalidation_failed", category=category.value)
        finally:
            self._revalidating.discard(category.value)

    def _snapshot_sync(
        self, category: str | MODEL_REFERENCE_CATEGORY, force: bool = False
    ) -> CategorySnapshot | None:
        snapshot = self._cache.snapshots.get(category)
        if snapshot is not None and not force:
            self._maybe_revalidate(snapshot.category.value)
            return snapshot
        cat = parse_category(category)
        if self._bus is not None:
            self._bus.wait_ready(self._bus.options.ready_timeout)
            return self._cache.snapshots.get(cat.value)
        if not force and self._cache.is_known_missing(cat.value):
            return None
        return run_sync(self._load_async, cat, force)

    async def _snapshot_async(
        self, category: str | MODEL_REFERENCE_CATEGORY, force: bool = False
    ) -> CategorySnapshot | None:
        snapshot = self._cache.snapshots.get(category)
        if snapshot is not None and not force:
            self._maybe_revalidate(snapshot.category.value)
            return snapshot
        cat = parse_category(category)
        if self._bus is not None:
            await anyio.to_thread.run_sync(self._bus.wait_ready, self._bus.options.ready_timeout)
            return self._cache.snapshots.get(cat.value)
        if not force and self._cache.is_known_missing(cat.value):
            return None
        return await self._load_async(cat, force)

    # Hooks for the provider/query mixin.
    def _canonical_records_sync(
        self, category: MODEL_REFERENCE_CATEGORY
    ) -> Mapping[str, GenericModelRecord] | None:
        snapshot = self._snapshot_sync(category)
        return snapshot.records if snapshot else None

    async def _canonical_records_async(
        self, category: MODEL_REFERENCE_CATEGORY
    ) -> Mapping[str, GenericModelRecord] | None:
        snapshot = await self._snapshot_async(category)
        return snapshot.records if snapshot else None

    # ----------------------------------------------------------------- reads

    def get_all_model_references_or_none(
        self, overwrite_existing: bool = False
    ) -> dict[MODEL_REFERENCE_CATEGORY, dict[str, GenericModelRecord] | None]:
        """Every category: its records, or None when it has no catalog."""
        if overwrite_existing or not self.is_warm:
            self.warm_cache(force_refresh=overwrite_existing)
        return {category: self.get_model_reference_or_none(category) for category in MODEL_REFERENCE_CATEGORY}

    def get_all_model_references(
        self, overwrite_existing: bool = False
    ) -> dict[MODEL_REFERENCE_CATEGORY, dict[str, GenericModelRecord]]:
        """Every category that has a catalog, with its records."""
        everything = self.get_all_model_references_or_none(overwrite_existing)
        return {category: records for category, records in everything.items() if records is not None}

    async def get_all_model_references_or_none_async(
        self, overwrite_existing: bool = False
    ) -> dict[MODEL_REFERENCE_CATEGORY, dict[str, GenericModelRecord] | None]:
        """Async `get_all_model_references_or_none`."""
        if overwrite_existing or not self.is_warm:
            await self.warm_cache_async(overwrite_existing)
        result: dict[MODEL_REFERENCE_CATEGORY, dict[str, GenericModelRecord] | None] = {}
        for category in MODEL_REFERENCE_CATEGORY:
            result[category] = await self.get_model_reference_or_none_async(category)
        return result

    async def get_all_model_references_async(
        self, overwrite_existing: bool = False
    ) -> dict[MODEL_REFERENCE_CATEGORY, dict[str, GenericModelRecord]]:
        """Async `get_all_model_references`."""
        everything = await self.get_all_model_references_or_none_async(overwrite_existing)
        return {category: records for category, records in everything.items() if records is not None}

    def get_model_reference_or_none(
        self,
        category: str | MODEL_REFERENCE_CATEGORY,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> dict[str, GenericModelRecord] | None:
        """The category's records by name, or None when it has no catalog."""
        if source != HORDE_SOURCE_ID:
            merged = self._merged_records_sync(parse_category(category), source)
            return dict(merged) if merged is not None else None
        snapshot = self._snapshot_sync(category, overwrite_existing)
        return dict(snapshot.records) if snapshot is not None else None

    async def get_model_reference_or_none_async(
        self,
        category: str | MODEL_REFERENCE_CATEGORY,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> dict[str, GenericModelRecord] | None:
        """Async `get_model_reference_or_none`."""
        if source != HORDE_SOURCE_ID:
            merged = await self._merged_records_async(parse_category(category), source)
            return dict(merged) if merged is not None else None
        snapshot = await self._snapshot_async(category, overwrite_existing)
        return dict(snapshot.records) if snapshot is not None else None

    def get_model_reference(
        self,
        category: str | MODEL_REFERENCE_CATEGORY,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> dict[str, GenericModelRecord]:
        """The category's records by name; `CategoryNotFoundError` when it has no catalog."""
        records = self.get_model_reference_or_none(category, overwrite_existing, source=source)
        if records is None:
            raise CategoryNotFoundError(parse_category(category).value)
        return records

    async def get_model_reference_async(
        self,
        category: str | MODEL_REFERENCE_CATEGORY,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> dict[str, GenericModelRecord]:
        """Async `get_model_reference`."""
        records = await self.get_model_reference_or_none_async(category, overwrite_existing, source=source)
        if records is None:
            raise CategoryNotFoundError(parse_category(category).value)
        return records

    def get_model_or_none(
        self,
        category: str | MODEL_REFERENCE_CATEGORY,
        model_name: str,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> GenericModelRecord | None:
        """One model, or None when the model or its category is absent. The hot path."""
        if source == HORDE_SOURCE_ID:
            snapshot = self._cache.snapshots.get(category)
            if snapshot is None or overwrite_existing:
                snapshot = self._snapshot_sync(category, overwrite_existing)
                if snapshot is None:
                    return None
            elif self._bus is None:
                self._maybe_revalidate(snapshot.category.value)
            records: Mapping[str, GenericModelRecord] | None = snapshot.records
        else:
            records = self._merged_records_sync(parse_category(category), source)
        return self._find(records, category, model_name)

    async def get_model_or_none_async(
        self,
        category: str | MODEL_REFERENCE_CATEGORY,
        model_name: str,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> GenericModelRecord | None:
        """Async `get_model_or_none`."""
        if source == HORDE_SOURCE_ID:
            snapshot = await self._snapshot_async(category, overwrite_existing)
            records = snapshot.records if snapshot is not None else None
        else:
            records = await self._merged_records_async(parse_category(category), source)
        return self._find(records, category, model_name)

    @staticmethod
    def _find(
        records: Mapping[str, GenericModelRecord] | None, category: str, model_name: str
    ) -> GenericModelRecord | None:
        if records is None:
            return None
        record = records.get(model_name)
        if record is not None:
            return record
        validate_model_name(model_name)
        for candidate in _name_candidates(str(category), model_name)[1:]:
            record = records.get(candidate)
            if record is not None:
                return record
        return None

    def get_model(
        self,
        category: str | MODEL_REFERENCE_CATEGORY,
        model_name: str,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> GenericModelRecord:
        """One model; `ModelNotFoundError` (a KeyError and RuntimeError) when absent."""
        record = self.get_model_or_none(category, model_name, overwrite_existing, source=source)
        if record is None:
            raise ModelNotFoundError(parse_category(category).value, model_name)
        return record

    async def get_model_async(
        self,
        category: str | MODEL_REFERENCE_CATEGORY,
        model_name: str,
        overwrite_existing: bool = False,
        *,
        source: SourceSelector = HORDE_SOURCE_ID,
    ) -> GenericModelRecord:
        """Async `get_model`."""
        record = await self.get_model_or_none_async(category, model_name, overwrite_existing, source=source)
        if record is None:
            raise ModelNotFoundError(parse_category(category).value, model_name)
        return record

    def get_model_names_or_none(
        self, category: str | MODEL_REFERENCE_CATEGORY, overwrite_existing: bool = False
    ) -> list[str] | None:
        """The model names of a category, or None when it has no catalog."""
        snapshot = self._snapshot_sync(category, overwrite_existing)
        return list(snapshot.records) if snapshot is not None else None

    def get_model_names(
        self, category: str | MODEL_REFERENCE_CATEGORY, overwrite_existing: bool = False
    ) -> list[str]:
        """The model names of a category; `CategoryNotFoundError` when it has no catalog."""
        names = self.get_model_names_or_none(category, overwrite_existing)
        if names is None:
            raise CategoryNotFoundError(parse_category(category).value)
        return names

    async def get_model_names_or_none_async(
        self, category: str | MODEL_REFERENCE_CATEGORY, overwrite_existing: bool = False
    ) -> list[str] | None:
        """Async `get_model_names_or_none`."""
        snapshot = await self._snapshot_async(category, overwrite_existing)
        return list(snapshot.records) if snapshot is not None else None

    async def get_model_names_async(
        self, category: str | MODEL_REFERENCE_CATEGORY, overwrite_existing: bool = False
    ) -> list[str]:
        """Async `get_model_names`."""
        names = await self.get_model_names_or_none_async(category, overwrite_existing)
        if names is None:
            raise CategoryNotFoundError(parse_category(category).value)
        return names

    # ----------------------------------------------------------------- raw JSON

    def get_raw_model_reference_bytes(
        self, category: str | MODEL_REFERENCE_CATEGORY, overwrite_existing: bool = False
    ) -> bytes | None:
        """The category's canonical v2 JSON bytes, undecoded, or None."""
        cat = parse_category(category)
        if self._bus is None:
            payload = run_sync(self._fetch_payload, cat, overwrite_existing)
            return payload.data if payload is not None else None
        snapshot = self._snapshot_sync(cat)
        if snapshot is None:
            return None
        return snapshot.raw if snapshot.raw is not None else msgspec.json.encode(dict(snapshot.records))

    async def _fetch_payload(self, category: MODEL_REFERENCE_CATEGORY, force: bool) -> CategoryPayload | None:
        return await self._backend.fetch_category(category, force_refresh=force)

    def get_raw_model_reference_json(
        self, category: str | MODEL_REFERENCE_CATEGORY, overwrite_existing: bool = False
    ) -> dict[str, Any] | None:
        """The category's v2 JSON as plain builtins (no record decoding), or None."""
        data = self.get_raw_model_reference_bytes(category, overwrite_existing)
        if data is None:
            return None
        result: dict[str, Any] = msgspec.json.decode(data)
        return result

    def get_raw_model_json(
        self, category: str | MODEL_REFERENCE_CATEGORY, model_name: str, overwrite_existing: bool = False
    ) -> dict[str, Any] | None:
        """One model's v2 JSON as plain builtins (only that record is decoded), or None."""
        validate_model_name(model_name)
        cat = parse_category(category)
        data = self.get_raw_model_reference_bytes(cat, overwrite_existing)
        if data is None:
            return None
        raw = validate_catalog_bytes(cat, data)
        for candidate in _name_candidates(cat.value, model_name):
            if candidate in raw:
                result: dict[str, Any] = msgspec.json.decode(raw[candidate])
                return result
        return None

    def model_reference_to_json_dict(
        self, category: str | MODEL_REFERENCE_CATEGORY, overwrite_existing: bool = False
    ) -> dict[str, Any]:
        """The category's records as JSON-ready builtins; `CategoryNotFoundError` when absent."""
        records = self.get_model_reference(category, overwrite_existing)
        result: dict[str, Any] = msgspec.to_builtins(records)
        return result

    def model_reference_to_json_dict_safe(
        self, category: str | MODEL_REFERENCE_CATEGORY, overwrite_existing: bool = False
    ) -> dict[str, Any] | None:
        """As `model_reference_to_json_dict`, but None (logged) instead of raising."""
        try:
            return self.model_reference_to_json_dict(category, overwrite_existing)
        except (CategoryNotFoundError, BackendError, CatalogDecodeError) as exc:
            _log.warning("model_reference_unavailable", category=str(category), error=str(exc))
            return None

    # ----------------------------------------------------------------- state

    def invalidate_category_cache(self, category: str | MODEL_REFERENCE_CATEGORY) -> None:
        """Revalidate the category on next read (the data held stays readable until then)."""
        self._cache.forget(parse_category(category).value)

    def last_updated(self, category: str | MODEL_REFERENCE_CATEGORY) -> float | None:
        """Unix time this manager last installed new data for the category, or None."""
        snapshot = self._cache.snapshots.get(parse_category(category).value)
        return snapshot.loaded_at if snapshot else None

    def revision(self, category: str | MODEL_REFERENCE_CATEGORY) -> int | None:
        """The service revision held for the category (0 without the bus), or None when not loaded."""
        snapshot = self._cache.snapshots.get(parse_category(category).value)
        return snapshot.revision if snapshot else None

    def snapshot(self, category: str | MODEL_REFERENCE_CATEGORY) -> CategorySnapshot | None:
        """The snapshot held for the category (records, revision, digest together), or None."""
        return self._cache.snapshots.get(parse_category(category).value)

    def on_change(self, callback: ChangeCallback) -> ChangeCallback:
        """Call `callback(ChangeNotice)` (sync or async) whenever a category's data changes.

        A failing callback is logged and the sync goes on. Usable as a decorator.
        """
        self._cache.add_callback(callback)
        return callback

    def wait_for_revision(
        self, category: str | MODEL_REFERENCE_CATEGORY, revision: int, timeout: float = 5.0
    ) -> bool:
        """Block until the held revision of `category` is at least `revision` (or `timeout`)."""
        key = parse_category(category).value
        def reached() -> bool:
            snapshot = self._cache.snapshots.get(key)
            return snapshot is not None and snapshot.revision >= revision

        return reached() or self._cache.wait_for(reached, timeout)
